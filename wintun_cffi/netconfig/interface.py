"""The adapter's IP interface: addresses, MTU, waiting for it to exist, a GUID from a name."""

from __future__ import annotations

import ipaddress
import math
import socket
import uuid
from typing import Literal

from .. import constants as c
from .. import validate
from ..api import Adapter
from ..errors import EntryNotFoundError
from ._target import adapter_name, configurator_of
from .values import Interface

#: What the address functions accept: ``"10.6.7.7/24"``, ``"fd00::7/64"`` or an
#: :mod:`ipaddress` interface or address (an address without a prefix gets /32 or /128).
AddressLike = (
    str
    | ipaddress.IPv4Interface
    | ipaddress.IPv6Interface
    | ipaddress.IPv4Address
    | ipaddress.IPv6Address
)

#: The namespace of :func:`~wintun_cffi.netconfig.guid_from_name` (fixed for this project:
#: changing it would change every derived GUID).
GUID_NAMESPACE = uuid.UUID("9c0902b6-5100-4315-b59b-33077f3ca593")

#: Smallest MTU per IP version: :data:`wintun_cffi.constants.MIN_MTU` (576 for IPv4, 1280
#: for IPv6).
MIN_MTU = c.MIN_MTU
#: Largest MTU: the largest IP packet.
MAX_MTU = c.MAX_IP_PACKET_SIZE


def guid_from_name(name: str) -> uuid.UUID:
    """A GUID derived from the adapter name: the same name gives the same GUID, on every run.

    Windows keys an adapter's network profile (its network category, firewall profile and
    name in the Network and Sharing Center) by the adapter GUID. A random GUID on each run
    makes Windows treat the adapter as a new network every time (a new "Network N" profile,
    the firewall's Public defaults again); passing this GUID to
    :meth:`~wintun_cffi.api.Wintun.create_adapter` keeps one profile across runs.

    The name is compared as Windows compares adapter names, ignoring case (each character
    upper-cased on its own, as Windows' case table does), so ``"Demo"`` and ``"DEMO"`` give
    the same GUID. It is a version-5 UUID in :data:`~wintun_cffi.netconfig.interface.GUID_NAMESPACE`.
    """
    validate.check_adapter_name(name)
    return uuid.uuid5(GUID_NAMESPACE, validate.name_key(name))


def add_address(adapter: Adapter, address: AddressLike) -> None:
    """Assign a unicast ``address`` with its on-link prefix (``"10.6.7.7/24"``) to ``adapter``.

    On Windows the address is usable at once (no duplicate address detection wait). Raises
    :class:`~wintun_cffi.errors.AlreadyExistsError` if the adapter already has that address
    (whatever its prefix), :class:`~wintun_cffi.errors.AdapterNotFoundError` if the interface
    does not exist (yet: see :func:`~wintun_cffi.netconfig.wait_for_interface`) and
    :class:`~wintun_cffi.errors.AccessDeniedError` without administrator rights.
    """
    interface = _parse_address(address)
    configurator_of(adapter).add_address(interface)


def remove_address(adapter: Adapter, address: AddressLike) -> None:
    """Remove ``address`` from ``adapter``; the prefix, if given, is ignored.

    Raises :class:`~wintun_cffi.errors.EntryNotFoundError` (``ERROR_NOT_FOUND``) if the
    adapter does not have that address.
    """
    interface = _parse_address(address)
    if not configurator_of(adapter).remove_address(interface):
        raise EntryNotFoundError(
            f"DeleteUnicastIpAddressEntry: {interface.ip} is not assigned to the adapter "
            f"{adapter_name(adapter)!r} (ERROR_NOT_FOUND)"
        )


def set_mtu(adapter: Adapter, mtu: int, family: socket.AddressFamily = socket.AF_INET) -> None:
    """Set the ``adapter``'s MTU for one IP version (``family``: ``socket.AF_INET`` or
    ``socket.AF_INET6``).

    ``mtu`` is at least 576 for IPv4 and 1280 for IPv6, and at most 65535.
    """
    version = _family_version(family)
    validate.check_mtu(mtu, version)
    configurator_of(adapter).set_mtu(mtu, version)


def addresses(adapter: Adapter) -> list[Interface]:
    """The unicast addresses of ``adapter`` with their on-link prefixes, IPv4 first.

    On Windows that is every address of the adapter's interface, those Windows assigns
    itself (IPv6 link-local) included; an emulated adapter lists those added with
    :func:`add_address`.
    """
    found = configurator_of(adapter).addresses()
    return sorted(found, key=lambda interface: interface.version)


def mtu(adapter: Adapter, family: socket.AddressFamily = socket.AF_INET) -> int:
    """The ``adapter``'s MTU for one IP version (``socket.AF_INET`` or ``socket.AF_INET6``)."""
    version = _family_version(family)
    return configurator_of(adapter).mtu(version)


def wait_for_interface(adapter: Adapter, timeout: float = 5.0) -> None:
    """Wait until the operating system has created ``adapter``'s IP interface.

    Windows builds the interface shortly after the adapter; until then configuring it fails
    with ``ERROR_NOT_FOUND``. Polls (every 10 ms at first, backing off to every 0.1 s) for
    up to ``timeout`` seconds and raises :class:`TimeoutError` if the interface is still
    missing then. An emulated adapter's interface
    exists as long as the adapter does.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be a non-negative number of seconds, not {timeout!r}")
    configurator_of(adapter).wait_for_interface(timeout)


# -- helpers ------------------------------------------------------------------------------


def _parse_address(address: object) -> Interface:
    """``address`` as an interface; ValueError/TypeError if it is not a unicast one."""
    if not isinstance(
        address,
        (
            str,
            ipaddress.IPv4Interface,
            ipaddress.IPv6Interface,
            ipaddress.IPv4Address,
            ipaddress.IPv6Address,
        ),
    ):
        raise TypeError(
            f"address must be a str or an ipaddress interface, not {type(address).__name__}"
        )
    try:
        interface = ipaddress.ip_interface(address)
    except ValueError:
        raise ValueError(f"not an IP address with an optional prefix: {address!r}") from None
    if interface.ip.is_multicast or interface.ip.is_unspecified:
        raise ValueError(f"not a unicast address: {interface.ip}")
    if isinstance(interface, ipaddress.IPv6Interface) and interface.scope_id is not None:
        raise ValueError(f"give the address without a zone (the adapter is the zone): {address!r}")
    return interface


def _family_version(family: object) -> Literal[4, 6]:
    """4 or 6 for ``socket.AF_INET`` / ``socket.AF_INET6``."""
    if family == socket.AF_INET:
        return 4
    if family == socket.AF_INET6:
        return 6
    raise ValueError(f"family must be socket.AF_INET or socket.AF_INET6, not {family!r}")
