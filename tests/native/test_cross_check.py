"""Cross-check: the native backend on the C double's rings against the emulator's driver.

Both sides are independent implementations of the ring protocol (docs/protocol.rst): the
C double is the client (what wintun.dll does), the emulator's driver the kernel. Packets must
cross byte-exact in both directions, and the failure modes must surface as the same errors.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable

import pytest

import wintun_cffi
from emulator.host import Host
from tests.support import wait_until
from wintun_cffi.constants import (
    ERROR_BUFFER_OVERFLOW,
    ERROR_HANDLE_EOF,
    ERROR_INVALID_DATA,
    ERROR_INVALID_PARAMETER,
)
from wintun_cffi.errors import (
    InvalidParameterError,
    NoMoreItemsError,
    RingCorruptError,
    RingFullError,
    SessionClosedError,
    SessionEndedError,
)
from wintun_cffi.native import NativeSession

from .conftest import CAPACITY, POOL, Double


def record(size: int) -> int:
    """Ring bytes of a packet of ``size`` bytes (size field + payload, 4-aligned)."""
    return (4 + size + 3) & ~3


def ip_packet(rng: random.Random, size: int) -> bytes:
    """``size`` random bytes the driver accepts as IPv4 (first nibble 4, 20+ bytes)."""
    return bytes([0x45]) + rng.randbytes(size - 1)


def receive_all(double: Double, session: NativeSession) -> list[tuple[bytes, object]]:
    """Receive until the ring is empty: (copy of the payload, token) in ring order."""
    got: list[tuple[bytes, object]] = []
    while True:
        try:
            view, token = double.backend.receive_packet(session)
        except NoMoreItemsError:
            return got
        got.append((bytes(view), token))


def test_delivered_packets_arrive_byte_exact(double: Double) -> None:
    rng = random.Random(0x5EED)
    sizes = [0, 0xFFFF, 1, 2, 3, 4, 5, 0xFFFE] + [rng.randrange(0x10000) for _ in range(150)]
    sizes += [rng.randrange(64) for _ in range(150)]  # many small ones: many wraps of the ring
    packets = deque(rng.randbytes(size) for size in sizes)
    session, host = double.session(CAPACITY)
    send_ring, _ = double.rings(session)
    expected: list[bytes] = []
    received: list[bytes] = []
    wraps, last_head = 0, 0
    while packets or expected:
        if packets and host.deliver(packets[0]):
            expected.append(packets.popleft())
            continue
        got = receive_all(double, session)  # the ring is full (or everything was delivered)
        assert [data for data, _ in got] == expected
        received.extend(expected)
        expected.clear()
        tokens = [token for _, token in got]
        rng.shuffle(tokens)  # out of order: space returns only up to the first unreleased
        for token in tokens:
            double.backend.release_receive_packet(session, token)
        if send_ring.head < last_head:
            wraps += 1
        last_head = send_ring.head
        assert send_ring.head == send_ring.tail  # everything released
    assert [len(p) for p in received] == sizes
    assert wraps >= 5
    assert host.statistics.out_packets == len(sizes)
    assert host.statistics.out_octets == sum(sizes)


def test_out_of_order_release_returns_space_in_order(double: Double) -> None:
    session, host = double.session()
    send_ring, _ = double.rings(session)
    sizes = [100, 7, 0x1000]
    assert host.deliver_many([bytes([n]) * size for n, size in enumerate(sizes)])
    got = receive_all(double, session)
    assert [data for data, _ in got] == [bytes([n]) * size for n, size in enumerate(sizes)]
    tokens = [token for _, token in got]
    double.backend.release_receive_packet(session, tokens[2])
    double.backend.release_receive_packet(session, tokens[1])
    assert send_ring.head == 0  # the first packet still holds everything
    double.backend.release_receive_packet(session, tokens[0])
    assert send_ring.head == sum(record(size) for size in sizes)


def test_payload_is_writable_in_place(double: Double) -> None:
    session, host = double.session()
    assert host.deliver(b"\x45" + bytes(30))
    view, token = double.backend.receive_packet(session)
    view[1:5] = b"edit"  # a received packet may be modified until it is released
    send_ring, _ = double.rings(session)
    assert bytes(send_ring.data[4:9]) == b"\x45edit"
    double.backend.release_receive_packet(session, token)


def allocate(double: Double, session: NativeSession, size: int) -> tuple[memoryview, object]:
    """Allocate, waiting for the driver to give space back while the ring is full."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return double.backend.allocate_send_packet(session, size)
        except RingFullError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def test_sent_packets_reach_the_host_byte_exact(double: Double) -> None:
    rng = random.Random(0xC0FFEE)
    sizes = [20, 0xFFFF, 21, 22, 23, 0xFFFE] + [rng.randrange(20, 0x10000) for _ in range(120)]
    sizes += [rng.randrange(20, 80) for _ in range(300)]
    packets = [ip_packet(rng, size) for size in sizes]
    session, host = double.session(CAPACITY)
    for packet in packets:
        view, token = allocate(double, session, len(packet))
        view[:] = packet
        double.backend.send_packet(session, token)
    arrived = [host.receive(timeout=10) for _ in packets]
    assert arrived == packets
    assert host.statistics.in_packets == len(packets)
    assert host.statistics.in_octets == sum(sizes)


