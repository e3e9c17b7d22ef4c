"""Sending: allocation order, the exact overflow point, batches, wraparound, packet size checks
(abandoned buffers, which differ by generation: test_generations.py)."""

from __future__ import annotations

import pytest

from wintun_cffi import RingFullError, SendBuffer, Session
from wintun_cffi.constants import ERROR_BUFFER_OVERFLOW, MAX_IP_PACKET_SIZE
from wintun_cffi.send_rules import MIN_IPV4_PACKET

from .backends import BackendCase
from .farside import (
    FarSide,
    RawFarSide,
    app_receive_udp,
    udp_to_far,
)

TIMEOUT = 5.0
#: A short wait in which nothing must arrive (a negative check, not a timing assertion).
QUIET = 0.05
#: Size of the packets that fill the ring in the overflow tests, and their record size.
SIZE = 1000
RECORD = (4 + SIZE + 3) & ~3


def numbered(index: int, size: int = SIZE) -> bytes:
    """A UDP packet to the far side of exactly ``size`` bytes, tagged with ``index``."""
    tag = b"#%d#" % index
    return udp_to_far(tag + bytes(size - 28 - len(tag)))


def smallest_allocation(backend: BackendCase) -> int:
    """0, or before 0.14 the 20 bytes of an IPv4 header (smaller buffers are refused)."""
    return 0 if backend.api == "0.14" else MIN_IPV4_PACKET


def fill_with_allocations(session: Session) -> list[SendBuffer]:
    """Allocate SIZE-byte packets (unsent, so the driver takes none) until the ring is full."""
    buffers: list[SendBuffer] = []
    with pytest.raises(RingFullError) as caught:
        while len(buffers) <= session.capacity // RECORD:
            buffers.append(session.allocate_send_packet(SIZE))
    assert caught.value.winerror == ERROR_BUFFER_OVERFLOW
    return buffers


def test_send_reaches_the_far_side(session: Session, far: FarSide) -> None:
    assert session.send(udp_to_far(b"hello", source_port=5555)) is True
    datagram = far.receive_udp(TIMEOUT)
    assert datagram.payload == b"hello" and datagram.source_port == 5555


def test_packets_go_out_in_allocation_order(session: Session, far: FarSide) -> None:
    first, second = udp_to_far(b"first"), udp_to_far(b"second!")
    a = session.allocate_send_packet(len(first))
    b = session.allocate_send_packet(len(second))
    a.data[:] = first
    b.data[:] = second
    b.send()
    assert b.sent and not a.sent
    with pytest.raises(TimeoutError):
        far.receive_udp(QUIET)  # B waits behind A, which is not sent yet
    a.send()
    assert far.receive_udp(TIMEOUT).payload == b"first"
    assert far.receive_udp(TIMEOUT).payload == b"second!"


def test_send_buffer_context_manager_sends(session: Session, far: FarSide) -> None:
    packet = udp_to_far(b"in place")
    buffer = session.allocate_send_packet(len(packet))
    with buffer as view:
        view[:] = packet
    assert buffer.sent
    assert far.receive_udp(TIMEOUT).payload == b"in place"


def test_exact_overflow_point(backend: BackendCase, session: Session, far: FarSide) -> None:
    """From offset 0, floor((capacity - 4) / ALIGN(4 + size)) packets fit; exactly the rest
    of the free space fits one more small packet."""
    buffers = fill_with_allocations(session)
    assert len(buffers) == (session.capacity - 4) // RECORD
    leftover = (session.capacity - 4) - len(buffers) * RECORD  # free bytes, records included
    with pytest.raises(RingFullError):
        session.allocate_send_packet(leftover - 4 + 1)
    tail = session.allocate_send_packet(leftover - 4)
    with pytest.raises(RingFullError):
        session.allocate_send_packet(smallest_allocation(backend))
    for index, buffer in enumerate(buffers):
        buffer.data[:] = numbered(index)
        buffer.send()
    tail.abandon()
    got = [far.receive_udp(TIMEOUT).payload[:8] for _ in buffers]
    assert got == [numbered(index)[28:36] for index in range(len(buffers))]
    # The driver consumed everything: room again.
    assert session.send(numbered(9999), on_full="wait", timeout=TIMEOUT)
    assert far.receive_udp(TIMEOUT).payload.startswith(b"#9999#")


