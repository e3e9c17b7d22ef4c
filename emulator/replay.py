"""Replay a capture into an emulated session, and record what the application sends.

:func:`replay` plays the system side of an emulated adapter (a :class:`~emulator.host.Host`,
the Linux TUN host included) from a capture file read by :mod:`wintun_cffi.capture_read`, or
from any iterable of :class:`~wintun_cffi.capture_read.CaptureRecord`: the packets the system
sent to the application are delivered into the session's Send ring, in order, as fast as the
ring takes them or at the recorded pace. :class:`Recorder` collects the packets the
application sends, as records, for assertions (saving them as a pcapng file is left to the
capture writer of issue 24).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from wintun_cffi.capture_read import (
    INBOUND,
    OUTBOUND,
    CaptureReader,
    CaptureRecord,
    CaptureSource,
)
from wintun_cffi.constants import MAX_IP_PACKET_SIZE, record_size

from .host import Host

__all__ = [
    "DEFAULT_DIRECTIONS",
    "Pace",
    "Recorder",
    "ReplayError",
    "ReplayResult",
    "ReplayTimeout",
    "replay",
]

#: ``"fast"``: as fast as the Send ring takes the packets; ``"recorded"``: with the gaps
#: between their timestamps (divided by the speed).
Pace = Literal["fast", "recorded"]
#: The records :func:`replay` delivers unless told otherwise: those the system sent to the
#: application (:data:`~wintun_cffi.capture_read.INBOUND`) and those of unknown direction.
DEFAULT_DIRECTIONS: frozenset[int | None] = frozenset({INBOUND, None})

_FIRST_PAUSE, _LONGEST_PAUSE = 0.0001, 0.002  # polling a full ring, doubling in between


@dataclass
class ReplayResult:
    """What a replay did (also on :attr:`ReplayError.result` when it stopped early)."""

    #: Packets written into the Send ring (or handed to an inbound impairment).
    delivered: int = 0
    #: Records left out for their direction (not in ``directions``).
    skipped_direction: int = 0
    #: Frames of the file without an IP packet, which the reader skipped (0 for records).
    skipped_non_ip: int = 0
    #: Packets larger than :data:`~wintun_cffi.constants.MAX_IP_PACKET_SIZE`, which no ring
    #: carries: left out.
    too_large: int = 0
    #: Times a packet found the Send ring full and waited for the application to read.
    ring_full: int = 0
    #: Seconds from the first delivery to the last.
    seconds: float = 0.0
    #: At the recorded pace, the most a packet was delivered after its time, in seconds.
    late: float = 0.0


class ReplayError(RuntimeError):
    """The replay stopped before the end: the session ended, or (:class:`ReplayTimeout`) the
    application left the Send ring full too long."""

    def __init__(self, message: str, result: ReplayResult) -> None:
        super().__init__(message)
        #: What was done until then.
        self.result = result


class ReplayTimeout(ReplayError, TimeoutError):
    """The Send ring stayed full for longer than the replay's ``timeout``."""


