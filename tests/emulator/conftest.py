"""Shared helpers for the emulator's tests: rings played by hand, bounded waits."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from emulator.client import SessionClient
from emulator.driver import AdapterStatistics, SessionDriver
from emulator.ring import Ring
from tests.support import ClientCalls
from wintun_cffi.constants import MIN_RING_CAPACITY
from wintun_cffi.fdevent import FdEvent

CAP = MIN_RING_CAPACITY
MASK = CAP - 1
FLAG = 0x80000000
DEAD = 0xFFFFFFFF


def rec(size: int) -> int:
    """Bytes of a record of ``size`` payload bytes, computed independently of the code."""
    n = 4 + size
    return n + (-n % 4)


def u32(ring: Ring, data_offset: int) -> int:
    """The little-endian u32 at ``data_offset`` of the ring's data region."""
    return int(struct.unpack_from("<I", ring.memory, 12 + data_offset)[0])


def header(ring: Ring) -> tuple[int, int, int]:
    """(Head, Tail, Alertable) decoded straight from the first 12 bytes."""
    head, tail, alertable = struct.unpack_from("<IIi", ring.memory, 0)
    return int(head), int(tail), int(alertable)


def write_record(ring: Ring, offset: int, payload: bytes, size_field: int | None = None) -> int:
    """Write a record as the driver does; return the offset of the next record."""
    size = len(payload) if size_field is None else size_field
    struct.pack_into("<I", ring.memory, 12 + offset, size)
    ring.memory[12 + offset + 4 : 12 + offset + 4 + len(payload)] = payload
    return (offset + rec(len(payload))) & MASK


def ipv4(tag: bytes, total: int = 28) -> bytes:
    """A packet the driver accepts as IPv4 (first nibble 4, at least 20 bytes)."""
    body = tag + bytes(max(0, total - 1 - len(tag)))
    return bytes([0x45]) + body[: total - 1]


@dataclass
class ClientRings:
    """A session client over two fresh rings; the test plays the driver."""

    send: Ring
    receive: Ring
    tail_moved: FdEvent
    client: ClientCalls


@pytest.fixture
def rings() -> Iterator[ClientRings]:
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    event = FdEvent()
    yield ClientRings(send, receive, event, ClientCalls(SessionClient(send, receive, event)))
    event.close()


@dataclass
class DriverRig:
    """A client and a running SessionDriver over two rings; ``system`` collects packets."""

    send: Ring
    receive: Ring
    read_wait: FdEvent
    tail_moved: FdEvent
    client: ClientCalls
    driver: SessionDriver
    stats: AdapterStatistics
    system: list[bytes] = field(default_factory=list)

    def packets(self) -> list[bytes]:
        return list(self.system)


@pytest.fixture
def rig() -> Iterator[DriverRig]:
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    stats = AdapterStatistics()
    packets: list[bytes] = []
    driver = SessionDriver(send, receive, read_wait, tail_moved, packets.append, stats, "t")
    client = ClientCalls(SessionClient(send, receive, tail_moved))
    yield DriverRig(send, receive, read_wait, tail_moved, client, driver, stats, packets)
    driver.stop()
    read_wait.close()
    tail_moved.close()
