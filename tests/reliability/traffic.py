"""The packets the reliability tests push through a session, and the backends they run on.

Every packet is a valid IPv4 packet (the driver discards anything else) whose payload starts
with the producer's id and a sequence number, followed by filler bytes that depend on both, so
the far side can check order, loss, duplication and integrity of every byte.
"""

from __future__ import annotations

import ipaddress
import random
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import wintun_cffi
from emulator.host import Host
from tests.support import wait_until as _wait_until
from wintun_cffi import ip
from wintun_cffi.api import Adapter, Wintun
from wintun_cffi.conformance.double.build import build_double, double_available, double_unavailable
from wintun_cffi.conformance.double.kernel import DoubleKernel
from wintun_cffi.constants import MAX_IP_PACKET_SIZE
from wintun_cffi.session import Session

#: IPv4 header plus producer id and sequence number: the smallest packet we send.
HEADER_SIZE = 28
_IDS = struct.Struct("!II")
_SOURCE = ipaddress.IPv4Address("192.0.2.1")  # TEST-NET-1: never routed anywhere
_DESTINATION = ipaddress.IPv4Address("192.0.2.2")
_PROTOCOL = 253  # RFC 3692 experimental
# Filler: a fixed pseudo-random block; a packet's filler starts at an offset given by its ids.
_FILL = random.Random(6).randbytes(2 * MAX_IP_PACKET_SIZE)
#: Why the C test double cannot be had here (empty when it can).
NO_DOUBLE = double_unavailable() or ""


def _filler_offset(producer: int, sequence: int) -> int:
    return (producer * 7919 + sequence * 104729) % MAX_IP_PACKET_SIZE


def make_packet(producer: int, sequence: int, size: int) -> bytes:
    """An IPv4 packet of ``size`` bytes (``HEADER_SIZE``..0xFFFF) carrying the two ids."""
    start = _filler_offset(producer, sequence)
    payload = _IDS.pack(producer, sequence) + _FILL[start : start + size - HEADER_SIZE]
    return ip.ipv4_packet(_SOURCE, _DESTINATION, _PROTOCOL, payload)


def parse_packet(packet: bytes | memoryview) -> tuple[int, int]:
    """``(producer, sequence)`` of a packet made by :func:`make_packet`; ValueError if its
    bytes are not exactly what was sent."""
    if len(packet) < HEADER_SIZE or packet[0] != 0x45:
        raise ValueError(f"not one of our packets ({len(packet)} bytes)")
    producer, sequence = _IDS.unpack_from(packet, 20)
    start = _filler_offset(producer, sequence)
    if packet[HEADER_SIZE:] != _FILL[start : start + len(packet) - HEADER_SIZE]:
        raise ValueError(f"packet {producer}/{sequence} arrived damaged")
    return producer, sequence


def random_size(rng: random.Random, largest: int = MAX_IP_PACKET_SIZE) -> int:
    """A packet size from ``HEADER_SIZE`` to ``largest``: log-uniform, so that small and large
    packets both occur, with the two extremes forced now and then."""
    pick = rng.random()
    if pick < 0.02:
        return HEADER_SIZE
    if pick < 0.04:
        return largest
    return min(largest, int(HEADER_SIZE * (largest / HEADER_SIZE) ** rng.random()))


# -- backends ------------------------------------------------------------------------------

BACKENDS = ("emulator", "double")


@dataclass
class Rig:
    """One session on one backend, with the host playing its far side."""

    name: str
    wintun: Wintun
    adapter: Adapter
    session: Session
    host: Host
    kernel: DoubleKernel | None = None

    def close(self) -> None:
        self.session.close()
        self.adapter.close()
        if self.kernel is not None:
            self.kernel.reset()


class DoubleBuilds:
    """The C double built once per process (per generation), with its kernel hooks."""

    def __init__(self, directory: Path | None = None, *, sanitize: bool = False) -> None:
        self._directory = directory
        #: Built with AddressSanitizer (the process must run with its runtime preloaded).
        self._sanitize = sanitize
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._loaded: dict[str, tuple[DoubleKernel, Wintun]] = {}

    def directory(self) -> Path:
        if self._directory is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="wintun-reliability-")
            self._directory = Path(self._temporary.name)
        return self._directory

    def get(self, api: str = "0.14") -> tuple[DoubleKernel, Wintun]:
        if api not in self._loaded:
            path = str(build_double(api, self.directory(), sanitize=self._sanitize))
            self._loaded[api] = (DoubleKernel(path), wintun_cffi.load(path))
        return self._loaded[api]

    def close(self) -> None:
        for kernel, _ in self._loaded.values():
            kernel.close()
        if self._temporary is not None:
            self._temporary.cleanup()


@contextmanager
def open_rig(backend: str, capacity: int, builds: DoubleBuilds | None = None) -> Iterator[Rig]:
    """A fresh adapter and session on ``backend`` (``"emulator"`` or ``"double"``)."""
    if backend == "emulator":
        wintun = wintun_cffi.emulated("0.14")
        adapter = wintun.create_adapter("Stress", tunnel_type="Reliability")
        session = adapter.start_session(capacity)
        rig = Rig(backend, wintun, adapter, session, adapter.host)
    elif backend == "double":
        if builds is None or not double_available():
            raise RuntimeError(NO_DOUBLE)
        kernel, wintun = builds.get("0.14")
        adapter = wintun.create_adapter("Stress", tunnel_type="Reliability")
        session = adapter.start_session(capacity)
        host = kernel.last_host
        assert host is not None
        rig = Rig(backend, wintun, adapter, session, host, kernel)
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    try:
        yield rig
    finally:
        rig.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """:func:`tests.support.wait_until` with this package's longer default timeout."""
    return _wait_until(condition, timeout)
