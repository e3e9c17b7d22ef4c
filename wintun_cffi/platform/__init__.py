"""The operating system seams of the native backend, and nothing else.

Three things differ between Windows and the rest: loading the library (Windows: safe DLL
search), reading the last error of a failed call (Windows: ``GetLastError``, saved by cffi;
elsewhere ``errno``, which the C test double sets to the Win32 code) and waiting on the
read-wait event (Windows: an event HANDLE; elsewhere a descriptor readable while signalled).
Every Windows branch names the Windows API it relies on; the read-wait waiter is one class per
OS (:class:`WindowsReadWaiter`, :class:`PosixReadWaiter`), chosen once as :data:`ReadWaiter`.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Generic, TypeVar

from ..fdevent import FdEvent
from . import _win32
from ._win32 import Win32Event

IS_WINDOWS = sys.platform == "win32"

# LoadLibraryExW flags: search the DLL's own folder and System32 only, never the current
# directory or PATH.
LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR = 0x00000100
LOAD_LIBRARY_SEARCH_SYSTEM32 = 0x00000800


def open_library(ffi: Any, path: str) -> Any:
    """``ffi.dlopen`` of the library at absolute ``path``, searching nothing else."""
    if IS_WINDOWS:
        # LoadLibraryExW with LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32:
        # wintun.dll and its dependencies come from its folder or System32 only.
        kernel32, kffi = _win32.kernel32()
        module = kernel32.LoadLibraryExW(
            path, kffi.NULL, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_SYSTEM32
        )
        if module == kffi.NULL:
            raise _win32.windows_error(
                f"LoadLibraryExW failed for {path}", _win32.last_error(kffi), path
            )
        return ffi.dlopen(ffi.cast("void *", int(kffi.cast("uintptr_t", module))))
    return ffi.dlopen(path)  # a path with a slash: dlopen searches nothing


def last_error(ffi: Any) -> int:
    """The Win32 error code (a DWORD) of the call that just failed on this thread."""
    if IS_WINDOWS:
        return _win32.last_error(ffi)  # GetLastError, as cffi saved it right after the call
    return int(ffi.errno) & 0xFFFFFFFF  # codes like 0xE000023D arrive as negative ints


_Event = TypeVar("_Event", FdEvent, Win32Event)


class _ReadWaiter(Generic[_Event]):
    """Waits on a session's read-wait event until interrupted (the session closing)."""

    def __init__(self, event: _Event, interrupt: _Event, fd: int | None) -> None:
        self._event: _Event = event
        self._interrupt: _Event = interrupt
        #: The read-wait descriptor an event loop can poll; None where it is a HANDLE.
        self.fd = fd

    def wait(self, timeout: float | None) -> bool:
        """True when signalled (consumed), False on timeout; WaitInterrupted once interrupted."""
        return self._event.wait(timeout, interrupt=self._interrupt)

    def signal(self) -> None:
        """Signal the read-wait event itself (SetEvent): one waiter wakes and looks again."""
        self._event.set()

    def interrupt(self) -> None:
        """Wake every waiter, now and later."""
        self._interrupt.set()

    def close(self) -> None:
        """Free the interrupt (the read-wait event belongs to Wintun)."""
        self._interrupt.close()


class PosixReadWaiter(_ReadWaiter[FdEvent]):
    """The read-wait event is a descriptor readable while signalled (the C test double's
    eventfd); the interrupt a manual-reset :class:`~wintun_cffi.fdevent.FdEvent`."""

    def __init__(self, ffi: Any, event: Any) -> None:
        fd = int(ffi.cast("intptr_t", event))
        super().__init__(FdEvent(adopt_eventfd=fd), FdEvent(manual_reset=True), fd)


class WindowsReadWaiter(_ReadWaiter[Win32Event]):
    """The read-wait event is an auto-reset event HANDLE; the interrupt a manual-reset event
    (``CreateEventW``). Waits are ``WaitForMultipleObjects`` in slices, so Ctrl+C gets
    through."""

    def __init__(self, ffi: Any, event: Any) -> None:
        handle = int(ffi.cast("uintptr_t", event))
        super().__init__(Win32Event(adopt_handle=handle), Win32Event(manual_reset=True), None)


#: The waiter of this OS, chosen once.
if sys.platform == "win32":
    ReadWaiter = WindowsReadWaiter
else:
    ReadWaiter = PosixReadWaiter


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


def _current_directory() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # deleted meanwhile
        return None


#: The current directory when wintun-cffi was imported: what a relative ``sys.argv[0]`` was
#: relative to, unless the program changed directory before importing it.
_START_DIRECTORY = _current_directory()


def program_directory() -> str | None:
    """The folder of the running program: the frozen executable, or the main script.

    A relative script path is resolved as Python resolved it at start-up (the absolute
    ``__main__.__file__``), else against the current directory of when wintun-cffi was
    imported: never against the current one, which the program may have changed since.
    """
    if getattr(sys, "frozen", False):
        return os.path.dirname(os.path.abspath(sys.executable))
    main = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not main or main in ("-c", "-m"):
        return None
    if not os.path.isabs(main):
        recorded = getattr(sys.modules.get("__main__"), "__file__", None)
        if (
            isinstance(recorded, str)
            and os.path.isabs(recorded)
            and os.path.basename(recorded) == os.path.basename(main)
        ):
            main = recorded
        elif _START_DIRECTORY is not None:
            main = os.path.join(_START_DIRECTORY, main)
        else:
            return None
    main = os.path.normpath(main)
    return os.path.dirname(main) if os.path.exists(main) else None
