"""Impairments: loss, delay with jitter, reordering, duplication, corruption and a rate limit,
applied to packets the way a bad network would, and deterministic for a given seed.

Three layers, each usable alone:

* :class:`Impairment`: the settings, a frozen value checked when made.
* :class:`Impairer`: the engine. It takes packets with their arrival times
  (:meth:`Impairer.offer`) and gives them back at their release times
  (:meth:`Impairer.release`); it never reads a clock, so it can be driven by simulated time.
  Every random decision comes from one :class:`random.Random` seeded once.
* :class:`ImpairedPath` and :class:`Scheduler`: an impairer between a producer and a consumer
  (a callable taking each released packet), on a clock, with one thread per
  :class:`Scheduler` releasing delayed packets when their time comes. The emulator's host
  (:meth:`emulator.Host.impair`) and :class:`wintun_cffi.impaired.ImpairedSession` are built
  on these.

What happens to a packet offered at time ``now``, in this order:

1. **loss**: with probability ``loss`` it is dropped.
2. **duplicate**: with probability ``duplicate`` a second copy follows it; each copy goes
   through the next steps on its own.
3. **corrupt**: with probability ``corrupt`` one bit of the copy is flipped. Without
   ``fix_checksums`` the bit is anywhere in the packet, and the packet's checksums then show
   it. With ``fix_checksums`` it is after the IP header (so the packet still parses and is
   routed), never in the TCP/UDP/ICMP/ICMPv6 checksum field, and the checksums are
   recomputed (:func:`wintun_cffi.ip.refresh_checksums`): corruption that only the
   application can notice.
4. **rate** (bits per second): a token bucket with a queue, first in first out. The bucket
   holds up to ``burst`` bytes of credit, refilled at ``rate / 8`` bytes per second; a packet
   leaves when its turn comes and the credit is not negative, and its size is taken from the
   credit (which may go below zero). With ``burst=0`` packets leave exactly
   ``8 * size / rate`` seconds apart when they queue; over a long run the throughput is
   ``rate``. A packet that would have to wait while ``queue_limit`` packets already wait is
   dropped (``rate_dropped``).
5. **delay** and **jitter**: the copy is released ``delay`` seconds after it leaves the
   bucket, plus a jitter drawn uniformly from ``[-jitter, +jitter]`` (the sum never below
   zero). Jitter larger than the gap between packets reorders them, as on a real network.
6. **reorder**: with probability ``reorder`` the copy skips the delay and jitter (not the rate
   limit): it is released as soon as it leaves the bucket, ahead of the delayed packets
   offered before it. A reorder needs a delay to have anything to overtake.

Packets due at the same time leave in the order they were offered.

Determinism: the same seed, the same settings and the same packets offered in the same order
give the same decisions: which packets are lost, duplicated, corrupted (and which bit),
picked to reorder, and each packet's delay. Given the same arrival times too (as in a
simulation), the release times and the output sequence are the same. With real time (the
emulator, a wrapped session) only what depends on the times can differ between runs: what
the rate limit drops, and how packets whose release times are close are ordered.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import ip

_log = logging.getLogger(__name__)

#: A seed for :class:`random.Random`: the same seed gives the same decisions.
Seed = int | str | None

_PROBABILITIES = ("loss", "reorder", "duplicate", "corrupt")
_DURATIONS = ("delay", "jitter")


@dataclass(frozen=True)
class Impairment:
    """What an impaired path does to packets (see :mod:`wintun_cffi.impair` for the order).

    Probabilities are from 0 to 1; ``delay`` and ``jitter`` are in seconds; ``rate`` in bits
    per second (None: no limit), ``burst`` in bytes, ``queue_limit`` in packets. A bad value
    raises :class:`ValueError` (or :class:`TypeError` for a wrong type) naming the field.
    The default value changes nothing.
    """

    #: Probability that a packet is dropped.
    loss: float = 0.0
    #: Seconds each packet is held (after the rate limit).
    delay: float = 0.0
    #: Each packet's delay varies uniformly within ``delay ± jitter`` (never below zero).
    jitter: float = 0.0
    #: Probability that a packet skips the delay and overtakes the packets before it.
    reorder: float = 0.0
    #: Probability that a packet is sent twice.
    duplicate: float = 0.0
    #: Probability that a packet (each copy) gets one bit flipped.
    corrupt: float = 0.0
    #: Keep the checksums of corrupted packets right (the flip is after the IP header).
    fix_checksums: bool = False
    #: The rate limit in bits per second, or None for none.
    rate: float | None = None
    #: Bytes the rate limit lets through at once after an idle time.
    burst: int = 0
    #: Packets that may wait for the rate limit; more are dropped.
    queue_limit: int = 1000

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability from 0 to 1, not {value!r}")
        for name in _DURATIONS:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
        if not isinstance(self.fix_checksums, bool):
            raise TypeError(
                f"fix_checksums must be a bool, not {type(self.fix_checksums).__name__}"
            )
        if self.rate is not None:
            rate = _number("rate", self.rate)
            if not 0.0 < rate < math.inf:
                raise ValueError(
                    f"rate must be a finite number of bits per second > 0, not {rate!r}"
                )
        for name in ("burst", "queue_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if self.reorder and not self.delay:
            raise ValueError("reorder needs a delay: a reordered packet overtakes delayed ones")

    @property
    def timed(self) -> bool:
        """True if packets may be held for later (a delay, jitter or a rate limit)."""
        return bool(self.delay or self.jitter or self.rate is not None)

    def replace(self, **changes: object) -> Impairment:
        """A copy with ``changes`` (checked like a new value); :class:`TypeError` for a name
        that is not a field."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"Impairment has no field {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, not NaN")
    return float(value)


@dataclass
class ImpairmentStatistics:
    """What an :class:`Impairer` did. Every copy made is accounted for:
    ``offered + duplicated == delivered + lost + rate_dropped + discarded + pending``."""

    #: Packets offered.
    offered: int = 0
    #: Packets released (copies included).
    delivered: int = 0
    #: Packets dropped by ``loss``.
    lost: int = 0
    #: Extra copies made by ``duplicate``.
    duplicated: int = 0
    #: Copies with a bit flipped by ``corrupt``.
    corrupted: int = 0
    #: Packets released ahead of a packet offered before them (by ``reorder``, or by jitter
    #: larger than the gap between packets).
    reordered: int = 0
    #: Packets dropped because ``queue_limit`` packets were waiting for the rate limit.
    rate_dropped: int = 0
    #: Packets that had to wait for the rate limit.
    queued: int = 0
    #: Packets still held when the path was closed or emptied (:meth:`Impairer.discard`).
    discarded: int = 0
    #: Packets held now, waiting for their release time.
    pending: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return dataclasses.asdict(self)


@dataclass
class _Bucket:
    """The rate limit's state: credit in bytes at ``since``, and departures still ahead."""

    credit: float = 0.0
    since: float | None = None
    last_departure: float = -math.inf
    waiting: deque[float] = field(default_factory=deque)


class Impairer:
    """The impairment engine: packets in with their arrival times, out at their release times.

    It reads no clock (times are any increasing floats, in seconds). Thread-safe: any thread
    may offer, release, read :attr:`statistics` or change :attr:`settings`; new settings apply
    to the packets offered afterwards (those held keep their release times).
    """

    def __init__(self, settings: Impairment | None = None, *, seed: Seed = 0) -> None:
        self._settings = settings if settings is not None else Impairment()
        if not isinstance(self._settings, Impairment):
            raise TypeError(f"settings must be an Impairment, not {type(settings).__name__}")
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = ImpairmentStatistics()
        # (release time, tie-breaker, index of the offered packet, packet)
        self._held: list[tuple[float, int, int, bytes]] = []
        self._order = 0
        self._index = 0
        # The indexes of the held packets (a heap, entries removed lazily): a packet released
        # while an earlier one is still held was reordered.
        self._held_indexes: list[int] = []
        self._gone: Counter[int] = Counter()
        self._bucket = _Bucket()

    # -- settings ----------------------------------------------------------------------------

    @property
    def settings(self) -> Impairment:
        """The current :class:`Impairment`; assign a new one to change it."""
        return self._settings

    @settings.setter
    def settings(self, settings: Impairment) -> None:
        if not isinstance(settings, Impairment):
            raise TypeError(f"settings must be an Impairment, not {type(settings).__name__}")
        with self._lock:
            self._apply(settings)

    def set(self, **changes: object) -> Impairment:
        """Change some settings (``impairer.set(loss=0.2)``) at once; checked first: on error
        nothing changes. Returns the new settings."""
        with self._lock:
            settings = self._settings.replace(**changes)
            self._apply(settings)
            return settings

    def _apply(self, settings: Impairment) -> None:
        if settings.rate is None:
            self._bucket = _Bucket()  # a later limit starts with a full bucket
        self._settings = settings

    @property
    def statistics(self) -> ImpairmentStatistics:
        """A snapshot of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats, pending=len(self._held))

    # -- packets -----------------------------------------------------------------------------

    def offer(self, packet: bytes | bytearray | memoryview, now: float) -> None:
        """A packet arrives at time ``now`` (seconds; not earlier than the previous offer)."""
        data = bytes(packet)
        with self._lock:
            settings, rnd, stats = self._settings, self._random.random, self._stats
            stats.offered += 1
            index = self._index
            self._index += 1
            lost, twice = rnd() < settings.loss, rnd() < settings.duplicate
            if lost:
                stats.lost += 1
                return
            if twice:
                stats.duplicated += 1
            for _ in range(2 if twice else 1):
                corrupt, reorder, jitter = rnd() < settings.corrupt, rnd(), rnd()
                copy = data
                if corrupt:
                    copy = self._corrupted(data, settings.fix_checksums)
                    stats.corrupted += 1
                departure = now
                if settings.rate is not None:
                    found = self._depart(len(copy), now, settings)
                    if found is None:
                        stats.rate_dropped += 1
                        continue
                    departure = found
                if reorder >= settings.reorder:
                    departure += max(0.0, settings.delay + settings.jitter * (2 * jitter - 1))
                heapq.heappush(self._held, (departure, self._order, index, copy))
                heapq.heappush(self._held_indexes, index)
                self._order += 1

    def _corrupted(self, data: bytes, keep_checksums: bool) -> bytes:
        buffer = bytearray(data)
        if not buffer:
            return data
        start, skip = 0, None
        if keep_checksums:
            start = _ip_header_length(buffer)
            skip = ip.checksum_offset(buffer)
        positions = len(buffer) - start - (2 if skip is not None else 0)
        if positions <= 0:
            start, skip, positions = 0, None, len(buffer)
        position = start + self._random.randrange(positions)
        if skip is not None and position >= skip:
            position += 2
        buffer[position] ^= 1 << self._random.randrange(8)
        if keep_checksums:
            ip.refresh_checksums(buffer)
        return bytes(buffer)

    def _depart(self, size: int, now: float, settings: Impairment) -> float | None:
        """When a packet of ``size`` bytes arriving at ``now`` leaves the token bucket, or
        None if the queue is full (the bucket is then as before)."""
        assert settings.rate is not None
        bucket, rate = self._bucket, settings.rate / 8
        waiting = bucket.waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        start = max(now, bucket.last_departure)
        if bucket.since is None:
            credit = float(settings.burst)
        else:
            credit = min(float(settings.burst), bucket.credit + (start - bucket.since) * rate)
        departure = start if credit >= 0 else start - credit / rate
        if departure > now:
            if len(waiting) >= settings.queue_limit:
                return None
            waiting.append(departure)
            self._stats.queued += 1
        bucket.credit = max(credit, 0.0) - size
        bucket.since = bucket.last_departure = departure
        return departure

    @property
    def next_release(self) -> float | None:
        """The release time of the next held packet, or None if none is held."""
        with self._lock:
            return self._held[0][0] if self._held else None

    def release(self, now: float) -> list[bytes]:
        """The packets due at ``now`` (release time not later), in release order."""
        return [packet for _, packet in self.release_timed(now)]

    def release_timed(self, now: float) -> list[tuple[float, bytes]]:
        """Like :meth:`release`, each packet with its release time."""
        out: list[tuple[float, bytes]] = []
        with self._lock:
            held, indexes, gone, stats = self._held, self._held_indexes, self._gone, self._stats
            while held and held[0][0] <= now:
                due, _, index, packet = heapq.heappop(held)
                gone[index] += 1
                while indexes and gone[indexes[0]]:
                    gone[indexes[0]] -= 1
                    heapq.heappop(indexes)
                if indexes and indexes[0] < index:
                    stats.reordered += 1
                out.append((due, packet))
            stats.delivered += len(out)
        return out

    def discard(self) -> int:
        """Drop every held packet (counted in ``discarded``) and empty the rate limit's
        queue; returns how many were dropped."""
        with self._lock:
            dropped = len(self._held)
            self._stats.discarded += dropped
            self._held.clear()
            self._held_indexes.clear()
            self._gone.clear()
            self._bucket = _Bucket()
            return dropped

    def run(self, packets: Iterable[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        """Offer ``(arrival time, packet)`` pairs, in order, and return every packet with its
        release time, in release order: a whole simulated run."""
        out: list[tuple[float, bytes]] = []
        for now, packet in packets:
            out += self.release_timed(now)
            self.offer(packet, now)
        out += self.release_timed(math.inf)
        return out

    def __repr__(self) -> str:
        return f"<Impairer {self._settings!r}>"


def _ip_header_length(packet: bytearray) -> int:
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return (packet[0] & 0x0F) * 4
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return 40
    return 0


# -- on a clock: a path and its scheduler thread -----------------------------------------------


class ImpairedPath:
    """An :class:`Impairer` between a producer and ``emit``, on ``scheduler``'s clock.

    :meth:`put` offers packets now and hands ``emit`` those due at once, on the calling
    thread; the scheduler's thread hands over the rest when their time comes. ``emit`` is
    called for one packet at a time, in release order, never concurrently for one path.
    """

    def __init__(
        self, impairer: Impairer, emit: Callable[[bytes], object], scheduler: Scheduler
    ) -> None:
        self.impairer = impairer
        self._emit = emit
        self._scheduler = scheduler
        self._lock = threading.Lock()  # one emitter at a time: release order is kept
        scheduler.add(self)

    def put(self, packet: bytes | bytearray | memoryview) -> None:
        """Offer one packet now."""
        self.put_many((packet,))

    def put_many(self, packets: Iterable[bytes | bytearray | memoryview]) -> None:
        """Offer packets now, in order."""
        impairer, clock = self.impairer, self._scheduler.clock
        with self._lock:
            now = clock()
            for packet in packets:
                impairer.offer(packet, now)
            self._emit_due(now)
        if impairer.next_release is not None:
            self._scheduler.wake()

    def flush(self, now: float) -> None:
        """Hand ``emit`` the packets due at ``now`` (the scheduler calls this)."""
        with self._lock:
            self._emit_due(now)

    def _emit_due(self, now: float) -> None:
        emit = self._emit
        for packet in self.impairer.release(now):
            try:
                emit(packet)
            except Exception:  # the receiving side's trouble must not stop the path
                _log.exception("an impaired path failed to hand over a packet")


class Scheduler:
    """Releases the delayed packets of its paths when their time comes, on one thread.

    The thread starts when a path first holds a packet for later, and :meth:`stop` ends it
    (a later packet starts a new one); after :meth:`close` none starts again.
    """

    def __init__(
        self, name: str = "impairment", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        #: The clock of every path of this scheduler (seconds, never going back).
        self.clock = clock
        self._name = name
        self._paths: list[ImpairedPath] = []
        self._wakeup = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, path: ImpairedPath) -> None:
        """Serve ``path`` too."""
        with self._wakeup:
            self._paths = [*self._paths, path]

    def remove(self, path: ImpairedPath) -> None:
        """Stop serving ``path`` (its held packets stay in its impairer)."""
        with self._wakeup:
            self._paths = [kept for kept in self._paths if kept is not path]

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wake(self) -> None:
        """A path holds packets for later: make sure the thread runs and looks again."""
        with self._wakeup:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"wintun-impair-{self._name}", daemon=True
                )
                self._thread.start()
            self._wakeup.notify()

    def _run(self) -> None:
        clock, wakeup, me = self.clock, self._wakeup, threading.current_thread()
        while True:
            with wakeup:
                while True:
                    if self._thread is not me:  # stopped
                        return
                    releases = [p.impairer.next_release for p in self._paths]
                    due = min((r for r in releases if r is not None), default=None)
                    if due is None:
                        wakeup.wait()
                        continue
                    remaining = due - clock()
                    if remaining <= 0:
                        break
                    wakeup.wait(remaining)
                paths = self._paths
            now = clock()
            for path in paths:
                path.flush(now)

    def stop(self) -> None:
        """End the thread (waiting for it, unless called on it); the held packets stay."""
        with self._wakeup:
            thread, self._thread = self._thread, None
            self._wakeup.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def close(self) -> None:
        """:meth:`stop`, for good: no thread starts again."""
        with self._wakeup:
            self._closed = True
        self.stop()
