"""Sessions and packets: the high-level packet API, written once over the Backend protocol.

A :class:`Session` owns one Wintun session. Received packets are :class:`ReceivedPacket`
objects whose :attr:`~ReceivedPacket.data` is a view of ring memory (no copy); allocated packets
are :class:`SendBuffer` objects to fill in place and send. Both are refused once released, sent
or once the session closed: their memory belongs to Wintun again.

Thread safety: every method may be called from any thread. :meth:`Session.close` wakes every
blocked receiver (they raise :class:`~wintun_cffi.errors.SessionClosedError`), waits until the
calls in progress have returned, invalidates outstanding packets and only then ends the session,
so no call ever touches freed ring memory.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterable, Iterator, Literal, Union

from .backend import Backend, PacketCalls
from .errors import (
    NoMoreItemsError,
    NotIPPacketError,
    PacketInUseError,
    PacketReleasedError,
    RingFullError,
    SessionClosedError,
    WintunError,
)
from .send_rules import rules_for

if TYPE_CHECKING:
    import asyncio  # imported when first used: it costs more than the rest of the package

    from .api import Adapter

#: What :meth:`Session.send` accepts: any contiguous bytes-like object.
BytesLike = Union[bytes, bytearray, memoryview]

OnFull = Literal["raise", "drop", "wait"]
#: How long an executor thread waits at a time for an await that may be cancelled (seconds).
_WORKER_SLICE = 0.25
_ON_FULL = ("raise", "drop", "wait")
_get_ident = threading.get_ident


class _RingPacket:
    """A packet's view of ring memory, owned by the application until it gives it back."""

    __slots__ = ("_session", "_view", "_token")
    #: What the packet is, and what giving it back is called, for error messages.
    _what = "packet"
    _given_back = "released"

    def __init__(self, session: Session, view: memoryview, token: object) -> None:
        self._session: Session | None = session
        self._view: memoryview | None = view
        self._token = token

    def _live_view(self) -> memoryview:
        """The view, or PacketReleasedError once given back or the session closed."""
        view = self._view
        session = self._session
        if view is None or session is None or session._closed:
            raise PacketReleasedError(self._gone())
        return view

    def _is_given_back(self) -> bool:
        return self._view is None or self._session is None or self._session._closed

    def _gone(self) -> str:
        if self._session is None or self._session._closed:
            return f"the {self._what}'s session was closed; its memory belongs to Wintun again"
        return f"the {self._what} was {self._given_back}; its memory belongs to Wintun again"

    def __len__(self) -> int:
        return len(self._live_view())

    def __repr__(self) -> str:
        state = self._given_back if self._view is None else f"{len(self._view)} bytes"
        return f"<{type(self).__name__} {state}>"


class ReceivedPacket(_RingPacket):
    """A packet the driver delivered: a zero-copy view of ring memory until released.

    Use it as a context manager, or call :meth:`release`, to give its space back to the ring.
    A packet dropped without release is released by the session at its next call.
    """

    __slots__ = ()

    @property
    def data(self) -> memoryview:
        """The packet's bytes, writable in place; invalid once released."""
        return self._live_view()

    @property
    def released(self) -> bool:
        """True once released (or its session closed)."""
        return self._is_given_back()

    def __bytes__(self) -> bytes:
        return bytes(self._live_view())

    def release(self) -> None:
        """Give the packet's ring space back. Releasing twice raises PacketReleasedError."""
        self._live_view()
        session = self._session
        assert session is not None
        session._give_back(self, session._calls.release)

    def __enter__(self) -> ReceivedPacket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.released:
            self.release()

    def __del__(self) -> None:
        session = self._session
        if self._view is not None and session is not None and not session._closed:
            session._abandoned_receives.append(self._token)


