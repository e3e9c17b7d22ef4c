"""The checks and the load see the same file: HeldFile, swap detection off Windows, the
verify_signature option's arguments, and the WinVerifyTrust structures (any OS).

The Windows behaviour itself (the file locked against writers, renames and deletes while
held; WinVerifyTrust refusing unsigned or foreign-signed DLLs) is in test_windows_trust.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

import wintun_cffi
from tests import mingw_layout
from wintun_cffi import platform
from wintun_cffi.errors import (
    ChecksumMismatchError,
    LibraryChangedError,
    NotSupportedError,
    UntrustedLibraryError,
)
from wintun_cffi.platform import _authenticode, loader
from wintun_cffi.platform._heldfile import HeldFile

from .conftest import DoubleLibraries


def test_held_file_reads_through_its_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "w.dll"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    with HeldFile(str(path)) as held:
        assert held.head() == data[:4096]
        assert held.sha256() == hashlib.sha256(data).hexdigest()
        assert b"".join(held.chunks()) == data  # from the start again
        assert held.still_at_path()
    held.close()  # idempotent


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="Windows refuses the swap (see "
    "test_windows_trust.py); this is the detection used elsewhere",
)
def test_a_swap_off_windows_is_noticed(tmp_path: Path) -> None:
    path, other = tmp_path / "w.dll", tmp_path / "other.dll"
    path.write_bytes(b"checked")
    other.write_bytes(b"swapped in")
    with HeldFile(str(path)) as held:
        os.replace(other, path)
        assert not held.still_at_path()
        assert held.head() == b"checked"  # the descriptor still reads the checked file
    with HeldFile(str(path)) as held:
        path.unlink()
        assert not held.still_at_path()


@pytest.fixture
def copies(libraries: DoubleLibraries, tmp_path: Path) -> dict[str, Path]:
    """Private copies of two generations of the C double, so that nothing else maps them."""
    found = {}
    for api in ("0.14", "pool"):
        copy = tmp_path / api / "wintun.dll"
        copy.parent.mkdir()
        shutil.copyfile(libraries.path(api), copy)
        found[api] = copy
    return found


def mapped(path: Path) -> bool:
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps to see what is loaded")
    return str(path) in maps.read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="Windows refuses the swap instead")
def test_a_library_swapped_during_the_load_is_refused_and_unloaded(
    copies: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copies["0.14"]
    checked = hashlib.sha256(path.read_bytes()).hexdigest()
    real_open = platform.open_library
    swapped: list[bool] = []

    def swap_then_open(ffi: Any, where: str) -> Any:
        if not swapped:  # between the checks and the load
            os.replace(copies["pool"], path)
            swapped.append(True)
        return real_open(ffi, where)

    monkeypatch.setattr(platform, "open_library", swap_then_open)
    with pytest.raises(LibraryChangedError, match="replaced between its checks and its load"):
        wintun_cffi.load(path, sha256=checked)
    assert not mapped(path)  # unloaded again


def test_an_untouched_library_loads_with_its_hash(copies: dict[str, Path]) -> None:
    path = copies["0.14"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert wintun_cffi.load(path, sha256=digest).api == "0.14"
    with pytest.raises(ChecksumMismatchError):
        wintun_cffi.load(copies["pool"], sha256=digest)


@pytest.mark.skipif(sys.platform == "win32", reason="verify_signature works on Windows")
def test_verify_signature_needs_windows(
    copies: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(ffi: object, path: str) -> object:
        pytest.fail(f"{path} was loaded")

    monkeypatch.setattr(platform, "open_library", refuse)
    with pytest.raises(NotSupportedError, match="verify_signature=True needs Windows"):
        wintun_cffi.load(copies["0.14"], verify_signature=True)


def test_a_signer_without_verification_is_an_error(copies: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="only used with verify_signature=True"):
        wintun_cffi.load(copies["0.14"], signer="WireGuard LLC")


# -- WinVerifyTrust's structures (any OS) ---------------------------------------------------

SIZES = {
    "WINTRUST_FILE_INFO": 32,
    "WINTRUST_DATA": 80,
    "CRYPT_PROVIDER_CERT": 88,
    "CRYPT_PROVIDER_SGNR": 64,
    "GUID": 16,
    "FILETIME": 8,
}
OFFSETS = {
    ("WINTRUST_FILE_INFO", "pcwszFilePath"): 8,
    ("WINTRUST_FILE_INFO", "hFile"): 16,
    ("WINTRUST_FILE_INFO", "pgKnownSubject"): 24,
    ("WINTRUST_DATA", "pPolicyCallbackData"): 8,
    ("WINTRUST_DATA", "pSIPClientData"): 16,
    ("WINTRUST_DATA", "dwUIChoice"): 24,
    ("WINTRUST_DATA", "fdwRevocationChecks"): 28,
    ("WINTRUST_DATA", "dwUnionChoice"): 32,
    ("WINTRUST_DATA", "pFile"): 40,
    ("WINTRUST_DATA", "dwStateAction"): 48,
    ("WINTRUST_DATA", "hWVTStateData"): 56,
    ("WINTRUST_DATA", "pwszURLReference"): 64,
    ("WINTRUST_DATA", "dwProvFlags"): 72,
    ("WINTRUST_DATA", "dwUIContext"): 76,
    ("CRYPT_PROVIDER_CERT", "pCert"): 8,
    ("CRYPT_PROVIDER_CERT", "dwError"): 40,
    ("CRYPT_PROVIDER_CERT", "pTrustListContext"): 48,
    ("CRYPT_PROVIDER_CERT", "pChainElement"): 80,
    ("CRYPT_PROVIDER_SGNR", "sftVerifyAsOf"): 4,
    ("CRYPT_PROVIDER_SGNR", "csCertChain"): 12,
    ("CRYPT_PROVIDER_SGNR", "pasCertChain"): 16,
    ("CRYPT_PROVIDER_SGNR", "dwSignerType"): 24,
    ("CRYPT_PROVIDER_SGNR", "psSigner"): 32,
    ("CRYPT_PROVIDER_SGNR", "dwError"): 40,
    ("CRYPT_PROVIDER_SGNR", "pasCounterSigners"): 48,
    ("CRYPT_PROVIDER_SGNR", "pChainContext"): 56,
}


@pytest.fixture(scope="module")
def trust_ffi() -> Any:
    import cffi

    if cffi.FFI().sizeof("void *") != 8:
        pytest.skip("the table holds the x64 layout")
    return _authenticode.declarations()


@pytest.mark.parametrize("name", sorted(SIZES))
def test_trust_struct_sizes(trust_ffi: Any, name: str) -> None:
    assert trust_ffi.sizeof(name) == SIZES[name]


@pytest.mark.parametrize(("name", "field"), sorted(OFFSETS))
def test_trust_field_offsets(trust_ffi: Any, name: str, field: str) -> None:
    assert trust_ffi.offsetof(name, field) == OFFSETS[(name, field)]


def test_trust_tables_agree_with_mingws_windows_headers() -> None:
    if not mingw_layout.available():
        pytest.skip(mingw_layout.NO_COMPILER)
    queries: list[tuple[str, str | None]] = [(name, None) for name in sorted(SIZES)]
    queries += sorted(OFFSETS)
    found = mingw_layout.layout(["windows.h", "wincrypt.h", "wintrust.h", "softpub.h"], queries)
    expected: dict[tuple[str, str | None], int] = {(n, None): s for n, s in SIZES.items()}
    expected.update({(name, field): offset for (name, field), offset in OFFSETS.items()})
    assert found == expected


def test_the_trust_data_asks_for_the_held_file_without_ui_or_network(trust_ffi: Any) -> None:
    data = trust_ffi.new("WINTRUST_DATA *")
    info = trust_ffi.new("WINTRUST_FILE_INFO *")
    path = trust_ffi.new("char16_t[]", "C:\\wintun.dll")
    _authenticode.fill_trust_data(trust_ffi, data, info, path, 0x1234)
    raw = bytes(trust_ffi.buffer(data))
    assert struct.unpack_from("<I", raw, 0)[0] == 80  # cbStruct
    assert struct.unpack_from("<IIII", raw, 24)[:3] == (2, 0, 1)  # no UI, no revocation, file
    assert struct.unpack_from("<I", raw, 48)[0] == 1  # WTD_STATEACTION_VERIFY: keep the state
    assert data.pFile == info
    assert int(trust_ffi.cast("uintptr_t", info.hFile)) == 0x1234  # the held handle
    assert trust_ffi.string(info.pcwszFilePath) == "C:\\wintun.dll"
    assert info.cbStruct == 32


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (-2146762496, "no signature"),
        (0x80096010, "do not match"),
        (0x800B0109, "does not trust"),
        (0x80096004, "a signature in it does not verify"),
        (0x12345678, "an HRESULT it does not document (0x12345678)"),
    ],
)
def test_refusals_are_explained(status: int, words: str) -> None:
    assert words in _authenticode.describe_status(status)


def test_every_documented_result_has_words_and_its_code() -> None:
    for code, reason in _authenticode.REASONS.items():
        described = _authenticode.describe_status(code - (1 << 32))  # as cffi gives it: signed
        assert described.startswith(reason) and described.endswith(f"HRESULT {code:#010x}")
        assert re.search(r"\((TRUST|CERT|CRYPT)_E_[A-Z_]+\)$", reason), reason


def test_the_official_signer() -> None:
    assert _authenticode.WINTUN_SIGNER == "WireGuard LLC"
    assert issubclass(UntrustedLibraryError, wintun_cffi.LibraryLoadError)


def test_loader_keeps_the_documented_signature(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.dll"
    with pytest.raises(FileNotFoundError):
        loader.open_wintun(str(missing))
