"""Network configuration of an adapter: addresses, MTU, routes, DNS.

Wintun only creates the adapter; giving it addresses, routes and name servers is the
operating system's job. These functions do it for any :class:`~wintun_cffi.api.Adapter`:

* a native adapter on Windows is configured through the IP Helper API (``iphlpapi.dll``,
  keyed by the adapter's LUID; never ``netsh``), which needs administrator rights;
* an emulated adapter (:func:`wintun_cffi.emulated`) has its host side updated
  (:attr:`Adapter.host <wintun_cffi.api.Adapter.host>`): its echo responder answers for the
  addresses assigned here, and its ``routes`` and ``dns`` show what was configured. With the
  Linux kernel on the far side (``host="linux-tun"``) addresses, MTUs and routes are applied
  to the kernel too, so the kernel really sends matching traffic into the tunnel;
* a native adapter anywhere else (the C test double) cannot be configured:
  :class:`~wintun_cffi.errors.NotSupportedError`.

Right after an adapter is created Windows may not have built its IP interface yet, and
configuring it fails with ``ERROR_NOT_FOUND``; call :func:`wait_for_interface` first.
Failures are :class:`~wintun_cffi.errors.WintunError` subclasses carrying the Win32 code;
bad arguments raise :class:`ValueError` or :class:`TypeError` before anything is changed.

A VPN's configuration, end to end::

    from wintun_cffi import netconfig

    netconfig.wait_for_interface(adapter)
    netconfig.add_address(adapter, "10.8.0.2/24")             # the tunnel's own address
    netconfig.set_mtu(adapter, 1420)
    netconfig.add_route(adapter, "0.0.0.0/0", metric=5)       # everything into the tunnel
    netconfig.add_route(adapter, "fd00:8::/64")               # and one IPv6 network
    netconfig.set_dns(adapter, ["10.8.0.1"], domains=["corp.example"])
    ...
    netconfig.clear_dns(adapter)
    netconfig.remove_route(adapter, "0.0.0.0/0")

Routes without a ``next_hop`` are on-link: packets go into the tunnel addressed to their
destination, which is what a layer-3 tunnel wants. Everything configured on an adapter
disappears with it.
"""

from .dns import clear_dns, dns, set_dns
from .interface import (
    GUID_NAMESPACE,
    MAX_MTU,
    MIN_MTU,
    AddressLike,
    add_address,
    addresses,
    guid_from_name,
    mtu,
    remove_address,
    set_mtu,
    wait_for_interface,
)
from .routes import add_route, remove_route, routes
from .values import MAX_METRIC, DestinationLike, DnsSettings, NextHopLike, Route, ServerLike

__all__ = [
    "GUID_NAMESPACE",
    "MAX_METRIC",
    "MAX_MTU",
    "MIN_MTU",
    "AddressLike",
    "DestinationLike",
    "DnsSettings",
    "NextHopLike",
    "Route",
    "ServerLike",
    "add_address",
    "add_route",
    "addresses",
    "clear_dns",
    "dns",
    "guid_from_name",
    "mtu",
    "remove_address",
    "remove_route",
    "routes",
    "set_dns",
    "set_mtu",
    "wait_for_interface",
]
