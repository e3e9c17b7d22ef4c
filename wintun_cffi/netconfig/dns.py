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

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..api import Adapter
from ._target import check_adapter, host_of

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: What a server in :func:`set_dns` may be: ``"10.6.7.1"``, ``"fd00::1"`` or an address.
ServerLike = str | Address

#: One label of a domain name: letters, digits, hyphens (not first or last), underscores.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


@dataclass(frozen=True)
class DnsSettings:
    """An adapter's DNS servers and search domains.

    The servers are asked in order, IPv4 servers first: Windows keeps the servers of each IP
    version apart, so that is the order every backend reports.
    """

    servers: tuple[Address, ...] = ()
    domains: tuple[str, ...] = ()

    @classmethod
    def parse(cls, servers: Iterable[ServerLike], domains: Iterable[str] = ()) -> DnsSettings:
        """Settings from text or :mod:`ipaddress` values; ValueError or TypeError naming the
        first problem otherwise. Non-ASCII domains are converted to their ASCII (IDNA) form
        and a trailing dot is dropped."""
        return cls(_parse_servers(servers), _parse_domains(domains))

    def for_version(self, version: int) -> tuple[Address, ...]:
        """The servers of one IP version (4 or 6), in order."""
        return tuple(server for server in self.servers if server.version == version)


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
    check_adapter(adapter)
    host = host_of(adapter)
    if host is not None:
        return host.dns
    from .. import _iphlpapi

    return _iphlpapi.get_dns(adapter.luid)


def _apply(adapter: Adapter, settings: DnsSettings) -> None:
    check_adapter(adapter)
    host = host_of(adapter)
    if host is not None:
        host.set_dns(settings)
        return
    from .. import _iphlpapi

    _iphlpapi.set_dns(adapter.luid, settings)


def _parse_servers(servers: object) -> tuple[Address, ...]:
    if isinstance(servers, (str, bytes)) or not isinstance(servers, Iterable):
        raise TypeError(
            f"servers must be a list of addresses, not a {type(servers).__name__}"
            + (f" (write [{servers!r}])" if isinstance(servers, str) else "")
        )
    parsed: list[Address] = []
    for server in servers:
        if not isinstance(server, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
            raise TypeError(
                f"a DNS server must be a str or an ipaddress address, not {type(server).__name__}"
            )
        try:
            address = ipaddress.ip_address(server)
        except ValueError:
            raise ValueError(f"not an IP address: {server!r} (DNS servers are addresses)") from None
        if address.is_unspecified or address.is_multicast:
            raise ValueError(f"a DNS server must be a unicast address, not {address}")
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise ValueError(f"give the DNS server without a zone: {server!r}")
        if address in parsed:
            raise ValueError(f"the DNS server {address} is listed twice")
        parsed.append(address)
    # Windows keeps each version's servers apart: IPv4 first, each list in the order given.
    return tuple(sorted(parsed, key=lambda address: address.version))


def _parse_domains(domains: object) -> tuple[str, ...]:
    if isinstance(domains, (str, bytes)) or not isinstance(domains, Iterable):
        raise TypeError(
            f"domains must be a list of domain names, not a {type(domains).__name__}"
            + (f" (write [{domains!r}])" if isinstance(domains, str) else "")
        )
    parsed: list[str] = []
    for domain in domains:
        name = _check_domain(domain)
        if name.lower() in (known.lower() for known in parsed):
            raise ValueError(f"the search domain {name!r} is listed twice")
        parsed.append(name)
    return tuple(parsed)


def _check_domain(domain: object) -> str:
    """``domain`` in ASCII without a trailing dot; ValueError if it is no domain name."""
    if not isinstance(domain, str):
        raise TypeError(f"a search domain must be a str, not {type(domain).__name__}")
    name = domain[:-1] if domain.endswith(".") else domain
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"not a domain name: {domain!r}") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(
            f"not a domain name: {domain!r} (dot-separated labels of 1 to 63 letters, "
            "digits, hyphens or underscores, at most 253 characters)"
        )
    return name
