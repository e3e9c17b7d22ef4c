"""The impairment engine (wintun_cffi.impair) in simulated time: the statistics hold, the same
seed gives the same run, settings are checked and can change while running; and its scheduler
thread starts and stops as it should.

Every timing here is read from the release times the engine computes for given arrival times,
never from the wall clock."""

from __future__ import annotations

import math
import statistics
import threading

import pytest

from wintun_cffi import ip
from wintun_cffi.impair import (
    ImpairedPath,
    Impairer,
    Impairment,
    ImpairmentStatistics,
    Scheduler,
)

PACKET = ip.udp_packet("10.6.7.8", "10.6.7.7", 5353, 53, b"x" * 100)


def numbered(index: int, size: int = 128) -> bytes:
    """A UDP packet of ``size`` bytes tagged with ``index`` (tells packets apart)."""
    tag = index.to_bytes(4, "big")
    return ip.udp_packet("10.6.7.8", "10.6.7.7", 5353, 53, tag + bytes(size - 32))


def index_of(packet: bytes) -> int:
    return int.from_bytes(packet[28:32], "big")


def simulate(
    settings: Impairment, count: int, *, gap: float = 0.001, seed: int = 1, size: int = 128
) -> tuple[Impairer, list[tuple[float, bytes]]]:
    """``count`` numbered packets ``gap`` seconds apart through a fresh engine."""
    engine = Impairer(settings, seed=seed)
    out = engine.run((i * gap, numbered(i, size)) for i in range(count))
    return engine, out


def accounted(stats: ImpairmentStatistics) -> bool:
    released = stats.delivered + stats.lost + stats.rate_dropped + stats.discarded
    return stats.offered + stats.duplicated == released + stats.pending


# -- the statistics ------------------------------------------------------------------------------


def test_ten_percent_loss_over_100k_packets() -> None:
    engine, out = simulate(Impairment(loss=0.1), 100_000)
    stats = engine.statistics
    assert 0.09 <= stats.lost / stats.offered <= 0.11, stats
    assert len(out) == stats.delivered == 100_000 - stats.lost
    indexes = [index_of(packet) for _, packet in out]
    assert indexes == sorted(indexes)  # loss alone neither delays nor reorders
    assert all(t == index * 0.001 for (t, _), index in zip(out, indexes, strict=True))
    assert accounted(stats)


def test_delay_with_jitter() -> None:
    engine, out = simulate(Impairment(delay=0.020, jitter=0.005), 20_000)
    delays = sorted(t - index_of(packet) * 0.001 for t, packet in out)
    assert len(delays) == 20_000
    assert abs(statistics.fmean(delays) - 0.020) < 0.0002
    assert 0.015 - 1e-9 <= delays[0] and delays[-1] <= 0.025 + 1e-9
    # Uniform over ±5 ms: standard deviation 5 / sqrt(3) ms, quartiles at ±2.5 ms.
    assert abs(statistics.pstdev(delays) - 0.005 / math.sqrt(3)) < 0.0002
    assert abs(delays[5_000] - 0.0175) < 0.0003 and abs(delays[15_000] - 0.0225) < 0.0003
    # Jitter larger than the 1 ms gap reorders, as on a real network, and it is counted.
    indexes = [index_of(packet) for _, packet in out]
    assert indexes != sorted(indexes) and engine.statistics.reordered > 0
    assert [t for t, _ in out] == sorted(t for t, _ in out)


def test_delay_without_jitter_keeps_the_order() -> None:
    engine, out = simulate(Impairment(delay=0.05), 1000)
    assert [index_of(p) for _, p in out] == list(range(1000))
    assert all(abs(t - index_of(p) * 0.001 - 0.05) < 1e-9 for t, p in out)
    assert engine.statistics.reordered == 0


def test_reorder_rate() -> None:
    engine, out = simulate(Impairment(delay=0.010, reorder=0.25), 40_000)
    stats = engine.statistics
    assert 0.24 <= stats.reordered / stats.offered <= 0.26, stats
    # A reordered packet skips the delay: released at its arrival, ahead of earlier ones.
    early = [p for t, p in out if t == index_of(p) * 0.001]
    assert abs(len(early) - stats.reordered) <= 10  # the first few have nothing to overtake
    assert all(
        t == index_of(p) * 0.001 or abs(t - index_of(p) * 0.001 - 0.010) < 1e-9 for t, p in out
    )


