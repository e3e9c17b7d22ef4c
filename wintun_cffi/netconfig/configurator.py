"""What configures an adapter's IP interface: the :class:`Configurator` protocol.

Each backend owns the object that applies configuration to its adapters: the emulator's host
(:class:`emulator.configurator.HostConfigurator`; with ``host="linux-tun"`` the host applies
it to the Linux kernel too) and, for a native adapter on Windows, IP Helper
(:class:`wintun_cffi.netconfig._iphlpapi.IpHelper`). The functions of
:mod:`wintun_cffi.netconfig` check their arguments, ask for the adapter's configurator once and
call it; they never ask which backend it is.
"""

from __future__ import annotations

from typing import Literal, Protocol

from .values import DnsSettings, Interface, Route


class Configurator(Protocol):
    """Applies configuration to one adapter's IP interface. Arguments arrive checked."""

    def addresses(self) -> list[Interface]:
        """The unicast addresses with their on-link prefixes, in any order."""
        ...

    def add_address(self, interface: Interface) -> None:
        """Assign ``interface``; :class:`~wintun_cffi.errors.AlreadyExistsError` if the
        address (whatever its prefix) is assigned already."""
        ...

    def remove_address(self, interface: Interface) -> bool:
        """Unassign the address of ``interface`` (its prefix ignored); False if it was not
        assigned."""
        ...

    def mtu(self, version: Literal[4, 6]) -> int:
        """The MTU of one IP version."""
        ...

    def set_mtu(self, mtu: int, version: Literal[4, 6]) -> None:
        """Set the MTU of one IP version."""
        ...

    def routes(self) -> list[Route]:
        """The routes through the adapter, in any order."""
        ...

    def add_route(self, route: Route) -> bool:
        """Add ``route``; False if a route with its destination and next hop exists."""
        ...

    def remove_route(self, route: Route) -> bool:
        """Remove the route with the destination and next hop of ``route``; False if there
        is none."""
        ...

    def dns(self) -> DnsSettings:
        """The DNS servers (IPv4 first) and search domains."""
        ...

    def set_dns(self, settings: DnsSettings) -> None:
        """Replace the DNS servers and search domains."""
        ...

    def wait_for_interface(self, timeout: float) -> None:
        """Return once the IP interface exists; :class:`TimeoutError` after ``timeout``
        seconds, :class:`~wintun_cffi.errors.AdapterNotFoundError` if it never will."""
        ...
