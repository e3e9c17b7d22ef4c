"""Which :class:`~wintun_cffi.netconfig.configurator.Configurator` configures an adapter."""

from __future__ import annotations

from ..api import Adapter
from ..errors import NotSupportedError
from ..platform import IS_WINDOWS
from .configurator import Configurator

NATIVE_OFF_WINDOWS = "network configuration of a native adapter needs Windows (IP Helper)"


def check_adapter(adapter: object) -> None:
    """An open :class:`~wintun_cffi.api.Adapter`, or TypeError / HandleClosedError."""
    if not isinstance(adapter, Adapter):
        raise TypeError(f"adapter must be a wintun_cffi Adapter, not {type(adapter).__name__}")
    adapter.handle  # noqa: B018 - raises HandleClosedError once the adapter is closed


def configurator_of(adapter: object) -> Configurator:
    """The configurator of an open ``adapter`` (TypeError / HandleClosedError otherwise).

    A backend that owns its adapters' configuration (the emulator) gives it from its
    ``configurator(handle)``; a native adapter is the operating system's, configured through
    IP Helper on Windows and not at all elsewhere (the C test double): NotSupportedError.
    """
    check_adapter(adapter)
    assert isinstance(adapter, Adapter)
    own = getattr(adapter.wintun.backend, "configurator", None)
    if callable(own):
        configurator: Configurator = own(adapter.handle)
        return configurator
    if not IS_WINDOWS:
        raise NotSupportedError(NATIVE_OFF_WINDOWS)
    from ._iphlpapi import IpHelper

    return IpHelper(adapter.luid)


def adapter_name(adapter: Adapter) -> str:
    """The adapter's name for a message (``"?"`` if it cannot be read)."""
    try:
        return adapter.name
    except Exception:  # noqa: BLE001 - only decorates a message
        return "?"
