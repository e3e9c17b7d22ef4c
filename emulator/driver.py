"""What the Wintun kernel driver does with a session's rings (the spec's section 4).

The driver is the *producer* of the Send ring (packets the operating system sends out through
the adapter, delivered to the application) and the *consumer* of the Receive ring (packets the
application sends, handed to the operating system), with one consumer thread per session.

It works on any :class:`~emulator.ring.Ring` and :class:`~wintun_cffi.fdevent.FdEvent`, so the
same code plays the kernel for the emulator's own client and for the C test double.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, fields
from typing import Callable, Iterable

from wintun_cffi.constants import MAX_IP_PACKET_SIZE, RING_DEAD_MARKER, record_size
from wintun_cffi.errors import RingCorruptError
from wintun_cffi.fdevent import FdEvent, WaitInterrupted

from .ring import HEAD_OFFSET, TAIL_OFFSET, U32, Ring

_log = logging.getLogger(__name__)

#: How often the consumer re-reads an empty ring (yielding the GIL) before it goes to sleep.
_SPINS = 2


@dataclass
class AdapterStatistics:
    """The counters the driver keeps per adapter (the interface's point of view).

    *Out* is what the operating system sends out through the adapter, that is, what the driver
    delivers to the application; *in* is what the application sends, received by the system.
    """

    out_octets: int = 0
    out_packets: int = 0
    #: Outgoing packets dropped because the Send ring had no room (whole batches).
    out_discards: int = 0
    #: Outgoing packets larger than ``0xFFFF`` bytes, skipped.
    out_errors: int = 0
    in_octets: int = 0
    in_packets: int = 0
    #: Packets from the application that were neither IPv4 nor IPv6, discarded.
    in_discards: int = 0
    #: Packets the system handed back as failed (the real driver's ifInErrors); the emulated
    #: system never fails one, and a corrupt Receive ring counts nowhere, as in wintun.sys.
    in_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def is_deliverable_ip(packet: bytes) -> bool:
    """True if the driver hands ``packet`` to the system: IPv4 of 20+ or IPv6 of 40+ bytes."""
    if not packet:
        return False
    version = packet[0] >> 4
    return (version == 4 and len(packet) >= 20) or (version == 6 and len(packet) >= 40)


class SessionDriver:
    """The kernel side of one session: produce into ``send_ring``, consume ``receive_ring``.

    ``to_system`` receives each batch of accepted packets (IPv4/IPv6 only), in ring order, on
    the consumer thread.
    """

    def __init__(
        self,
        send_ring: Ring,
        receive_ring: Ring,
        read_wait_event: FdEvent,
        receive_tail_moved: FdEvent,
        to_system: Callable[[list[bytes]], None],
        statistics: AdapterStatistics,
        name: str = "wintun",
    ) -> None:
        self.send_ring = send_ring
        self.receive_ring = receive_ring
        self.read_wait_event = read_wait_event
        self.receive_tail_moved = receive_tail_moved
        self.statistics = statistics
        self._to_system = to_system
        self._send_lock = threading.Lock()
        # The driver's own copy of the Send ring's Tail: it never trusts the shared field.
        self._send_tail = send_ring.tail
        # Of the same kind as the event it interrupts (a Win32 event for the Windows C double),
        # so that one wait covers both.
        self._stopping = type(receive_tail_moved)(manual_reset=True)
        self._stopped = False
        self._consumer = threading.Thread(
            target=self._consume, name=f"wintun-driver-{name}", daemon=True
        )
        self._consumer.start()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` ran: both rings carry the dead marker."""
        return self._stopped

    # -- producer: the system's outgoing packets into the Send ring --------------------------

    def deliver(self, packets: Iterable[bytes | bytearray | memoryview]) -> bool:
        """Write a batch into the Send ring, all or nothing; True if it was written.

        Packets above ``0xFFFF`` bytes are skipped (``out_errors``). If the rest does not fit,
        or the ring is not in use, none of the batch is written and every packet of it, the
        oversized ones included, counts in ``out_discards`` (as the real driver counts).
        """
        stats = self.statistics
        offered = list(packets)
        batch = [packet for packet in offered if len(packet) <= MAX_IP_PACKET_SIZE]
        needed = sum(record_size(len(packet)) for packet in batch)
        ring = self.send_ring
        with self._send_lock:
            head = ring.head
            tail = self._send_tail
            if self._stopped or head >= ring.capacity or ring.free(head, tail) < needed:
                stats.out_discards += len(offered)
                return False
            stats.out_errors += len(offered) - len(batch)
            data = ring.data
            mask = ring.mask
            octets = 0
            for packet in batch:
                size = len(packet)
                U32.pack_into(data, tail, size)
                data[tail + 4 : tail + 4 + size] = packet
                tail = (tail + ((size + 7) & ~3)) & mask
                octets += size
            self._send_tail = tail
            U32.pack_into(ring.memory, TAIL_OFFSET, tail)
            stats.out_packets += len(batch)
            stats.out_octets += octets
            # Signalled under the lock: stop() takes it, so the event is never set once the
            # session's owner may have closed it.
            self.read_wait_event.set()
        return True

    # -- consumer: the application's packets out of the Receive ring --------------------------

    def _consume(self) -> None:
        ring = self.receive_ring
        memory = ring.memory
        data = ring.data
        mask = ring.mask
        stats = self.statistics
        head = ring.head
        try:
            while True:
                if self._stopped:  # stop() waits for this thread; do not outrun it
                    return
                tail = U32.unpack_from(memory, TAIL_OFFSET)[0]
                if tail == head:
                    if not self._wait_for_tail(head):
                        return
                    continue
                if tail >= ring.capacity:
                    raise RingCorruptError(f"Receive ring Tail {tail:#x} is out of range")
                accepted = []
                corrupt: RingCorruptError | None = None
                while head != tail:
                    try:
                        size = ring.check_record(head, tail)
                    except RingCorruptError as error:
                        corrupt = error  # the packets before it still reach the system
                        break
                    start = head + 4
                    packet = bytes(data[start : start + size])
                    if is_deliverable_ip(packet):
                        accepted.append(packet)
                        stats.in_octets += size
                    else:
                        stats.in_discards += 1
                    head = (head + ((size + 7) & ~3)) & mask
                stats.in_packets += len(accepted)
                if accepted:
                    try:
                        self._to_system(accepted)
                    except Exception:  # the system's trouble must not kill the driver
                        _log.exception("the emulated system failed to take packets")
                if corrupt is not None:
                    raise corrupt
                if self._stopped:  # stop() writes the dead marker; never overwrite it
                    return
                # The system is done with these packets: give their space back.
                U32.pack_into(memory, HEAD_OFFSET, head)
        except RingCorruptError as error:  # like wintun.sys, no counter: the ring just dies
            _log.warning("stopping the Receive ring: %s", error)
            U32.pack_into(memory, HEAD_OFFSET, RING_DEAD_MARKER)

    def _wait_for_tail(self, head: int) -> bool:
        """Sleep until the Receive ring's Tail leaves ``head``; False when stopping."""
        ring = self.receive_ring
        for _ in range(_SPINS):
            time.sleep(0)
            if ring.tail != head or self._stopping.is_set():
                return not self._stopping.is_set()
        ring.alertable = 1
        if ring.tail != head:  # the client published before it could see Alertable
            ring.alertable = 0
            self.receive_tail_moved.consume()
            return True
        try:
            self.receive_tail_moved.wait(None, interrupt=self._stopping)
        except WaitInterrupted:
            return False
        finally:
            ring.alertable = 0
        return True

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop using the rings: the consumer ends, both rings get the dead marker and a
        blocked reader wakes (it then gets ``ERROR_HANDLE_EOF``). Idempotent."""
        with self._send_lock:
            if self._stopped:
                return
            self._stopped = True
        self._stopping.set()
        if threading.current_thread() is not self._consumer:
            self._consumer.join()
        self.receive_ring.head = RING_DEAD_MARKER
        self.send_ring.tail = RING_DEAD_MARKER
        self.read_wait_event.set()
        self._stopping.close()
