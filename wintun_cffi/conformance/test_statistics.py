"""Session.statistics: the counters every receive and send path keeps."""

from __future__ import annotations

import pytest

from wintun_cffi import RingFullError, Session

from .backends import BackendCase
from .farside import FarSide, RawFarSide, udp_to_far
from .test_sending import SIZE, fill_with_allocations

TIMEOUT = 5.0


def _exact(backend: BackendCase) -> None:
    if not backend.emulated_kernel:
        pytest.skip("a real system sends packets of its own through the adapter: counts vary")


def test_a_new_session_counts_nothing(backend: BackendCase, session: Session) -> None:
    _exact(backend)
    stats = session.statistics
    assert (stats.received_packets, stats.sent_packets, stats.settled, stats.given_up) == (
        0,
        0,
        0,
        0,
    )
    assert set(stats.ring_full.values()) == {0}
    assert stats.batch_sizes == {} and stats.capture_dropped == 0


def test_every_receive_path_counts_packets_and_bytes(
    backend: BackendCase, session: Session, raw: RawFarSide
) -> None:
    _exact(backend)
    packets = [udp_to_far(b"x" * index) for index in range(1, 11)]
    assert raw.deliver(packets[0])
    session.receive(TIMEOUT).release()
    assert raw.deliver(packets[1])
    assert len(session.read(TIMEOUT)) == len(packets[1])
    for packet in packets[2:6]:
        assert raw.deliver(packet)
    with session.receive_batch(8, TIMEOUT) as batch:
        assert len(batch) == 4
    for packet in packets[6:]:
        assert raw.deliver(packet)
    got = session.read_many(8, TIMEOUT)
    assert len(got) == 4
    stats = session.statistics
    assert stats.received_packets == len(packets)
    assert stats.received_bytes == sum(map(len, packets))
    assert stats.batch_sizes == {1: 2, 4: 2}  # one pass per delivery above


def test_every_send_path_counts_packets_and_bytes(
    backend: BackendCase, session: Session, far: FarSide
) -> None:
    _exact(backend)
    one, two = udp_to_far(b"one"), udp_to_far(b"second")
    assert session.send(one)
    assert session.send_many([one, two]) == 2
    buffer = session.allocate_send_packet(len(two))
    buffer.data[:] = two
    buffer.send()
    stats = session.statistics
    assert stats.sent_packets == 4
    assert stats.sent_bytes == 2 * len(one) + 2 * len(two)
    assert stats.given_up == 0


def test_given_up_allocations_count_apart(backend: BackendCase, session: Session) -> None:
    _exact(backend)
    session.allocate_send_packet(100).abandon()
    session.allocate_send_packet(100)  # dropped: the next send gives it up
    session.send(udp_to_far(b"after"))
    stats = session.statistics
    assert stats.given_up == 2
    assert stats.sent_packets == 1


def test_dropped_received_packets_are_counted_as_settled(
    backend: BackendCase, session: Session, raw: RawFarSide
) -> None:
    _exact(backend)
    assert raw.deliver(udp_to_far(b"dropped"))
    session.receive(TIMEOUT)  # dropped at once, never released
    with pytest.raises(TimeoutError):
        session.receive(timeout=0.01)  # settles before it waits
    assert session.statistics.settled == 1


def test_a_full_ring_is_counted_by_policy(
    backend: BackendCase, session: Session, raw: RawFarSide
) -> None:
    _exact(backend)
    buffers = fill_with_allocations(session)  # unsent: nothing can leave the ring
    packet = udp_to_far(bytes(SIZE - 28))
    with pytest.raises(RingFullError):
        session.send(packet)
    assert session.send(packet, on_full="drop") is False
    assert session.send_many([packet, packet]) == 0
    with pytest.raises(TimeoutError):
        session.send(packet, on_full="wait", timeout=0.01)
    stats = session.statistics
    # fill_with_allocations() met a full ring once itself.
    assert stats.ring_full == {"raise": 1, "drop": 1, "wait": 1, "allocate": 1, "send_many": 2}
    for buffer in buffers:
        buffer.abandon()


def test_the_driver_counters_beside_them(
    backend: BackendCase, session: Session, raw: RawFarSide
) -> None:
    assert raw.deliver(udp_to_far(b"counted"))
    session.read(TIMEOUT)
    driver = session.statistics.driver
    if driver is None:
        pytest.skip(f"{backend.name} does not show the driver's counters")
    assert driver == raw.statistics.as_dict()
    assert driver["out_packets"] >= 1
