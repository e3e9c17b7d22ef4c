"""The Windows code of wintun_cffi, against kernel32 itself and real DLLs (Windows Python only:
on Windows, or under Wine in CI).

Elsewhere the same logic runs against a scripted kernel32 (test_platform_windows_logic.py).
The bad-input cases of loading — a wrong hash, the wrong architecture, a dependency missing
beside the DLL, a DLL only in the current directory or on PATH — are refused here by Windows'
own loader, each with an exception naming the file.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import wintun_cffi
from wintun_cffi import platform
from wintun_cffi.conformance.double.build import (
    build_dependent,
    build_double,
    copy_file,
    double_unavailable,
)
from wintun_cffi.constants import ERROR_INF_IN_USE_BY_DEVICES, ERROR_INVALID_HANDLE
from wintun_cffi.errors import ChecksumMismatchError, WrongArchitectureError
from wintun_cffi.fdevent import WaitInterrupted
from wintun_cffi.platform import _win32, loader

pytestmark = pytest.mark.skipif(
    sys.platform != "win32", reason="needs Windows Python: kernel32, LoadLibraryExW, PE DLLs"
)

cffi = pytest.importorskip("cffi")

ERROR_MOD_NOT_FOUND = 126
#: E_ACCESSDENIED, an HRESULT.
E_ACCESSDENIED = 0x80070005


def system32(name: str) -> str:
    return os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", name)


@pytest.fixture
def doubles(tmp_path: Path) -> Path:
    """A folder for Windows doubles (prebuilt under Wine, compiled with MinGW elsewhere)."""
    reason = double_unavailable()
    if reason is not None:
        pytest.skip(reason)
    return tmp_path


# -- loading --------------------------------------------------------------------------------


def test_open_library_by_absolute_path() -> None:
    ffi = cffi.FFI()
    ffi.cdef("uint32_t GetCurrentProcessId(void);")
    lib = platform.open_library(ffi, system32("kernel32.dll"))
    assert lib.GetCurrentProcessId() == os.getpid()


def test_open_library_missing_file(tmp_path: Path) -> None:
    ffi = cffi.FFI()
    missing = str(tmp_path / "wintun.dll")
    with pytest.raises(OSError) as caught:
        platform.open_library(ffi, missing)
    assert getattr(caught.value, "winerror", None) == ERROR_MOD_NOT_FOUND
    assert missing in str(caught.value)


def test_the_double_loads_with_its_hash(doubles: Path) -> None:
    path = build_double("0.14", doubles)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    wintun = wintun_cffi.load(path, sha256=digest)
    assert wintun.api == "0.14"


def test_a_wrong_hash_is_refused_before_loading(doubles: Path) -> None:
    path = build_double("0.14", doubles)
    with pytest.raises(ChecksumMismatchError) as caught:
        wintun_cffi.load(path, sha256="0" * 64)
    assert str(path) in str(caught.value)


def test_a_dll_of_another_architecture_is_refused(doubles: Path) -> None:
    # The same DLL with the PE header's Machine set to x86: Windows could not load it into
    # this amd64 process either; the loader says so before trying.
    original = build_double("0.14", doubles).read_bytes()
    header = struct.unpack_from("<I", original, 0x3C)[0]
    patched = bytearray(original)
    struct.pack_into("<H", patched, header + 4, 0x014C)
    path = doubles / "x86" / "wintun.dll"
    path.parent.mkdir()
    path.write_bytes(bytes(patched))
    with pytest.raises(WrongArchitectureError) as caught:
        wintun_cffi.load(path)
    assert str(path) in str(caught.value) and "x86" in str(caught.value)


def test_a_dependency_beside_the_dll_is_found(doubles: Path) -> None:
    dependent, _ = build_dependent(doubles)
    ffi = cffi.FFI()
    ffi.cdef("int WintunTestDependent(void);")
    assert platform.open_library(ffi, str(dependent)).WintunTestDependent() == 43


#: Loads a library in a process of its own: a DLL already loaded in a process satisfies any
#: later import of its name, so a missing dependency only shows in a fresh process.
LOAD_IN_A_FRESH_PROCESS = """
import sys
from wintun_cffi.platform import loader
try:
    loader.open_wintun(sys.argv[1])
