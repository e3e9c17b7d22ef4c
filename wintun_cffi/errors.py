"""The exceptions of wintun-cffi: one family, keyed by the Win32 error code Wintun reports.

Every failure reported by Wintun (the real DLL, the C test double or the emulator) becomes a
:class:`WintunError` whose ``winerror`` is the Win32 code; :func:`error_from_code` picks the
subclass that names its meaning. Bad arguments are refused earlier, with :class:`ValueError` or
:class:`TypeError`, before anything reaches a backend.
"""

from __future__ import annotations

import errno as _errno
from typing import ClassVar

from . import constants as c


class WintunError(OSError):
    """A Wintun call failed (the generic form); ``winerror`` is the Win32 error code it reported.

    ``log`` holds the Wintun log lines captured during the failing call (may be empty).
    """

    #: The Win32 code this class stands for when none is given.
    default_code: ClassVar[int] = 0
    #: The closest POSIX errno, so that generic ``OSError`` handling makes sense of it.
    errno_equivalent: ClassVar[int] = _errno.EIO

    #: The Win32 error code.
    winerror: int
    #: The Wintun log lines captured during the failing call (may be empty).
    log: tuple[str, ...]

    def __init__(self, message: str, winerror: int | None = None) -> None:
        code = self.default_code if winerror is None else winerror
        super().__init__(self.errno_equivalent, message)
        self.winerror = code
        self.log = ()

    def __str__(self) -> str:
        text = f"[WinError {self.winerror}] {self.strerror}"
        if self.log:
            text += " (Wintun log: " + " | ".join(self.log) + ")"
        return text

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.strerror, self.winerror))


class NoMoreItemsError(WintunError):
    """The Send ring is empty (``ERROR_NO_MORE_ITEMS``); wait on the read-wait event."""

    default_code = c.ERROR_NO_MORE_ITEMS
    errno_equivalent = _errno.EAGAIN


class RingFullError(WintunError):
    """The Receive ring has no room for the packet (``ERROR_BUFFER_OVERFLOW``)."""

    default_code = c.ERROR_BUFFER_OVERFLOW
    errno_equivalent = _errno.ENOBUFS


class SessionEndedError(WintunError):
    """The adapter is terminating or the driver stopped using the session (``ERROR_HANDLE_EOF``)."""

    default_code = c.ERROR_HANDLE_EOF
    errno_equivalent = _errno.EPIPE


class SessionClosedError(SessionEndedError):
    """The session was closed by this process; calls made on it, or blocked in it, end here."""


class RingCorruptError(WintunError):
    """A ring holds a record that breaks the protocol (``ERROR_INVALID_DATA``)."""

    default_code = c.ERROR_INVALID_DATA
    errno_equivalent = _errno.EBADMSG


class AdapterNotFoundError(WintunError):
    """No adapter of that name, or the adapter is gone (``ERROR_NOT_FOUND`` from 0.14,
    ``ERROR_FILE_NOT_FOUND`` from the pool era)."""

    default_code = c.ERROR_NOT_FOUND
    errno_equivalent = _errno.ENOENT


class DriverNotLoadedError(WintunError):
    """The Wintun driver is not loaded: ``ERROR_FILE_NOT_FOUND`` from
    ``WintunGetRunningDriverVersion``. Windows loads the driver while an adapter exists."""

    default_code = c.ERROR_FILE_NOT_FOUND
    errno_equivalent = _errno.ENOENT


class EntryNotFoundError(WintunError):
    """The adapter has no such address or route (``ERROR_NOT_FOUND`` from the IP Helper call
    that would remove it); raised by :mod:`wintun_cffi.netconfig`."""

    default_code = c.ERROR_NOT_FOUND
    errno_equivalent = _errno.ENOENT


class AlreadyExistsError(WintunError):
    """The name is taken, or the adapter already has that address or route
    (``ERROR_ALREADY_EXISTS`` or ``ERROR_OBJECT_ALREADY_EXISTS``)."""

    default_code = c.ERROR_ALREADY_EXISTS
    errno_equivalent = _errno.EEXIST


