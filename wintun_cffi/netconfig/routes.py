"""Routes through the adapter: which destinations the system sends into the tunnel."""

from __future__ import annotations

from .. import constants as c
from ..api import Adapter
from ..errors import AlreadyExistsError, EntryNotFoundError
from ._target import adapter_name, configurator_of
from .values import MAX_METRIC, Address, DestinationLike, Network, NextHopLike, Route

__all__ = [
    "MAX_METRIC",
    "DestinationLike",
    "NextHopLike",
    "Route",
    "add_route",
    "remove_route",
    "routes",
]


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
    if not configurator_of(adapter).add_route(route):
        raise _exists(adapter, route)
    return route


def remove_route(
    adapter: Adapter, destination: DestinationLike, *, next_hop: NextHopLike = None
) -> None:
    """Remove the route to ``destination`` via ``next_hop`` (None: on-link) from ``adapter``.

    Raises :class:`~wintun_cffi.errors.EntryNotFoundError` if the adapter has no such route.
    """
    key = Route.parse(destination, next_hop).key
    if not configurator_of(adapter).remove_route(Route(*key)):
        raise _missing(adapter, key)


def routes(adapter: Adapter) -> list[Route]:
    """The routes through ``adapter``, IPv4 first.

    On Windows that is every route of the adapter's interface, those Windows adds for its
    addresses included (the on-link prefix, host and broadcast routes, multicast). An emulated
    adapter (in-memory or Linux TUN) lists the routes added with :func:`add_route`.
    """
    found = configurator_of(adapter).routes()
    return sorted(found, key=lambda route: route.destination.version)


# -- helpers ------------------------------------------------------------------------------


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