except Exception as error:
    print(type(error).__name__, getattr(error.__cause__, "winerror", None), error)
"""


@pytest.mark.parametrize("elsewhere", ["nowhere", "current directory", "PATH"])
def test_a_dependency_missing_beside_the_dll_is_named(
    doubles: Path, tmp_path_factory: pytest.TempPathFactory, elsewhere: str
) -> None:
    dependent, dependency = build_dependent(doubles)
    lonely = tmp_path_factory.mktemp("lonely") / "wintun.dll"
    copy_file(dependent, lonely)
    cwd, env = tmp_path_factory.mktemp("cwd"), dict(os.environ)
    # Where a plain LoadLibrary would also look; this loader never does.
    if elsewhere == "current directory":
        cwd = dependency.parent
    elif elsewhere == "PATH":
        env["PATH"] = f"{dependency.parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(lonely)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.startswith(f"LibraryLoadError {ERROR_MOD_NOT_FOUND} "), result
    assert str(lonely) in result.stdout


@pytest.mark.parametrize("place", ["current directory", "PATH"])
def test_a_wintun_dll_only_in_the_current_directory_or_on_path_is_not_loaded(
    doubles: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    place: str,
) -> None:
    folder = tmp_path_factory.mktemp("elsewhere")
    copy_file(build_double("0.14", doubles), folder / "wintun.dll")
    monkeypatch.delenv(loader.ENV_VAR, raising=False)
    monkeypatch.setattr(sys, "argv", [str(tmp_path_factory.mktemp("program") / "main.py")])
    if place == "current directory":
        monkeypatch.chdir(folder)
    else:
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(FileNotFoundError) as caught:
        wintun_cffi.load()
    assert "Looked at" in str(caught.value)
    assert str(folder / "wintun.dll") not in str(caught.value)


# -- the last error -------------------------------------------------------------------------


def test_last_error_is_getlasterror() -> None:
    kernel32, kffi = _win32.kernel32()
    assert kernel32.CloseHandle(kffi.NULL) == 0
    assert platform.last_error(kffi) == ERROR_INVALID_HANDLE


@pytest.mark.parametrize("code", [ERROR_INF_IN_USE_BY_DEVICES, E_ACCESSDENIED, 0xFFFFFFFF])
def test_last_error_above_0x7fffffff_is_a_dword(code: int) -> None:
    # cffi gives GetLastError as a signed int: these would come out negative and unmapped.
    kernel32, kffi = _win32.kernel32()
    kernel32.SetLastError(code)
    assert platform.last_error(kffi) == code


# -- waiting --------------------------------------------------------------------------------


@pytest.fixture
def event() -> Any:
    """An auto-reset event, as Wintun's read-wait event is."""
    made = _win32.Win32Event()
    yield made.handle
    made.close()


def test_read_waiter_waits_and_consumes(event: Any) -> None:
    kernel32, kffi = _win32.kernel32()
    waiter = platform.ReadWaiter(kffi, event)
    try:
        assert isinstance(waiter, platform.WindowsReadWaiter)
        assert waiter.fd is None  # a HANDLE is not pollable
        assert waiter.wait(0) is False
        assert waiter.wait(0.01) is False
        kernel32.SetEvent(event)
        assert waiter.wait(5) is True
        assert waiter.wait(0) is False  # auto-reset: consumed
    finally:
        waiter.close()


def test_read_waiter_interrupt_wakes_a_blocked_waiter(event: Any) -> None:
    _, kffi = _win32.kernel32()
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


def test_an_auto_reset_event_is_set_after_a_look() -> None:
    made = _win32.Win32Event()
    try:
        assert not made.is_set()
        made.set()
        assert made.is_set() and made.is_set()  # looking does not take the signal
        assert made.consume() and not made.consume()
    finally:
        made.close()
