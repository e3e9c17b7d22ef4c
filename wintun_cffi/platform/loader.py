"""Finding, verifying and loading the Wintun library.

:func:`find_library` looks in a fixed order and only at absolute paths; :func:`open_wintun`
verifies the file (SHA-256, processor architecture, on Windows optionally its Authenticode
signature) *before* loading it, holding it open from the first check until it is loaded, loads
it without any library search, and detects the API generation from its exports.
"""

from __future__ import annotations

import importlib
import os
import re
import struct
import sys
from pathlib import Path
from typing import Any, NamedTuple

from .. import platform
from ..constants import API_GENERATIONS, GENERATIONS, ApiGeneration
from ..errors import (
    ChecksumMismatchError,
    LibraryChangedError,
    LibraryLoadError,
    MissingExportsError,
    NotSupportedError,
    UnknownGenerationError,
    WrongArchitectureError,
)
from ._exports import DECLARED

#: The environment variable naming the library's path.
ENV_VAR = "WINTUN_DLL"
DLL_NAME = "wintun.dll"
_SHA256_FORM = re.compile(r"[0-9a-fA-F]{64}")

# PE "Machine" values and ELF "e_machine" values, by our architecture names.
_PE_MACHINES = {0x8664: "amd64", 0x014C: "x86", 0xAA64: "arm64", 0x01C4: "arm"}
_ELF_MACHINES = {(62, 64): "amd64", (3, 32): "x86", (183, 64): "arm64", (40, 32): "arm"}


class LoadedLibrary(NamedTuple):
    """A loaded Wintun library: its path, generation, cffi ``ffi`` and ``lib``."""

    path: str
    api: ApiGeneration
    ffi: Any
    lib: Any


def bundled_directory() -> Path:
    """``wintun_cffi/bin/<arch>``: where a wheel may ship the DLL for this interpreter."""
    return Path(__file__).resolve().parents[1] / "bin" / platform.interpreter_architecture()


def user_data_directory() -> Path:
    """wintun-cffi's folder among this user's application data: ``%LOCALAPPDATA%\\wintun-cffi``
    on Windows, ``~/Library/Application Support/wintun-cffi`` on macOS,
    ``$XDG_DATA_HOME/wintun-cffi`` (default ``~/.local/share/wintun-cffi``) elsewhere."""
    if platform.IS_WINDOWS:
        base = os.environ.get("LOCALAPPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Local"
        )
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        # The XDG rule: a relative value is invalid and ignored.
        base = (
            xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".local", "share")
        )
    return Path(base) / "wintun-cffi"


def user_directory() -> Path:
    """``<user data folder>/bin/<arch>``: where ``python -m wintun_cffi install-dll`` puts the
    official ``wintun.dll`` for this interpreter (see :func:`user_data_directory`)."""
    return user_data_directory() / "bin" / platform.interpreter_architecture()


def candidate_paths(path: str | os.PathLike[str] | None = None) -> list[tuple[str, Path]]:
    """Where to look, in order, as ``(why, absolute path)`` pairs. A relative ``path`` is
    taken from the current directory (as ``open()`` would); a relative ``$WINTUN_DLL`` is
    refused with :class:`~wintun_cffi.errors.LibraryLoadError`."""
    if path is not None:
        return [("the path given", Path(os.path.abspath(os.fspath(path))))]
    places: list[tuple[str, Path]] = []
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        if not os.path.isabs(from_env):
            raise LibraryLoadError(
                f"${ENV_VAR} is {from_env!r}, a relative path: give the absolute path of "
                "wintun.dll (the loader never looks in the current directory)"
            )
        places.append((f"${ENV_VAR}", Path(from_env)))
    program = platform.program_directory()
    if program is not None:
        places.append(("beside the running program", Path(program) / DLL_NAME))
    places.append(("wintun_cffi/bin for this architecture", bundled_directory() / DLL_NAME))
    # Last: shared by every environment of this user, so anything more specific wins.
    places.append(("installed by install-dll for this user", user_directory() / DLL_NAME))
    return places


def find_library(path: str | os.PathLike[str] | None = None) -> str:
    """The absolute path of the library to load; FileNotFoundError lists every place tried
    (:class:`~wintun_cffi.errors.LibraryLoadError` if ``$WINTUN_DLL`` is a relative path)."""
    places = candidate_paths(path)
    for _, place in places:
        if place.is_file():
            return str(place)
    tried = "; ".join(f"{place} ({why})" for why, place in places)
    raise FileNotFoundError(f"Wintun library not found. Looked at: {tried}")


def check_sha256_form(expected: str) -> None:
    """:class:`ValueError` unless ``expected`` looks like a SHA-256: 64 hexadecimal digits."""
    if not isinstance(expected, str) or not _SHA256_FORM.fullmatch(expected.strip()):
        raise ValueError(
            f"sha256 must be a SHA-256 written as 64 hexadecimal digits (any case), such as "
            f"sha256sum or 'certutil -hashfile wintun.dll SHA256' print, not {expected!r}"
        )


def verify_sha256(path: str, expected: str) -> None:
    """Refuse ``path`` unless its SHA-256 is ``expected`` (hex, any case)."""
    from ._heldfile import HeldFile

    check_sha256_form(expected)
    with HeldFile(path) as held:
        _compare_sha256(path, held.sha256(), expected)


