"""Where a configuration call goes: an emulated adapter's host, or Windows' IP Helper."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..api import Adapter
from ..errors import NotSupportedError
from ..platform import IS_WINDOWS

if TYPE_CHECKING:
    from emulator.host import Host

NATIVE_OFF_WINDOWS = "network configuration of a native adapter needs Windows (IP Helper)"


def check_adapter(adapter: object) -> None:
    """An open :class:`~wintun_cffi.api.Adapter`, or TypeError / HandleClosedError."""
    if not isinstance(adapter, Adapter):
        raise TypeError(f"adapter must be a wintun_cffi Adapter, not {type(adapter).__name__}")
    adapter.handle  # noqa: B018 - raises HandleClosedError once the adapter is closed


def host_of(adapter: Adapter) -> Host | None:
    """The host side of an emulated adapter; None for a native adapter on Windows;
    NotSupportedError for a native adapter anywhere else (the C test double)."""
    if callable(getattr(adapter.wintun.backend, "host", None)):
        return adapter.host
    if not IS_WINDOWS:
        raise NotSupportedError(NATIVE_OFF_WINDOWS)
    return None


def adapter_name(adapter: Adapter) -> str:
    """The adapter's name for a message (``"?"`` if it cannot be read)."""
    try:
        return adapter.name
    except Exception:  # noqa: BLE001 - only decorates a message
        return "?"
