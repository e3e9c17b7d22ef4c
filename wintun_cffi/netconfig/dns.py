"""The adapter's DNS: the name servers the system asks through it, and its search domains.

On Windows the settings belong to the adapter's interface, per IP version: IPv4 servers go
to its IPv4 settings and IPv6 servers to its IPv6 settings, and the search domains to both.
Where ``iphlpapi.dll`` exports ``SetInterfaceDnsSettings`` (Windows 10 version 1809 and later;
documented from build 19041, version 2004) that function sets them. On older Windows
(Windows 7 to Windows 10 version 1803) the same values are written where Windows keeps them,
``NameServer`` and ``SearchList`` under
``HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\\{GUID}`` (``Tcpip6``
for IPv6), and the DNS Client service is told its parameters changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api import Adapter
from ._target import configurator_of
from .values import DnsSettings, ServerLike

__all__ = ["DnsSettings", "ServerLike", "clear_dns", "dns", "set_dns"]


def set_dns(
    adapter: Adapter, servers: Iterable[ServerLike], domains: Iterable[str] = ()
) -> DnsSettings:
    """Make ``servers`` (IPv4 and IPv6 addresses, first asked first) and ``domains`` (search
    domains) the DNS settings of ``adapter``, replacing what it had; returns them.

    ``servers`` is a list: a single address as a str is refused (TypeError), so that a
    string is never taken apart. Malformed input raises ValueError or TypeError before
    anything changes.
    """
    settings = DnsSettings.parse(servers, domains)
    _apply(adapter, settings)
    return settings


def clear_dns(adapter: Adapter) -> None:
    """Remove every DNS server and search domain of ``adapter`` (both IP versions)."""
    _apply(adapter, DnsSettings())


def dns(adapter: Adapter) -> DnsSettings:
    """The DNS settings of ``adapter``: IPv4 servers first, then IPv6 ones."""
    return configurator_of(adapter).dns()


def _apply(adapter: Adapter, settings: DnsSettings) -> None:
    configurator_of(adapter).set_dns(settings)
