"""The bad-input catalogue: every bad input wintun-cffi refuses, as a declarative table.

Each :class:`Case` names its category, the input in words, what performs it against fresh
state, the exception expected (the exact type), and a state function whose value must be the
same before and after: the refusal changed nothing. ``test_catalogue.py`` runs every case on
the emulator (the header and library cases need no backend).

``python -m tests.reliability.catalogue --write`` renders ``docs/bad-input-catalogue.rst``;
``--check`` exits 1 if that file is not what the table renders (CI runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import wintun_cffi
from emulator.backend import EmulatedSession
from emulator.replay import replay
from ffigen import build, header
from wintun_cffi import netconfig
from wintun_cffi.api import Wintun
from wintun_cffi.capture_read import INBOUND, CaptureFormatError, CaptureRecord, read_capture
from wintun_cffi.errors import (
    AdapterNotFoundError,
    AlreadyExistsError,
    ChecksumMismatchError,
    EntryNotFoundError,
    HandleClosedError,
    LibraryLoadError,
    NotIPPacketError,
    NotSupportedError,
    PacketReleasedError,
    SessionActiveError,
    SessionClosedError,
    WrongArchitectureError,
)
from wintun_cffi.impair import Impairer, Impairment
from wintun_cffi.platform import interpreter_architecture
from wintun_cffi.session import ReceivedPacket, SendBuffer, Session

from .traffic import make_packet, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "bad-input-catalogue.rst"
CAPACITY = 0x20000


class Fresh:
    """The state one case runs against, made anew for each case (parts on first use)."""

    @cached_property
    def emulator(self) -> Emulated:
        return Emulated()

    @cached_property
    def pool(self) -> Wintun:
        wintun = wintun_cffi.emulated("pool")
        self.pool_adapter = wintun.create_adapter("PoolAdapter", pool="Catalogue")
        return wintun

    @cached_property
    def pool_session(self) -> Session:
        """A session on the pool-era adapter, with an unfilled 40-byte buffer allocated."""
        assert self.pool.api == "pool"  # the machine, made with its adapter
        session = self.pool_adapter.start_session(CAPACITY)
        self.pool_buffer = session.allocate_send_packet(40)
        return session

    @cached_property
    def files(self) -> Files:
        return Files()

    @cached_property
    def captures(self) -> Captures:
        return Captures()

    def close(self) -> None:
        if "emulator" in self.__dict__:
            self.emulator.close()
        if "pool_session" in self.__dict__:
            self.pool_session.close()
        if "pool" in self.__dict__:
            self.pool_adapter.close()
        if "files" in self.__dict__:
            self.files.close()
        if "captures" in self.__dict__:
            self.captures.close()


class Emulated:
    """An emulated 0.14 machine: a session with packets in every state, and spare handles."""

    def __init__(self) -> None:
        self.wintun = wintun_cffi.emulated("0.14")
        self.adapter = self.wintun.create_adapter("Catalogue", tunnel_type="Tests")
        self.session = self.adapter.start_session(CAPACITY)
        self.host = self.adapter.host
        self.spare = self.wintun.create_adapter("Spare", tunnel_type="Tests")  # no session
        self.closed_adapter = self.wintun.create_adapter("Closed", tunnel_type="Tests")
        self.closed_adapter.close()
        self.ended_adapter = self.wintun.create_adapter("Ended", tunnel_type="Tests")
        self.closed_session = self.ended_adapter.start_session(CAPACITY)
        self.closed_session.close()
        self.other_adapter = self.wintun.create_adapter("Other", tunnel_type="Tests")
        self.other = self.other_adapter.start_session(CAPACITY)
        for host in (self.host, self.host, self.other_adapter.host):
            assert host.deliver(make_packet(1, 0, 40))
        self.released = self.session.receive(timeout=5)
        self.released.release()
        self.held: ReceivedPacket = self.session.receive(timeout=5)
        self.sent = self.session.allocate_send_packet(28)
        self.sent.data[:] = make_packet(0, 0, 28)
        self.sent.send()
        self.foreign: ReceivedPacket = self.other.receive(timeout=5)
        self.foreign_buffer: SendBuffer = self.other.allocate_send_packet(28)
        netconfig.add_address(self.spare, "10.8.0.2/24")
        netconfig.add_route(self.spare, "10.9.0.0/16", next_hop="10.8.0.1")
        netconfig.set_dns(self.spare, ["10.8.0.53"], ["corp.example"])
        ring = self.host.driver.receive_ring if self.host.driver else None
        assert ring is not None and wait_until(lambda: ring.head == ring.tail)

    @property
    def backend(self) -> Any:
        return self.wintun.backend

    def handle(self, session: Session) -> EmulatedSession:
        handle = session._handle
        assert isinstance(handle, EmulatedSession)
        return handle

    def close(self) -> None:
        for adapter in (self.adapter, self.spare, self.ended_adapter, self.other_adapter):
            adapter.close()


class Files:
    """Library files that are wrong in one way each, in a temporary directory."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="wintun-catalogue-")
        self.directory = Path(self._directory.name)
        self.missing = self.directory / "missing" / "wintun.dll"
        self.text = self.directory / "not-a-library.dll"
        self.text.write_text("this is not a shared library\n")
        other = "arm64" if interpreter_architecture() != "arm64" else "amd64"
        machine = {"arm64": 0xAA64, "amd64": 0x8664}[other]
        pe = bytearray(0x200)
        pe[0:2] = b"MZ"
        struct.pack_into("<I", pe, 0x3C, 0x80)
        pe[0x80:0x84] = b"PE\0\0"
        struct.pack_into("<H", pe, 0x84, machine)
        self.foreign_pe = self.directory / "wintun-other-architecture.dll"
        self.foreign_pe.write_bytes(bytes(pe))
        elf = bytearray(64)
        elf[0:6] = b"\x7fELF\x02\x01"
        struct.pack_into("<H", elf, 18, 183 if other == "arm64" else 62)
        self.foreign_elf = self.directory / "libwintun-other-architecture.so"
        self.foreign_elf.write_bytes(bytes(elf))

    def close(self) -> None:
        self._directory.cleanup()


