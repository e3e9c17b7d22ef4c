"""kernel32 through cffi, and Win32 events with the interface of :class:`~wintun_cffi.fdevent.FdEvent`
(Windows only; nothing here runs on import).

Wintun's read-wait event is a Win32 event ``HANDLE``; :class:`Win32Event` waits on it (and on
an interrupting event) with ``WaitForMultipleObjects``, so that the code written over
``FdEvent`` — the session's waiter, the emulator's driver playing the kernel for the C test
double — runs unchanged on Windows.
"""

from __future__ import annotations

import math
import time
from typing import Any

from .fdevent import WaitInterrupted

WAIT_OBJECT_0 = 0x00000000
WAIT_ABANDONED = 0x00000080
WAIT_TIMEOUT = 0x00000102
#: Seconds per wait: Python sees Ctrl+C on Windows only between C calls, so no wait is endless.
WAIT_SLICE = 0.1

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
