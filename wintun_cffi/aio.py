"""asyncio for sessions: awaiting packets without blocking the event loop.

Where the read-wait event is a pollable descriptor (the emulator, the C test double, and
selector event loops), an awaiter registers a *duplicate* of it with its loop for as long as it
waits, together with the session's closing event; so nothing stays registered once the awaits
are over, no loop keeps a session alive, and closing the session never has to reach into a loop
from another thread (its awaiters wake on their own loop and see it closed).

Where it is a Win32 event HANDLE (the native backend on Windows, whatever the loop), an
awaiter registers the handle with :class:`~wintun_cffi.platform._win32.HandleWaits`: one thread of its
own per 63 handles waits on them all with ``WaitForMultipleObjects`` and wakes the awaiter
on its loop. Waiting sessions take no thread of the loop's executor, and cancelling or closing
unregisters the handle before the session may end (the registration holds the session's live
marker, :mod:`wintun_cffi.lifetime`), so nothing stays registered.

Elsewhere (a backend of your own, or the emulator under the proactor loop) a worker thread of
the loop's executor waits in short slices. An await cancelled just as its wait took the
driver's signal hands that signal on, so no other waiter sleeps through a packet.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import TYPE_CHECKING

from .errors import SessionClosedError
from .fdevent import FdEvent

if TYPE_CHECKING:
    from .packets import ReceivedPacket
    from .platform._win32 import HandleWaits
    from .session import Session

#: How long an executor thread waits at a time for an await that may be cancelled (seconds).
WORKER_SLICE = 0.25


class _AsyncState:
    """A session's asyncio state: its closing event and the awaiters of each loop."""

    def __init__(self) -> None:
        self.closed = FdEvent(manual_reset=True)
        self.waiting: dict[asyncio.AbstractEventLoop, _LoopWaiters] = {}
        #: The awaits registered with the handle waits (Windows), under ``lock``.
        self.handle_waits: set[_HandleAwait] = set()
        self.lock = threading.Lock()

    def __del__(self) -> None:
        # Gone with its session; no loop has the descriptor registered any more.
        self.closed.close()


class _LoopWaiters:
    """The awaiters of one loop, and the descriptors registered for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: Session, fd: int) -> None:
        self.loop = loop
        self.futures: list[asyncio.Future[None]] = []
        self.read_fd = os.dup(fd)
        state = session._async
        assert isinstance(state, _AsyncState)
        self.closed_fd = state.closed.fileno()
        self._session = session
        loop.add_reader(self.read_fd, self._readable)
        loop.add_reader(self.closed_fd, self._wake)

    def _readable(self) -> None:
        session = self._session
        try:  # the session's guard (wintun_cffi.lifetime): closing waits for this call
            live = session._live
            if live is not None:
                session._backend.wait_read_event(session._handle, 0)  # consume the signal
        except Exception:  # closing meanwhile: the closing event wakes everyone
            pass
        finally:
            live = None
            if session._closing is not None:
                session._finish(False)
        self._wake()

    def _wake(self) -> None:
        futures, self.futures = self.futures, []
        for future in futures:
            if not future.done():
                future.set_result(None)

    def detach(self) -> None:
        self.loop.remove_reader(self.read_fd)
        self.loop.remove_reader(self.closed_fd)
        os.close(self.read_fd)


def _state(session: Session) -> _AsyncState:
    state = session._async
    if state is None:
        with session._end_lock:
            if session._async is None:
                session._async = _AsyncState()
            state = session._async
    assert isinstance(state, _AsyncState)
    return state


async def receive_async(session: Session) -> ReceivedPacket:
    """See :meth:`wintun_cffi.session.Session.receive_async`."""
    loop = asyncio.get_running_loop()
    while True:
        packet = session.receive_packet()  # raises SessionClosedError once closed
        if packet is not None:
            return packet
        fd = _pollable_fd(session, loop)
        if fd is not None:
            await _wait_on_loop(session, loop, fd)
            continue
        handle = _read_wait_handle(session)
        if handle is not None:
            await _wait_on_handle(session, loop, handle)
        else:
            await _wait_in_worker(session, loop)


def _pollable_fd(session: Session, loop: asyncio.AbstractEventLoop) -> int | None:
    if not hasattr(loop, "add_reader") or isinstance(
        loop, getattr(asyncio, "ProactorEventLoop", ())
    ):
        return None
    try:
        live = session._live
        if live is None:
            raise SessionClosedError("the session is closed")
        return session._backend.read_wait_fd(session._handle)
    finally:
        live = None


async def _wait_on_loop(session: Session, loop: asyncio.AbstractEventLoop, fd: int) -> None:
    state = _state(session)
    waiters = state.waiting.get(loop)
    if waiters is None:
        if session._live is None:
            raise SessionClosedError("the session is closed")
        try:
            waiters = _LoopWaiters(loop, session, fd)
        except NotImplementedError:  # a loop without add_reader after all
            await _wait_in_worker(session, loop)
            return
        state.waiting[loop] = waiters
    future: asyncio.Future[None] = loop.create_future()
    waiters.futures.append(future)
    if session._live is None:  # closed before close() could see this state: wake now
        state.closed.set()
    try:
        await future
    finally:
        if future in waiters.futures:
            waiters.futures.remove(future)
        if not waiters.futures and state.waiting.get(loop) is waiters:
            del state.waiting[loop]
            waiters.detach()


def _read_wait_handle(session: Session) -> int | None:
    """The session's read-wait event HANDLE where it is one (the native backend on Windows)."""
    if sys.platform != "win32":
        return None
    from .native import NativeBackend

    if not isinstance(session._backend, NativeBackend):
        return None
    try:
        live = session._live
        if live is None:
            raise SessionClosedError("the session is closed")
        return session._backend.get_read_wait_event(session._handle)
    finally:
        live = None