def test_duplication_rate() -> None:
    engine, out = simulate(Impairment(duplicate=0.3), 50_000)
    stats = engine.statistics
    assert 0.29 <= stats.duplicated / stats.offered <= 0.31, stats
    assert stats.delivered == len(out) == 50_000 + stats.duplicated
    indexes = [index_of(p) for _, p in out]
    assert sum(1 for a, b in zip(indexes, indexes[1:], strict=False) if a == b) == stats.duplicated
    assert stats.reordered == 0  # a copy right behind its original overtakes nothing


@pytest.mark.parametrize("version", [4, 6])
def test_corruption_with_fixed_checksums(version: int) -> None:
    source, destination = ("10.6.7.8", "10.6.7.7") if version == 4 else ("fd00::8", "fd00::7")
    originals = [
        ip.udp_packet(source, destination, 5353, 53, i.to_bytes(4, "big") + bytes(60))
        for i in range(20_000)
    ]
    engine = Impairer(Impairment(corrupt=0.1, fix_checksums=True), seed=5)
    out = engine.run((i * 0.001, p) for i, p in enumerate(originals))
    stats = engine.statistics
    assert 0.09 <= stats.corrupted / stats.offered <= 0.11, stats
    changed = [(a, b) for a, (_, b) in zip(originals, out, strict=True) if a != b]
    assert len(changed) == stats.corrupted
    header = 20 if version == 4 else 40
    for original, corrupted in changed:
        assert ip.checksums_valid(corrupted)
        diff = [i for i, (a, b) in enumerate(zip(original, corrupted, strict=True)) if a != b]
        assert diff[0] >= header  # the IP header is intact: the packet is still routed
        flipped = [i for i in diff if i not in (header + 6, header + 7)]  # UDP checksum
        assert len(flipped) == 1
        assert bin(original[flipped[0]] ^ corrupted[flipped[0]]).count("1") == 1


def test_corruption_without_fixed_checksums() -> None:
    engine, out = simulate(Impairment(corrupt=0.1), 20_000)
    stats = engine.statistics
    assert 0.09 <= stats.corrupted / stats.offered <= 0.11, stats
    changed = [p for _, p in out if p != numbered(index_of(p))]
    assert len(changed) == stats.corrupted
    for packet in changed:
        # A checksum shows it, unless the flip changed the IP version itself (which no
        # checksum covers): the packet is then no longer IPv4.
        assert not ip.checksums_valid(packet) or packet[0] >> 4 != 4
    assert sum(not ip.checksums_valid(p) for p in changed) > 0.95 * len(changed)


def test_rate_limit_over_a_long_run() -> None:
    """1,000-byte packets at 2 Mbit/s into a 1 Mbit/s limit for 200 simulated seconds."""
    rate, gap, size = 1_000_000, 0.004, 1000
    engine, out = simulate(Impairment(rate=rate, queue_limit=50), 50_000, gap=gap, size=size)
    stats = engine.statistics
    duration = out[-1][0] - out[0][0]
    throughput = sum(len(p) for _, p in out[:-1]) * 8 / duration
    assert abs(throughput - rate) / rate < 0.05, throughput
    assert 0.45 <= stats.rate_dropped / stats.offered <= 0.55, stats
    assert stats.queued > 0 and accounted(stats)
    # Never more than queue_limit packets wait: a packet leaves at most 51 packet times late.
    worst = max(t - index_of(p) * gap for t, p in out)
    assert worst <= 51 * size * 8 / rate + 1e-9


def test_rate_limit_under_the_rate_queues_nothing() -> None:
    engine, out = simulate(Impairment(rate=2_000_000), 1000, gap=0.001, size=128)
    stats = engine.statistics
    assert stats.rate_dropped == stats.queued == 0
    assert all(t == index_of(p) * 0.001 for t, p in out)


def test_burst_lets_that_many_bytes_through_at_once() -> None:
    settings = Impairment(rate=8000, burst=10_000, queue_limit=100)  # 1,000 bytes per second
    engine = Impairer(settings, seed=1)
    out = engine.run((0.0, numbered(i, 1000)) for i in range(20))
    times = [t for t, _ in out]
    assert times[:11] == [0.0] * 11  # 10,000 bytes of credit, and the packet that uses it up
    assert times[11:] == pytest.approx([1.0 + i for i in range(9)])


def test_queue_limit_zero_drops_what_would_wait() -> None:
    engine, out = simulate(Impairment(rate=8000, queue_limit=0), 10, gap=0.01, size=1000)
    assert len(out) == 1 and engine.statistics.rate_dropped == 9


# -- determinism ---------------------------------------------------------------------------------