def test_sent_packets_reach_the_host_in_allocation_order(double: Double) -> None:
    rng = random.Random(7)
    first, second = ip_packet(rng, 40), ip_packet(rng, 60)
    session, host = double.session()
    view_a, token_a = double.backend.allocate_send_packet(session, len(first))
    view_b, token_b = double.backend.allocate_send_packet(session, len(second))
    view_a[:] = first
    view_b[:] = second
    _, receive_ring = double.rings(session)
    double.backend.send_packet(session, token_b)
    assert receive_ring.tail == 0  # B is not published while A, before it, is unsent
    double.backend.send_packet(session, token_a)
    assert [host.receive(timeout=5), host.receive(timeout=5)] == [first, second]


def test_ring_full_until_the_driver_consumes(double: Double) -> None:
    session, host = double.session()
    _, receive_ring = double.rings(session)
    size = 0x1000 - 4
    tokens: list[object] = []
    with pytest.raises(RingFullError) as caught:
        while True:
            view, token = double.backend.allocate_send_packet(session, size)
            view[:] = bytes([0x45]) + len(tokens).to_bytes(4, "little") + bytes(size - 5)
            tokens.append(token)
    assert caught.value.winerror == ERROR_BUFFER_OVERFLOW
    # One record's worth is always kept free so that Head == Tail means empty.
    assert len(tokens) == CAPACITY // 0x1000 - 1
    assert receive_ring.tail == 0  # nothing published yet
    for token in tokens:
        double.backend.send_packet(session, token)
    arrived = [host.receive(timeout=5) for _ in tokens]
    assert [int.from_bytes(p[1:5], "little") for p in arrived] == list(range(len(tokens)))
    assert wait_until(lambda: receive_ring.head == receive_ring.tail)
    view, token = double.backend.allocate_send_packet(session, size)  # room again
    double.backend.send_packet(session, token)


def test_non_ip_packets_are_discarded_and_counted(double: Double) -> None:
    """0.14 discards what is not IP and reads on; earlier drivers stop at the first one."""
    session, host = double.session()
    junk = [b"", bytes(20), b"\x45" * 19, b"\x60" + bytes(38), b"\x10" * 100]
    good = [b"\x45" + bytes(19), b"\x60" + bytes(39)]
    stopping = double.api != "0.14"
    for packet in [good[0], junk[0]] if stopping else [good[0], *junk, good[1]]:
        view, token = double.backend.allocate_send_packet(session, len(packet))
        view[:] = packet
        double.backend.send_packet(session, token)
    if not stopping:
        assert [host.receive(timeout=5), host.receive(timeout=5)] == good
        assert host.statistics.in_discards == len(junk)
        assert host.statistics.in_packets == len(good)
        return
    assert host.receive(timeout=5) == good[0]  # what came before still reached the system
    assert wait_until(lambda: host.ring_field("receive", "head") == 0xFFFFFFFF)
    assert host.collect() == []
    assert host.statistics.in_discards == 0 and host.statistics.in_packets == 1
    with pytest.raises(SessionEndedError):
        double.backend.allocate_send_packet(session, 20)


def assert_session_ended(double: Double, session: NativeSession) -> None:
    calls: tuple[Callable[[], object], ...] = (
        lambda: double.backend.receive_packet(session),
        lambda: double.backend.allocate_send_packet(session, 20),
    )
    for call in calls:
        with pytest.raises(SessionEndedError) as caught:
            call()
        assert type(caught.value) is SessionEndedError  # not closed by us
        assert caught.value.winerror == ERROR_HANDLE_EOF


