"""wintun-cffi: drive Wintun, the layer-3 TUN driver for Windows, from Python.

The binding is a cffi ABI-mode binding of ``wintun.dll``; the :mod:`emulator` package is a
pure-Python Wintun for developing and testing on any OS.
"""

from .errors import (
    AccessDeniedError,
    AdapterNotFoundError,
    AlreadyExistsError,
    HandleClosedError,
    InvalidParameterError,
    NoMoreItemsError,
    NotSupportedError,
    RingCorruptError,
    RingFullError,
    SessionActiveError,
    SessionClosedError,
    SessionEndedError,
    WintunError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AdapterNotFoundError",
    "AlreadyExistsError",
    "HandleClosedError",
    "InvalidParameterError",
    "NoMoreItemsError",
    "NotSupportedError",
    "RingCorruptError",
    "RingFullError",
    "SessionActiveError",
    "SessionClosedError",
    "SessionEndedError",
    "WintunError",
    "__version__",
]