class Captures:
    """Capture files that are wrong in one way each, in a temporary directory."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="wintun-catalogue-captures-")
        self.directory = Path(self._directory.name)
        packet = make_packet(1, 0, 40)
        record = struct.pack("<IIII", 0, 0, len(packet), len(packet)) + packet
        pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101) + record
        self.truncated = self.directory / "truncated.pcap"
        self.truncated.write_bytes(pcap[:-1])
        self.not_a_capture = self.directory / "not-a-capture.pcap"
        self.not_a_capture.write_text("this is not a capture\n")
        self.unknown_link = self.directory / "unknown-link-type.pcap"
        self.unknown_link.write_bytes(pcap[:20] + struct.pack("<I", 147) + pcap[24:])
        shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
        self.mismatch = self.directory / "length-mismatch.pcapng"
        self.mismatch.write_bytes(shb + struct.pack("<IIHHII", 1, 20, 101, 0, 0, 24))

    def close(self) -> None:
        self._directory.cleanup()


# -- what a case checks unchanged ----------------------------------------------------------


def ring_state(fresh: Fresh) -> object:
    """Both rings' Head/Tail/Alertable bytes, the reader's and writer's positions, the
    packets outstanding, the drop counter and the driver's statistics."""
    emulated = fresh.emulator
    driver = emulated.host.driver
    assert driver is not None
    handle = emulated.handle(emulated.session)
    client = handle.client
    return (
        bytes(driver.send_ring.memory[:12]),
        bytes(driver.receive_ring.memory[:12]),
        client._head,
        client._head_release,
        client._tail,
        client._tail_release,
        _outstanding(handle),
        emulated.session.dropped,
        emulated.host.statistics.as_dict(),
        emulated.held.released,
        emulated.sent.sent,
    )


def both_sessions(fresh: Fresh) -> object:
    """The ring state of the session and of the other session (a foreign token's owner)."""
    other = fresh.emulator.handle(fresh.emulator.other)
    return ring_state(fresh), other.client._head, other.client._tail, _outstanding(other)


def _outstanding(handle: Any) -> int:
    """Packets received and not released, plus allocated and not sent."""
    return len(handle.reads.entries) + len(handle.writes.entries)


def adapter_state(fresh: Fresh) -> object:
    """The emulated machine's adapters and which of them run a session."""
    emulated = fresh.emulator
    names = tuple(emulated.backend.adapter_names())
    running = tuple(a.host.driver is not None for a in (emulated.adapter, emulated.spare))
    return names, running, emulated.closed_session.closed, emulated.closed_adapter.closed


def pool_state(fresh: Fresh) -> object:
    """The pool machine's adapters."""
    backend: Any = fresh.pool.backend
    return tuple(backend.adapter_names()), fresh.pool_adapter.closed


def pool_ring_state(fresh: Fresh) -> object:
    """The pool-era session's Receive ring (Head/Tail/Alertable), its writer's positions, the
    driver's statistics and whether its allocated buffer was sent."""
    session = fresh.pool_session
    handle = session._handle
    assert isinstance(handle, EmulatedSession)
    host = fresh.pool_adapter.host
    driver = host.driver
    assert driver is not None
    client = handle.client
    return (
        bytes(driver.receive_ring.memory[:12]),
        client._tail,
        client._tail_release,
        _outstanding(handle),
        host.statistics.as_dict(),
        fresh.pool_buffer.sent,
    )


