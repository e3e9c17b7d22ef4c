"""wintun-cffi: drive Wintun, the layer-3 TUN driver for Windows, from Python.

:func:`load` binds the real ``wintun.dll`` (or any library exporting its ABI) through cffi;
:func:`emulated` gives the same API over the pure-Python :mod:`emulator`, on any OS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .api import Adapter, Wintun
from .constants import ApiGeneration
from .errors import (
    AccessDeniedError,
    AdapterNotFoundError,
    AlreadyExistsError,
    ChecksumMismatchError,
    DriverNotLoadedError,
    EntryNotFoundError,
    HandleClosedError,
    InvalidParameterError,
    LibraryChangedError,
    LibraryLoadError,
    MissingExportsError,
    NoMoreItemsError,
    NotIPPacketError,
    NotSupportedError,
    PacketInUseError,
    PacketReleasedError,
    RingCorruptError,
    RingFullError,
    SessionActiveError,
    SessionClosedError,
    SessionEndedError,
    UnknownGenerationError,
    UntrustedLibraryError,
    WintunError,
    WrongArchitectureError,
)
from .session import ReceivedPacket, SendBuffer, Session

if TYPE_CHECKING:
    from os import PathLike

#: The package version, and the only place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"


def emulated(
    api: ApiGeneration = "0.14",
    *,
    host: Literal["memory", "linux-tun"] = "memory",
    release: str | None = None,
) -> Wintun:
    """A :class:`Wintun` over a fresh pure-Python emulator of API generation ``api``.

    Each adapter's :attr:`Adapter.host` plays the operating system on the far side: an
    in-memory host, or with ``host="linux-tun"`` the Linux kernel through a TUN interface
    named after the adapter (root only). ``release`` picks the exact Wintun release of the
    generation (e.g. ``"0.9.1"``); by default its newest.
    """
    from emulator import Emulator

    return Wintun(Emulator(api, host=host, release=release))


__all__ = [
    "AccessDeniedError",
    "Adapter",
    "AdapterNotFoundError",
    "AlreadyExistsError",
    "ChecksumMismatchError",
    "DriverNotLoadedError",
    "EntryNotFoundError",
    "HandleClosedError",
    "InvalidParameterError",
    "LibraryChangedError",
    "LibraryLoadError",
    "MissingExportsError",
    "NoMoreItemsError",
    "NotIPPacketError",
    "NotSupportedError",
    "PacketInUseError",
    "PacketReleasedError",
    "ReceivedPacket",
    "RingCorruptError",
    "RingFullError",
    "SendBuffer",
    "Session",
    "SessionActiveError",
    "SessionClosedError",
    "SessionEndedError",
    "UnknownGenerationError",
    "UntrustedLibraryError",
    "Wintun",
    "WintunError",
    "WrongArchitectureError",
    "__version__",
    "emulated",
    "load",
]


def load(
    path: str | PathLike[str] | None = None,
    *,
    sha256: str | None = None,
    verify_signature: bool = False,
    signer: str | None = None,
) -> Wintun:
    """Load ``wintun.dll`` (or a library exporting its ABI) and return a :class:`Wintun`.

    Looks at ``path``; else ``$WINTUN_DLL``; else ``wintun.dll`` beside the running program;
    else ``wintun_cffi/bin/<arch>/wintun.dll``; else the per-user folder where
    ``python -m wintun_cffi install-dll`` puts the official DLL
    (:func:`~wintun_cffi.platform.loader.user_directory`).

    With ``sha256`` the file's SHA-256 must be that one. With ``verify_signature=True``
    (Windows) its Authenticode signature must be valid, trusted by this machine and made by
    ``signer`` (default "WireGuard LLC", who signs the official ``wintun.dll``); see
    :ref:`verify-signature` for what that proves. Both are checked on the file held
    open until it is loaded, so it cannot be swapped in between. Raises
    :class:`FileNotFoundError` listing every place looked at, or a
    :class:`~wintun_cffi.errors.LibraryLoadError` naming what is wrong with the file
    (:class:`~wintun_cffi.errors.UntrustedLibraryError` for the signature).
    """
    from .native import NativeBackend
    from .platform.loader import find_library, open_wintun

    library = open_wintun(
        find_library(path), sha256, verify_signature=verify_signature, signer=signer
    )
    return Wintun(NativeBackend(library), path=library.path)
