"""What the Wintun kernel driver does with a session's rings (see :doc:`/protocol`).

The driver is the *producer* of the Send ring (packets the operating system sends out through
the adapter, delivered to the application) and the *consumer* of the Receive ring (packets the
application sends, handed to the operating system), with one consumer thread per session.

It works on any :class:`~emulator.ring.Ring` and :class:`~wintun_cffi.fdevent.FdEvent`, so the
same code plays the kernel for the emulator's own client and for the C test double.

As ``wintun.sys`` does, the consumer hands the system one packet at a time and moves the
Receive ring's Head past each packet as soon as the system is done with it (or it was
discarded). What it does with a record that is not IP depends on the generation: 0.14 discards
and counts it; every earlier driver stops reading the ring there.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from wintun_cffi.constants import MAX_IP_PACKET_SIZE, RING_DEAD_MARKER, record_size
from wintun_cffi.errors import RingCorruptError
from wintun_cffi.fdevent import FdEvent, WaitInterrupted
from wintun_cffi.send_rules import is_deliverable_ip

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
    #: Packets from the application that were neither IPv4 nor IPv6, discarded (0.14; an
    #: earlier driver stops reading the ring at such a packet and counts nothing).
    in_discards: int = 0
    #: Packets the system handed back as failed (the real driver's ifInErrors); the emulated
    #: system never fails one, and a corrupt Receive ring counts nowhere, as in wintun.sys.
    in_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class RegistrationRefused(Exception):
    """The driver refuses to register the rings (``STATUS_INVALID_PARAMETER``)."""


class SessionDriver:
    """The kernel side of one session: produce into ``send_ring``, consume ``receive_ring``.

    ``to_system`` receives each accepted packet (IPv4/IPv6 only), in ring order, on the
    consumer thread; when it returns, the system is done with the packet. With
    ``stops_at_non_ip`` (drivers before 0.14) a record that is not IP stops the consumer like
    a corrupt one; otherwise it is discarded and counted.

    Raises :class:`RegistrationRefused` if the Send ring's Tail is out of range, as
    ``wintun.sys`` refuses such rings.
    """

    def __init__(
        self,
        send_ring: Ring,
        receive_ring: Ring,
        read_wait_event: FdEvent,
        receive_tail_moved: FdEvent,
        to_system: Callable[[bytes], None],
        statistics: AdapterStatistics,
        name: str = "wintun",
        *,
        stops_at_non_ip: bool = False,
        start: bool = True,
    ) -> None:
        if send_ring.tail >= send_ring.capacity:
            raise RegistrationRefused(f"the Send ring's Tail {send_ring.tail:#x} is out of range")
        self.send_ring = send_ring
        self.receive_ring = receive_ring
        self.read_wait_event = read_wait_event
        self.receive_tail_moved = receive_tail_moved
        self.statistics = statistics
        self._to_system = to_system
        self._stops_at_non_ip = stops_at_non_ip
        self._send_lock = threading.Lock()
        # The driver's own copy of the Send ring's Tail: it never trusts the shared field.
        self._send_tail = send_ring.tail
        # Of the same kind as the event it interrupts (a Win32 event for the Windows C double),
        # so that one wait covers both.
        self._stopping = type(receive_tail_moved)(manual_reset=True)
        self._stopped = False
        self._finished = False  # stop() ran to its end
        # Pausing the system: None, it takes every packet; n, it takes n more and then holds
        # the next one (the consumer waits, and Head with it, as when Windows keeps a packet).
        self._system_gate = threading.Condition()
        self._allowance: int | None = None
        self._held: bytes | None = None
        # A descriptor the consumer thread serves too (watch_while_idle), and its poller.
        self._watched: tuple[int, Callable[[], bool]] | None = None
        self._watch_poller: select.poll | None = None
        self._consumer = threading.Thread(
            target=self._consume, name=f"wintun-driver-{name}", daemon=True
        )
        if start:
            self.start()

    def start(self) -> None:
        """Start the consumer thread (the constructor does, unless told not to)."""
        self._consumer.start()

    def watch_while_idle(self, fd: int, ready: Callable[[], bool]) -> None:
        """Serve ``fd`` on the consumer thread too: the system's other half, such as the Linux
        TUN host's reading of its device, shares the thread, which saves a thread switch per
        packet (a handoff of the interpreter lock costs more than the work).

        Whenever the consumer waits for the Receive ring it waits for ``fd`` as well, and
        between batches of the ring it looks at ``fd`` without waiting; each time ``fd`` is
        readable it calls ``ready()``, which returns False to stop watching. A Receive ring
        that dies leaves the thread serving ``fd`` until :meth:`stop`; while the system is
        paused (:meth:`pause_system`) ``fd`` waits too. Call before :meth:`start`;
        descriptor events only (:class:`~wintun_cffi.fdevent.FdEvent` on Linux).
        """
        if self._consumer.ident is not None:
            raise RuntimeError("watch_while_idle() must come before the consumer starts")
        if not hasattr(select, "poll"):
            raise NotImplementedError("watch_while_idle() needs select.poll (not on Windows)")
        poller = select.poll()
        for each in (fd, self.receive_tail_moved.fileno(), self._stopping.fileno()):
            poller.register(each, select.POLLIN)
        self._watched, self._watch_poller = (fd, ready), poller

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` ran: both rings carry the dead marker."""
        return self._stopped

    def set_to_system(self, to_system: Callable[[bytes], None]) -> None:
        """Hand the accepted packets to ``to_system`` from the next batch of the ring on."""
        self._to_system = to_system

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

    def send_room(self) -> int:
        """Bytes :meth:`deliver` may write into the Send ring now (0 once stopped, or with a
        corrupt Head); it only grows until the next delivery, as the application reads."""
        ring = self.send_ring
        head = ring.head
        if self._stopped or head >= ring.capacity:
            return 0
        return ring.free(head, self._send_tail)

    # -- consumer: the application's packets out of the Receive ring --------------------------

    def _consume(self) -> None:
        ring = self.receive_ring
        memory = ring.memory
        data = ring.data
        mask = ring.mask
        capacity = ring.capacity
        stats = self.statistics
        stops_at_non_ip = self._stops_at_non_ip
        head = ring.head
        served = True  # the watched descriptor was just looked at (by a wait)
        try:
            if head >= capacity:
                raise RingCorruptError(f"Receive ring Head {head:#x} is out of range")
            while True:
                if self._stopped:  # stop() waits for this thread; do not outrun it
                    return
                tail = U32.unpack_from(memory, TAIL_OFFSET)[0]
                if tail == head:
                    if not self._wait_for_tail(head):
                        return
                    served = True
                    continue
                if tail >= capacity:
                    raise RingCorruptError(f"Receive ring Tail {tail:#x} is out of range")
                if not served and self._watched is not None and not self._serve_watched(0):
                    return  # looked at between batches: a busy ring must not starve it
                served = False
                to_system = self._to_system  # per batch: set_to_system() may change it
                while head != tail:
                    size = ring.check_record(head, tail)
                    start = head + 4
                    packet = bytes(data[start : start + size])
                    if is_deliverable_ip(packet):
                        stats.in_packets += 1
                        stats.in_octets += size
                        if self._allowance is not None:  # the system is paused
                            self._wait_for_the_system(packet)
                        try:
                            to_system(packet)
                        except Exception:  # the system's trouble must not kill the driver
                            _log.exception("the emulated system failed to take a packet")
                        if self._stopped:  # stop() writes the dead marker; never overwrite it
                            return
                    elif stops_at_non_ip:
                        raise RingCorruptError(f"record at {head:#x} is not an IP packet")
                    else:
                        stats.in_discards += 1
                    # The system is done with this packet (or never had it): give its space
                    # back at once, as wintun.sys does packet by packet.
                    head = (head + ((size + 7) & ~3)) & mask
                    U32.pack_into(memory, HEAD_OFFSET, head)
        except RingCorruptError as error:  # like wintun.sys, no counter: the ring just dies
            _log.warning("stopping the Receive ring: %s", error)
            U32.pack_into(memory, HEAD_OFFSET, RING_DEAD_MARKER)
            # The Send ring lives on: keep serving the watched descriptor until the stop.
            while self._watched is not None and self._serve_watched(None):
                pass

    def _wait_for_the_system(self, packet: bytes) -> None:
        """Hold ``packet`` while the system is paused; count it against what it may take."""
        with self._system_gate:
            while self._allowance == 0 and not self._stopped:
                self._held = packet
                self._system_gate.wait()
            self._held = None
            if self._allowance:
                self._allowance -= 1

    # -- pausing the system (fault injection) -------------------------------------------------

    def pause_system(self) -> None:
        """The system stops taking packets: the consumer holds the next one (Head stays)."""
        with self._system_gate:
            self._allowance = 0

    def resume_system(self, packets: int | None = None) -> None:
        """The system takes every packet again (``None``), or only ``packets`` more."""
        if packets is not None and packets < 0:
            raise ValueError(f"packets must not be negative, not {packets}")
        with self._system_gate:
            self._allowance = packets
            self._system_gate.notify_all()

    @property
    def held_packet(self) -> bytes | None:
        """The packet the consumer holds while the system is paused, if any."""
        return self._held

    def _wait_for_tail(self, head: int) -> bool:
        """Sleep until the Receive ring's Tail leaves ``head``; False when stopping."""
        ring = self.receive_ring
        for _ in range(_SPINS if self._watched is None else 0):
            time.sleep(0)
            if ring.tail != head or self._stopping.is_set():
                return not self._stopping.is_set()
        ring.alertable = 1
        if ring.tail != head:  # the client published before it could see Alertable
            ring.alertable = 0
            self.receive_tail_moved.consume()
            return True
        try:
            if self._watched is None:
                self.receive_tail_moved.wait(None, interrupt=self._stopping)
            elif not self._serve_watched(None):
                return False
        except WaitInterrupted:
            return False
        finally:
            ring.alertable = 0
        return True

    def _serve_watched(self, timeout: int | None) -> bool:
        """Wait up to ``timeout`` ms (None: until something happens) for the watched
        descriptor, the Receive ring's TailMoved event or the stop, and serve what is ready;
        False when stopping."""
        poller, watched = self._watch_poller, self._watched
        assert poller is not None and watched is not None  # watch_while_idle() made them
        fd, ready = watched
        stopping = False
        for each, _ in poller.poll(timeout):
            if each == fd:
                if not ready():  # the descriptor failed: the ring is still served
                    poller.unregister(fd)
                    self._watched = (-1, ready)
            elif each == self._stopping.fileno():
                stopping = True
            else:
                self.receive_tail_moved.consume()
        return not stopping

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop using the rings: the consumer ends, both rings get the dead marker and a
        blocked reader wakes (it then gets ``ERROR_HANDLE_EOF``). Idempotent, and every step
        is redone by a later call if an interruption cut this one short."""
        with self._send_lock:
            if self._finished:
                return
            self._stopped = True
        self._stopping.set()
        with self._system_gate:  # a consumer held for a paused system must see the stop
            self._system_gate.notify_all()
        consumer = self._consumer
        if consumer.ident is not None and threading.current_thread() is not consumer:
            consumer.join()  # started (a start cut short may never have started it)
        self.receive_ring.head = RING_DEAD_MARKER
        self.send_ring.tail = RING_DEAD_MARKER
        self.read_wait_event.set()
        self._finished = True
        self._stopping.close()
