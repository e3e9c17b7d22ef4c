"""Routes through the adapter: which destinations the system sends into the tunnel."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .. import constants as c
from ..api import Adapter
from ..errors import AdapterNotFoundError, AlreadyExistsError, EntryNotFoundError
from ._target import adapter_name, check_adapter, host_of

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


def add_route(
    adapter: Adapter,
    destination: DestinationLike,
    *,
    next_hop: NextHopLike = None,
    metric: int = 0,
) -> Route:
    """Route ``destination`` through ``adapter``, via ``next_hop`` (None: on-link) with
    ``metric``; returns the :class:`Route` added.

    Raises :class:`~wintun_cffi.errors.AlreadyExistsError` if the adapter already has a route
    to that destination via that next hop (whatever its metric; remove it first to change
    the metric), and ValueError / TypeError for malformed input, before anything changes.
    """
    route = Route.parse(destination, next_hop, metric)
    check_adapter(adapter)
    host = host_of(adapter)
    if host is not None:
        if any(existing.key == route.key for existing in host.routes):
            raise _exists(adapter, route)
        host.add_route(route)
        return route
    from .. import _iphlpapi

    try:
        _iphlpapi.create_route(adapter.luid, route)
    except AlreadyExistsError:
        raise _exists(adapter, route) from None
    return route


def remove_route(
    adapter: Adapter, destination: DestinationLike, *, next_hop: NextHopLike = None
) -> None:
    """Remove the route to ``destination`` via ``next_hop`` (None: on-link) from ``adapter``.

    Raises :class:`~wintun_cffi.errors.EntryNotFoundError` if the adapter has no such route.
    """
    key = Route.parse(destination, next_hop).key
    check_adapter(adapter)
    host = host_of(adapter)
    if host is not None:
        for existing in host.routes:
            if existing.key == key:
                host.remove_route(existing)
                return
        raise _missing(adapter, key)
    from .. import _iphlpapi

    try:
        _iphlpapi.delete_route(adapter.luid, Route(*key))
    except AdapterNotFoundError as error:
        if error.winerror != c.ERROR_NOT_FOUND:
            raise
        raise _missing(adapter, key) from None


def routes(adapter: Adapter) -> list[Route]:
    """The routes through ``adapter``, IPv4 first.

    On Windows that is every route of the adapter's interface, those Windows adds for its
    addresses included (the on-link prefix, host and broadcast routes, multicast). An emulated
    adapter (in-memory or Linux TUN) lists the routes added with :func:`add_route`.
    """
    check_adapter(adapter)
    host = host_of(adapter)
    if host is not None:
        found = list(host.routes)
    else:
        from .. import _iphlpapi

        found = _iphlpapi.list_routes(adapter.luid)
    return sorted(found, key=lambda route: route.destination.version)


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


def _describe(key: tuple[Network, Address | None]) -> str:
    destination, hop = key
    return f"{destination} " + (f"via {hop}" if hop is not None else "on-link")


def _exists(adapter: Adapter, route: Route) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"CreateIpForwardEntry2: the adapter {adapter_name(adapter)!r} already has a route to "
        f"{_describe(route.key)} (ERROR_OBJECT_ALREADY_EXISTS)",
        c.ERROR_OBJECT_ALREADY_EXISTS,
    )


def _missing(adapter: Adapter, key: tuple[Network, Address | None]) -> EntryNotFoundError:
    return EntryNotFoundError(
        f"DeleteIpForwardEntry2: the adapter {adapter_name(adapter)!r} has no route to "
        f"{_describe(key)} (ERROR_NOT_FOUND)"
    )