def _compare_sha256(path: str, actual: str, expected: str) -> None:
    if actual != expected.strip().lower():
        raise ChecksumMismatchError(
            f"{path} has SHA-256 {actual}, expected {expected.strip().lower()}; not loaded"
        )


def binary_architecture(path: str) -> str | None:
    """The architecture a PE (Windows) or ELF file is built for; None if neither or unknown."""
    with open(path, "rb") as file:
        return header_architecture(file.read(4096))


def header_architecture(head: bytes) -> str | None:
    """The architecture of a PE or ELF image from its first 4 KiB (see
    :func:`binary_architecture`)."""
    if head[:2] == b"MZ" and len(head) >= 0x40:
        offset = struct.unpack_from("<I", head, 0x3C)[0]
        if offset + 6 <= len(head) and head[offset : offset + 4] == b"PE\0\0":
            machine = struct.unpack_from("<H", head, offset + 4)[0]
            return _PE_MACHINES.get(machine, f"PE machine {machine:#06x}")
        return None
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        bits = 64 if head[4] == 2 else 32
        order = "<" if head[5] == 1 else ">"
        machine = struct.unpack_from(order + "H", head, 18)[0]
        return _ELF_MACHINES.get((machine, bits), f"ELF machine {machine} ({bits}-bit)")
    return None


def check_architecture(path: str, head: bytes | None = None) -> None:
    """Refuse a library built for another architecture than this interpreter (``head``: the
    file's first 4 KiB, if already read)."""
    found = binary_architecture(path) if head is None else header_architecture(head)
    wanted = platform.interpreter_architecture()
    if found is not None and found != wanted:
        raise WrongArchitectureError(
            f"{path} is built for {found}, but this Python is {wanted}; use the {wanted} "
            "build of wintun.dll"
        )


def ffi_error_types() -> type[Exception]:
    """The exception cffi raises for a symbol a library lacks (``ffi.error``)."""
    import _cffi_backend

    error: type[Exception] = _cffi_backend.FFI.error
    return error


def _resolvable(lib: Any, name: str) -> bool:
    try:
        getattr(lib, name)
    except (AttributeError, ffi_error_types()):
        return False
    return True


class _Candidate(NamedTuple):
    """The generation whose exports a library matches best so far, loaded."""

    score: float
    api: ApiGeneration
    ffi: Any
    lib: Any
    missing: list[str]


def open_wintun(
    path: str,
    sha256: str | None = None,
    *,
    verify_signature: bool = False,
    signer: str | None = None,
) -> LoadedLibrary:
    """Verify, load and identify the library at absolute ``path``.

    The file is held open from its first check until it is loaded
    (``wintun_cffi.platform._heldfile.HeldFile``): the SHA-256 (``sha256``), the architecture and,
    with ``verify_signature``, the Authenticode signature (Windows only; the signing
    certificate must name ``signer``, by default "WireGuard LLC") are checked on the very file
    that is loaded.
    """
    from . import _authenticode
    from ._heldfile import HeldFile

    if signer is not None and not verify_signature:
        raise ValueError("signer= is only used with verify_signature=True")
    if sha256 is not None:
        check_sha256_form(sha256)
    if verify_signature and not platform.IS_WINDOWS:
        raise NotSupportedError(
            "verify_signature=True needs Windows (WinVerifyTrust checks Authenticode signatures)"
        )
    with HeldFile(path) as held:
        if sha256 is not None:
            _compare_sha256(path, held.sha256(), sha256)
        check_architecture(path, held.head())
        if verify_signature:
            _authenticode.check_signature(
                path, held.windows_handle, signer or _authenticode.WINTUN_SIGNER
            )
        library = _load(path)
        if not held.still_at_path():
            library.ffi.dlclose(library.lib)
            raise LibraryChangedError(
                f"{path} was replaced between its checks and its load; it was unloaded again"
            )
    return library


def _load(path: str) -> LoadedLibrary:
    """Load the library at ``path`` and identify its generation by its exports."""
    best: _Candidate | None = None
    for generation in GENERATIONS:
        ffi = importlib.import_module(generation.module).ffi
        try:
            lib = platform.open_library(ffi, path)
        except OSError as error:  # not a loadable library (or a dependency is missing)
            if best is not None:
                best.ffi.dlclose(best.lib)
            raise LibraryLoadError(f"{path} could not be loaded: {error}") from error
        names = DECLARED[generation.name].exports
        missing = [name for name in names if not _resolvable(lib, name)]
        score = 1 - len(missing) / len(names)
        if best is None or score > best.score:
            if best is not None:
                best.ffi.dlclose(best.lib)
            best = _Candidate(score, generation.name, ffi, lib, missing)
        else:
            ffi.dlclose(lib)
    assert best is not None
    score, api, ffi, lib, missing = best
    if score < 0.5:
        ffi.dlclose(lib)
        raise UnknownGenerationError(
            f"{path} does not export the Wintun API of any known generation "
            f"({', '.join(API_GENERATIONS)})"
        )
    if missing:
        ffi.dlclose(lib)
        raise MissingExportsError(
            f"{path} looks like the {api!r} Wintun API but does not export: {', '.join(missing)}"
        )
    return LoadedLibrary(path, api, ffi, lib)