def both_machines(fresh: Fresh) -> object:
    """The ring state and adapters of the 0.14 machine and of the pool machine (another
    emulator, whose handles the first one refuses)."""
    # Both made, then both drivers idle: one that finds nothing to read marks its Receive
    # ring alertable shortly after it starts, which would change the state under the case.
    fresh.pool_session
    drivers = [fresh.emulator.host.driver, fresh.pool_adapter.host.driver]
    rings = [driver.receive_ring for driver in drivers if driver is not None]
    assert len(rings) == 2 and wait_until(lambda: all(ring.alertable == 1 for ring in rings))
    return ring_state(fresh), adapter_state(fresh), pool_ring_state(fresh), pool_state(fresh)


def host_state(fresh: Fresh) -> object:
    """The host's MTUs."""
    return fresh.emulator.host.mtu


def _impaired(fresh: Fresh) -> Impairer:
    """The emulated host's inbound impairer (made on first use: 50 % loss)."""
    host = fresh.emulator.host
    if host.inbound is None:
        host.impair(inbound=Impairment(loss=0.5), seed=1)
    assert host.inbound is not None
    return host.inbound


def impairment_state(fresh: Fresh) -> object:
    """The host's impairers, the inbound one's settings and counters."""
    impairer = _impaired(fresh)
    host = fresh.emulator.host
    return impairer, host.outbound, impairer.settings, impairer.statistics


def _set_impairment(**changes: Any) -> Callable[[Fresh], object]:
    return lambda f: _impaired(f).set(**changes)


def capture_state(fresh: Fresh) -> object:
    """The capture files' bytes and modification times."""
    return {
        path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(fresh.captures.directory.iterdir())
    }


def _read_capture(name: str) -> Callable[[Fresh], object]:
    return lambda f: read_capture(getattr(f.captures, name))


def _replay(**settings: Any) -> Callable[[Fresh], object]:
    record = CaptureRecord(0, make_packet(1, 0, 40), INBOUND)
    return lambda f: replay(f.emulator.host, [record], **settings)


def netconfig_state(fresh: Fresh) -> object:
    """The adapter's addresses, MTUs, routes and DNS settings."""
    host = fresh.emulator.spare.host
    return host.interfaces, host.mtu, host.routes, host.dns


def logger_state(fresh: Fresh) -> object:
    """The logger the Wintun object forwards to."""
    return fresh.emulator.wintun._log.target


def generated_state(fresh: Fresh) -> object:
    """The generated binding modules (``ffigen.build.check_generated()`` finds none stale)."""
    return build.check_generated()


