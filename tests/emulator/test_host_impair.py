"""Impairments on the emulator's system side (Host.impair): each way, deterministic for a seed,
changeable while a session runs, a full ring as without them, and no thread left behind."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import pytest

import wintun_cffi
from wintun_cffi import Adapter, Session, ip
from wintun_cffi.conformance.support import wait_until
from wintun_cffi.constants import MIN_RING_CAPACITY
from wintun_cffi.impair import Impairer, Impairment

TIMEOUT = 10.0


def numbered(index: int, size: int = 128) -> bytes:
    tag = index.to_bytes(4, "big")
    return ip.udp_packet("10.6.7.7", "10.6.7.8", 53, 5353, tag + bytes(size - 32))


def impair_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wintun-impair-")]


@pytest.fixture
def adapter() -> Iterator[Adapter]:
    wintun = wintun_cffi.emulated()
    with wintun.create_adapter("Impaired", tunnel_type="Test") as adapter:
        adapter.host.add_address("10.6.7.7/24")
        yield adapter
    assert impair_threads() == []


def read_all(session: Session, count: int) -> list[bytes]:
    packets: list[bytes] = []
    while len(packets) < count:
        batch = session.receive_many(count - len(packets), TIMEOUT)
        assert batch, f"{len(packets)} of {count} packets came"
        packets += [bytes(p.data) for p in batch]
        session.release_many(batch)
    return packets


def expected(settings: Impairment, seed: str, packets: list[bytes]) -> list[bytes]:
    """What an engine with the same settings and seed lets through, in order (without delays
    the order of the packets is all that matters)."""
    return [p for _, p in Impairer(settings, seed=seed).run((0.0, p) for p in packets)]


def test_inbound_loss_follows_the_seed_exactly(adapter: Adapter) -> None:
    host, settings = adapter.host, Impairment(loss=0.1, duplicate=0.05, corrupt=0.05)
    host.impair(inbound=settings, seed=4)
    packets = [numbered(i) for i in range(2000)]
    want = expected(settings, "4/inbound", packets)
    with adapter.start_session() as session:
        for packet in packets:
            assert host.deliver(packet)
        got = read_all(session, len(want))
        assert session.receive_many(10, timeout=0) == []
    assert got == want
    stats = host.inbound.statistics if host.inbound else None
    assert stats is not None and stats.offered == 2000 and stats.delivered == len(want)
    assert host.statistics.out_packets == len(want)


def test_outbound_loss_follows_the_seed_exactly(adapter: Adapter) -> None:
    host, settings = adapter.host, Impairment(loss=0.2, duplicate=0.1)
    host.impair(outbound=settings, seed="x")
    packets = [numbered(i) for i in range(1000)]
    want = expected(settings, "x/outbound", packets)
    with adapter.start_session() as session:
        for packet in packets:
            session.send(packet)
        got = [host.receive(TIMEOUT) for _ in want]
        with pytest.raises(TimeoutError):
            host.receive(0.05)
    assert got == want
    assert host.statistics.in_packets == 1000  # the driver took them all; the system lost some


def test_both_ways_apply_to_the_echo_responder(adapter: Adapter) -> None:
    adapter.host.impair(Impairment(duplicate=1.0), Impairment(duplicate=1.0))
    with adapter.start_session() as session:
        session.send(ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=1))
        replies = [session.read(TIMEOUT) for _ in range(4)]  # 2 requests, each reply twice
    assert all(ip.describe(r) == "IPv4 ICMP echo reply from 10.6.7.7 to 10.6.7.8" for r in replies)


def test_delay_end_to_end(adapter: Adapter) -> None:
    """Generous bounds: released no earlier than the delay, and well within ten seconds."""
    host = adapter.host
    host.impair(inbound=Impairment(delay=0.05), outbound=Impairment(delay=0.03))
    with adapter.start_session() as session:
        start = time.monotonic()
        session.send(ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=1))
        session.read(TIMEOUT)
        elapsed = time.monotonic() - start
        assert [t.name for t in impair_threads()] == ["wintun-impair-Impaired"]
    assert 0.08 <= elapsed < TIMEOUT
    assert impair_threads() == []  # the session's end stops the thread


def test_packets_held_at_the_end_of_the_session_are_discarded(adapter: Adapter) -> None:
    host = adapter.host
    host.impair(inbound=Impairment(delay=3600), outbound=Impairment(delay=3600))
    with adapter.start_session() as session:
        for i in range(3):
            host.deliver(numbered(i))
            session.send(numbered(i))
        assert wait_until(
            lambda: host.outbound is not None and host.outbound.statistics.pending == 3
        )
    assert host.inbound is not None and host.outbound is not None
    assert host.inbound.statistics.discarded == 3 and host.outbound.statistics.discarded == 3
    assert impair_threads() == []


def test_a_full_ring_drops_released_packets_one_by_one(adapter: Adapter) -> None:
    """As without impairment, a packet that does not fit is dropped and counted in
    out_discards; with it, packets are delivered one at a time as they are released."""
    host = adapter.host
    host.impair(inbound=Impairment(delay=0.01))
    with adapter.start_session(MIN_RING_CAPACITY):
        assert host.deliver_many(numbered(i, 1000) for i in range(200))  # 3 times the ring
        inbound = host.inbound
        assert inbound is not None
        stats = host.statistics
        # Released packets leave the impairer before they are written: wait for the writes.
        assert wait_until(lambda: stats.out_packets + stats.out_discards == 200, TIMEOUT)
        assert inbound.statistics.delivered == 200
        fit = (MIN_RING_CAPACITY - 4) // 1004
        assert stats.out_packets == fit and stats.out_discards == 200 - fit


def test_settings_change_while_running(adapter: Adapter) -> None:
    host = adapter.host
    host.impair(inbound=Impairment())
    inbound = host.inbound
    assert inbound is not None
    with adapter.start_session() as session:
        host.deliver(numbered(0))
        assert session.read(TIMEOUT) == numbered(0)
        inbound.set(loss=1.0)
        host.deliver(numbered(1))
        inbound.settings = Impairment()
        host.deliver(numbered(2))
        assert session.read(TIMEOUT) == numbered(2)
        # An outbound impairment set while the driver runs applies from then on.
        host.impair(outbound=Impairment(loss=1.0))
        session.send(numbered(3))
        outbound = host.outbound
        assert outbound is not None
        assert wait_until(lambda: outbound.statistics.lost == 1)
        host.impair()  # both removed
        assert host.inbound is None and host.outbound is None
        session.send(numbered(4))
        assert host.receive(TIMEOUT) == numbered(4)


def test_rate_limit_end_to_end(adapter: Adapter) -> None:
    """20 packets of 1,000 bytes at 400 kbit/s take at least 19 * 20 ms to arrive."""
    host = adapter.host
    host.impair(inbound=Impairment(rate=400_000))
    with adapter.start_session() as session:
        start = time.monotonic()
        host.deliver_many(numbered(i, 1000) for i in range(20))
        got = read_all(session, 20)
        elapsed = time.monotonic() - start
    assert got == [numbered(i, 1000) for i in range(20)]
    assert 0.38 <= elapsed < TIMEOUT


def test_impairments_outlast_sessions_and_the_host_closes_cleanly(adapter: Adapter) -> None:
    host = adapter.host
    host.impair(inbound=Impairment(delay=0.001))
    for _ in range(2):
        with adapter.start_session() as session:
            host.deliver(numbered(0))
            assert session.read(TIMEOUT) == numbered(0)
        assert impair_threads() == []


def test_without_a_session_nothing_enters_the_impairment(adapter: Adapter) -> None:
    host = adapter.host
    host.impair(inbound=Impairment(delay=1.0))
    assert host.deliver(numbered(0)) is False
    assert host.statistics.out_discards == 1
    assert host.inbound is not None and host.inbound.statistics.offered == 0


def test_impair_refuses_what_is_not_an_impairment(adapter: Adapter) -> None:
    with pytest.raises(TypeError, match="Impairment"):
        adapter.host.impair(inbound={"loss": 0.1})  # type: ignore[arg-type]
    assert adapter.host.inbound is None


def test_terminate_stops_the_thread(adapter: Adapter) -> None:
    host = adapter.host
    host.impair(inbound=Impairment(delay=math.pi))
    session = adapter.start_session()
    host.deliver(numbered(0))
    assert impair_threads() != []
    host.terminate()
    assert impair_threads() == []
    session.close()