_handle_waits: HandleWaits | None = None


def handle_waits() -> HandleWaits:
    """The process's :class:`~wintun_cffi.platform._win32.HandleWaits` for awaits (Windows; made on
    first use)."""
    global _handle_waits
    if _handle_waits is None:
        with _module_lock:
            if _handle_waits is None:
                from .platform._win32 import HandleWaits

                _handle_waits = HandleWaits()
    return _handle_waits


_module_lock = threading.Lock()


class _HandleAwait:
    """One await registered with the handle waits: holds the session's live marker (closing
    waits for it) and its waiting marker (so that a thread taking several packets signals the
    event for this awaiter too) until it fires or is cancelled."""

    def __init__(
        self, session: Session, loop: asyncio.AbstractEventLoop, live: object, handle: int
    ) -> None:
        self.session = session
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.live: object | None = live
        self.waiting: object | None = session._waiting
        self.wait = handle_waits().register(handle, self._signalled, self._lost)

    def _signalled(self) -> None:
        """On the waiter thread: the handle's signal was taken for this await."""
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody awaits; the signal goes back
            self._lost()
        self.release()

    def _lost(self) -> None:
        """On the waiter thread: a signal taken after the await was cancelled goes back."""
        self.session._signal_waiters()

    def _wake(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def wake_threadsafe(self) -> None:
        """Wake the await from any thread (the session is closing)."""
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nothing to wake
            pass

    def release(self, finish: bool = True) -> None:
        """Drop the markers; with ``finish``, let a closing session end."""
        self.live = None
        self.waiting = None
        session = self.session
        if finish and session._closing is not None:
            session._finish(False)


async def _wait_on_handle(session: Session, loop: asyncio.AbstractEventLoop, handle: int) -> None:
    state = _state(session)
    live = session._live
    if live is None:
        raise SessionClosedError("the session is closed")
    waits = handle_waits()
    pending = _HandleAwait(session, loop, live, handle)
    live = None
    with state.lock:
        state.handle_waits.add(pending)
    try:
        if session._live is None and waits.cancel(pending.wait):  # closed meanwhile
            pending.release()
            return
        try:
            await pending.future
        except BaseException:  # cancelled: a signal taken for this await goes to another
            if waits.cancel(pending.wait):
                pending.release()
            else:
                session._signal_waiters()
            raise
    finally:
        with state.lock:
            state.handle_waits.discard(pending)


async def _wait_in_worker(session: Session, loop: asyncio.AbstractEventLoop) -> None:
    handoff = _Handoff()
    try:
        await loop.run_in_executor(None, _worker, session, handoff)
    except BaseException:  # cancelled (or the loop is going away): nobody takes the signal
        handoff.abandon(session)
        raise


class _Handoff:
    """Between an await and its worker: a signal the worker took reaches someone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = False
        self.took_signal = False

    def took(self, session: Session) -> None:
        """The worker took the driver's signal: hand it on if its await is gone."""
        with self.lock:
            self.took_signal = True
            gone = self.cancelled
        if gone:
            session._signal_waiters()

    def abandon(self, session: Session) -> None:
        """The await was cancelled: a signal its worker took goes to another waiter."""
        with self.lock:
            self.cancelled = True
            took = self.took_signal
        if took:
            session._signal_waiters()


def _worker(session: Session, handoff: _Handoff) -> None:
    try:
        live = session._live
        if live is None:
            raise SessionClosedError("the session is closed")
        while not handoff.cancelled:
            if session._backend.wait_read_event(session._handle, WORKER_SLICE):
                handoff.took(session)
                return
    finally:
        live = None
        if session._closing is not None:
            session._finish(False)


def wake_all(session: Session) -> None:
    """The session is closing: wake its awaiters (each on its own loop)."""
    state = session._async
    if isinstance(state, _AsyncState):
        state.closed.set()
        with state.lock:
            pending = list(state.handle_waits)
        waits = _handle_waits
        for one in pending:
            if waits is not None and waits.cancel(one.wait):
                one.release(finish=False)  # close() ends the session once all are released
                one.wake_threadsafe()


__all__ = ["WORKER_SLICE", "handle_waits", "receive_async", "wake_all"]
