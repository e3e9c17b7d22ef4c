"""Sessions: the high-level packet API, written once over the Backend protocol.

A :class:`Session` owns one Wintun session. :meth:`Session.receive_packet` and its blocking
forms hand out :class:`~wintun_cffi.packets.ReceivedPacket` objects (views of ring memory);
:meth:`Session.send` copies a packet into the ring, :meth:`Session.allocate_send_packet` hands
out a :class:`~wintun_cffi.packets.SendBuffer` to fill in place.

The path of a packet is short: receiving takes up to :data:`PREFETCH` packets from the ring in
one pass (C calls in a ``map``, see :mod:`wintun_cffi.ledger`) and hands them out one by one;
giving one back is one pipeline pass. Everything else (waiting, settling abandoned packets,
closing) stays off that path.

Thread safety and closing: every method may be called from any thread, and
:meth:`Session.close` from any thread too, a signal handler included. Closing wakes every
blocked receiver (they raise :class:`~wintun_cffi.errors.SessionClosedError`), waits until the
calls in progress on other threads have returned, invalidates outstanding packets and only then
ends the session, so no call ever touches freed ring memory (:mod:`wintun_cffi.lifetime`).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import chain, islice, repeat
from operator import attrgetter, gt, is_not
from typing import TYPE_CHECKING, Any, Literal

from . import validate
from .backend import Backend
from .constants import MAX_IP_PACKET_SIZE
from .errors import (
    HandleClosedError,
    NoMoreItemsError,
    PacketReleasedError,
    RingFullError,
    SessionClosedError,
    WintunError,
)
from .ledger import Group, consume
from .lifetime import Lifetime, backoff
from .lifetime import getrefcount as _getrefcount
from .packets import CopiedPacket, PacketBatch, ReceivedPacket, SendBuffer
from .send_rules import rules_for
from .statistics import RING_FULL_KINDS, SessionStatistics

if TYPE_CHECKING:
    from os import PathLike
    from typing import BinaryIO

    from .api import Adapter
    from .capture import Capture

#: What :meth:`Session.send` accepts: any contiguous bytes-like object.
BytesLike = bytes | bytearray | memoryview

OnFull = Literal["raise", "drop", "wait"]
_ON_FULL = ("raise", "drop", "wait")
#: How many packets one pass over the ring takes at most, to hand out one by one.
PREFETCH = 32
#: How many packets :meth:`Session.read` copies ahead in one pass: copies cost a memory
#: allocation each, and a pass its calls (measured best from 64 up, at 1,500 bytes).
COPY_AHEAD = 64
#: The longest single wait: longer timeouts wait again (system waits take no more).
_LONGEST_WAIT = 3600.0
_ALL = slice(None)
_session_of = attrgetter("_session")
_token_of = attrgetter("_token")
_SECONDS = (float, int)
# Without reference counts (not CPython), assume someone waits.


class _Marker:
    """Held in a local by every thread waiting for packets; its reference count tells."""

    __slots__ = ()


class Session(Lifetime):
    """An active Wintun session on an adapter; see :meth:`wintun_cffi.api.Adapter.start_session`."""

    def __init__(self, adapter: Adapter, backend: Backend, handle: object, capacity: int) -> None:
        self.adapter = adapter
        #: Ring capacity in bytes.
        self.capacity = capacity
        #: Packets :meth:`send` dropped because the ring was full (``on_full="drop"``).
        self.dropped = 0
        self._backend = backend
        self._handle = handle
        self._reads, self._writes = backend.ledgers(handle)
        # What this generation's driver refuses, and how a buffer is given up (bound once).
        self._rules = rules_for(backend.api)
        # Received packets taken from the ring, not yet handed out.
        self._ready: deque[ReceivedPacket] = deque()
        # Copies of packets read() took ahead (their ring space is back), not yet handed
        # out. Newer than anything in _ready: copies are only made with _ready empty, and a
        # zero-copy receive turns waiting copies into packets first (_detach_copies; cut
        # short, it leaves the older ones queued and the rest here).
        self._copies: deque[bytes] = deque()
        # No ring holds more packets (a record takes 4 bytes at least): a larger count
        # asked of receive_many() or receive_batch() takes what there is.
        self._most_packets = capacity // 4
        self._waiting = _Marker()
        self._async: object | None = None  # wintun_cffi.aio's state, made on first use
        self._ring_full = dict.fromkeys(RING_FULL_KINDS, 0)
        self._capture: Any = None
        self._capture_dropped = 0  # by the captures stopped before
        self._begin_lifetime()

    # -- state ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` started."""
        return self._live is None

    @property
    def read_wait_event(self) -> int:
        """The raw read-wait event (a HANDLE on Windows, else a descriptor), for advanced use.

        Do not close it; it belongs to the session.
        """
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            return self._backend.get_read_wait_event(self._handle)
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    @property
    def statistics(self) -> SessionStatistics:
        """What went through the session so far (a snapshot; the counters are always on)."""
        reads, writes = self._reads, self._writes
        driver = None
        host = getattr(self.adapter.wintun.backend, "host", None)
        if host is not None:
            try:
                driver = host(self.adapter.handle).statistics.as_dict()
            except Exception:  # the adapter is gone: no driver to ask
                driver = None
        capture = self._capture
        return SessionStatistics(
            received_packets=reads.packets,
            received_bytes=reads.octets,
            sent_packets=writes.packets,
            sent_bytes=writes.octets,
            settled=reads.settled,
            given_up=writes.given_up,
            ring_full=dict(self._ring_full),
            batch_sizes=dict(sorted(reads.passes.items())),
            capture_dropped=self._capture_dropped + (0 if capture is None else capture.dropped),
            driver=driver,
        )

    def capture(self, target: str | PathLike[str] | BinaryIO, **options: Any) -> Capture:
        """Record every packet the application receives and sends, from now on, as pcapng.

        ``target`` is a path or a binary file object (a pipe to ``wireshark -k -i -``);
        ``options`` are those of :class:`~wintun_cffi.capture.Capture` (snap length, limits,
        rotation); the interface is named after the adapter unless ``interface_name`` is
        given. Every receive and send path is recorded, packets given up are recorded as
        what the driver got, flagged; the packet path never waits for the disk (records the
        writer cannot keep up with are dropped and counted, see :attr:`statistics`).

        Returns the :class:`~wintun_cffi.capture.Capture`: close it to stop recording, or
        let the session close it when it ends. One capture at a time: a second one while the
        first is open raises :class:`RuntimeError` and changes nothing.
        """
        from .capture import Capture  # on first use: most sessions never capture

        if self._live is None:
            raise SessionClosedError("the session is closed")
        previous = self._capture
        if previous is not None and not previous.closed:
            raise RuntimeError(
                "the session is already capturing: close that capture before starting another"
            )
        options.setdefault("interface_name", self.adapter.name)
        capture = Capture(target, **options)
        if previous is not None:
            self._capture_dropped += previous.dropped
        self._capture = capture
        self._reads.capture = self._writes.capture = capture
        return capture

    def _stop_capture(self) -> None:
        """Detach the capture (the ledgers first: no packet reaches it once closing) and
        close it, its records written."""
        capture = self._capture
        if capture is not None:
            self._reads.capture = self._writes.capture = None
            from .capture import CaptureError

            try:
                capture.close()
            except CaptureError as error:  # the session's end is not the capture's to fail
                warnings.warn(f"the capture failed: {error}", RuntimeWarning, stacklevel=3)

    # -- receiving ------------------------------------------------------------------------

    def receive_packet(self) -> ReceivedPacket | None:
        """The next packet, or ``None`` if there is none now. Never blocks."""
        if self._live is not None:  # handing out a packet already taken touches no C
            try:
                return self._ready.popleft()
            except IndexError:
                pass
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            return self._take_received()
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _take_received(self) -> ReceivedPacket | None:
        """Take the next packets from the ring; hand out the first (or None if empty)."""
        if not self._fill(PREFETCH):
            return None
        try:
            return self._ready.popleft()
        except IndexError:  # another thread took them meanwhile
            return None

    def _fill(self, amount: int) -> bool:
        """Take up to ``amount`` packets from the ring into the ready queue (in ring order,
        whoever takes them: each thread then receives in ring order). False if it was empty."""
        if self._copies:  # read() copied these ahead: they come first
            self._detach_copies()
            return True
        ready, reads = self._ready, self._reads
        if reads.entries:
            reads.settle_if_stuck()  # a packet nobody holds keeps Head back
        try:
            reads.fill(amount, ready, ReceivedPacket, self)
        except NoMoreItemsError:
            return False
        except WintunError:
            # The ring is dead or corrupt: the next waiter must wake and find out too.
            self._signal_waiters()
            raise
        # Waiting threads learn of the packets this thread took but does not hand them.
        # References to the marker: the attribute and the argument, plus one per waiter.
        if len(ready) > 1 and (_getrefcount is None or _getrefcount(self._waiting) > 2):
            self._signal_waiters()
        return True

    def receive(self, timeout: float | None = None) -> ReceivedPacket:
        """The next packet, waiting up to ``timeout`` seconds (``None``: forever).

        Raises :class:`TimeoutError` on timeout and
        :class:`~wintun_cffi.errors.SessionClosedError` if the session closes meanwhile.
        """
        deadline = _deadline(timeout)
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            while True:
                try:
                    return self._ready.popleft()
                except IndexError:
                    pass
                packet = self._take_received()
                if packet is not None:
                    return packet
                if not self._wait(deadline):
                    raise TimeoutError(f"no packet within {timeout} s")
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _detach_copies(self) -> None:
        """Copies read() took ahead become packets that own their bytes
        (:class:`~wintun_cffi.packets.CopiedPacket`), queued for the zero-copy receives: they
        come before anything still in the ring. Each copy leaves its queue in the step that
        queues its packet (cut short, the copy being made is lost, never handed out twice)."""
        try:
            self._ready.extend(map(CopiedPacket, repeat(self), iter(self._copies.popleft, None)))
        except IndexError:
            pass

    # -- receiving copies -----------------------------------------------------------------

    def read(self, timeout: float | None = None) -> bytes:
        """The next packet as ``bytes``, waiting up to ``timeout`` seconds (``None``: forever).

        The copying path, for code that keeps the bytes: up to :data:`COPY_AHEAD` packets are
        taken from the ring, copied and given back in one step, with no packet object, and
        the copies wait in ring order for the next reads. Raises :class:`TimeoutError` on
        timeout and :class:`~wintun_cffi.errors.SessionClosedError` once the session closes.
        """
        if (self._live is not None and not self._ready) and (
            timeout is None or (timeout.__class__ in _SECONDS and timeout >= 0)
        ):  # a copy taken ahead touches no C (a NaN or another type goes the checked way)
            try:
                return self._copies.popleft()
            except IndexError:
                pass
        deadline = _deadline(timeout)
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            while True:
                data = self._next_copy()
                if data is not None:
                    return data
                if not self._wait(deadline):
                    raise TimeoutError(f"no packet within {timeout} s")
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def read_many(self, max_packets: int, timeout: float | None = None) -> list[bytes]:
        """Up to ``max_packets`` packets as ``bytes``; waits up to ``timeout`` for the first.

        The copying path's batch form (see :meth:`read`): returns an empty list if none
        arrived within ``timeout``.
        """
        limit = min(validate.check_max_packets(max_packets), self._most_packets)
        deadline = _deadline(timeout)
        found: list[bytes] = []
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            while True:
                self._read_ready(found, limit)
                if found or not self._wait(deadline):
                    return found
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def read_into(self, buffer: bytearray | memoryview, timeout: float | None = None) -> int:
        """Copy the next packet into ``buffer`` (writable, contiguous); returns its size.

        Waits like :meth:`read`. A packet larger than ``buffer`` raises :class:`ValueError`
        and stays the next one to read.
        """
        if (
            buffer.__class__ is bytearray
            and self._live is not None
            and not self._ready
            and (timeout is None or (timeout.__class__ in _SECONDS and timeout >= 0))
        ):  # read()'s fast path, for the buffer most code reuses
            copies = self._copies
            try:
                data = copies.popleft()
            except IndexError:
                pass
            else:
                size = len(data)
                if size <= len(buffer):
                    buffer[:size] = data
                    return size
                copies.appendleft(data)  # the checked way below says so
        target = memoryview(buffer)
        if target.readonly or not target.c_contiguous:
            raise TypeError("read_into() needs a writable, contiguous buffer")
        target = target.cast("B")
        room = len(target)
        deadline = _deadline(timeout)
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            while True:
                from_ready = bool(self._ready)
                found = self._next_copy()
                if found is not None:
                    break
                if not self._wait(deadline):
                    raise TimeoutError(f"no packet within {timeout} s")
            size = len(found)
            if size > room:
                # Back in front of whatever it came before.
                if from_ready:
                    self._ready.appendleft(CopiedPacket(self, found))
                else:
                    self._copies.appendleft(found)
                raise ValueError(f"the next packet has {size} bytes; the buffer holds {room}")
            target[:size] = found
            return size
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _read_ready(self, found: list[bytes], limit: int) -> None:
        """Append copies to ``found`` until it holds ``limit`` or none is left: those taken
        ahead, then those of packets a zero-copy receive took, then from the ring."""
        copies = self._copies
        while len(found) < limit:
            if self._ready:
                data = self._next_copy()
                if data is not None:
                    found.append(data)
            elif copies:  # each copy leaves the queue in the step that lists it
                try:
                    found.extend(islice(iter(copies.popleft, None), limit - len(found)))
                except IndexError:
                    pass
            elif not self._copy_ahead(limit - len(found)):
                return

    def _next_copy(self) -> bytes | None:
        """The next packet's copy: one of the packets a zero-copy receive took (copied and
        released), one taken ahead, or one of those taken from the ring now (None: none).

        Packets queued come before copies: only a :meth:`_detach_copies` cut short leaves
        both, the older ones queued."""
        copies = self._copies
        try:
            packet = self._ready.popleft()
        except IndexError:
            pass
        else:
            data = bytes(packet.data)
            packet.release()
            return data
        try:
            return copies.popleft()
        except IndexError:
            pass
        if not self._copy_ahead(COPY_AHEAD):
            return None
        try:
            return copies.popleft()
        except IndexError:  # another thread took them meanwhile
            return None

    def _copy_ahead(self, amount: int) -> bool:
        """Take up to ``amount`` packets from the ring as copies, giving each back at once
        (:meth:`~wintun_cffi.ledger.Ledger.take_copies`); False if the ring was empty."""
        reads, copies = self._reads, self._copies
        if reads.entries:
            reads.settle_if_stuck()
        try:
            reads.take_copies(amount, copies)
        except NoMoreItemsError:
            return False
        except WintunError:
            self._signal_waiters()
            raise
        # As in _fill: waiting threads learn of the copies this thread does not hand them.
        if len(copies) > 1 and (_getrefcount is None or _getrefcount(self._waiting) > 2):
            self._signal_waiters()
        return True

    def receive_many(self, max_packets: int, timeout: float | None = None) -> list[ReceivedPacket]:
        """Up to ``max_packets`` packets; waits up to ``timeout`` for the first one.

        Returns an empty list if none arrived within ``timeout``.
        """
        limit = min(validate.check_max_packets(max_packets), self._most_packets)
        deadline = _deadline(timeout)
        packets: list[ReceivedPacket] = []
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            while True:
                self._take_ready(packets, limit)
                if len(packets) < limit and self._fill(max(limit - len(packets), PREFETCH)):
                    self._take_ready(packets, limit)
                if packets or not self._wait(deadline):
                    return packets
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _take_ready(self, packets: list[ReceivedPacket], limit: int) -> None:
        """Move ready packets to ``packets`` until it holds ``limit``; each packet leaves the
        queue in the step that lists it."""
        try:
            packets.extend(islice(iter(self._ready.popleft, None), limit - len(packets)))
        except IndexError:
            pass

    def release_many(self, packets: Iterable[ReceivedPacket]) -> None:
        """Release several packets of this session at once (cheaper than one by one).

        All or none: a packet of another session, one already released, or the same packet
        twice raises (:class:`ValueError`, :class:`~wintun_cffi.errors.PacketReleasedError`)
        before any is released, and so does one with derived views (native backend; exports
        on both) (:class:`~wintun_cffi.errors.PacketInUseError`).
        """
        batch = list(packets)
        if not all(map(isinstance, batch, repeat(ReceivedPacket))) or any(
            map(is_not, map(_session_of, batch), repeat(self))
        ):
            stranger = next(
                p for p in batch if not isinstance(p, ReceivedPacket) or p._session is not self
            )
            raise ValueError(f"{stranger!r} was not received from this session")
        try:
            live = self._live
            if live is None:
                raise PacketReleasedError("the packets' session was closed")
            if None in map(_token_of, batch):  # copies among them (CopiedPacket)
                _release_with_copies(self, batch)
            else:
                self._reads.give_back_many(batch)
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def receive_batch(self, max_packets: int, timeout: float | None = None) -> PacketBatch:
        """Up to ``max_packets`` packets as one :class:`~wintun_cffi.packets.PacketBatch`,
        released as one; waits up to ``timeout`` for the first (empty batch if none came).

        The cheapest way to receive: the data of each packet is a zero-copy memoryview, and
        no packet object is made per packet.
        """
        limit = min(validate.check_max_packets(max_packets), self._most_packets)
        deadline = _deadline(timeout)
        batch = PacketBatch(self)
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            reads = self._reads
            while True:
                if self._ready or reads.raw or self._copies:
                    self._batch_ready(batch, limit)  # taken before: theirs come first
                    if batch._tokens:
                        return batch
                    continue  # another thread had them: take from the ring
                if reads.entries:
                    reads.settle_if_stuck()
                try:
                    reads.fill_group(limit, batch)
                    return batch
                except NoMoreItemsError:
                    pass
                except WintunError:
                    self._signal_waiters()
                    raise
                if not self._wait(deadline):
                    return batch
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _batch_ready(self, batch: PacketBatch, limit: int) -> None:
        """Put packets already taken from the ring (not yet handed out) into ``batch``."""
        packets: list[ReceivedPacket] = []
        if self._reads.raw or self._copies:
            self._fill(PREFETCH)
        ready = self._ready
        if ready and ready[0]._token is None:  # copies first, as a batch of their own
            try:
                while len(packets) < limit and ready[0]._token is None:
                    packets.append(ready.popleft())
            except IndexError:  # another thread took the last
                pass
            batch._hold_copies(packets)
            return
        self._take_ready(packets, limit)
        if packets:
            self._reads.regroup(packets, batch)

    def __iter__(self) -> Iterator[ReceivedPacket]:
        """Every packet, blocking, until the session is closed; the iteration ends once the
        session has ended."""
        while True:
            try:
                packet = self.receive()
            except SessionClosedError:
                self.close()  # the closing thread may still be ending it: wait for that
                return
            yield packet

    # -- waiting --------------------------------------------------------------------------

    def _wait(self, deadline: float | None) -> bool:
        """Wait for the driver's signal; False once ``deadline`` passed."""
        remaining = _LONGEST_WAIT
        if deadline is not None:
            remaining = min(deadline - time.monotonic(), _LONGEST_WAIT)
            if remaining <= 0:
                return False
        self._reads.settle()  # abandoned packets give their space back before we sleep
        self._writes.settle()
        waiting: _Marker | None = self._waiting  # counted: see _fill
        try:
            self._backend.wait_read_event(self._handle, remaining)
        except SessionClosedError:
            raise
        except BaseException:
            # This wait may have consumed the one signal another waiter needs.
            self._signal_waiters()
            raise
        finally:
            waiting = None  # noqa: F841 - the reference is what counts
        return True  # signalled, or a slice ended: look again

    def _signal_waiters(self) -> None:
        try:
            self._backend.signal_read_event(self._handle)
        except Exception:  # the session is ending: its waiters are woken anyway
            pass

    # -- sending --------------------------------------------------------------------------

    def allocate_send_packet(self, size: int) -> SendBuffer:
        """Ring space for a packet of ``size`` bytes (0..0xFFFF), in sending order.

        Raises :class:`~wintun_cffi.errors.RingFullError` when the ring has no room. Before
        Wintun 0.14, a size below 20 (no IP packet fits) raises
        :class:`~wintun_cffi.errors.NotIPPacketError`.
        """
        check = self._rules.check_allocation
        if check is not None:
            check(size)
        elif size.__class__ is not int or not 0 <= size <= MAX_IP_PACKET_SIZE:
            validate.check_packet_size(size)  # says what is wrong
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            if self._writes.entries:
                self._writes.settle()
            try:
                packet: SendBuffer = self._writes.allocate(size, SendBuffer, self)
            except RingFullError:
                self._ring_full["allocate"] += 1
                raise
            return packet
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def send(
        self, data: BytesLike, *, on_full: OnFull = "raise", timeout: float | None = None
    ) -> bool:
        """Copy ``data`` into the ring and send it; True if sent.

        When the ring is full: ``on_full="raise"`` raises
        :class:`~wintun_cffi.errors.RingFullError`; ``"drop"`` drops the packet, counts it in
        :attr:`dropped` and returns False; ``"wait"`` waits up to ``timeout`` seconds for
        room (then :class:`TimeoutError`). Before Wintun 0.14, ``data`` that is not an IP
        packet raises :class:`~wintun_cffi.errors.NotIPPacketError` and nothing is sent.
        """
        if on_full != "raise" and on_full not in _ON_FULL:
            raise ValueError(f"on_full must be one of {_ON_FULL}, not {on_full!r}")
        cls = data.__class__
        if cls is bytes or cls is bytearray:
            payload: BytesLike = data
        elif cls is memoryview and data.format == "B" and data.ndim == 1 and data.contiguous:  # type: ignore[union-attr]
            payload = data  # already what the copy takes: len() is its size
        else:
            payload = memoryview(data).cast("B")
        size = len(payload)
        if size > MAX_IP_PACKET_SIZE:
            validate.check_packet_size(size)  # says what is wrong
        check = self._rules.check_packet
        if check is not None:
            check(payload)
        deadline = None if timeout is None else _deadline(timeout)  # checked whatever on_full
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            writes = self._writes
            if writes.entries or writes.raw:
                writes.settle()
            try:
                writes.send_copy(payload, size)
            except RingFullError:
                self._ring_full[on_full] += 1
                if on_full == "raise":
                    raise
                if on_full == "drop":
                    self.dropped += 1
                    return False
                self._send_when_room(payload, size, deadline, timeout)
            return True
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _send_when_room(
        self, payload: BytesLike, size: int, deadline: float | None, timeout: float | None
    ) -> None:
        """Send once the driver has made room (it sends no signal when it does)."""
        writes, sleep = self._writes, backoff(0.00005, 0.002)
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no room in the ring within {timeout} s") from None
            if self._live is None:
                raise SessionClosedError("the session was closed while waiting for room")
            writes.settle()
            sleep()
            try:
                writes.send_copy(payload, size)
                return
            except RingFullError:
                pass

    def send_many(self, packets: Iterable[BytesLike]) -> int:
        """Send packets in order until the ring is full; returns how many were sent.

        Before Wintun 0.14, if one of them is not an IP packet none is sent
        (:class:`~wintun_cffi.errors.NotIPPacketError`).
        """
        payloads = [memoryview(packet).cast("B") for packet in packets]
        sizes = [len(payload) for payload in payloads]
        for size in sizes:
            validate.check_packet_size(size)
        check = self._rules.check_packet
        if check is not None:
            for payload in payloads:
                check(payload)
        if not payloads:
            return 0
        batch = Group()
        try:
            live = self._live
            if live is None:
                raise SessionClosedError("the session is closed")
            writes = self._writes
            if writes.entries or writes.raw:
                writes.settle()
            try:
                writes.fill_group(sizes, batch)
            except RingFullError:
                self._ring_full["send_many"] += len(sizes)
                return 0
            views = batch._views
            assert views is not None  # fill_group() made them
            consume(map(memoryview.__setitem__, views, repeat(_ALL), payloads))
            writes.give_back_group(batch)
            sent = len(batch._tokens)
            if sent < len(sizes):
                self._ring_full["send_many"] += len(sizes) - sent
            return sent
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    # -- asyncio --------------------------------------------------------------------------

    async def receive_async(self) -> ReceivedPacket:
        """The next packet, awaiting it without blocking the event loop.

        Cancelling the await loses no packet: a packet is only taken when it is returned.
        """
        from .aio import receive_async

        return await receive_async(self)

    async def __aiter__(self) -> AsyncIterator[ReceivedPacket]:
        """Every packet, awaited, until the session is closed."""
        while True:
            try:
                yield await self.receive_async()
            except SessionClosedError:
                return

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """End the session. Idempotent; a second caller returns once the session has ended.

        Called from inside a call of this session on the same thread (a signal handler while
        the program is in :meth:`receive`, say), it cannot wait for that call: the session
        then ends as soon as that call returns, and the call raises SessionClosedError.
        """
        if self._live is not None:
            self._stop_calls()
            try:
                self._backend.interrupt_waits(self._handle)
            except HandleClosedError:  # a handler's close on this thread ended it meanwhile
                pass
            if self._async is not None:
                from .aio import wake_all

                wake_all(self)
        self._finish(True)

    def _after_end(self) -> None:
        self.adapter._session_ended()

    def _dropped(self) -> bool:
        """True if the application holds neither this session nor any of its packets: only
        the session's own records refer to it (a session dropped without :meth:`close`,
        whose packets keep it alive through its backend). Called by its adapter with two
        references of its own (a list and a loop variable)."""
        if _getrefcount is None or self._live is None:
            return False
        own = _unheld_packets(self)
        # References: the session's packets, the adapter's two, this method and the argument.
        return own is not None and _getrefcount(self) <= own + 4

    def _end(self) -> None:
        """Invalidate every packet, then end the session (no call is in progress)."""
        self._ready.clear()
        self._copies.clear()
        try:
            self._backend.end_session(self._handle)  # releases the packets' views first
        except HandleClosedError:  # ended by an earlier close an interruption cut short
            pass
        self._stop_capture()  # after the end: what it gave up on the way is recorded
        # Only once ended: a session whose end was cut short stays known to its adapter,
        # whose next start_session() finishes it.
        self.adapter._forget_session(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_live", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1, source=self)
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._live is None else f"capacity={self.capacity:#x}"
        return f"<Session {state}>"


def _unheld_packets(session: Session) -> int | None:
    """How many of the session's records refer to it, or None if the application holds one
    of them."""
    reads, writes = session._reads.entries, session._writes.entries
    records = list(chain(reads.values(), writes.values(), session._ready))
    # Each record: once per place it is in (a ledger, the ready queue), plus the list above
    # and the argument.
    places = Counter(map(id, records))
    mine = {id(held): held for held in records if getattr(held, "_session", None) is session}
    del records
    if _getrefcount is None:
        return None
    # References to each: its places, the dict ``mine`` and the argument.
    expected = [places[key] + 2 for key in mine]
    if any(map(gt, map(_getrefcount, mine.values()), expected)):
        return None
    return len(mine)


def _release_with_copies(session: Session, batch: list[ReceivedPacket]) -> None:
    """:meth:`Session.release_many` of a batch with copies in it: all or none too."""
    if any(packet._view is None for packet in batch):
        raise PacketReleasedError("a packet of the batch was already released")
    ring = [packet for packet in batch if packet._token is not None]
    if ring:
        session._reads.give_back_many(ring)
    for packet in batch:
        if packet._token is None:
            packet.release()


def _deadline(timeout: float | None) -> float | None:
    seconds = validate.check_timeout(timeout)
    if seconds is None or seconds == float("inf"):
        return None
    return time.monotonic() + seconds


__all__ = [
    "BytesLike",
    "COPY_AHEAD",
    "OnFull",
    "PREFETCH",
    "PacketBatch",
    "ReceivedPacket",
    "SendBuffer",
    "Session",
]