class AccessDeniedError(WintunError):
    """The call needs administrator rights (``ERROR_ACCESS_DENIED``)."""

    default_code = c.ERROR_ACCESS_DENIED
    errno_equivalent = _errno.EACCES


class SessionActiveError(WintunError):
    """The adapter already has a session (``ERROR_ALREADY_INITIALIZED``)."""

    default_code = c.ERROR_ALREADY_INITIALIZED
    errno_equivalent = _errno.EBUSY


class InvalidParameterError(WintunError):
    """Wintun refused an argument (``ERROR_INVALID_PARAMETER``)."""

    default_code = c.ERROR_INVALID_PARAMETER
    errno_equivalent = _errno.EINVAL


class HandleClosedError(WintunError):
    """An adapter or session handle was used after it was closed, or given to a backend that
    did not make it (``ERROR_INVALID_HANDLE``).

    The C API would use freed or foreign memory here; wintun-cffi refuses the call instead.
    """

    default_code = c.ERROR_INVALID_HANDLE
    errno_equivalent = _errno.EBADF

    @classmethod
    def adapter_closed(cls, function: str) -> HandleClosedError:
        """The error for calling ``function`` with an adapter handle already closed."""
        return cls(f"{function}: the adapter handle is closed")

    @classmethod
    def session_ended(cls, function: str) -> HandleClosedError:
        """The error for calling ``function`` with a session handle already given to
        ``WintunEndSession`` (not :class:`SessionEndedError`, which is the driver's doing)."""
        return cls(f"{function}: the session handle is closed (WintunEndSession was called)")


class NotSupportedError(WintunError):
    """The loaded API generation has no such function (``ERROR_NOT_SUPPORTED``)."""

    default_code = c.ERROR_NOT_SUPPORTED
    errno_equivalent = _errno.EOPNOTSUPP

    @classmethod
    def for_generation(cls, function: str, api: str) -> NotSupportedError:
        """The error for calling ``function`` on a backend of generation ``api``."""
        return cls(f"{function} is not part of the Wintun API generation {api!r}")


class PacketReleasedError(ValueError):
    """A packet or send buffer was used after it was released, sent, or its session closed.

    Its memory belongs to Wintun again, so wintun-cffi refuses instead of showing stale data.
    """


class PacketInUseError(ValueError):
    """A packet cannot be given back yet: views derived from its data (slices,
    ``memoryview(data)``, arrays) or exports of it still exist, and would outlive its memory.

    Nothing changed: the packet still owns its ring space and its data stays readable. Drop
    those views (copy what you need with ``bytes()``), then release or send again.
    """

    def __init__(self, message: str, token: object = None, view: memoryview | None = None):
        super().__init__(message)
        #: The token of the packet that was refused.
        self.token = token
        #: A fresh view of the packet's data (the one handed out before had to be released to
        #: find the derived views), or None if the old one is still valid.
        self.view = view


class NotIPPacketError(ValueError):
    """A session of a driver before Wintun 0.14 refuses a packet that is not IP (or a buffer
    too short to hold one), because that driver would stop reading the ring at it and the
    session could send nothing more. Nothing reached the ring; nothing changed.
    """


class LibraryLoadError(OSError):
    """The Wintun library could not be loaded (the base of the loading errors)."""


class ChecksumMismatchError(LibraryLoadError):
    """The library's SHA-256 is not the one required; it was not loaded."""


class UntrustedLibraryError(LibraryLoadError):
    """``verify_signature=True``: the library's Authenticode signature is missing, invalid,
    not trusted by this machine, or not the expected signer's; it was not loaded."""


class LibraryChangedError(LibraryLoadError):
    """The file at the library's path was replaced between its checks and its load (seen
    off Windows, where the file cannot be locked); the library was unloaded again."""


class WrongArchitectureError(LibraryLoadError):
    """The library is built for another processor architecture than this Python."""


