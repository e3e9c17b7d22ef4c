"""The Windows seams of wintun_cffi.platform, against kernel32 itself (Windows only).

Elsewhere these branches cannot run; the rest of the native suite covers the POSIX branches.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pytest

from wintun_cffi import platform
from wintun_cffi.fdevent import WaitInterrupted

pytestmark = pytest.mark.skipif(
    sys.platform != "win32", reason="needs Windows: LoadLibraryExW/WaitForMultipleObjects"
)

cffi = pytest.importorskip("cffi")

ERROR_INVALID_HANDLE = 6
ERROR_MOD_NOT_FOUND = 126


def system32(name: str) -> str:
    return os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", name)


def test_open_library_by_absolute_path() -> None:
    ffi = cffi.FFI()
    ffi.cdef("uint32_t GetCurrentProcessId(void);")
    lib = platform.open_library(ffi, system32("kernel32.dll"))
    assert lib.GetCurrentProcessId() == os.getpid()


def test_open_library_missing_file(tmp_path: Any) -> None:
    ffi = cffi.FFI()
    missing = str(tmp_path / "wintun.dll")
    with pytest.raises(OSError) as caught:
        platform.open_library(ffi, missing)
    assert getattr(caught.value, "winerror", None) == ERROR_MOD_NOT_FOUND
    assert missing in str(caught.value)


def test_last_error_is_getlasterror() -> None:
    kernel32, kffi = platform._windows()
    assert kernel32.CloseHandle(kffi.NULL) == 0
    assert platform.last_error(kffi) == ERROR_INVALID_HANDLE


@pytest.fixture
def event() -> Any:
    """An auto-reset event, as Wintun's read-wait event is."""
    kernel32, kffi = platform._windows()
    handle = kernel32.CreateEventW(kffi.NULL, 0, 0, kffi.NULL)
    assert handle != kffi.NULL
    yield handle
    kernel32.CloseHandle(handle)


def test_read_waiter_waits_and_consumes(event: Any) -> None:
    kernel32, kffi = platform._windows()
    waiter = platform.ReadWaiter(kffi, event)
    try:
        assert waiter.fd is None  # a HANDLE is not pollable
        assert waiter.wait(0) is False
        assert waiter.wait(0.01) is False
        kernel32.SetEvent(event)
        assert waiter.wait(5) is True
        assert waiter.wait(0) is False  # auto-reset: consumed
    finally:
        waiter.close()


def test_read_waiter_interrupt_wakes_a_blocked_waiter(event: Any) -> None:
    _, kffi = platform._windows()
    waiter = platform.ReadWaiter(kffi, event)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            waiter.wait(None)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    thread.join(0.05)
    waiter.interrupt()
    thread.join(30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], WaitInterrupted)
    with pytest.raises(WaitInterrupted):  # manual reset: every later wait too
        waiter.wait(0)
    waiter.close()
