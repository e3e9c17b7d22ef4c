"""What the ``windows-native`` backend does to the machine it runs on, kept small and undone.

Every adapter the suite creates on a real Wintun has a fixed name, :data:`ADAPTER_PREFIX`
followed by the test's own word (``"WintunCffiConformance Alpha"``), and in the pool era it
is in one of the suite's own pools. Before its first test the backend takes :class:`RunLock`
(a second run on the same machine skips instead of meeting the first one's adapters) and
calls :func:`remove_stale_adapters`: a run that was killed may have left adapters behind.
What is left depends on the generation:

* **pool era (0.9 to 0.13) and the 2020-11 snapshot:** an adapter lives until it is deleted,
  whatever happens to the process that created it. Every adapter in the suite's pools is
  deleted.
* **0.14:** an adapter is a software device that Windows removes when the handle that
  created it is closed, which the system does when the process ends, killed or not; what
  remains of the device, wintun.dll itself removes the next time any program creates, opens
  or closes an adapter. Nothing is left for the suite to remove.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Iterable
from typing import Any

from wintun_cffi import Adapter, Wintun, netconfig

from .farside import FAR_INTERFACE

#: The start of the name of every adapter the suite creates on a real Wintun.
ADAPTER_PREFIX = "WintunCffiConformance "
#: The named mutex held by the run that uses real adapters (``Global\\``: one per machine).
RUN_LOCK_NAME = "Global\\WintunCffiConformance"


@functools.cache
def under_wine() -> bool:
    """True if this Windows Python runs under Wine (ntdll exports wine_get_version)."""
    if sys.platform != "win32":
        return False
    return hasattr(getattr(ctypes, "windll").ntdll, "wine_get_version")  # noqa: B009 (Windows only)


def is_administrator() -> bool:
    """True if this Windows process runs elevated."""
    return bool(getattr(ctypes, "windll").shell32.IsUserAnAdmin())  # noqa: B009 (Windows only)


class RunLock:
    """The machine-wide lock of the runs that use real adapters (a Win32 named mutex).

    :meth:`take` returns None while another process (or another thread) holds it. Windows
    releases the mutex of a process that dies; :attr:`abandoned` then tells the next run
    that the one before it did not finish. Windows only.
    """

    def __init__(self, handle: Any, abandoned: bool) -> None:
        self._handle: Any = handle
        #: True if the previous holder ended without releasing it (a killed run).
        self.abandoned = abandoned

    @classmethod
    def take(cls, name: str = RUN_LOCK_NAME) -> RunLock | None:
        """The lock, held by the calling thread; None if someone else holds it."""
        from wintun_cffi.platform._win32 import (
            WAIT_ABANDONED,
            WAIT_OBJECT_0,
            WAIT_TIMEOUT,
            kernel32,
            last_error,
            windows_error,
        )

        lib, ffi = kernel32()
        handle = lib.CreateMutexW(ffi.NULL, 0, name)
        if handle == ffi.NULL:
            raise windows_error(f"CreateMutexW({name!r}) failed", last_error(ffi))
        state = int(lib.WaitForMultipleObjects(1, ffi.new("HANDLE[]", [handle]), 0, 0))
        if state in (WAIT_OBJECT_0, WAIT_ABANDONED):
            return cls(handle, abandoned=state == WAIT_ABANDONED)
        lib.CloseHandle(handle)
        if state == WAIT_TIMEOUT:
            return None
        raise windows_error(f"waiting for {name!r} failed", last_error(ffi))

    def release(self) -> None:
        """Release and close the lock (from the thread that took it). Idempotent."""
        from wintun_cffi.platform._win32 import kernel32

        handle, self._handle = self._handle, None
        if handle is not None:
            lib, _ = kernel32()
            lib.ReleaseMutex(handle)
            lib.CloseHandle(handle)


def remove_stale_adapters(wintun: Wintun, pools: Iterable[str]) -> list[str]:
    """Delete every adapter of ``pools`` (pool era) and return their names; nothing in 0.14
    (see the module's description)."""
    if wintun.api == "0.14":
        return []
    removed: list[str] = []
    for pool in pools:
        for adapter in wintun.adapters(pool):
            with adapter:
                removed.append(adapter.name)
                adapter.delete(force_close_sessions=True)
    return removed


def assign_far_address(adapter: Adapter) -> None:
    """Assign the far side's address to a real adapter with IP Helper
    (:mod:`wintun_cffi.netconfig`)."""
    netconfig.wait_for_interface(adapter)
    netconfig.add_address(adapter, FAR_INTERFACE)
