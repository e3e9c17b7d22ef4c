"""The values of network configuration: routes, DNS settings, interface addresses.

Plain frozen values parsed from text or :mod:`ipaddress` values, shared by everything that
configures an adapter (:mod:`wintun_cffi.netconfig`, the IP Helper and the emulator's host). They
import nothing of the library's API, so every layer that configures may use them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: What ``destination`` accepts: ``"10.0.0.0/8"``, ``"::/0"``, an :mod:`ipaddress` network, or
#: an address (a route to that one host: /32 or /128).
DestinationLike = str | Network | Address
#: What ``next_hop`` accepts: an address of the destination's family, or None (on-link).
NextHopLike = str | Address | None

#: Largest route metric accepted (the range Windows' own route tools take: 0 to 9999).
MAX_METRIC = 9999


@dataclass(frozen=True)
class Route:
    """A route through an adapter.

    ``destination`` is the network whose traffic the route sends into the adapter;
    ``next_hop`` the gateway on the far side, or None for a route "on-link" (packets go into
    the tunnel addressed to their destination, which is what a tunnel usually wants);
    ``metric`` the route's preference (lower wins; on Windows it is added to the interface's
    metric). Build one from text with :meth:`parse`.
    """

    destination: Network
    next_hop: Address | None = None
    metric: int = 0

    @classmethod
    def parse(
        cls, destination: DestinationLike, next_hop: NextHopLike = None, metric: int = 0
    ) -> Route:
        """A :class:`Route` from text or :mod:`ipaddress` values; ValueError or TypeError
        naming the problem otherwise (host bits set, a next hop of the other family, ...).

        An unspecified next hop (``"0.0.0.0"``, ``"::"``) means on-link, as in IP Helper,
        and becomes None.
        """
        network = _parse_destination(destination)
        hop = _parse_next_hop(next_hop, network)
        _check_metric(metric)
        return cls(network, hop, metric)

    @property
    def key(self) -> tuple[Network, Address | None]:
        """What identifies the route on its adapter: destination and next hop (not the
        metric), as IP Helper keys its rows."""
        return self.destination, self.next_hop

    def __str__(self) -> str:
        via = f"via {self.next_hop}" if self.next_hop is not None else "on-link"
        return f"{self.destination} {via} metric {self.metric}"


#: What a server in :func:`~wintun_cffi.netconfig.set_dns` may be: ``"10.6.7.1"``, ``"fd00::1"`` or an address.
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


# -- helpers ------------------------------------------------------------------------------


def _parse_destination(destination: object) -> Network:
    if not isinstance(
        destination,
        (
            str,
            ipaddress.IPv4Network,
            ipaddress.IPv6Network,
            ipaddress.IPv4Address,
            ipaddress.IPv6Address,
        ),
    ):
        raise TypeError(
            f"destination must be a str or an ipaddress network, not {type(destination).__name__}"
        )
    if isinstance(destination, str) and "%" in destination:
        raise ValueError(f"give the destination without a zone: {destination!r}")
    try:
        network = ipaddress.ip_network(destination)
    except ValueError as error:
        if isinstance(destination, str) and "has host bits set" in str(error):
            network = ipaddress.ip_network(destination, strict=False)
            raise ValueError(
                f"{destination!r} has host bits set: the network is {network}"
            ) from None
        raise ValueError(f"not a network (address/prefix): {destination!r}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.scope_id:
        raise ValueError(f"give the destination without a zone: {destination!r}")
    return network


def _parse_next_hop(next_hop: object, destination: Network) -> Address | None:
    if next_hop is None:
        return None
    if not isinstance(next_hop, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise TypeError(
            f"next_hop must be a str, an ipaddress address or None, not {type(next_hop).__name__}"
        )
    try:
        hop = ipaddress.ip_address(next_hop)
    except ValueError:
        raise ValueError(f"next_hop is not an IP address: {next_hop!r}") from None
    if hop.version != destination.version:
        raise ValueError(
            f"the next hop {hop} is IPv{hop.version} but the destination {destination} is "
            f"IPv{destination.version}"
        )
    if isinstance(hop, ipaddress.IPv6Address) and hop.scope_id is not None:
        raise ValueError(f"give the next hop without a zone (the adapter is the zone): {hop}")
    if hop.is_unspecified:
        return None
    if hop.is_multicast or (hop.version == 4 and hop == ipaddress.IPv4Address(0xFFFFFFFF)):
        raise ValueError(f"a next hop must be a unicast address, not {hop}")
    if hop.is_loopback:
        raise ValueError(f"a next hop must be across the tunnel, not a loopback address: {hop}")
    return hop


def _check_metric(metric: object) -> None:
    if not isinstance(metric, int) or isinstance(metric, bool):
        raise TypeError(f"metric must be an int, not {type(metric).__name__}")
    if not 0 <= metric <= MAX_METRIC:
        raise ValueError(f"metric must be 0 to {MAX_METRIC}, not {metric}")


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
