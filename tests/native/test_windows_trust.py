"""Windows only: a library held from its checks to its load cannot be swapped, and
verify_signature refuses what WinVerifyTrust does not accept (meant to run under Wine too).

The DLLs come from the Python running the tests: a copy of the C extension ``_cffi_backend``
with any signature stripped (unsigned for sure) and ``python3.dll`` (signed by the Python
Software Foundation in python.org's builds).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import wintun_cffi
from wintun_cffi import platform
from wintun_cffi.errors import LibraryLoadError, UntrustedLibraryError
from wintun_cffi.platform import _authenticode
from wintun_cffi.platform._heldfile import HeldFile

from .pe import strip_signature

pytestmark = pytest.mark.skipif(
    sys.platform != "win32", reason="needs Windows: CreateFileW sharing modes, WinVerifyTrust"
)


@pytest.fixture
def unsigned_dll(tmp_path: Path) -> Path:
    import _cffi_backend

    path = tmp_path / "unsigned" / "wintun.dll"
    path.parent.mkdir()
    path.write_bytes(strip_signature(Path(_cffi_backend.__file__).read_bytes()))
    return path


@pytest.fixture
def signed_dll(tmp_path: Path) -> Path:
    source = Path(sys.base_prefix) / "python3.dll"
    if not source.exists():
        pytest.skip(f"no python3.dll in {sys.base_prefix}")
    path = tmp_path / "signed" / "wintun.dll"
    path.parent.mkdir()
    shutil.copyfile(source, path)
    return path


def loaded(path: Path) -> bool:
    """True if a module of that path is loaded in this process (GetModuleHandleW)."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef("void *WINAPI GetModuleHandleW(const char16_t *Name);")
    kernel32: Any = ffi.dlopen("kernel32.dll")
    return bool(kernel32.GetModuleHandleW(str(path)) != ffi.NULL)


def under_wine() -> bool:
    """True under Wine (its ntdll exports wine_get_version)."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef("const char *wine_get_version(void);")
    try:
        ntdll: Any = ffi.dlopen("ntdll.dll")
        ntdll.wine_get_version  # noqa: B018 - resolving is the question
    except (AttributeError, OSError):
        return False
    return True


def test_a_held_file_cannot_be_written_renamed_or_deleted(tmp_path: Path) -> None:
    path, other = tmp_path / "wintun.dll", tmp_path / "other.dll"
    path.write_bytes(b"checked")
    other.write_bytes(b"swapped in")
    with HeldFile(str(path)) as held:
        with pytest.raises(PermissionError):
            open(path, "r+b").close()
        with pytest.raises(PermissionError):
            os.replace(other, path)
        with pytest.raises(PermissionError):
            os.rename(path, tmp_path / "moved.dll")
        with pytest.raises(PermissionError):
            os.remove(path)
        if not under_wine():  # Wine lets a folder with open files be renamed, as Unix does
            with pytest.raises(PermissionError):
                os.rename(tmp_path, tmp_path.with_name(tmp_path.name + "-moved"))
        with open(path, "rb") as reader:  # reading stays possible (the loader reads)
            assert reader.read() == b"checked"
        assert held.still_at_path()
    os.replace(other, path)  # let go: now it can be replaced
    assert path.read_bytes() == b"swapped in"


def test_a_file_open_for_writing_cannot_be_held(tmp_path: Path) -> None:
    path = tmp_path / "wintun.dll"
    path.write_bytes(b"being written")
    with open(path, "r+b"), pytest.raises(PermissionError, match="open for writing"):
        HeldFile(str(path))


def test_the_file_cannot_be_swapped_while_it_is_loaded(
    signed_dll: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.dll"
    other.write_bytes(b"not the checked file")
    original = signed_dll.read_bytes()
    real_open = platform.open_library
    attempts: list[BaseException | None] = []

    def swap_then_open(ffi: Any, where: str) -> Any:
        if not attempts:  # between the checks and the load
            try:
                os.replace(other, signed_dll)
                attempts.append(None)
            except OSError as error:
                attempts.append(error)
        return real_open(ffi, where)

    monkeypatch.setattr(platform, "open_library", swap_then_open)
    with pytest.raises(LibraryLoadError):  # python3.dll exports no Wintun API
        wintun_cffi.load(signed_dll)
    assert isinstance(attempts[0], PermissionError)
    assert signed_dll.read_bytes() == original


def test_an_unsigned_dll_is_refused_and_not_loaded(unsigned_dll: Path) -> None:
    with pytest.raises(UntrustedLibraryError, match="no signature"):
        wintun_cffi.load(unsigned_dll, verify_signature=True)
    assert not loaded(unsigned_dll)


def test_a_dll_signed_by_someone_else_is_refused(signed_dll: Path) -> None:
    with HeldFile(str(signed_dll)) as held:
        try:
            signer = _authenticode.signer_of(str(signed_dll), held.windows_handle)
        except UntrustedLibraryError as error:
            pytest.skip(f"this Windows does not accept python3.dll's signature: {error}")
    assert signer and signer != "WireGuard LLC"
    with pytest.raises(UntrustedLibraryError, match=f"signed by '{signer}', not 'WireGuard LLC'"):
        wintun_cffi.load(signed_dll, verify_signature=True)
    assert not loaded(signed_dll)
    # Named as the expected signer, it passes the signature check and fails later: not Wintun.
    with pytest.raises(LibraryLoadError) as caught:
        wintun_cffi.load(signed_dll, verify_signature=True, signer=signer)
    assert not isinstance(caught.value, UntrustedLibraryError)
