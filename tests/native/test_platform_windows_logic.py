"""The Windows code of wintun_cffi.platform and wintun_cffi.platform._win32, run on any OS against a
scripted kernel32.

Under Windows Python (on Windows, or under Wine in CI) the same code runs against kernel32
itself: tests/native/test_windows.py. Here a fake kernel32 answers as the documented API does,
so the logic around the calls — the flags passed, the wait slices that let Ctrl+C through, the
return codes, the error reading — also runs where there is no Windows.
"""

from __future__ import annotations

from typing import Any

import cffi
import pytest

from wintun_cffi import platform
from wintun_cffi.constants import ERROR_ACCESS_DENIED, ERROR_INF_IN_USE_BY_DEVICES
from wintun_cffi.fdevent import WaitInterrupted
from wintun_cffi.platform import _win32

WAIT_OBJECT_0 = 0x0
WAIT_TIMEOUT = 0x102
WAIT_FAILED = 0xFFFFFFFF
#: E_ACCESSDENIED, an HRESULT: like SetupAPI's codes, above 0x7FFFFFFF.
E_ACCESSDENIED = 0x80070005


def signed(code: int) -> int:
    """``code`` as cffi's ``getwinerror()`` gives it: a signed 32-bit int."""
    return code - (1 << 32) if code >= 1 << 31 else code


class FakeFFI:
    """cffi's object API (new, cast, NULL) plus the getwinerror() that exists on Windows."""

    def __init__(self, last_error: int = 0) -> None:
        self.real = cffi.FFI()
        self.real.cdef("typedef void *HANDLE;")
        self.NULL = self.real.NULL
        self.last_error = last_error

    def new(self, kind: str, init: Any = None) -> Any:
        return self.real.new(kind, init)

    def cast(self, kind: str, value: Any) -> Any:
        return self.real.cast(kind, value)

    def getwinerror(self) -> tuple[int, str]:
        return signed(self.last_error), "scripted"


def winerror_of(error: OSError, expected: int) -> bool:
    """True if ``error`` carries the Win32 code ``expected``, as a DWORD, and names it."""
    return getattr(error, "winerror", None) == expected and f"{expected:#010x}" in str(error)