def library_state(fresh: Fresh) -> object:
    """The library files' bytes, and which of them the process has mapped."""
    files = fresh.files
    contents = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(files.directory.iterdir())
        if path.is_file()
    }
    maps = Path("/proc/self/maps")
    mapped = maps.read_text().count(str(files.directory)) if maps.exists() else None
    return contents, mapped


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input and what refusing it must look like."""

    category: str
    input: str
    expected: type[BaseException]
    state: Callable[[Fresh], object]
    act: Callable[[Fresh], object]

    @property
    def checked(self) -> str:
        """What the state function compares, in words (its docstring's first line)."""
        return " ".join((self.state.__doc__ or "").split())


def _allocate(size: Any) -> Callable[[Fresh], object]:
    return lambda f: f.emulator.session.allocate_send_packet(size)


def _start(capacity: Any) -> Callable[[Fresh], object]:
    return lambda f: f.emulator.spare.start_session(capacity)


def _create(name: Any, **kwargs: Any) -> Callable[[Fresh], object]:
    return lambda f: f.emulator.wintun.create_adapter(name, **kwargs)


def _create_in_pool(name: Any, **kwargs: Any) -> Callable[[Fresh], object]:
    return lambda f: f.pool.create_adapter(name, **kwargs)


def _send(data: Any, **kwargs: Any) -> Callable[[Fresh], object]:
    return lambda f: f.emulator.session.send(data, **kwargs)


def _set_name(f: Fresh) -> None:
    f.emulator.adapter.name = "Renamed"


def _load(which: str, **kwargs: Any) -> Callable[[Fresh], object]:
    return lambda f: wintun_cffi.load(getattr(f.files, which), **kwargs)


def _route(destination: str, **kwargs: Any) -> Callable[[Fresh], object]:
    return lambda f: netconfig.add_route(f.emulator.spare, destination, **kwargs)


def _dns(servers: Any, domains: Any = ()) -> Callable[[Fresh], object]:
    return lambda f: netconfig.set_dns(f.emulator.spare, servers, domains)


PACKET = make_packet(0, 0, 60)
GUID_TEXT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

CASES: tuple[Case, ...] = (
    # packet sizes
    Case("packet size", "``allocate_send_packet(-1)``", ValueError, ring_state, _allocate(-1)),
    Case(
        "packet size",
        "``allocate_send_packet(0x10000)``",
        ValueError,
        ring_state,
        _allocate(0x10000),
    ),
    Case("packet size", "``allocate_send_packet(1.5)``", TypeError, ring_state, _allocate(1.5)),
    Case("packet size", "``allocate_send_packet(True)``", TypeError, ring_state, _allocate(True)),
    Case("packet size", '``allocate_send_packet("28")``', TypeError, ring_state, _allocate("28")),
    Case(
        "packet size", "``send()`` of 0x10000 bytes", ValueError, ring_state, _send(bytes(0x10000))
    ),
    Case("packet data", "``send(12345)`` (not bytes-like)", TypeError, ring_state, _send(12345)),
    Case("packet data", '``send("text")`` (str, not bytes)', TypeError, ring_state, _send("text")),
    # what a driver before 0.14 would stop at
    Case(
        "not IP (before 0.14)",
        "``send(bytes(30))`` (IP version 0)",
        NotIPPacketError,
        pool_ring_state,
        lambda f: f.pool_session.send(bytes(30)),
    ),
    Case(
        "not IP (before 0.14)",
        "``send()`` of 19 bytes starting with ``0x45``",
        NotIPPacketError,
        pool_ring_state,
        lambda f: f.pool_session.send(b"\x45" + bytes(18)),
    ),
    Case(
        "not IP (before 0.14)",
        "``send()`` of 39 bytes starting with ``0x60``",
        NotIPPacketError,
        pool_ring_state,
        lambda f: f.pool_session.send(b"\x60" + bytes(38)),
    ),
    Case(
        "not IP (before 0.14)",
        "``send_many([packet, bytes(30)])`` (none is sent)",
        NotIPPacketError,
        pool_ring_state,
        lambda f: f.pool_session.send_many([PACKET, bytes(30)]),
    ),
    Case(
        "not IP (before 0.14)",
        "``allocate_send_packet(19)``",
        NotIPPacketError,
        pool_ring_state,
        lambda f: f.pool_session.allocate_send_packet(19),
    ),
    Case(
        "not IP (before 0.14)",
        "``SendBuffer.send()`` of a buffer left all zeros",
        NotIPPacketError,
        pool_ring_state,
        lambda f: f.pool_buffer.send(),
    ),
    # on_full and timeouts
    Case(
        "on_full",
        '``send(packet, on_full="block")``',
        ValueError,
        ring_state,
        _send(PACKET, on_full="block"),
    ),
    Case(
        "on_full",
        "``send(packet, on_full=None)``",
        ValueError,
        ring_state,
        _send(PACKET, on_full=None),
    ),
    Case(
        "on_full",
        '``send(packet, on_full="WAIT")`` (case matters)',
        ValueError,
        ring_state,
        _send(PACKET, on_full="WAIT"),
    ),
    Case(
        "timeout",
        "``receive(timeout=-1)``",
        ValueError,
        ring_state,
        lambda f: f.emulator.session.receive(timeout=-1),
    ),
    Case(
        "timeout",
        "``receive_many(4, timeout=-0.001)``",
        ValueError,
        ring_state,
        lambda f: f.emulator.session.receive_many(4, timeout=-0.001),
    ),
    Case(
        "timeout",
        "``read(timeout=-5)``",
        ValueError,
        ring_state,
        lambda f: f.emulator.session.read(timeout=-5),
    ),
    Case(
        "timeout",
        '``send(packet, on_full="wait", timeout=-1)``',
        ValueError,
        ring_state,
        _send(PACKET, on_full="wait", timeout=-1),
    ),
    Case(
        "batch size",
        "``receive_many(0)``",
        ValueError,
        ring_state,
        lambda f: f.emulator.session.receive_many(0),
    ),
    Case(
        "batch size",
        "``receive_many(-3)``",
        ValueError,
        ring_state,
        lambda f: f.emulator.session.receive_many(-3),
    ),
    Case(
        "batch size",
        "``receive_many(1.5)``",
        ValueError,
        ring_state,
        lambda f: f.emulator.session.receive_many(1.5),  # type: ignore[arg-type]
    ),
    # capacities
    Case("capacity", "``start_session(0)``", ValueError, adapter_state, _start(0)),
    Case(
        "capacity",
        "``start_session(0x1FFFF)`` (below 128 KiB)",
        ValueError,
        adapter_state,
        _start(0x1FFFF),
    ),
    Case(
        "capacity",
        "``start_session(0x30000)`` (not a power of two)",
        ValueError,
        adapter_state,
        _start(0x30000),
    ),
    Case(
        "capacity",
        "``start_session(0x8000000)`` (above 64 MiB)",
        ValueError,
        adapter_state,
        _start(0x8000000),
    ),
    Case("capacity", '``start_session("x")``', TypeError, adapter_state, _start("x")),
    Case("capacity", "``start_session(True)``", TypeError, adapter_state, _start(True)),
    Case(
        "session",
        "a second ``start_session()`` on an adapter that has one",
        SessionActiveError,
        adapter_state,
        lambda f: f.emulator.adapter.start_session(CAPACITY),
    ),
    # names, tunnel types, pools
    Case("name", 'adapter name ``""``', ValueError, adapter_state, _create("", tunnel_type="T")),
    Case(
        "name",
        'adapter name ``"a\\0b"`` (contains NUL)',
        ValueError,
        adapter_state,
        _create("a\0b", tunnel_type="T"),
    ),
    Case(
        "name",
        "adapter name of 128 characters (127 fit)",
        ValueError,
        adapter_state,
        _create("n" * 128, tunnel_type="T"),
    ),
    Case(
        "name",
        "adapter name of 64 non-BMP characters (128 UTF-16 units)",
        ValueError,
        adapter_state,
        _create("\U0001f600" * 64, tunnel_type="T"),
    ),
    Case(
        "name",
        "adapter name ``123`` (not a str)",
        TypeError,
        adapter_state,
        _create(123, tunnel_type="T"),
    ),
    Case(
        "name",
        "``open_adapter()`` of a name no adapter has",
        AdapterNotFoundError,
        adapter_state,
        lambda f: f.emulator.wintun.open_adapter("Nobody"),
    ),
    Case(
        "tunnel type",
        'tunnel type ``""``',
        ValueError,
        adapter_state,
        _create("New", tunnel_type=""),
    ),
    Case(
        "tunnel type",
        "tunnel type of 128 characters",
        ValueError,
        adapter_state,
        _create("New", tunnel_type="t" * 128),
    ),
    Case("tunnel type", "no tunnel type on 0.14", TypeError, adapter_state, _create("New")),
    Case(
        "pool",
        "a pool on 0.14",
        TypeError,
        adapter_state,
        _create("New", tunnel_type="T", pool="P"),
    ),
    Case(
        "pool",
        "pool name of 256 characters (255 fit)",
        ValueError,
        pool_state,
        _create_in_pool("New", pool="p" * 256),
    ),
    Case("pool", 'pool name ``""``', ValueError, pool_state, _create_in_pool("New", pool="")),
    Case("pool", "no pool in the pool era", TypeError, pool_state, _create_in_pool("New")),
    Case(
        "pool",
        "a tunnel type in the pool era",
        TypeError,
        pool_state,
        _create_in_pool("New", pool="P", tunnel_type="T"),
    ),
    # GUIDs
    Case(
        "GUID",
        'GUID given as the text ``"' + GUID_TEXT + '"``',
        TypeError,
        adapter_state,
        _create("New", tunnel_type="T", guid=GUID_TEXT),
    ),
    Case(
        "GUID",
        "GUID given as the int ``12345``",
        TypeError,
        adapter_state,
        _create("New", tunnel_type="T", guid=12345),
    ),
    Case(
        "GUID",
        "GUID given as 16 bytes",
        TypeError,
        adapter_state,
        _create("New", tunnel_type="T", guid=uuid.UUID(GUID_TEXT).bytes),
    ),
    # handles after close
    Case(
        "closed handle",
        "``start_session()`` on a closed adapter",
        HandleClosedError,
        adapter_state,
        lambda f: f.emulator.closed_adapter.start_session(CAPACITY),
    ),
    Case(
        "closed handle",
        "``Adapter.handle`` of a closed adapter",
        HandleClosedError,
        adapter_state,
        lambda f: f.emulator.closed_adapter.handle,
    ),
    Case(
        "closed handle",
        "``receive_packet()`` on a closed session",
        SessionClosedError,
        adapter_state,
        lambda f: f.emulator.closed_session.receive_packet(),
    ),
    Case(
        "closed handle",
        "``allocate_send_packet(28)`` on a closed session",
        SessionClosedError,
        adapter_state,
        lambda f: f.emulator.closed_session.allocate_send_packet(28),
    ),
    Case(
        "closed handle",
        "``send(packet)`` on a closed session",
        SessionClosedError,
        adapter_state,
        lambda f: f.emulator.closed_session.send(PACKET),
    ),
    Case(
        "closed handle",
        "``read_wait_event`` of a closed session",
        SessionClosedError,
        adapter_state,
        lambda f: f.emulator.closed_session.read_wait_event,
    ),
    Case(
        "closed handle",
        "backend ``receive_packet()`` with an ended session handle",
        HandleClosedError,
        adapter_state,
        lambda f: f.emulator.backend.receive_packet(f.emulator.closed_session._handle),
    ),
    # packets used twice, or elsewhere
    Case(
        "double release",
        "``release()`` of a packet already released",
        PacketReleasedError,
        ring_state,
        lambda f: f.emulator.released.release(),
    ),
    Case(
        "double send",
        "``send()`` of a buffer already sent",
        PacketReleasedError,
        ring_state,
        lambda f: f.emulator.sent.send(),
    ),
    Case(
        "double send",
        "``data`` of a buffer already sent",
        PacketReleasedError,
        ring_state,
        lambda f: f.emulator.sent.data,
    ),
    Case(
        "foreign packet",
        "backend release of a token from another session",
        ValueError,
        both_sessions,
        lambda f: f.emulator.backend.release_receive_packet(
            f.emulator.session._handle, f.emulator.foreign._token
        ),
    ),
    Case(
        "foreign packet",
        "backend send of a buffer token from another session",
        ValueError,
        both_sessions,
        lambda f: f.emulator.backend.send_packet(
            f.emulator.session._handle, f.emulator.foreign_buffer._token
        ),
    ),
    Case(
        "foreign packet",
        "backend release of a forged token ``12345``",
        ValueError,
        ring_state,
        lambda f: f.emulator.backend.release_receive_packet(f.emulator.session._handle, 12345),
    ),
    Case(
        "foreign packet",
        "backend release of a received token as a send",
        ValueError,
        ring_state,
        lambda f: f.emulator.backend.send_packet(
            f.emulator.session._handle, f.emulator.held._token
        ),
    ),
    Case(
        "foreign handle",
        "backend ``receive_packet()`` with a str as session",
        TypeError,
        ring_state,
        lambda f: f.emulator.backend.receive_packet("session"),
    ),
    Case(
        "foreign handle",
        "backend ``receive_packet()`` with an adapter handle as session",
        TypeError,
        ring_state,
        lambda f: f.emulator.backend.receive_packet(f.emulator.adapter.handle),
    ),
    Case(
        "foreign handle",
        "backend ``receive_packet()`` with another emulator's session",
        HandleClosedError,
        both_machines,
        lambda f: f.emulator.backend.receive_packet(f.pool_session._handle),
    ),
    Case(
        "foreign handle",
        "backend ``start_session()`` with another emulator's adapter",
        HandleClosedError,
        both_machines,
        lambda f: f.emulator.backend.start_session(f.pool_adapter.handle, CAPACITY),
    ),
    # wrong generation
    Case(
        "generation",
        "``Adapter.delete()`` on 0.14",
        NotSupportedError,
        adapter_state,
        lambda f: f.emulator.adapter.delete(),
    ),
    Case(
        "generation",
        "setting ``Adapter.name`` on 0.14",
        NotSupportedError,
        adapter_state,
        _set_name,
    ),
    Case(
        "generation",
        "``Wintun.adapters(pool)`` on 0.14",
        NotSupportedError,
        adapter_state,
        lambda f: f.emulator.wintun.adapters("Catalogue"),
    ),
    Case(
        "generation",
        "``delete_driver(pool=...)`` on 0.14",
        TypeError,
        adapter_state,
        lambda f: f.emulator.wintun.delete_driver(pool="Catalogue"),
    ),
    Case(
        "generation",
        "backend ``open_adapter_device_object()`` on 0.14",
        NotSupportedError,
        adapter_state,
        lambda f: f.emulator.backend.open_adapter_device_object(f.emulator.adapter.handle),
    ),
    Case(
        "generation",
        "backend ``close_adapter()`` in the pool era",
        NotSupportedError,
        pool_state,
        lambda f: f.pool.backend.close_adapter(f.pool_adapter.handle),
    ),
    Case(
        "generation",
        "backend ``delete_driver()`` in the pool era",
        NotSupportedError,
        pool_state,
        lambda f: f.pool.backend.delete_driver(),
    ),
    # callbacks and the host
    Case(
        "logger",
        "``set_logger(42)`` (not callable)",
        TypeError,
        logger_state,
        lambda f: f.emulator.wintun.set_logger(42),  # type: ignore[arg-type]
    ),
    Case(
        "MTU",
        "``host.set_mtu(575)`` (below IPv4's 576)",
        ValueError,
        host_state,
        lambda f: f.emulator.host.set_mtu(575),
    ),
    Case(
        "MTU",
        "``host.set_mtu(1280, family=5)``",
        ValueError,
        host_state,
        lambda f: f.emulator.host.set_mtu(1280, family=5),  # type: ignore[arg-type]
    ),
    Case(
        "MTU",
        "``host.set_mtu(1500.0)``",
        TypeError,
        host_state,
        lambda f: f.emulator.host.set_mtu(1500.0),  # type: ignore[arg-type]
    ),
    # network configuration
    Case(
        "route",
        '``add_route(adapter, "10.9.0.1/16")`` (host bits set)',
        ValueError,
        netconfig_state,
        _route("10.9.0.1/16"),
    ),
    Case(
        "route",
        '``add_route(adapter, "10.9.0.0/33")``',
        ValueError,
        netconfig_state,
        _route("10.9.0.0/33"),
    ),
    Case(
        "route",
        "a next hop of the other IP version",
        ValueError,
        netconfig_state,
        _route("10.10.0.0/16", next_hop="fd00::1"),
    ),
    Case(
        "route",
        "a multicast next hop",
        ValueError,
        netconfig_state,
        _route("10.10.0.0/16", next_hop="224.0.0.1"),
    ),
    Case(
        "route",
        "``metric=10000`` (0 to 9999 fit)",
        ValueError,
        netconfig_state,
        _route("10.10.0.0/16", metric=10000),
    ),
    Case(
        "route",
        "a route the adapter already has (another metric)",
        AlreadyExistsError,
        netconfig_state,
        _route("10.9.0.0/16", next_hop="10.8.0.1", metric=3),
    ),
    Case(
        "route",
        "removing a route the adapter does not have",
        EntryNotFoundError,
        netconfig_state,
        lambda f: netconfig.remove_route(f.emulator.spare, "10.9.0.0/16"),
    ),
    Case(
        "address",
        "removing an address the adapter does not have",
        EntryNotFoundError,
        netconfig_state,
        lambda f: netconfig.remove_address(f.emulator.spare, "10.8.0.3"),
    ),
    Case(
        "DNS",
        '``set_dns(adapter, ["dns.example"])`` (not an address)',
        ValueError,
        netconfig_state,
        _dns(["dns.example"]),
    ),
    Case(
        "DNS",
        '``set_dns(adapter, "10.8.0.53")`` (a str, not a list)',
        TypeError,
        netconfig_state,
        _dns("10.8.0.53"),
    ),
    Case(
        "DNS",
        "a DNS server listed twice",
        ValueError,
        netconfig_state,
        _dns(["10.8.0.53", "10.8.0.53"]),
    ),
    Case(
        "DNS",
        'search domain ``"corp..example"``',
        ValueError,
        netconfig_state,
        _dns([], ["corp..example"]),
    ),
    # impairments
    Case(
        "impairment",
        "``set(loss=1.5)`` (a probability above 1)",
        ValueError,
        impairment_state,
        _set_impairment(loss=1.5),
    ),
    Case(
        "impairment",
        "``set(duplicate=nan)``",
        ValueError,
        impairment_state,
        _set_impairment(duplicate=float("nan")),
    ),
    Case(
        "impairment",
        "``set(delay=-1)``",
        ValueError,
        impairment_state,
        _set_impairment(delay=-1),
    ),
    Case(
        "impairment",
        "``set(jitter=inf)``",
        ValueError,
        impairment_state,
        _set_impairment(jitter=float("inf")),
    ),
    Case("impairment", "``set(rate=0)``", ValueError, impairment_state, _set_impairment(rate=0)),
    Case(
        "impairment",
        "``set(queue_limit=-1)``",
        ValueError,
        impairment_state,
        _set_impairment(queue_limit=-1),
    ),
    Case(
        "impairment",
        "``set(reorder=0.1)`` without a delay",
        ValueError,
        impairment_state,
        _set_impairment(reorder=0.1),
    ),
    Case(
        "impairment",
        '``set(loss="0.1")`` (text)',
        TypeError,
        impairment_state,
        _set_impairment(loss="0.1"),
    ),
    Case(
        "impairment",
        "``set(burst=1.5)``",
        TypeError,
        impairment_state,
        _set_impairment(burst=1.5),
    ),
    Case(
        "impairment",
        "``set(latency=1)`` (no such setting)",
        TypeError,
        impairment_state,
        _set_impairment(latency=1),
    ),
    Case(
        "impairment",
        "``host.impair(inbound={...})`` (not an Impairment)",
        TypeError,
        impairment_state,
        lambda f: f.emulator.host.impair(inbound={"loss": 0.1}),  # type: ignore[arg-type]
    ),
    # replaying captures
    Case(
        "replay",
        '``replay(host, records, pace="slow")``',
        ValueError,
        ring_state,
        _replay(pace="slow"),
    ),
    Case(
        "replay",
        "``replay(host, records, speed=0)``",
        ValueError,
        ring_state,
        _replay(speed=0),
    ),
    Case(
        "replay",
        '``replay(host, records, speed=float("nan"))``',
        ValueError,
        ring_state,
        _replay(speed=float("nan")),
    ),
    Case(
        "capture file",
        "a pcap file cut inside its last record",
        CaptureFormatError,
        capture_state,
        _read_capture("truncated"),
    ),
    Case(
        "capture file",
        "a text file (bad magic)",
        CaptureFormatError,
        capture_state,
        _read_capture("not_a_capture"),
    ),
    Case(
        "capture file",
        "a pcap file of link type 147 (not an IP link type)",
        CaptureFormatError,
        capture_state,
        _read_capture("unknown_link"),
    ),
    Case(
        "capture file",
        "a pcapng block whose trailing length differs from its leading one",
        CaptureFormatError,
        capture_state,
        _read_capture("mismatch"),
    ),
    # header files
    Case(
        "header",
        "``int x;`` (not a typedef)",
        header.HeaderParseError,
        generated_state,
        lambda f: header.parse_header("int x;"),
    ),
    Case(
        "header",
        "an unterminated comment",
        header.HeaderParseError,
        generated_state,
        lambda f: header.parse_header("/* no end\ntypedef int X;"),
    ),
    Case(
        "header",
        "an unbalanced ``{``",
        header.HeaderParseError,
        generated_state,
        lambda f: header.parse_header("typedef struct { DWORD Value;"),
    ),
    Case(
        "header",
        "a declaration without ``;``",
        header.HeaderParseError,
        generated_state,
        lambda f: header.parse_header("typedef int X"),
    ),
    # library files
    Case(
        "library",
        "``load()`` of a path where no file is",
        FileNotFoundError,
        library_state,
        _load("missing"),
    ),
    Case(
        "library",
        "``load(sha256=...)`` of a file with another SHA-256",
        ChecksumMismatchError,
        library_state,
        _load("text", sha256="0" * 64),
    ),
    Case(
        "library",
        "``load()`` of a PE file for another architecture",
        WrongArchitectureError,
        library_state,
        _load("foreign_pe"),
    ),
    Case(
        "library",
        "``load()`` of an ELF file for another architecture",
        WrongArchitectureError,
        library_state,
        _load("foreign_elf"),
    ),
    Case("library", "``load()`` of a text file", LibraryLoadError, library_state, _load("text")),
)


# -- the document ------------------------------------------------------------------------

_PREAMBLE = """\
:orphan:

..
   GENERATED by ``python -m tests.reliability.catalogue --write`` from
   tests/reliability/catalogue.py: do not edit; CI checks it with ``--check``.

Bad-input catalogue
===================

Every bad input below is refused with the exception shown, and refusing it changes nothing:
the test suite performs each one against fresh state and compares the state named in the last
column before and after. Inputs to the session and adapter API run on the emulator; the same
checks guard the native backend, since both go through ``wintun_cffi.validate`` and the
same high-level API. Header and library inputs need no backend.

.. list-table::
   :header-rows: 1
   :widths: 12 38 20 30

   * - Category
     - Input
     - Exception
     - Checked unchanged
"""


def _exception_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    if module == "builtins":
        return kind.__name__
    if module.startswith("wintun_cffi"):
        return f"wintun_cffi.{kind.__name__}"
    return f"{module}.{kind.__name__}"


def render() -> str:
    """The catalogue as reStructuredText (deterministic: the table's order)."""
    lines = [_PREAMBLE]
    for case in CASES:
        lines.append(f"   * - {case.category}\n")
        lines.append(f"     - {case.input}\n")
        lines.append(f"     - ``{_exception_name(case.expected)}``\n")
        lines.append(f"     - {case.checked}\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.catalogue")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help=f"write {DOCUMENT.name}")
    group.add_argument(
        "--check", action="store_true", help=f"exit 1 if {DOCUMENT.name} is not up to date"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOCUMENT.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {os.path.relpath(DOCUMENT)} ({len(CASES)} cases)")
        return 0
    current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else None
    if current != text:
        print(f"{DOCUMENT} is out of date: run python -m tests.reliability.catalogue --write")
        return 1
    print(f"{os.path.relpath(DOCUMENT)} is up to date ({len(CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