ALL_AT_ONCE = Impairment(
    loss=0.1,
    delay=0.02,
    jitter=0.01,
    reorder=0.1,
    duplicate=0.05,
    corrupt=0.05,
    rate=800_000,  # below the 1 Mbit/s offered
    queue_limit=20,
)


def test_the_same_seed_gives_the_same_sequence() -> None:
    first_engine, first = simulate(ALL_AT_ONCE, 5000, seed=7)
    second_engine, second = simulate(ALL_AT_ONCE, 5000, seed=7)
    assert first == second
    assert first_engine.statistics == second_engine.statistics
    stats = first_engine.statistics
    assert min(stats.lost, stats.duplicated, stats.corrupted, stats.reordered) > 0
    assert stats.rate_dropped > 0 and accounted(stats)


def test_a_different_seed_gives_a_different_sequence() -> None:
    _, first = simulate(ALL_AT_ONCE, 5000, seed=7)
    _, other = simulate(ALL_AT_ONCE, 5000, seed=8)
    assert first != other


def test_decisions_do_not_depend_on_arrival_times() -> None:
    """Loss, duplication and corruption follow the packets' order, whatever the times."""
    settings = Impairment(loss=0.2, duplicate=0.2, corrupt=0.2)
    _, even = simulate(settings, 3000, gap=0.001, seed=3)
    engine = Impairer(settings, seed=3)
    irregular = engine.run(((i * i) * 1e-6, numbered(i)) for i in range(3000))
    assert [p for _, p in even] == [p for _, p in irregular]


# -- settings ------------------------------------------------------------------------------------


def test_changing_the_settings_while_running_takes_effect() -> None:
    engine = Impairer(seed=1)
    for i in range(1000):
        engine.offer(numbered(i), i * 0.001)
    assert engine.set(loss=1.0) == Impairment(loss=1.0)
    for i in range(1000, 2000):
        engine.offer(numbered(i), i * 0.001)
    engine.settings = Impairment(delay=0.5)
    engine.offer(numbered(2000), 2.0)
    out = engine.release_timed(math.inf)
    assert [index_of(p) for _, p in out] == [*range(1000), 2000]
    assert out[-1][0] == 2.5
    assert engine.statistics.lost == 1000


def test_held_packets_keep_their_release_times_when_settings_change() -> None:
    engine = Impairer(Impairment(delay=1.0), seed=1)
    engine.offer(numbered(0), 0.0)
    engine.settings = Impairment()
    engine.offer(numbered(1), 0.5)
    assert engine.release_timed(math.inf) == [(0.5, numbered(1)), (1.0, numbered(0))]
    assert engine.statistics.reordered == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"loss": 1.5}, "loss"),
        ({"loss": -0.1}, "loss"),
        ({"duplicate": math.nan}, "duplicate"),
        ({"corrupt": 2}, "corrupt"),
        ({"delay": -1}, "delay"),
        ({"jitter": math.inf}, "jitter"),
        ({"rate": 0}, "rate"),
        ({"rate": -5.0}, "rate"),
        ({"burst": -1}, "burst"),
        ({"queue_limit": -1}, "queue_limit"),
        ({"reorder": 0.1}, "reorder"),  # needs a delay
    ],
)
def test_bad_values_are_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Impairment(**changes)  # type: ignore[arg-type]
    engine = Impairer(Impairment(loss=0.5), seed=1)
    with pytest.raises(ValueError, match=field):
        engine.set(**changes)
    assert engine.settings == Impairment(loss=0.5)  # nothing changed


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"loss": "0.1"}, "loss"),
        ({"delay": True}, "delay"),
        ({"fix_checksums": 1}, "fix_checksums"),
        ({"burst": 1.5}, "burst"),
        ({"queue_limit": None}, "queue_limit"),
        ({"rate": "fast"}, "rate"),
        ({"latency": 1}, "latency"),
    ],
)
def test_wrong_types_are_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    engine = Impairer(seed=1)
    with pytest.raises(TypeError, match=field):
        engine.set(**changes)
    assert engine.settings == Impairment()


def test_the_default_changes_nothing() -> None:
    engine, out = simulate(Impairment(), 1000)
    assert out == [(i * 0.001, numbered(i)) for i in range(1000)]
    assert not Impairment().timed and Impairment(rate=1e6).timed


def test_discard_counts_what_was_held() -> None:
    engine = Impairer(Impairment(delay=1.0), seed=1)
    for i in range(5):
        engine.offer(numbered(i), 0.0)
    assert engine.statistics.pending == 5
    assert engine.discard() == 5
    stats = engine.statistics
    assert stats.discarded == 5 and stats.pending == 0 and engine.next_release is None
    assert accounted(stats)