def test_on_full_policies(session: Session, far: FarSide) -> None:
    buffers = fill_with_allocations(session)
    packet = numbered(1)
    assert session.dropped == 0
    assert session.send(packet, on_full="drop") is False
    assert session.send(packet, on_full="drop") is False
    assert session.dropped == 2
    with pytest.raises(RingFullError):
        session.send(packet)
    with pytest.raises(TimeoutError):
        session.send(packet, on_full="wait", timeout=QUIET)  # nothing frees space meanwhile
    with pytest.raises(ValueError):
        session.send(packet, on_full="block")  # type: ignore[arg-type]
    assert session.send_many([packet]) == 0
    for buffer in buffers:
        buffer.abandon()
    assert session.send(packet, on_full="wait", timeout=TIMEOUT) is True
    assert far.receive_udp(TIMEOUT).payload.startswith(b"#1#")
    assert session.dropped == 2


def test_send_many(session: Session, far: FarSide) -> None:
    packets = [udp_to_far(b"batch-%d" % i) for i in range(5)]
    assert session.send_many(packets) == 5
    got = [far.receive_udp(TIMEOUT).payload for _ in packets]
    assert got == [b"batch-%d" % i for i in range(5)]


def test_send_many_stops_when_full(session: Session, far: FarSide) -> None:
    buffers = fill_with_allocations(session)
    leftover = (session.capacity - 4) - len(buffers) * RECORD
    size = (leftover // 2 & ~3) - 4  # two such records fit the leftover, a third does not
    small = [udp_to_far(b"s%d" % i + bytes(size - 30)) for i in range(3)]
    assert all(len(p) == size for p in small)
    assert session.send_many(small) == 2
    for buffer in buffers:
        buffer.abandon()
    assert [far.receive_udp(TIMEOUT).payload[:2] for _ in range(2)] == [b"s0", b"s1"]
    with pytest.raises(TimeoutError):
        far.receive_udp(QUIET)


def test_wraparound_both_directions(session: Session, far: FarSide) -> None:
    """More than twice the ring's capacity each way, in chunks, byte-exact."""
    sizes = [60 + (i * 397) % 1400 for i in range(400)]
    assert sum(sizes) > 2 * session.capacity
    payloads = [bytes((i + k) & 0xFF for k in range(size)) for i, size in enumerate(sizes)]
    chunk = 16
    for start in range(0, len(payloads), chunk):
        part = payloads[start : start + chunk]
        for payload in part:
            assert session.send(udp_to_far(payload), on_full="wait", timeout=TIMEOUT)
        assert [far.receive_udp(TIMEOUT).payload for _ in part] == part
    for start in range(0, len(payloads), chunk):
        part = payloads[start : start + chunk]
        for payload in part:
            far.send_udp(payload)
        assert [app_receive_udp(session, TIMEOUT).payload for _ in part] == part


def test_whole_packets_wrap_byte_exact(session: Session, raw: RawFarSide) -> None:
    """Raw: arbitrary IPv4 packets (not UDP), compared whole, across the ring's end."""
    packets = [
        bytes([0x45]) + bytes((i * 7 + k) & 0xFF for k in range(19 + (i * 811) % 3000))
        for i in range(200)
    ]
    assert sum(map(len, packets)) > 2 * session.capacity
    for start in range(0, len(packets), 20):
        part = packets[start : start + 20]
        for packet in part:
            assert raw.deliver(packet)
        for packet in part:
            with session.receive(TIMEOUT) as received:
                assert bytes(received.data) == packet
        for packet in part:
            assert session.send(packet, on_full="wait", timeout=TIMEOUT)
        assert [raw.receive(TIMEOUT) for _ in part] == part


@pytest.mark.parametrize("size", [-1, MAX_IP_PACKET_SIZE + 1])
def test_bad_packet_size(backend: BackendCase, session: Session, far: FarSide, size: int) -> None:
    with pytest.raises(ValueError):
        session.allocate_send_packet(size)
    if size > 0:
        with pytest.raises(ValueError):
            session.send(bytes([0x45]) + bytes(size - 1))
    # Nothing changed: the largest and smallest sizes still work, and so does traffic.
    session.allocate_send_packet(MAX_IP_PACKET_SIZE).abandon()
    session.allocate_send_packet(smallest_allocation(backend)).abandon()
    session.send(udp_to_far(b"fine"))
    assert far.receive_udp(TIMEOUT).payload == b"fine"
