"""Sessions and received packets: lifecycle, capacities, release semantics, batches."""

from __future__ import annotations

import pytest

from wintun_cffi import (
    Adapter,
    PacketReleasedError,
    ReceivedPacket,
    Session,
    SessionActiveError,
    SessionClosedError,
)
from wintun_cffi.constants import ERROR_ALREADY_INITIALIZED, MIN_RING_CAPACITY

from .backends import BackendCase
from .farside import (
    Datagram,
    FarSide,
    RawFarSide,
    app_receive_udp,
    datagram_for_app,
    udp_to_far,
)

TIMEOUT = 5.0


def receive_far_packets(session: Session, count: int) -> list[tuple[ReceivedPacket, Datagram]]:
    """The next ``count`` packets from the far side, kept unreleased (others released)."""
    kept: list[tuple[ReceivedPacket, Datagram]] = []
    while len(kept) < count:
        packet = session.receive(TIMEOUT)
        datagram = datagram_for_app(packet.data)
        if datagram is None:
            packet.release()
        else:
            kept.append((packet, datagram))
    return kept


def test_start_close_restart(adapter: Adapter) -> None:
    session = adapter.start_session(MIN_RING_CAPACITY)
    assert not session.closed and session.capacity == MIN_RING_CAPACITY
    session.close()
    session.close()
    assert session.closed
    with adapter.start_session(MIN_RING_CAPACITY * 2) as again:
        assert again.capacity == MIN_RING_CAPACITY * 2
    assert again.closed


def test_one_session_per_adapter(
    backend: BackendCase, adapter: Adapter, session: Session, far: FarSide
) -> None:
    with pytest.raises(SessionActiveError) as caught:
        adapter.start_session(MIN_RING_CAPACITY)
    assert caught.value.winerror == ERROR_ALREADY_INITIALIZED
    with pytest.raises(SessionActiveError):  # another handle of the same adapter
        backend.open_adapter(adapter.name).start_session(MIN_RING_CAPACITY)
    # The first session is untouched.
    far.send_udp(b"still here")
    assert app_receive_udp(session, TIMEOUT).payload == b"still here"
    session.send(udp_to_far(b"me too"))
    assert far.receive_udp(TIMEOUT).payload == b"me too"


def test_closed_session_refuses_calls(session: Session) -> None:
    session.close()
    with pytest.raises(SessionClosedError):
        session.receive_packet()
    with pytest.raises(SessionClosedError):
        session.receive(0)
    with pytest.raises(SessionClosedError):
        session.allocate_send_packet(20)
    with pytest.raises(SessionClosedError):
        session.send(udp_to_far(b"x"))
    with pytest.raises(SessionClosedError):
        session.read_wait_event


@pytest.mark.parametrize("capacity", [0, 0x1FFFF, 0x30000, 0x8000000])
def test_bad_capacity(adapter: Adapter, capacity: int) -> None:
    with pytest.raises(ValueError):
        adapter.start_session(capacity)
    with adapter.start_session(MIN_RING_CAPACITY) as session:  # nothing was registered
        assert not session.closed


def test_datagrams_arrive_in_order(session: Session, far: FarSide) -> None:
    payloads = [bytes([i]) * (i * 50 + 1) for i in range(5)]
    for payload in payloads:
        far.send_udp(payload)
    assert [app_receive_udp(session, TIMEOUT).payload for _ in payloads] == payloads
    for i, payload in enumerate(payloads):
        session.send(udp_to_far(payload, source_port=1000 + i))
    received = [far.receive_udp(TIMEOUT) for _ in payloads]
    assert [d.payload for d in received] == payloads
    assert [d.source_port for d in received] == [1000 + i for i in range(5)]


def test_out_of_order_release(session: Session, far: FarSide) -> None:
    for payload in (b"A" * 10, b"B" * 20, b"C" * 30):
        far.send_udp(payload)
    (a, _), (b, _), (c, _) = receive_far_packets(session, 3)
    expected_a, expected_c = bytes(a.data), bytes(c.data)
    b.release()
    assert b.released
    with pytest.raises(PacketReleasedError):
        b.data
    assert bytes(a.data) == expected_a and bytes(c.data) == expected_c
    c.release()
    assert bytes(a.data) == expected_a
    a.release()
    assert a.released and c.released
    far.send_udp(b"after")  # the ring still works
    assert app_receive_udp(session, TIMEOUT).payload == b"after"


def test_release_twice(session: Session, far: FarSide) -> None:
    far.send_udp(b"once")
    ((packet, _),) = receive_far_packets(session, 1)
    packet.release()
    with pytest.raises(PacketReleasedError):
        packet.release()
    with pytest.raises(PacketReleasedError):
        bytes(packet)