def replay(
    host: Host,
    source: CaptureSource | Iterable[CaptureRecord],
    *,
    pace: Pace = "fast",
    speed: float = 1.0,
    directions: Collection[int | None] = DEFAULT_DIRECTIONS,
    timeout: float | None = 10.0,
) -> ReplayResult:
    """Deliver the packets of ``source`` to the application of ``host``'s running session.

    ``source`` is a capture file (a path or a binary file object, read by
    :class:`~wintun_cffi.capture_read.CaptureReader`) or an iterable of records. Records whose
    direction is in ``directions`` are delivered, in order, each exactly once; the default
    takes what the system sent (inbound) and what has no direction, and leaves out what the
    application sent. ``pace="fast"`` delivers as fast as the Send ring takes them;
    ``pace="recorded"`` delivers each record ``(timestamp - first timestamp) / speed`` seconds
    after the first one (a late packet is not made up for by the next ones: the schedule
    stays anchored at the first).

    A full ring is never a loss: the packet waits, polling for room, until the application
    has read enough, and raises :class:`ReplayTimeout` if it waited more than ``timeout``
    seconds (None: no limit). :class:`ReplayError` if the session ends (or there is none).
    With an inbound impairment (:meth:`~emulator.host.Host.impair`) the impairment decides
    what becomes of each packet, as for :meth:`~emulator.host.Host.deliver`.

    Runs on the calling thread and returns when the last packet is delivered (not read).
    """
    if pace not in ("fast", "recorded"):
        raise ValueError(f"pace must be 'fast' or 'recorded', not {pace!r}")
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be a positive number, not {speed!r}")
    reader = None
    records: Iterable[CaptureRecord]
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "read"):
        records = reader = CaptureReader(source)  # type: ignore[arg-type]
    else:
        records = source
    result = ReplayResult()
    recorded = pace == "recorded"
    monotonic = time.monotonic
    start = first = 0.0
    first_timestamp: int | None = None
    try:
        for record in records:
            if record.direction not in directions:
                result.skipped_direction += 1
                continue
            data = record.data
            if len(data) > MAX_IP_PACKET_SIZE:
                result.too_large += 1
                continue
            if first_timestamp is None:
                first_timestamp = record.timestamp_ns
                start = monotonic()
            due = start
            if recorded:
                due += (record.timestamp_ns - first_timestamp) / 1e9 / speed
                wait = due - monotonic()
                if wait > 0:
                    time.sleep(wait)
            _deliver(host, data, result, timeout)
            now = monotonic()
            if not result.delivered:
                first = now
            result.delivered += 1
            result.seconds = now - first
            if recorded:
                result.late = max(result.late, now - due)
    finally:
        if reader is not None:
            reader.close()
        if isinstance(records, CaptureReader):  # ours, or one the caller gave
            result.skipped_non_ip = records.skipped
    return result


def _deliver(host: Host, data: bytes, result: ReplayResult, timeout: float | None) -> None:
    """Deliver one packet, waiting while the Send ring has no room for it."""
    needed = record_size(len(data))
    deadline: float | None = None
    pause = _FIRST_PAUSE
    while True:
        room = host.send_room()
        if room is None:
            raise ReplayError(
                f"{host.name!r} has no running session (after {result.delivered} packets)", result
            )
        # Room seen, the delivery can still fail: the echo responder may have taken it.
        if room >= needed and host.deliver(data):
            return
        now = time.monotonic()
        if deadline is None:
            result.ring_full += 1
            deadline = math.inf if timeout is None else now + timeout
        elif now > deadline:
            raise ReplayTimeout(
                f"the Send ring of {host.name!r} stayed full for {timeout} s "
                f"(after {result.delivered} packets)",
                result,
            )
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)


class Recorder:
    """Records the packets the application sends into ``host``'s sessions, from now until
    :meth:`close` (or the end of a ``with`` block), as
    :class:`~wintun_cffi.capture_read.CaptureRecord` objects with the direction
    :data:`~wintun_cffi.capture_read.OUTBOUND`, the interface 0 and the wall-clock time the
    system took them. :meth:`~emulator.host.Host.receive` still gets every packet.
    """

    def __init__(self, host: Host) -> None:
        self._host = host
        self._records: list[CaptureRecord] = []
        self._changed = threading.Condition(threading.Lock())
        self._observing = True
        host.add_observer(self._observe)

    def _observe(self, packet: bytes) -> None:
        record = CaptureRecord(time.time_ns(), packet, OUTBOUND, None, 0, len(packet))
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    @property
    def records(self) -> list[CaptureRecord]:
        """The records so far, oldest first (a copy)."""
        with self._changed:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def wait_for(self, count: int, timeout: float | None = 5.0) -> list[CaptureRecord]:
        """The records once there are at least ``count``; :class:`TimeoutError` (saying how
        many came) if they do not within ``timeout`` seconds (None: no limit)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._records)} of {count} packets from the application "
                    f"within {timeout} s"
                )
            return list(self._records)

    def clear(self) -> None:
        """Forget the records so far."""
        with self._changed:
            self._records.clear()

    def close(self) -> None:
        """Stop recording (the records stay)."""
        if self._observing:
            self._observing = False
            self._host.remove_observer(self._observe)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