class FakeKernel32:
    """Answers WaitForMultipleObjects from a script and records every call."""

    def __init__(self, ffi: FakeFFI, waits: list[int] | None = None) -> None:
        self.ffi = ffi
        self.waits = list(waits or [])
        self.wait_milliseconds: list[int] = []
        self.waited_on: list[list[int]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.module: Any = ffi.cast("HANDLE", 0x1234)

    def value(self, handle: Any) -> int:
        return int(self.ffi.cast("intptr_t", handle))

    def WaitForMultipleObjects(self, count: int, handles: Any, wait_all: int, ms: int) -> int:
        assert wait_all == 0  # any of them
        self.waited_on.append([self.value(handles[i]) for i in range(count)])
        self.wait_milliseconds.append(ms)
        return self.waits.pop(0) if self.waits else WAIT_TIMEOUT

    def CreateEventW(self, attributes: Any, manual_reset: int, initial: int, name: Any) -> Any:
        self.calls.append(("CreateEventW", manual_reset, initial))
        return self.ffi.cast("HANDLE", 0x77)

    def SetEvent(self, handle: Any) -> int:
        self.calls.append(("SetEvent", self.value(handle)))
        return 1

    def CloseHandle(self, handle: Any) -> int:
        self.calls.append(("CloseHandle", self.value(handle)))
        return 1

    def LoadLibraryExW(self, path: str, reserved: Any, flags: int) -> Any:
        self.calls.append(("LoadLibraryExW", path, flags))
        return self.module


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> FakeKernel32:
    ffi = FakeFFI(last_error=5)
    kernel32 = FakeKernel32(ffi)
    monkeypatch.setattr(platform, "IS_WINDOWS", True)
    monkeypatch.setattr(_win32, "kernel32", lambda: (kernel32, ffi))
    return kernel32


def waiter(kernel32: FakeKernel32) -> platform.WindowsReadWaiter:
    return platform.WindowsReadWaiter(kernel32.ffi, kernel32.ffi.cast("HANDLE", 0x55))


def test_the_waiter_of_this_os_is_chosen_once() -> None:
    expected = platform.WindowsReadWaiter if platform.IS_WINDOWS else platform.PosixReadWaiter
    assert platform.ReadWaiter is expected


def test_the_interrupt_is_a_manual_reset_event(windows: FakeKernel32) -> None:
    reader = waiter(windows)
    assert ("CreateEventW", 1, 0) in windows.calls  # manual reset, not signalled
    assert reader.fd is None  # a HANDLE cannot go to an event loop's reader
    reader.interrupt()
    reader.close()
    assert ("SetEvent", 0x77) in windows.calls and ("CloseHandle", 0x77) in windows.calls
    assert ("CloseHandle", 0x55) not in windows.calls  # the read-wait event is Wintun's


def test_an_endless_wait_runs_in_slices_until_signalled(windows: FakeKernel32) -> None:
    windows.waits = [WAIT_TIMEOUT, WAIT_TIMEOUT, WAIT_OBJECT_0 + 1]
    assert waiter(windows).wait(None) is True
    assert windows.wait_milliseconds == [100, 100, 100]  # never INFINITE: Ctrl+C gets through
    assert windows.waited_on[0] == [0x77, 0x55]  # [interrupt, read-wait event]


def test_a_timed_wait_ends_false_after_its_deadline(windows: FakeKernel32) -> None:
    assert waiter(windows).wait(0.05) is False
    assert windows.wait_milliseconds and all(0 <= ms <= 50 for ms in windows.wait_milliseconds)


def test_milliseconds_round_up_so_a_short_wait_is_not_a_poll(windows: FakeKernel32) -> None:
    windows.waits = [WAIT_OBJECT_0 + 1]
    assert waiter(windows).wait(0.0004) is True
    assert windows.wait_milliseconds == [1]


def test_the_interrupt_handle_raises_wait_interrupted(windows: FakeKernel32) -> None:
    windows.waits = [WAIT_OBJECT_0]
    with pytest.raises(WaitInterrupted):
        waiter(windows).wait(None)


def test_a_failed_wait_reports_get_last_error(windows: FakeKernel32) -> None:
    windows.waits = [WAIT_FAILED]
    with pytest.raises(OSError) as failed:
        waiter(windows).wait(1.0)
    assert "WaitForMultipleObjects" in str(failed.value)
    assert winerror_of(failed.value, 5)


def test_a_failed_create_event_reports_get_last_error(windows: FakeKernel32) -> None:
    windows.CreateEventW = lambda *args: windows.ffi.NULL  # type: ignore[method-assign]
    windows.ffi.last_error = E_ACCESSDENIED
    with pytest.raises(OSError, match="CreateEventW") as failed:
        waiter(windows)
    assert winerror_of(failed.value, E_ACCESSDENIED)


@pytest.mark.parametrize(
    "code",
    [5, ERROR_ACCESS_DENIED, 0x7FFFFFFF, ERROR_INF_IN_USE_BY_DEVICES, E_ACCESSDENIED, 0xFFFFFFFF],
)
def test_last_error_is_get_last_error_as_a_dword(windows: FakeKernel32, code: int) -> None:
    # cffi hands GetLastError over as a signed int; codes from 0x80000000 up come negative.
    windows.ffi.last_error = code
    assert platform.last_error(windows.ffi) == code


def test_open_library_searches_only_the_dll_folder_and_system32(windows: FakeKernel32) -> None:
    opened: list[Any] = []

    class TargetFFI:
        def cast(self, kind: str, value: int) -> int:
            return value

        def dlopen(self, handle: Any) -> str:
            opened.append(handle)
            return "lib"

    assert platform.open_library(TargetFFI(), r"C:\app\wintun.dll") == "lib"
    assert ("LoadLibraryExW", r"C:\app\wintun.dll", 0x100 | 0x800) in windows.calls
    assert opened == [0x1234]  # cffi binds to the module LoadLibraryExW loaded


def test_open_library_failure_names_the_path_and_the_code(windows: FakeKernel32) -> None:
    windows.module = windows.ffi.NULL
    windows.ffi.last_error = 0xC1  # ERROR_BAD_EXE_FORMAT
    with pytest.raises(OSError, match="LoadLibraryExW failed") as failed:
        platform.open_library(object(), r"C:\app\wintun.dll")
    assert winerror_of(failed.value, 0xC1)
    assert r"C:\app\wintun.dll" in str(failed.value)


@pytest.mark.parametrize(
    ("build", "expected"), [("win32", "x86"), ("win-amd64", "amd64"), ("win-arm64", "arm64")]
)
def test_architecture_comes_from_the_interpreter_build(
    windows: FakeKernel32, monkeypatch: pytest.MonkeyPatch, build: str, expected: str
) -> None:
    import sysconfig

    monkeypatch.setattr(sysconfig, "get_platform", lambda: build)
    assert platform.interpreter_architecture() == expected
