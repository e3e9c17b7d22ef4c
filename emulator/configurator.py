"""The emulator's :class:`~wintun_cffi.netconfig.configurator.Configurator`: network
configuration of an emulated adapter applied to its :class:`~emulator.host.Host`.

With ``host="linux-tun"`` the host is a :class:`~emulator.linux_tun.LinuxTunHost`, which applies
addresses, MTUs and routes to the Linux kernel as well; this class does not need to know.
The emulator follows IP Helper's rules: one address row per address (whatever its prefix), one
route per destination and next hop.
"""

from __future__ import annotations

from typing import Literal

from wintun_cffi import constants as c
from wintun_cffi.errors import AdapterNotFoundError, error_from_code
from wintun_cffi.netconfig.values import DnsSettings, Interface, Route

from .host import Host


class HostConfigurator:
    """Configures the adapter whose system side is ``host``."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def addresses(self) -> list[Interface]:
        return list(self.host.interfaces)

    def add_address(self, interface: Interface) -> None:
        if any(assigned.ip == interface.ip for assigned in self.host.interfaces):
            raise error_from_code(c.ERROR_OBJECT_ALREADY_EXISTS, "CreateUnicastIpAddressEntry")
        self.host.add_address(interface)

    def remove_address(self, interface: Interface) -> bool:
        for assigned in self.host.interfaces:
            if assigned.ip == interface.ip:
                self.host.remove_address(assigned)
                return True
        return False

    def mtu(self, version: Literal[4, 6]) -> int:
        return self.host.mtu[version]

    def set_mtu(self, mtu: int, version: Literal[4, 6]) -> None:
        self.host.set_mtu(mtu, version)

    def routes(self) -> list[Route]:
        return list(self.host.routes)

    def add_route(self, route: Route) -> bool:
        if any(existing.key == route.key for existing in self.host.routes):
            return False
        self.host.add_route(route)
        return True

    def remove_route(self, route: Route) -> bool:
        for existing in self.host.routes:
            if existing.key == route.key:
                self.host.remove_route(existing)
                return True
        return False

    def dns(self) -> DnsSettings:
        return self.host.dns

    def set_dns(self, settings: DnsSettings) -> None:
        self.host.set_dns(settings)

    def wait_for_interface(self, timeout: float) -> None:
        # An emulated adapter's interface exists as long as the adapter does.
        if self.host.terminated:
            raise AdapterNotFoundError(f"the adapter {self.host.name!r} has been removed")