# -- on a clock: the path and its scheduler ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def impair_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wintun-impair-")]


def test_a_path_without_delay_emits_on_the_calling_thread_and_starts_no_thread() -> None:
    scheduler = Scheduler("test", clock=FakeClock())
    emitted: list[tuple[bytes, str]] = []
    path = ImpairedPath(
        Impairer(Impairment(loss=0.5), seed=2),
        lambda p: emitted.append((p, threading.current_thread().name)),
        scheduler,
    )
    path.put_many(numbered(i) for i in range(100))
    assert len(emitted) == 100 - path.impairer.statistics.lost
    assert {name for _, name in emitted} == {threading.current_thread().name}
    assert not scheduler.running and impair_threads() == []
    scheduler.close()


def test_the_scheduler_releases_held_packets_and_stops() -> None:
    clock = FakeClock()
    scheduler = Scheduler("test", clock=clock)
    done = threading.Event()
    emitted: list[bytes] = []

    def emit(packet: bytes) -> None:
        emitted.append(packet)
        if len(emitted) == 3:
            done.set()

    path = ImpairedPath(Impairer(Impairment(delay=1.0), seed=1), emit, scheduler)
    path.put_many(numbered(i) for i in range(3))
    assert emitted == [] and scheduler.running  # held for later: the thread started
    clock.now = 1.0
    scheduler.wake()
    assert done.wait(30)
    assert emitted == [numbered(i) for i in range(3)]
    scheduler.stop()
    assert impair_threads() == []
    path.put(numbered(3))  # a stopped scheduler starts again when needed
    assert scheduler.running
    scheduler.close()
    assert impair_threads() == []
    path.put(numbered(4))  # never after close
    assert not scheduler.running and path.impairer.statistics.pending == 2


def test_an_emit_that_fails_does_not_stop_the_path() -> None:
    scheduler = Scheduler("test", clock=FakeClock())
    emitted: list[bytes] = []

    def emit(packet: bytes) -> None:
        if index_of(packet) == 1:
            raise RuntimeError("the receiving side failed")
        emitted.append(packet)

    path = ImpairedPath(Impairer(seed=1), emit, scheduler)
    path.put_many(numbered(i) for i in range(3))
    assert emitted == [numbered(0), numbered(2)]
    scheduler.close()


# -- the checksum helpers the corruption uses ----------------------------------------------------


@pytest.mark.parametrize(
    "packet",
    [
        ip.udp_packet("10.6.7.8", "10.6.7.7", 1, 2, b"odd"),
        ip.udp_packet("fd00::8", "fd00::7", 1, 2, b"payload"),
        ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=1, sequence=2, payload=b"ping"),
        ip.icmp_echo("fd00::8", "fd00::7", identifier=1, sequence=2),
        ip.ipv4_packet("10.6.7.8", "10.6.7.7", 6, bytes(16) + b"\x50\x02" + bytes(6)),
    ],
    ids=["udp4", "udp6", "icmp", "icmpv6", "tcp4"],
)
def test_checksums_valid_and_refresh(packet: bytes) -> None:
    if packet[0] >> 4 == 4 and packet[9] == 6:  # the TCP one was built without a checksum
        assert not ip.checksums_valid(packet)
        packet = bytes(_refreshed(packet))
    assert ip.checksums_valid(packet)
    for position in range(len(packet)):
        broken = bytearray(packet)
        broken[position] ^= 0x01
        if broken[0] >> 4 == packet[0] >> 4 and not (packet[0] >> 4 == 6 and position < 8):
            assert not ip.checksums_valid(broken), position  # every covered bit counts
        if position >= (20 if packet[0] >> 4 == 4 else 40):  # the IP header still parses
            assert ip.checksums_valid(_refreshed(broken)), position


def _refreshed(packet: bytes | bytearray) -> bytearray:
    copy = bytearray(packet)
    ip.refresh_checksums(copy)
    return copy


def test_udp_over_ipv4_without_a_checksum_stays_without() -> None:
    packet = bytearray(ip.udp_packet("10.6.7.8", "10.6.7.7", 1, 2, b"x"))
    packet[26:28] = b"\0\0"
    assert ip.checksums_valid(packet)
    ip.refresh_checksums(packet)
    assert packet[26:28] == b"\0\0"
    assert not ip.checksums_valid(b"not ip") and ip.checksum_offset(b"not ip") is None