class MissingExportsError(LibraryLoadError):
    """The library lacks functions of the Wintun API generation it otherwise matches."""


class UnknownGenerationError(LibraryLoadError):
    """The library's exports match no known Wintun API generation."""


_CLASS_BY_CODE: dict[int, type[WintunError]] = {
    c.ERROR_NO_MORE_ITEMS: NoMoreItemsError,
    c.ERROR_BUFFER_OVERFLOW: RingFullError,
    c.ERROR_HANDLE_EOF: SessionEndedError,
    c.ERROR_INVALID_DATA: RingCorruptError,
    c.ERROR_FILE_NOT_FOUND: AdapterNotFoundError,
    c.ERROR_NOT_FOUND: AdapterNotFoundError,
    c.ERROR_ALREADY_EXISTS: AlreadyExistsError,
    c.ERROR_OBJECT_ALREADY_EXISTS: AlreadyExistsError,
    c.ERROR_ACCESS_DENIED: AccessDeniedError,
    c.ERROR_ALREADY_INITIALIZED: SessionActiveError,
    c.ERROR_INVALID_PARAMETER: InvalidParameterError,
    c.ERROR_INVALID_HANDLE: HandleClosedError,
    c.ERROR_NOT_SUPPORTED: NotSupportedError,
}


#: Where one call gives a code another meaning than the table above:
#: ``(call, code) -> (class, meaning)``.
_BY_CALL: dict[tuple[str, int], tuple[type[WintunError], str]] = {
    ("WintunGetRunningDriverVersion", c.ERROR_FILE_NOT_FOUND): (
        DriverNotLoadedError,
        "the Wintun driver is not loaded (it is while an adapter exists)",
    ),
}


_NAME_BY_CODE: dict[int, str] = {
    value: name
    for name, value in vars(c).items()
    if name.startswith("ERROR_") and isinstance(value, int)
}


_MEANING_BY_CODE: dict[int, str] = {
    c.ERROR_FILE_NOT_FOUND: "no adapter of that name, or the adapter is gone",
    c.ERROR_ACCESS_DENIED: "access denied (administrator rights are needed)",
    c.ERROR_INVALID_HANDLE: "the handle is closed or invalid",
    c.ERROR_NOT_ENOUGH_MEMORY: "not enough memory",
    c.ERROR_INVALID_DATA: "the ring is corrupt",
    c.ERROR_HANDLE_EOF: "the adapter is terminating or the session ended",
    c.ERROR_NOT_SUPPORTED: "not supported",
    c.ERROR_INVALID_PARAMETER: "invalid parameter",
    c.ERROR_BUFFER_OVERFLOW: "the ring is full (or a buffer is too small)",
    c.ERROR_ALREADY_EXISTS: "already exists",
    c.ERROR_NO_MORE_ITEMS: "no more packets in the ring",
    c.ERROR_NOT_FOUND: "no adapter of that name",
    c.ERROR_ALREADY_INITIALIZED: "the adapter already has a session",
    c.ERROR_OBJECT_ALREADY_EXISTS: "the object already exists",
    c.ERROR_INF_IN_USE_BY_DEVICES: "the driver is still in use by adapters",
}


def error_from_code(code: int, context: str = "") -> WintunError:
    """The exception for Win32 ``code``, its message prefixed by ``context`` (the call's
    name, which also picks the meaning where a call gives a code its own)."""
    cls, meaning = _BY_CALL.get((context, code)) or (
        _CLASS_BY_CODE.get(code, WintunError),
        _MEANING_BY_CODE.get(code),
    )
    if code == c.ERROR_SUCCESS:
        # The call reported failure but left no error code (its log, if any, says more).
        description = "failed without an error code (last error 0)"
    else:
        name = _NAME_BY_CODE.get(code, f"Win32 error {code:#x}")
        description = f"{name}: {meaning}" if meaning else name
    return cls(f"{context}: {description}" if context else description, code)
