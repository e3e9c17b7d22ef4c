"""The operating system seams of the native backend, and nothing else.

Three things differ between Windows and the rest: loading the library (Windows: safe DLL
search), reading the last error of a failed call (Windows: ``GetLastError``, saved by cffi;
elsewhere ``errno``, which the C test double sets to the Win32 code) and waiting on the
read-wait event (Windows: an event HANDLE; elsewhere a descriptor readable while signalled).
Every Windows branch names the Windows API it relies on.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from .fdevent import FdEvent, WaitInterrupted

IS_WINDOWS = sys.platform == "win32"

# LoadLibraryExW flags: search the DLL's own folder and System32 only, never the current
# directory or PATH.
LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR = 0x00000100
LOAD_LIBRARY_SEARCH_SYSTEM32 = 0x00000800
_WAIT_OBJECT_0 = 0x00000000
_WAIT_TIMEOUT = 0x00000102
_WAIT_SLICE = 0.1  # seconds per wait on Windows, so Ctrl+C is seen

_kernel32: Any = None
_kernel32_ffi: Any = None


def _windows() -> tuple[Any, Any]:
    """kernel32 through cffi (declared on first use; Windows only)."""
    global _kernel32, _kernel32_ffi
    if _kernel32 is None:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(
            """
            typedef void *HANDLE;
            HANDLE WINAPI LoadLibraryExW(const wchar_t *, HANDLE, uint32_t);
            HANDLE WINAPI CreateEventW(void *, int, int, const wchar_t *);
            int WINAPI SetEvent(HANDLE);
            int WINAPI CloseHandle(HANDLE);
            uint32_t WINAPI WaitForMultipleObjects(uint32_t, const HANDLE *, int, uint32_t);
            """
        )
        _kernel32 = ffi.dlopen("kernel32.dll")
        _kernel32_ffi = ffi
    return _kernel32, _kernel32_ffi


def open_library(ffi: Any, path: str) -> Any:
    """``ffi.dlopen`` of the library at absolute ``path``, searching nothing else."""
    if IS_WINDOWS:
        # LoadLibraryExW with LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32:
        # wintun.dll and its dependencies come from its folder or System32 only.
        kernel32, kffi = _windows()
        module = kernel32.LoadLibraryExW(
            path, kffi.NULL, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32
        )
        if module == kffi.NULL:
            code = kffi.getwinerror()[0]
            raise OSError(None, f"LoadLibraryExW failed for {path}", path, code)
        return ffi.dlopen(ffi.cast("void *", int(kffi.cast("uintptr_t", module))))
    return ffi.dlopen(path)  # a path with a slash: dlopen searches nothing


def last_error(ffi: Any) -> int:
    """The Win32 error code of the call that just failed on this thread."""
    if IS_WINDOWS:
        # GetLastError, as cffi saved it right after the call.
        return int(ffi.getwinerror()[0])
    return int(ffi.errno) & 0xFFFFFFFF  # codes like 0xE000023D arrive as negative ints


class ReadWaiter:
    """Waits on a session's read-wait event, until an interrupt (session closing)."""

    def __init__(self, ffi: Any, event: Any) -> None:
        self._ffi = ffi
        if IS_WINDOWS:
            # CreateEventW: a manual-reset event that close() sets to wake every waiter.
            kernel32, kffi = _windows()
            interrupt = kernel32.CreateEventW(kffi.NULL, 1, 0, kffi.NULL)
            if interrupt == kffi.NULL:
                raise OSError(None, "CreateEventW failed", None, kffi.getwinerror()[0])
            self._handles = kffi.new("HANDLE[2]", [kffi.cast("HANDLE", event), interrupt])
            self._interrupt_handle = interrupt
            self.fd: int | None = None
        else:
            self.fd = int(ffi.cast("intptr_t", event))
            self._event = FdEvent(adopt_eventfd=self.fd)
            self._interrupt = FdEvent(manual_reset=True)

    def wait(self, timeout: float | None) -> bool:
        """True when signalled (consumed), False on timeout; WaitInterrupted once interrupted."""
        if IS_WINDOWS:
            # WaitForMultipleObjects on [read-wait event, interrupt]; cffi releases the GIL.
            # Waited in slices: Python sees Ctrl+C on Windows only between C calls.
            kernel32, kffi = _windows()
            deadline = None if timeout in (None, float("inf")) else time.monotonic() + timeout
            while True:
                left = _WAIT_SLICE if deadline is None else min(deadline - time.monotonic(),
                                                                _WAIT_SLICE)
                milliseconds = max(0, math.ceil(left * 1000))
                result = kernel32.WaitForMultipleObjects(2, self._handles, 0, milliseconds)
                if result == _WAIT_OBJECT_0:
                    return True
                if result == _WAIT_OBJECT_0 + 1:
                    raise WaitInterrupted
                if result != _WAIT_TIMEOUT:
                    raise OSError(None, "WaitForMultipleObjects failed", None,
                                  kffi.getwinerror()[0])
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        return self._event.wait(timeout, interrupt=self._interrupt)

    def interrupt(self) -> None:
        """Wake every waiter, now and later."""
        if IS_WINDOWS:
            _windows()[0].SetEvent(self._interrupt_handle)  # SetEvent
        else:
            self._interrupt.set()

    def close(self) -> None:
        """Free the interrupt (the read-wait event belongs to Wintun)."""
        if IS_WINDOWS:
            _windows()[0].CloseHandle(self._interrupt_handle)  # CloseHandle
        else:
            self._interrupt.close()


def interpreter_architecture() -> str:
    """This Python's processor architecture: ``amd64``, ``x86``, ``arm64`` or ``arm``."""
    import platform
    import sysconfig

    if IS_WINDOWS:
        # The interpreter's own build ("win32", "win-amd64", "win-arm64"), not the machine's:
        # an x86 Python on ARM64 Windows needs the x86 DLL.
        build = sysconfig.get_platform()
        return {"win32": "x86", "win-amd64": "amd64", "win-arm64": "arm64"}.get(build, build)
    machine = platform.machine().lower()
    is_64 = sys.maxsize > 2**32
    if machine in ("amd64", "x86_64", "x64", "i386", "i686", "x86"):
        return "amd64" if is_64 else "x86"
    if machine in ("arm64", "aarch64", "armv8l", "arm", "armv7l"):
        return "arm64" if is_64 else "arm"
    return machine


def program_directory() -> str | None:
    """The folder of the running program: the frozen executable, or the main script."""
    if getattr(sys, "frozen", False):
        return os.path.dirname(os.path.abspath(sys.executable))
    main = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if main and main not in ("-c", "-m") and os.path.exists(main):
        return os.path.dirname(os.path.abspath(main))
    return None