def test_packet_invalid_after_session_close(session: Session, far: FarSide) -> None:
    far.send_udp(b"orphan")
    far.send_udp(b"orphan too")
    kept = receive_far_packets(session, 2)
    assert [datagram.payload for _, datagram in kept] == [b"orphan", b"orphan too"]
    session.close()
    for stale, _ in kept:
        assert stale.released
        with pytest.raises(PacketReleasedError):
            stale.data
        with pytest.raises(PacketReleasedError):
            stale.release()
        stale.__exit__(None, None, None)  # leaving a `with` after close is harmless


def test_context_manager_releases(session: Session, far: FarSide) -> None:
    far.send_udp(b"scoped")
    ((packet, _),) = receive_far_packets(session, 1)
    with packet as same:
        assert same is packet and b"scoped" in bytes(same.data)
    assert packet.released


def test_read_copies(backend: BackendCase, session: Session, far: FarSide) -> None:
    far.send_udp(b"copied")
    while True:
        data = session.read(TIMEOUT)
        datagram = datagram_for_app(data)
        if datagram is not None:
            break
    assert isinstance(data, bytes)
    assert datagram.payload == b"copied"
    if backend.emulated_kernel:
        assert session.receive_packet() is None  # read() took and released the packet
    session.close()
    assert datagram_for_app(data) == datagram  # the copy outlives the session


def test_receive_many(backend: BackendCase, session: Session, far: FarSide) -> None:
    payloads = [b"many-%d" % i for i in range(5)]
    for payload in payloads:
        far.send_udp(payload)
    got: list[bytes] = []
    while len(got) < len(payloads):
        batch = session.receive_many(10, timeout=TIMEOUT)
        assert 1 <= len(batch) <= 10
        for packet in batch:
            datagram = datagram_for_app(packet.data)
            if datagram is not None:
                got.append(datagram.payload)
            packet.release()
    assert got == payloads
    with pytest.raises(ValueError):
        session.receive_many(0)
    if backend.emulated_kernel:
        assert session.receive_many(4, timeout=0.01) == []


def test_receive_packet_when_empty(backend: BackendCase, session: Session) -> None:
    if not backend.emulated_kernel:
        pytest.skip("a real system sends its own packets through the adapter at any time")
    assert session.receive_packet() is None


def test_release_gives_space_back_in_ring_order(session: Session, raw: RawFarSide) -> None:
    """The driver sees space again only once every earlier packet is released."""
    packet = b"\x45" + bytes(999)
    record = (4 + len(packet) + 3) & ~3
    delivered = 0
    while raw.deliver(packet):
        delivered += 1
        assert delivered <= session.capacity // record
    assert delivered == (session.capacity - 4) // record
    received = [session.receive(TIMEOUT) for _ in range(delivered)]
    assert session.receive_packet() is None
    for later in received[1:]:
        later.release()
    assert not raw.deliver(packet)  # the first packet still holds the ring's Head
    received[0].release()
    assert raw.deliver(packet)
    with session.receive(TIMEOUT) as last:
        assert bytes(last.data) == packet


def test_release_many(backend: BackendCase, session: Session, far: FarSide) -> None:
    payloads = [b"batch-release-%d" % i for i in range(4)]
    for payload in payloads:
        far.send_udp(payload)
    batch: list[ReceivedPacket] = []
    while len(batch) < len(payloads):
        batch += session.receive_many(len(payloads) - len(batch), timeout=TIMEOUT)
    ours = [p for p in batch if datagram_for_app(p.data) is not None]
    assert [datagram_for_app(p.data).payload for p in ours] == payloads  # type: ignore[union-attr]
    session.release_many(reversed(batch))  # any order: Head moves once all are released
    assert all(packet.released for packet in batch)
    with pytest.raises(PacketReleasedError):
        batch[0].data
    with pytest.raises(PacketReleasedError):
        session.release_many(batch[:1])  # already released: refused, nothing changes
    far.send_udp(b"after")
    assert app_receive_udp(session, TIMEOUT).payload == b"after"


def test_release_many_refuses_a_packet_of_another_session(
    backend: BackendCase, session: Session, far: FarSide
) -> None:
    far.send_udp(b"mine")
    packet = session.receive(TIMEOUT)
    other = backend.create_adapter("Other")
    with other.start_session(MIN_RING_CAPACITY) as foreign:
        with pytest.raises(ValueError):
            foreign.release_many([packet])
    assert not packet.released  # refused before anything changed
    session.release_many([packet])
    assert packet.released