def test_terminate_makes_the_session_end(double: Double) -> None:
    session, host = double.session()
    assert host.deliver(b"\x45" + bytes(19))
    view, token = double.backend.receive_packet(session)  # received before: still releasable
    host.terminate()
    assert double.backend.wait_read_event(session, 5) is True  # the reader is woken
    assert_session_ended(double, session)
    assert_session_ended(double, session)  # and stays ended
    double.backend.release_receive_packet(session, token)
    double.backend.end_session(session)


def test_removing_the_adapter_ends_its_session(double: Double) -> None:
    adapter = double.create("Removed")
    session = double.backend.start_session(adapter, CAPACITY)
    assert isinstance(session, NativeSession)
    host = double.kernel.host_for(session.pointer)
    send_ring, receive_ring = double.rings(session)
    double.remove(adapter, force=True)  # 0.14: close the creating handle
    assert (send_ring.tail, receive_ring.head) == (0xFFFFFFFF, 0xFFFFFFFF)  # dead markers
    assert host.driver is None
    assert_session_ended(double, session)
    double.backend.end_session(session)
    assert double.session_count() == 0


def test_interrupted_session_never_blocks(double: Double) -> None:
    # Once interrupted (the session is closing), an endless wait returns at once.
    session, _ = double.session()
    double.backend.interrupt_waits(session)
    with pytest.raises(SessionClosedError):
        double.backend.wait_read_event(session, None)


def test_corrupt_record_keeps_failing(double: Double) -> None:
    session, host = double.session()
    packet = b"\x45" + bytes(range(1, 28))
    assert host.deliver_many([packet, packet[::-1]])
    for size_field in (0x10000, 0xFFFFFFFF, 0x8000):  # too large / past the published tail
        host.corrupt_record("send", 0, size_field)
        for _ in range(3):
            with pytest.raises(RingCorruptError) as caught:
                double.backend.receive_packet(session)
            assert caught.value.winerror == ERROR_INVALID_DATA
    host.corrupt_record("send", 0, len(packet))  # repaired: nothing had moved
    view, token = double.backend.receive_packet(session)
    assert bytes(view) == packet
    view, second = double.backend.receive_packet(session)
    assert bytes(view) == packet[::-1]
    double.backend.release_receive_packet(session, token)
    double.backend.release_receive_packet(session, second)


def test_high_level_api_over_the_double(double: Double) -> None:
    wintun = wintun_cffi.load(double.path)
    assert wintun.api == double.api
    if double.api == "0.14":
        adapter = wintun.create_adapter("HighLevel", tunnel_type="Tests")
    else:
        adapter = wintun.create_adapter("HighLevel", pool=POOL)
    with adapter, adapter.start_session(CAPACITY) as session:
        host: Host | None = double.kernel.last_host
        assert host is not None
        rng = random.Random(3)
        packet = ip_packet(rng, 1500)
        assert host.deliver(packet)
        assert session.read(timeout=5) == packet
        session.send(packet)
        assert host.receive(timeout=5) == packet
    assert double.session_count() == 0


def test_rings_the_driver_refuses_fail_start_session_with_error_87(double: Double) -> None:
    """A Send ring whose Tail is at or past the capacity when the rings are registered: the
    real driver refuses them and WintunStartSession fails with ERROR_INVALID_PARAMETER;
    the double does the same, and no session is left behind."""
    double.kernel.corrupt_at_registration("send", "tail", CAPACITY)
    with pytest.raises(InvalidParameterError) as caught:
        double.session()
    assert caught.value.winerror == ERROR_INVALID_PARAMETER
    assert double.kernel.refused_registrations == 1 and double.session_count() == 0
    again, host = double.session()  # the fault was for one session only
    assert host.driver is not None
    double.backend.send_packet(again, double.backend.allocate_send_packet(again, 20)[1])


@pytest.mark.parametrize("release", ["newest", "oldest"])
def test_emulate_a_release_of_the_double_s_generation(double: Double, release: str) -> None:
    names = {"0.14": ("0.14.1", "0.14"), "pool": ("0.13", "0.9"), "seed": ("2020-11",) * 2}
    name = names[double.api][release == "oldest"]
    chosen = double.kernel.emulate(name)
    session, host = double.session()
    assert host.release is chosen and chosen.name == name
    assert double.backend.get_running_driver_version() == chosen.driver_version_word
    with pytest.raises(ValueError, match="release must be one of"):
        double.kernel.emulate("0.8.1")
