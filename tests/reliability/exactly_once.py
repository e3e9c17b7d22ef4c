"""Exactly once, in order: a record of every packet of one session, both ways, and its check.

The packets are those of :func:`tests.reliability.traffic.make_packet`: each carries a producer
id and a sequence number, which is what is recorded (``(producer, sequence)``, a *key*).

* Towards the application: ``delivered`` is what the system put in the ring (a ``deliver``
  that returned True), in ring order; ``handed`` is what the application was handed, in the
  order it was handed. Each delivered packet must be handed out exactly once and in ring
  order; nothing may be handed out that was not delivered.
* Towards the system: ``sent`` is what the application sent (the call returned), in order;
  ``maybe_sent`` what a call cut short by an interrupt was sending (it may or may not have
  gone out); ``arrived`` is what the system got. Each sent packet must arrive exactly once, in
  sending order; a maybe-sent one at most once, in its place.

The one loss accepted, and only where it is declared (:meth:`ExactlyOnce.may_lose`): a
``KeyboardInterrupt`` that lands as a ``receive*`` call returns loses what that call was
returning (one packet, or one call's list or batch), which the application never saw. The
check counts such losses (``lost``), requires them to be one run of consecutive packets per
declared interrupt, and never lets more through.

The check also requires the ring to have cycled: more than twice its capacity in bytes each
way (:meth:`ExactlyOnce.cycled`), so a slot stranded anywhere would have stopped it.
Nothing here runs the cyclic garbage collector.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from wintun_cffi.constants import record_size
from wintun_cffi.session import Session

from .traffic import HEADER_SIZE, parse_packet

Key = tuple[int, int]


class NotExactlyOnce(AssertionError):
    """The record shows a packet lost, duplicated, reordered or damaged."""


@dataclass
class Tally:
    """What a check found, as counts (for reports)."""

    delivered: int = 0
    handed: int = 0
    duplicates: int = 0
    lost: int = 0
    allowed_losses: int = 0
    sent: int = 0
    arrived: int = 0
    problems: list[str] = field(default_factory=list)


def key_of(data: bytes | memoryview) -> Key | None:
    """The packet's key, or None for a packet that is not one of ours (too short, or not
    IPv4: what the system itself may send). Raises ValueError for one of ours, damaged."""
    if len(data) < HEADER_SIZE or data[0] != 0x45:
        return None
    return parse_packet(data)


def _key_or_damage(data: bytes | memoryview, damaged: list[str], where: str) -> Key | None:
    """:func:`key_of`, noting a damaged packet in ``damaged`` (recording never raises: it
    runs on the far side's threads too)."""
    try:
        return key_of(data)
    except ValueError as error:
        damaged.append(f"{where}: {error}")
        return None


class ExactlyOnce:
    """The record of one session's packets, both ways. Thread-safe (list appends and a lock
    for the few compound updates)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.delivered: list[Key] = []
        self.handed: list[Key] = []
        self.sent: list[Key] = []
        self.maybe_sent: set[Key] = set()
        self._send_order: list[Key] = []
        self.arrived: list[Key] = []
        # Sizes, summed in ring bytes only when checked: recording calls nothing of the
        # library, whose every line an interrupt sweep may interrupt.
        self._handed_sizes: list[int] = []
        self._arrived_sizes: list[int] = []
        #: Packets a declared interrupt may have lost, one entry per interrupt: the most.
        self.loss_allowances: list[int] = []
        #: Packets that were ours but arrived or were handed out with other bytes.
        self.damaged: list[str] = []
        self._lock = threading.Lock()

    # -- recording ------------------------------------------------------------------------

    def on_delivered(self, packets: Iterable[bytes]) -> None:
        """The system put ``packets`` in the ring (its ``deliver`` returned True)."""
        with self._lock:
            for packet in packets:
                key = key_of(packet)
                if key is not None:
                    self.delivered.append(key)

    def on_handed(self, data: bytes | memoryview) -> Key | None:
        """The application was handed a packet with these bytes; its key."""
        key = _key_or_damage(data, self.damaged, "handed out")
        if key is not None:
            with self._lock:
                self.handed.append(key)
                self._handed_sizes.append(len(data))
        return key

    def on_sent(self, packet: bytes, *, certain: bool = True) -> None:
        """The application sent ``packet`` (``certain=False``: a call sending it was cut
        short, so it may or may not have gone out)."""
        key = key_of(packet)
        if key is None:
            return
        with self._lock:
            self._send_order.append(key)
            if certain:
                self.sent.append(key)
            else:
                self.maybe_sent.add(key)

    def on_arrived(self, packet: bytes) -> Key | None:
        """The system got ``packet`` from the application; its key."""
        key = _key_or_damage(packet, self.damaged, "arrived")
        if key is not None:
            with self._lock:
                self.arrived.append(key)
                self._arrived_sizes.append(len(packet))
        return key

    def may_lose(self, at_most: int) -> None:
        """A ``KeyboardInterrupt`` landed in a ``receive*`` call that could have been
        returning up to ``at_most`` packets: those (one run of consecutive packets) may be
        lost. Call it only for an interrupt that really landed in such a call."""
        with self._lock:
            self.loss_allowances.append(at_most)

    # -- checking -------------------------------------------------------------------------

    def ring_bytes(self) -> tuple[int, int]:
        """Ring bytes (headers included) of what was handed out and of what arrived."""
        return sum(map(record_size, self._handed_sizes)), sum(map(record_size, self._arrived_sizes))

    def cycled(self) -> bool:
        """More than twice the ring's capacity went through it each way."""
        limit = 2 * self.capacity
        return all(moved > limit for moved in self.ring_bytes())

    def tally(self, *, drained: bool = True, cycled: bool = True) -> Tally:
        """Every problem in the record. ``drained``: everything delivered should have been
        handed out by now, and everything sent should have arrived (False while packets may
        still be on their way, or when the session ended with packets in its rings).
        ``cycled``: require the ring to have cycled (:meth:`cycled`)."""
        with self._lock:
            found = Tally(
                delivered=len(self.delivered),
                handed=len(self.handed),
                sent=len(self.sent),
                arrived=len(self.arrived),
                allowed_losses=sum(self.loss_allowances),
            )
            problems = found.problems
            if self.damaged:
                problems.append(f"{len(self.damaged)} damaged: {self.damaged[:3]}")
            self._check_received(found, drained)
            self._check_sent(found, drained)
            if cycled and not self.cycled():
                handed, arrived = self.ring_bytes()
                problems.append(
                    f"the ring did not cycle twice: {handed} bytes handed out, {arrived} "
                    f"arrived, capacity {self.capacity:#x}"
                )
        return found

    def verify(self, *, drained: bool = True, cycled: bool = True) -> Tally:
        """:meth:`tally`, raising :class:`NotExactlyOnce` if it found a problem."""
        found = self.tally(drained=drained, cycled=cycled)
        if found.problems:
            raise NotExactlyOnce("; ".join(found.problems))
        return found

    def _check_received(self, found: Tally, drained: bool) -> None:
        problems = found.problems
        counts = Counter(self.handed)
        twice = sorted(key for key, count in counts.items() if count > 1)
        found.duplicates = sum(count - 1 for count in counts.values())
        if twice:
            problems.append(f"handed out more than once: {twice[:5]} ({found.duplicates} extra)")
        place = {key: index for index, key in enumerate(self.delivered)}
        unknown = [key for key in counts if key not in place]
        if unknown:
            problems.append(f"handed out but never delivered: {sorted(unknown)[:5]}")
        # In ring order: the places of the handed packets only grow.
        last = -1
        for key in self.handed:
            index = place.get(key, -1)
            if 0 <= index < last:
                problems.append(f"{key} handed out after {self.delivered[last]}: out of order")
                break
            last = max(last, index)
        if drained:
            missing = [index for index, key in enumerate(self.delivered) if key not in counts]
        else:  # what was still in the ring when the session ended is not missing
            handed_places = [place[key] for key in counts if key in place]
            end = max(handed_places, default=-1)
            missing = [index for index in range(end + 1) if self.delivered[index] not in counts]
        found.lost = len(missing)
        runs = _runs(missing)
        if not _covered(sorted(map(len, runs), reverse=True), list(self.loss_allowances)):
            lost = [self.delivered[index] for index in missing]
            problems.append(
                f"lost {len(missing)} packets in {len(runs)} runs ({lost[:5]}...), more than "
                f"{len(self.loss_allowances)} interrupts in a receive call may lose "
                f"({sum(self.loss_allowances)} packets at most)"
            )

    def _check_sent(self, found: Tally, drained: bool) -> None:
        problems = found.problems
        counts = Counter(self.arrived)
        twice = sorted(key for key, count in counts.items() if count > 1)
        if twice:
            problems.append(f"arrived at the system more than once: {twice[:5]}")
        missing = [key for key in self.sent if key not in counts] if drained else []
        if missing:
            problems.append(f"sent but never arrived: {missing[:5]} ({len(missing)} in all)")
        place = {key: index for index, key in enumerate(self._send_order)}
        strangers = [key for key in counts if key not in place]
        if strangers:
            problems.append(f"arrived but never sent: {sorted(strangers)[:5]}")
        last = -1
        for key in self.arrived:
            index = place.get(key, -1)
            if 0 <= index < last:
                problems.append(f"{key} arrived after {self._send_order[last]}: out of order")
                break
            last = max(last, index)


def recorded(session: Session) -> tuple[int, int, int]:
    """What ``session`` records as out of its rings: received packets (handed out or not),
    of those the ones taken but not yet handed out, and allocated send buffers. The one place
    the checks read the session's private bookkeeping (its ledgers and ready queue)."""
    reads, writes = session._reads, session._writes
    return (
        len(reads.entries) + len(reads.raw),
        len(session._ready),
        len(writes.entries) + len(writes.raw),
    )


def abandoned_first(session: Session, held: Iterable[object]) -> int:
    """How many received packets the session records that nobody holds (neither the
    application, ``held``, nor the session's ready queue) ahead of the oldest one somebody
    does: those hold the ring up, and settling must have given them back. (A dropped packet
    behind a held one holds nothing up: its turn comes once those before it go back.)"""
    holders = {id(item) for item in held} | {id(packet) for packet in session._ready}
    count = 0
    for record in session._reads.entries.values():
        if id(record) in holders:
            break
        count += 1
    return count


def _covered(runs: list[int], allowances: list[int]) -> bool:
    """Whether each run of lost packets (lengths, longest first) is what one or more declared
    interrupts were returning: a run takes allowances (each used once), largest first, until
    they cover it (consecutive interrupted calls lose consecutive packets)."""
    pool = sorted(allowances)
    for length in runs:
        while length > 0:
            if not pool:
                return False
            length -= pool.pop()
    return True


def _runs(indexes: list[int]) -> list[list[int]]:
    """Consecutive runs in a sorted list of indexes."""
    runs: list[list[int]] = []
    for index in indexes:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs
