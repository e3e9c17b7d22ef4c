"""kernel32 through cffi, and Win32 events with the interface of :class:`~wintun_cffi.fdevent.FdEvent`
(Windows only; nothing here runs on import).

Wintun's read-wait event is a Win32 event ``HANDLE``; :class:`Win32Event` waits on it (and on
an interrupting event) with ``WaitForMultipleObjects``, so that the code written over
``FdEvent`` — the session's waiter, the emulator's driver playing the kernel for the C test
double — runs unchanged on Windows. :class:`HandleWaits` waits on many handles with one thread
per 63 of them (asyncio's awaits of native sessions, :mod:`wintun_cffi.aio`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from ..fdevent import WaitInterrupted

WAIT_OBJECT_0 = 0x00000000
WAIT_ABANDONED = 0x00000080
WAIT_TIMEOUT = 0x00000102
#: Seconds per wait: Python sees Ctrl+C on Windows only between C calls, so no wait is endless.
WAIT_SLICE = 0.1

_log = logging.getLogger(__name__)

_kernel32: tuple[Any, Any] | None = None


def kernel32() -> tuple[Any, Any]:
    """``(lib, ffi)`` of kernel32 (declared on first use; Windows only)."""
    global _kernel32
    if _kernel32 is None:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(
            """
            typedef void *HANDLE;
            HANDLE WINAPI LoadLibraryExW(const wchar_t *, HANDLE, uint32_t);
            HANDLE WINAPI CreateEventW(void *, int, int, const wchar_t *);
            HANDLE WINAPI CreateMutexW(void *, int, const wchar_t *);
            int WINAPI ReleaseMutex(HANDLE);
            int WINAPI SetEvent(HANDLE);
            int WINAPI CloseHandle(HANDLE);
            void WINAPI SetLastError(uint32_t);
            uint32_t WINAPI WaitForMultipleObjects(uint32_t, const HANDLE *, int, uint32_t);
            """
        )
        _kernel32 = (ffi.dlopen("kernel32.dll"), ffi)
    return _kernel32


def last_error(ffi: Any) -> int:
    """GetLastError as cffi saved it after the last call through ``ffi``, as a DWORD.

    cffi gives it as a signed int: codes of 0x80000000 and above (HRESULTs, SetupAPI's
    0xE00002xx) would otherwise come out negative.
    """
    return int(ffi.getwinerror()[0]) & 0xFFFFFFFF


def windows_error(message: str, code: int, filename: str | None = None) -> OSError:
    """An :class:`OSError` for a failed Win32 call whose ``winerror`` is the DWORD ``code``.

    ``OSError(..., winerror)`` itself takes only codes that fit a signed 32-bit int on Windows,
    so the code is set afterwards and named in the message.
    """
    text = f"{message} (Win32 error {code}, {code:#010x})"
    error = OSError(text) if filename is None else OSError(None, text, filename)
    setattr(error, "winerror", code)  # noqa: B010 - typeshed declares it on Windows only
    return error


class Win32Event:
    """A Win32 event (``CreateEventW``), or an adopted event ``HANDLE`` this object will not
    close; :meth:`wait` consumes the signal of an auto-reset event, as Windows does."""

    __slots__ = ("_owned", "handle", "manual_reset")

    def __init__(self, *, manual_reset: bool = False, adopt_handle: int | None = None) -> None:
        lib, ffi = kernel32()
        self.manual_reset = manual_reset
        self._owned = adopt_handle is None
        if adopt_handle is not None:
            self.handle: Any = ffi.cast("HANDLE", adopt_handle)
            return
        self.handle = lib.CreateEventW(ffi.NULL, int(manual_reset), 0, ffi.NULL)
        if self.handle == ffi.NULL:
            raise windows_error("CreateEventW failed", last_error(ffi))

    def set(self) -> None:
        """``SetEvent``."""
        kernel32()[0].SetEvent(self.handle)

    def consume(self) -> bool:
        """Take the signal if there is one (auto-reset; a manual-reset event stays set)."""
        return self._wait_once([self.handle], 0) == WAIT_OBJECT_0

    def is_set(self) -> bool:
        """True while signalled. An auto-reset event has no look without taking: its signal
        is taken and given back."""
        taken = self.consume()
        if taken and not self.manual_reset:
            self.set()
        return taken

    def wait(self, timeout: float | None = None, interrupt: Win32Event | None = None) -> bool:
        """Wait for a signal and consume it: True, or False after ``timeout`` seconds.

        Raises :class:`~wintun_cffi.fdevent.WaitInterrupted` as soon as ``interrupt`` is set
        (``WaitForMultipleObjects`` on ``[interrupt, self]``: the interrupt wins a tie).
        """
        handles = [self.handle] if interrupt is None else [interrupt.handle, self.handle]
        signalled = WAIT_OBJECT_0 + len(handles) - 1
        endless = timeout is None or timeout == math.inf
        deadline = None if timeout is None or endless else time.monotonic() + timeout
        while True:
            left = WAIT_SLICE if deadline is None else min(deadline - time.monotonic(), WAIT_SLICE)
            result = self._wait_once(handles, max(0, math.ceil(left * 1000)))
            if result == signalled:
                return True
            if result == WAIT_OBJECT_0 and interrupt is not None:
                raise WaitInterrupted
            if result != WAIT_TIMEOUT:
                _, ffi = kernel32()
                raise windows_error("WaitForMultipleObjects failed", last_error(ffi))
            if deadline is not None and time.monotonic() >= deadline:
                return False

    @staticmethod
    def _wait_once(handles: list[Any], milliseconds: int) -> int:
        # WaitForMultipleObjects (any of them); cffi releases the GIL while it waits.
        lib, ffi = kernel32()
        array = ffi.new("HANDLE[]", handles)
        return int(lib.WaitForMultipleObjects(len(handles), array, 0, milliseconds))

    def close(self) -> None:
        """``CloseHandle`` an event this object created (an adopted one is left alone)."""
        if self._owned and self.handle is not None:
            kernel32()[0].CloseHandle(self.handle)
        self.handle = None


#: ``WaitForMultipleObjects`` takes at most this many handles.
MAXIMUM_WAIT_OBJECTS = 64
#: Handles per waiter thread of :class:`HandleWaits`: one slot is the thread's own wake-up.
HANDLES_PER_THREAD = MAXIMUM_WAIT_OBJECTS - 1
INFINITE = 0xFFFFFFFF


class HandleWait:
    """One registration of :class:`HandleWaits`, from :meth:`HandleWaits.register`."""

    __slots__ = ("active", "handle", "on_lost", "on_signal", "_waiter")

    def __init__(
        self,
        handle: int,
        on_signal: Callable[[], None],
        on_lost: Callable[[], None],
        waiter: Any,
    ) -> None:
        self.handle = handle
        self.on_signal = on_signal
        self.on_lost = on_lost
        #: True until it fired or was cancelled.
        self.active = True
        self._waiter = waiter


class HandleWaits:
    """Waits on many Win32 handles with few threads: each waiter thread waits on up to
    :data:`HANDLES_PER_THREAD` handles at once with ``WaitForMultipleObjects`` (and on an event
    of its own, set to make it take up a changed set of handles). Threads are made as the
    registered handles need them and kept for later registrations.

    A registration is one-shot: once its handle is signalled (the thread's wait takes the
    signal of an auto-reset event), it is removed and its ``on_signal`` runs on the waiter
    thread. :meth:`cancel` removes a registration and returns once no thread waits on its
    handle any more (so the handle may then be closed); a signal taken in between goes to
    ``on_lost``, on the waiter thread, before :meth:`cancel` returns.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiters: list[_HandleWaiter] = []

    def register(
        self, handle: int, on_signal: Callable[[], None], on_lost: Callable[[], None]
    ) -> HandleWait:
        """Wait on ``handle``: ``on_signal()`` once it is signalled, on a waiter thread."""
        with self._lock:
            waiter = next((w for w in self._waiters if len(w.waits) < HANDLES_PER_THREAD), None)
            if waiter is None:
                waiter = _HandleWaiter(self)
                self._waiters.append(waiter)
            wait = HandleWait(handle, on_signal, on_lost, waiter)
            waiter.waits.append(wait)
            waiter.changes += 1
        waiter.wake.set()
        return wait

    def cancel(self, wait: HandleWait) -> bool:
        """Stop waiting: True if cancelled before it fired, returning once no thread waits on
        its handle; False if it fired already (its ``on_signal`` runs or ran)."""
        waiter = wait._waiter
        with self._lock:
            if not wait.active:
                return False
            wait.active = False
            waiter.waits.remove(wait)
            waiter._cancelled[wait.handle] = wait
            waiter.changes += 1
            target = waiter.changes
        waiter.wake.set()
        if threading.current_thread() is not waiter.thread:
            with self._lock:
                while waiter.seen < target:
                    self._changed.wait()
        return True

    def registered(self) -> int:
        """How many registrations are waiting."""
        with self._lock:
            return sum(len(waiter.waits) for waiter in self._waiters)

    def threads(self) -> int:
        """How many waiter threads there are."""
        with self._lock:
            return len(self._waiters)


class _HandleWaiter:
    """One thread of :class:`HandleWaits` and the registrations it waits on."""

    def __init__(self, pool: HandleWaits) -> None:
        self.pool = pool
        self.wake = Win32Event()
        self.waits: list[HandleWait] = []
        #: Registrations cancelled since the thread last took up its handles, by handle: a
        #: signal it takes meanwhile, with nobody left waiting, goes to their ``on_lost``.
        self._cancelled: dict[int, HandleWait] = {}
        #: Bumped at each change of ``waits``; ``seen``: the change the thread waits with.
        self.changes = 0
        self.seen = 0
        self.thread = threading.Thread(
            target=self._run, name="wintun-cffi handle waits", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        lib, ffi = kernel32()
        pool = self.pool
        while True:
            with pool._lock:
                handles = distinct_handles(self.waits)
                self._cancelled.clear()
                self.seen = self.changes
                pool._changed.notify_all()
            array = ffi.new(
                "HANDLE[]", [self.wake.handle] + [ffi.cast("HANDLE", h) for h in handles]
            )
            # WaitForMultipleObjects (any one), endless: its own event wakes it for changes.
            result = int(lib.WaitForMultipleObjects(len(handles) + 1, array, 0, INFINITE))
            index = result - WAIT_OBJECT_0 - 1
            if index == -1:
                continue
            if 0 <= index < len(handles):
                self._fire(handles[index])
            else:  # WAIT_FAILED: a handle closed under the wait; every awaiter looks again
                for handle in handles:
                    while self._fire(handle):
                        pass

    def _fire(self, handle: int) -> bool:
        """``handle``'s signal was taken: the first registration still waiting on it gets it,
        else the signal goes back (``on_lost`` of the one that was cancelled). True if one
        got it."""
        with self.pool._lock:
            chosen = next((w for w in self.waits if w.handle == handle and w.active), None)
            if chosen is not None:
                chosen.active = False
                self.waits.remove(chosen)
                self.changes += 1
            lost = self._cancelled.pop(handle, None) if chosen is None else None
        try:
            if chosen is not None:
                chosen.on_signal()
            elif lost is not None:
                lost.on_lost()
        except Exception:  # a callback's failure must not stop the other waits
            _log.exception("a handle wait's callback raised")
        return chosen is not None


def distinct_handles(waits: list[HandleWait]) -> list[int]:
    """The handles of ``waits``, each once, in order: ``WaitForMultipleObjects`` refuses an
    array holding one handle twice (two awaits of one session wait on the same event)."""
    return list(dict.fromkeys(wait.handle for wait in waits))
