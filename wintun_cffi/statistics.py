"""What went through a session: the counters it keeps, always on (see :attr:`Session.statistics
<wintun_cffi.session.Session.statistics>`)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Where a send found the ring full: ``send()`` by its ``on_full`` policy (``raise``,
#: ``drop``, ``wait``), ``allocate_send_packet()`` (it raises), and ``send_many()`` (the
#: packets it left unsent).
RING_FULL_KINDS = ("raise", "drop", "wait", "allocate", "send_many")


@dataclass(frozen=True)
class SessionStatistics:
    """A snapshot of a session's counters, from its start.

    *Received* is what the application took from the Send ring (every receive path, the
    copying one included); *sent* what it gave the driver with its own data. The driver's
    counters (``driver``) are the adapter's, kept by the far side: the emulator's, where the
    backend has them.
    """

    received_packets: int = 0
    received_bytes: int = 0
    sent_packets: int = 0
    sent_bytes: int = 0
    #: Received packets the session gave back for the application: dropped without a
    #: release, or lost to an interruption (Ctrl+C) before anyone held them.
    settled: int = 0
    #: Allocations given up (abandoned, dropped, cut short by an interruption) and sent
    #: made harmless.
    given_up: int = 0
    #: Packets that found no room in the Receive ring, by where (:data:`RING_FULL_KINDS`).
    ring_full: dict[str, int] = field(default_factory=dict)
    #: How many packets each pass over the Send ring found: ``{packets: passes}``.
    batch_sizes: dict[int, int] = field(default_factory=dict)
    #: Capture records dropped because the capture's writer fell behind (never packets).
    capture_dropped: int = 0
    #: The driver's counters for the adapter (:class:`emulator.driver.AdapterStatistics`
    #: by name), or None where the backend does not show them (the real driver).
    driver: dict[str, int] | None = None


__all__ = ["RING_FULL_KINDS", "SessionStatistics"]