class SendBuffer(_RingPacket):
    """Ring space allocated for one outgoing packet: fill :attr:`data`, then :meth:`send`.

    As a context manager it yields the writable view and sends on normal exit. A buffer left
    by an exception, by :meth:`abandon` or by garbage collection is neutralised and sent, so
    later packets are not held up: on Wintun 0.14 it becomes a non-IP record, which the driver
    discards and counts; before 0.14 an IPv4 packet the system is certain to drop (see
    :mod:`wintun_cffi.send_rules`).
    """

    __slots__ = ()
    _what = "send buffer"
    _given_back = "sent"

    @property
    def data(self) -> memoryview:
        """The writable view to fill; invalid once sent."""
        return self._live_view()

    @property
    def sent(self) -> bool:
        """True once sent, abandoned, or its session closed."""
        return self._is_given_back()

    def send(self) -> None:
        """Hand the packet to the driver (it goes out in allocation order).

        Before Wintun 0.14, a buffer that does not hold an IP packet is refused with
        :class:`~wintun_cffi.errors.NotIPPacketError` and stays unsent.
        """
        view = self._live_view()
        session = self._session
        assert session is not None
        check = session._rules.check_packet
        if check is not None:
            check(view)
        session._give_back(self, session._calls.send)

    def abandon(self) -> None:
        """Give up the packet without sending its contents (it is neutralised and sent)."""
        view = self._live_view()
        session = self._session
        assert session is not None
        session._rules.give_up(view)
        session._give_back(self, session._calls.send)

    def __enter__(self) -> memoryview:
        return self.data

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self.sent:
            return
        if exc_type is None:
            try:
                self.send()
            except NotIPPacketError:
                self.abandon()  # never leave the slot holding up later packets
                raise
        else:
            self.abandon()

    def __del__(self) -> None:
        view = self._view
        session = self._session
        if view is not None and session is not None and not session._closed:
            session._rules.give_up(view)
            session._abandoned_sends.append(self._token)


def _fill_and_send(
    calls: PacketCalls, view: memoryview, token: object, payload: memoryview,
    give_up: Callable[[memoryview], None],
) -> None:
    """Copy and send an allocation; interrupted (Ctrl+C) or refused, it is still sent,
    neutralised, so the ring never waits for a slot nobody will send."""
    try:
        view[:] = payload
    except BaseException:
        give_up(view)
        calls.send(token)
        raise
    calls.send(token)


class Session:
    """An active Wintun session on an adapter; see :meth:`wintun_cffi.api.Adapter.start_session`."""

    def __init__(self, adapter: Adapter, backend: Backend, handle: object, capacity: int) -> None:
        self.adapter = adapter
        #: Ring capacity in bytes.
        self.capacity = capacity
        #: Packets :meth:`send` dropped because the ring was full (``on_full="drop"``).
        self.dropped = 0
        self._backend = backend
        self._handle = handle
        self._calls = backend.packet_calls(handle)
        # What this generation's driver accepts, and how a given-up buffer is made safe.
        self._rules = rules_for(backend.api)
        self._closed = False
        self._close_lock = threading.Lock()
        self._ended = threading.Event()
        # Threads inside a call (set.add/discard are atomic); close() waits for it to empty.
        self._inflight: set[int] = set()
        # Tokens of packets dropped without release/send; handled at the next call.
        self._abandoned_receives: list[object] = []
        self._abandoned_sends: list[object] = []
        # One thread waits on the driver's event; the others wait here for it.
        self._waiters = threading.Condition()
        self._leader = False
        self._async_readers: dict[asyncio.AbstractEventLoop, _AsyncReader] = {}

    # -- state ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` started."""
        return self._closed

    @property
    def read_wait_event(self) -> int:
        """The raw read-wait event (a HANDLE on Windows, else a descriptor), for advanced use.

        Do not close it; it belongs to the session.
        """
        self._enter()
        try:
            return self._backend.get_read_wait_event(self._handle)
        finally:
            self._exit()

    def _enter(self) -> None:
        # Register first, then check: close() sets the flag first, then waits for the set.
        self._inflight.add(_get_ident())
        if self._closed:
            self._inflight.discard(_get_ident())
            raise SessionClosedError("the session is closed")
        if self._abandoned_receives or self._abandoned_sends:
            try:
                self._settle_abandoned()
            except BaseException:
                self._inflight.discard(_get_ident())
                raise

    def _exit(self) -> None:
        self._inflight.discard(_get_ident())

    def _settle_abandoned(self) -> None:
        # Another thread may settle at the same time: pop until empty, never check then pop.
        # A packet whose derived views are still alive cannot go back yet: it waits for the
        # next call (or the session's end), and the caller, who holds no part of it, carries on.
        for pending, settle in (
            (self._abandoned_sends, self._calls.send),
            (self._abandoned_receives, self._calls.release),
        ):
            waiting = []
            while True:
                try:
                    token = pending.pop(0)
                except IndexError:
                    break
                try:
                    settle(token)
                except PacketInUseError:
                    waiting.append(token)
            pending.extend(waiting)

    # -- receiving ------------------------------------------------------------------------

    def _receive_one(self) -> ReceivedPacket | None:
        try:
            view, token = self._calls.receive()
        except NoMoreItemsError:
            return None
        try:
            return ReceivedPacket(self, view, token)
        except BaseException:  # e.g. KeyboardInterrupt: give the packet back, never strand it
            self._calls.release(token)
            raise

    def receive_packet(self) -> ReceivedPacket | None:
        """The next packet, or ``None`` if there is none now. Never blocks."""
        inflight, ident = self._inflight, _get_ident()  # _enter(), inlined on the hot path
        inflight.add(ident)
        try:
            if self._closed or self._abandoned_receives or self._abandoned_sends:
                self._enter()
            return self._receive_one()
        finally:
            inflight.discard(ident)

    def receive(self, timeout: float | None = None) -> ReceivedPacket:
        """The next packet, waiting up to ``timeout`` seconds (``None``: forever).

        Raises :class:`TimeoutError` on timeout and
        :class:`~wintun_cffi.errors.SessionClosedError` if the session closes meanwhile.
        """
        deadline = _deadline(timeout)
        self._enter()
        try:
            while True:
                packet = self._receive_one()
                if packet is not None:
                    return packet
                if not self._wait(deadline):
                    raise TimeoutError(f"no packet within {timeout} s")
        finally:
            self._exit()

    def read(self, timeout: float | None = None) -> bytes:
        """Like :meth:`receive`, but returns a copy of the bytes and releases the packet."""
        packet = self.receive(timeout)
        try:
            return bytes(packet.data)
        finally:
            packet.release()

    def receive_many(self, max_packets: int, timeout: float | None = None) -> list[ReceivedPacket]:
        """Up to ``max_packets`` packets; waits up to ``timeout`` for the first one.

        Returns an empty list if none arrived within ``timeout``.
        """
        if not isinstance(max_packets, int) or max_packets < 1:
            raise ValueError(f"max_packets must be a positive int, not {max_packets!r}")
        deadline = _deadline(timeout)
        self._enter()
        try:
            while True:
                packets = self._receive_batch(max_packets)
                if packets or not self._wait(deadline):
                    return packets
        finally:
            self._exit()

    def _receive_batch(self, max_packets: int) -> list[ReceivedPacket]:
        try:
            received = self._calls.receive_many(max_packets)
        except NoMoreItemsError:
            return []
        return [ReceivedPacket(self, view, token) for view, token in received]

    def release_many(self, packets: Iterable[ReceivedPacket]) -> None:
        """Release several packets of this session at once (cheaper than one by one).

        Raises :class:`~wintun_cffi.errors.PacketReleasedError` if one was already released;
        the packets before it are released.
        """
        batch = list(packets)
        for packet in batch:
            if packet._session is not self:
                raise ValueError(f"{packet!r} was not received from this session")
            if packet.released:
                raise PacketReleasedError(packet._gone())
        self._enter()
        try:
            self._calls.release_many(packet._token for packet in batch)
        except PacketInUseError as refused:
            # The backend stops at the refused packet: the ones before it are released.
            for packet in batch:
                if packet._token == refused.token:
                    if refused.view is not None:
                        packet._view = refused.view
                    break
                packet._view = None
            raise
        else:
            for packet in batch:
                packet._view = None
        finally:
            self._exit()

    def _wait(self, deadline: float | None) -> bool:
        """Wait for the driver's signal; False once ``deadline`` passed."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        with self._waiters:
            follower = self._leader
            if follower:
                self._waiters.wait(remaining)
            else:
                self._leader = True
        if follower:
            if self._closed:
                raise SessionClosedError("the session was closed while waiting")
            return True  # the leader woke: look again
        try:
            self._backend.wait_read_event(self._handle, remaining)
            return True  # signalled, or timed out: one more look before giving up
        finally:
            with self._waiters:
                self._leader = False
                self._waiters.notify_all()

    def _give_back(self, item: _RingPacket, give: Callable[[object], None]) -> None:
        """Release a received packet or send a buffer: ``give`` hands its token (and view) to
        the backend, which refuses while views derived from it are alive."""
        inflight, ident = self._inflight, _get_ident()  # _enter(), inlined on the hot path
        inflight.add(ident)
        try:
            if self._closed or self._abandoned_receives or self._abandoned_sends:
                self._enter()
            try:
                give(item._token)
            except PacketInUseError as refused:
                if refused.view is not None:
                    item._view = refused.view
                raise
            item._view = None
        finally:
            inflight.discard(ident)

    def __iter__(self) -> Iterator[ReceivedPacket]:
        """Every packet, blocking, until the session is closed."""
        while True:
            try:
                yield self.receive()
            except SessionClosedError:
                return

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
        inflight, ident = self._inflight, _get_ident()  # _enter(), inlined on the hot path
        inflight.add(ident)
        try:
            if self._closed or self._abandoned_receives or self._abandoned_sends:
                self._enter()
            view, token = self._calls.allocate(size)
            return SendBuffer(self, view, token)
        finally:
            inflight.discard(ident)

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
        if on_full not in _ON_FULL:
            raise ValueError(f"on_full must be one of {_ON_FULL}, not {on_full!r}")
        payload = memoryview(data).cast("B")
        check = self._rules.check_packet
        if check is not None:
            check(payload)
        deadline = _deadline(timeout)
        pause = 0.00005
        self._enter()
        try:
            while True:
                try:
                    view, token = self._calls.allocate(len(payload))
                    break
                except RingFullError:
                    if on_full == "raise":
                        raise
                    if on_full == "drop":
                        self.dropped += 1
                        return False
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"no room in the ring within {timeout} s") from None
                if self._closed:
                    raise SessionClosedError("the session was closed while waiting for room")
                time.sleep(pause)  # the driver gives no signal when it frees space
                pause = min(pause * 2, 0.002)
            _fill_and_send(self._calls, view, token, payload, self._rules.give_up)
            return True
        finally:
            self._exit()

    def send_many(self, packets: Iterable[BytesLike]) -> int:
        """Send packets in order until the ring is full; returns how many were sent.

        Before Wintun 0.14, if one of them is not an IP packet none is sent
        (:class:`~wintun_cffi.errors.NotIPPacketError`).
        """
        payloads = [memoryview(packet).cast("B") for packet in packets]
        if not payloads:
            return 0
        check = self._rules.check_packet
        if check is not None:
            for payload in payloads:
                check(payload)
        self._enter()
        try:
            try:
                allocated = self._calls.allocate_many([len(payload) for payload in payloads])
            except RingFullError:
                return 0
            try:
                for (view, _), payload in zip(allocated, payloads):
                    view[:] = payload
            except BaseException:  # e.g. KeyboardInterrupt: never leave slots unsent
                for view, _ in allocated:
                    self._rules.give_up(view)
                self._calls.send_many(token for _, token in allocated)
                raise
            self._calls.send_many(token for _, token in allocated)
            return len(allocated)
        finally:
            self._exit()

    # -- asyncio --------------------------------------------------------------------------

    async def receive_async(self) -> ReceivedPacket:
        """The next packet, awaiting it without blocking the event loop.

        Cancelling the await loses no packet: a packet is only taken when it is returned.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            packet = self.receive_packet()
            if packet is not None:
                return packet
            reader = self._async_reader(loop)
            if reader is None:  # no pollable event here: wait in a worker thread
                cancelled = threading.Event()
                try:
                    await loop.run_in_executor(None, self._wait_in_worker, cancelled)
                finally:
                    cancelled.set()  # a cancelled await frees its worker within a slice
            else:
                await reader.next_signal()

    def _wait_in_worker(self, cancelled: threading.Event) -> None:
        self._enter()
        try:
            while not cancelled.is_set():
                if self._backend.wait_read_event(self._handle, _WORKER_SLICE):
                    return
        finally:
            self._exit()

    def _async_reader(self, loop: asyncio.AbstractEventLoop) -> _AsyncReader | None:
        with self._close_lock:  # close() cannot miss a reader registered here
            if self._closed:
                raise SessionClosedError("the session is closed")
            reader = self._async_readers.get(loop)
            if reader is None:
                fd = self._backend.read_wait_fd(self._handle)
                if fd is None:
                    return None
                try:
                    reader = _AsyncReader(loop, fd, self._consume_signal)
                except NotImplementedError:  # e.g. the Proactor loop on Windows
                    return None
                self._async_readers[loop] = reader
            return reader

    def _consume_signal(self) -> None:
        if self._closed:
            return
        try:
            self._backend.wait_read_event(self._handle, 0)
        except WintunError:  # closing meanwhile: the awaiters are woken by close()
            pass

    async def __aiter__(self) -> AsyncIterator[ReceivedPacket]:
        """Every packet, awaited, until the session is closed."""
        while True:
            try:
                yield await self.receive_async()
            except SessionClosedError:
                return

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """End the session. Idempotent: a second caller returns once the session has ended
        (see the module documentation for the order)."""
        with self._close_lock:
            closing_elsewhere = self._closed
            self._closed = True
        if closing_elsewhere:
            if _get_ident() not in self._inflight:  # not from inside a call it waits for
                self._ended.wait()
            return
        try:
            self._close()
        finally:
            self._ended.set()

    def _close(self) -> None:
        backend, handle = self._backend, self._handle
        backend.interrupt_waits(handle)
        with self._waiters:
            self._waiters.notify_all()
        for reader in list(self._async_readers.values()):
            reader.close()
        self._async_readers.clear()
        me = _get_ident()
        pause = 0.0001
        while self._inflight - {me}:
            time.sleep(pause)
            pause = min(pause * 2, 0.005)
        self._abandoned_receives.clear()
        self._abandoned_sends.clear()
        try:
            backend.end_session(handle)  # releases the views of outstanding packets
        finally:
            self.adapter._forget_session(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self)
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"capacity={self.capacity:#x}"
        return f"<Session {state}>"


def _deadline(timeout: float | None) -> float | None:
    if timeout is None or timeout == float("inf"):
        return None
    if timeout < 0:
        raise ValueError(f"timeout must not be negative, not {timeout}")
    return time.monotonic() + timeout


class _AsyncReader:
    """The read-wait descriptor registered once with an event loop; wakes every awaiter."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fd: int, consume: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._consume = consume
        self._waiting: list[asyncio.Future[None]] = []
        loop.add_reader(fd, self._on_readable)

    async def next_signal(self) -> None:
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiting.append(future)
        await future

    def _on_readable(self) -> None:
        self._consume()
        self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        """Unregister (on the loop's thread) and wake the awaiters so they see the close."""
        loop = self._loop

        def detach() -> None:
            loop.remove_reader(self._fd)
            self._wake()

        if loop.is_closed():
            return
        import asyncio

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            detach()
            return
        done = threading.Event()

        def detach_and_signal() -> None:
            try:
                detach()
            finally:
                done.set()

        loop.call_soon_threadsafe(detach_and_signal)
        done.wait(1.0)  # a loop that is not running cannot read the descriptor anyway
