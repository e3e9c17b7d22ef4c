"""wintun_cffi.netconfig: routes and DNS.

On the emulator they are checked through the host side; the IP Helper rows (route rows, DNS
settings) byte by byte on any OS; the Linux kernel's routing in tests/linux_tun (a scenario in
a namespace of its own); Windows itself at the end of tests/test_netconfig.py.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from typing import Any

import pytest

import wintun_cffi
from wintun_cffi import netconfig
from wintun_cffi.api import Adapter
from wintun_cffi.constants import (
    ERROR_NOT_FOUND,
    ERROR_OBJECT_ALREADY_EXISTS,
)
from wintun_cffi.errors import (
    AlreadyExistsError,
    EntryNotFoundError,
    HandleClosedError,
    NotSupportedError,
)
from wintun_cffi.netconfig import DnsSettings, Route, _dnsregistry, _iphlpapi


@pytest.fixture(params=["0.14", "pool"])
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    wintun = wintun_cffi.emulated(request.param)
    if request.param == "0.14":
        created = wintun.create_adapter("Vpn", tunnel_type="Test")
    else:
        created = wintun.create_adapter("Vpn", pool="Test")
    yield created
    created.close()


def state(adapter: Adapter) -> object:
    host = adapter.host
    return host.routes, host.dns, host.interfaces, host.mtu


# -- routes on the emulator ----------------------------------------------------------------


def test_add_list_and_remove_routes(adapter: Adapter) -> None:
    default = netconfig.add_route(adapter, "0.0.0.0/0", metric=5)
    assert default == Route(ipaddress.IPv4Network("0.0.0.0/0"), None, 5)
    netconfig.add_route(adapter, "fd00:8::/64", next_hop="fd00:8::1")
    netconfig.add_route(adapter, ipaddress.IPv4Network("10.9.0.0/16"), next_hop="10.8.0.1")
    netconfig.add_route(adapter, "192.0.2.7")  # one host
    listed = netconfig.routes(adapter)
    assert [str(route) for route in listed] == [
        "0.0.0.0/0 on-link metric 5",
        "10.9.0.0/16 via 10.8.0.1 metric 0",
        "192.0.2.7/32 on-link metric 0",
        "fd00:8::/64 via fd00:8::1 metric 0",
    ]
    assert set(adapter.host.routes) == set(listed)

    netconfig.remove_route(adapter, "10.9.0.0/16", next_hop="10.8.0.1")
    netconfig.remove_route(adapter, "0.0.0.0/0")  # the metric is not part of the key
    assert [str(route) for route in netconfig.routes(adapter)] == [
        "192.0.2.7/32 on-link metric 0",
        "fd00:8::/64 via fd00:8::1 metric 0",
    ]


def test_same_destination_through_two_next_hops_are_two_routes(adapter: Adapter) -> None:
    netconfig.add_route(adapter, "10.9.0.0/16", next_hop="10.8.0.1")
    netconfig.add_route(adapter, "10.9.0.0/16", next_hop="10.8.0.2")
    netconfig.add_route(adapter, "10.9.0.0/16")
    assert len(netconfig.routes(adapter)) == 3
    netconfig.remove_route(adapter, "10.9.0.0/16", next_hop="10.8.0.2")
    assert [r.next_hop for r in netconfig.routes(adapter)] == [
        ipaddress.IPv4Address("10.8.0.1"),
        None,
    ]


def test_an_unspecified_next_hop_is_on_link(adapter: Adapter) -> None:
    route = netconfig.add_route(adapter, "10.9.0.0/16", next_hop="0.0.0.0")
    assert route.next_hop is None
    with pytest.raises(AlreadyExistsError):
        netconfig.add_route(adapter, "10.9.0.0/16")
    netconfig.remove_route(adapter, "10.9.0.0/16", next_hop="0.0.0.0")
    assert netconfig.routes(adapter) == []


def test_an_existing_route_is_already_exists_and_changes_nothing(adapter: Adapter) -> None:
    netconfig.add_route(adapter, "10.9.0.0/16", next_hop="10.8.0.1", metric=3)
    before = state(adapter)
    with pytest.raises(AlreadyExistsError) as caught:
        netconfig.add_route(adapter, "10.9.0.0/16", next_hop="10.8.0.1", metric=9)
    assert caught.value.winerror == ERROR_OBJECT_ALREADY_EXISTS
    assert "already has a route to 10.9.0.0/16 via 10.8.0.1" in str(caught.value)
    assert "'Vpn'" in str(caught.value)
    assert state(adapter) == before


def test_a_missing_route_is_entry_not_found_and_changes_nothing(adapter: Adapter) -> None:
    netconfig.add_route(adapter, "10.9.0.0/16", next_hop="10.8.0.1")
    before = state(adapter)
    for destination, hop in [
        ("10.9.0.0/16", None),
        ("10.9.0.0/16", "10.8.0.2"),
        ("10.10.0.0/16", "10.8.0.1"),
    ]:
        with pytest.raises(EntryNotFoundError) as caught:
            netconfig.remove_route(adapter, destination, next_hop=hop)
        assert caught.value.winerror == ERROR_NOT_FOUND
        assert f"has no route to {destination}" in str(caught.value)
        assert "no adapter of that name" not in str(caught.value)
    assert state(adapter) == before


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("10.9.0.1/16", "has host bits set: the network is 10.9.0.0/16"),
        ("10.9.0.0/33", "not a network"),
        ("10.9.0/16", "not a network"),
        ("fd00::/129", "not a network"),
        ("vpn.example/24", "not a network"),
        ("", "not a network"),
        ("fe80::/64%3", "without a zone"),
        ("fd00::1/64", "host bits set"),
        (ipaddress.IPv6Network("fe80::%3/64"), "without a zone"),
        (ipaddress.IPv6Address("fe80::1%eth0"), "without a zone"),
    ],
)
def test_malformed_destinations_are_value_errors(
    adapter: Adapter, destination: str | ipaddress.IPv6Network | ipaddress.IPv6Address, message: str
) -> None:
    before = state(adapter)
    with pytest.raises(ValueError, match=message):
        netconfig.add_route(adapter, destination)
    with pytest.raises(ValueError, match=message):
        netconfig.remove_route(adapter, destination)
    assert state(adapter) == before


@pytest.mark.parametrize(
    ("destination", "next_hop", "message"),
    [
        (
            "10.9.0.0/16",
            "fd00::1",
            "the next hop fd00::1 is IPv6 but the destination 10.9.0.0/16 is IPv4",
        ),
        ("fd00:9::/64", "10.8.0.1", "is IPv4 but the destination fd00:9::/64 is IPv6"),
        ("10.9.0.0/16", "10.8.0", "not an IP address"),
        ("10.9.0.0/16", "224.0.0.1", "unicast"),
        ("10.9.0.0/16", "255.255.255.255", "unicast"),
        ("fd00:9::/64", "ff02::1", "unicast"),
        ("fd00:9::/64", "fe80::1%3", "without a zone"),
        ("10.9.0.0/16", "127.0.0.1", "not a loopback address"),
        ("10.9.0.0/16", ipaddress.IPv4Address("127.8.0.1"), "not a loopback address"),
        ("fd00:9::/64", "::1", "not a loopback address"),
    ],
)
def test_bad_next_hops_are_value_errors(
    adapter: Adapter, destination: str, next_hop: str | ipaddress.IPv4Address, message: str
) -> None:
    before = state(adapter)
    with pytest.raises(ValueError, match=message):
        netconfig.add_route(adapter, destination, next_hop=next_hop)
    with pytest.raises(ValueError, match=message):
        netconfig.remove_route(adapter, destination, next_hop=next_hop)
    assert state(adapter) == before


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"destination": 167772160}, TypeError),
        ({"destination": b"10.0.0.0/8"}, TypeError),
        ({"destination": None}, TypeError),
        ({"next_hop": 1}, TypeError),
        ({"metric": -1}, ValueError),
        ({"metric": 10000}, ValueError),
        ({"metric": 1.0}, TypeError),
        ({"metric": True}, TypeError),
        ({"metric": "5"}, TypeError),
    ],
)
def test_wrong_types_and_metrics_are_refused(
    adapter: Adapter, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    arguments: dict[str, Any] = {"destination": "10.9.0.0/16", **kwargs}
    before = state(adapter)
    with pytest.raises(error):
        netconfig.add_route(adapter, **arguments)
    assert state(adapter) == before


def test_metric_bounds_are_accepted(adapter: Adapter) -> None:
    netconfig.add_route(adapter, "10.9.0.0/16", metric=0)
    netconfig.add_route(adapter, "10.10.0.0/16", metric=netconfig.MAX_METRIC)
    assert [route.metric for route in netconfig.routes(adapter)] == [0, 9999]


def test_routes_and_dns_go_with_the_adapter() -> None:
    wintun = wintun_cffi.emulated()
    adapter = wintun.create_adapter("Gone", tunnel_type="Test")
    netconfig.add_route(adapter, "10.9.0.0/16")
    netconfig.set_dns(adapter, ["10.9.0.53"], ["corp.example"])
    host = adapter.host
    adapter.close()  # 0.14: closing the creating handle removes the adapter
    assert host.routes == () and host.dns == DnsSettings()
    again = wintun.create_adapter("Gone", tunnel_type="Test")
    assert netconfig.routes(again) == [] and netconfig.dns(again) == DnsSettings()
    again.close()


def test_pool_era_adapters_keep_them_until_deleted() -> None:
    wintun = wintun_cffi.emulated("pool")
    adapter = wintun.create_adapter("Kept", pool="Test")
    netconfig.add_route(adapter, "10.9.0.0/16")
    adapter.close()  # freeing a handle leaves the adapter
    reopened = wintun.open_adapter("Kept", pool="Test")
    assert [str(r) for r in netconfig.routes(reopened)] == ["10.9.0.0/16 on-link metric 0"]
    host = reopened.host
    reopened.delete()
    reopened.close()
    assert host.routes == ()


def test_terminating_the_adapter_removes_them() -> None:
    adapter = wintun_cffi.emulated().create_adapter("Dying", tunnel_type="Test")
    netconfig.add_route(adapter, "10.9.0.0/16")
    netconfig.set_dns(adapter, ["10.9.0.53"])
    host = adapter.host
    host.terminate()
    assert host.routes == () and host.dns == DnsSettings()
    adapter.close()


# -- DNS on the emulator ---------------------------------------------------------------------


def test_set_read_and_clear_dns(adapter: Adapter) -> None:
    settings = netconfig.set_dns(
        adapter,
        ["fd00:8::53", "10.8.0.53", ipaddress.IPv4Address("10.8.0.54")],
        domains=["corp.example", "Lab.Corp.Example."],
    )
    assert [str(server) for server in settings.servers] == [
        "10.8.0.53",
        "10.8.0.54",
        "fd00:8::53",
    ]  # IPv4 first, each in the order given
    assert settings.domains == ("corp.example", "Lab.Corp.Example")
    assert netconfig.dns(adapter) == settings == adapter.host.dns
    assert settings.for_version(6) == (ipaddress.IPv6Address("fd00:8::53"),)

    replaced = netconfig.set_dns(adapter, ["10.8.0.1"])  # replaces, domains included
    assert netconfig.dns(adapter) == replaced == DnsSettings((ipaddress.ip_address("10.8.0.1"),))
    netconfig.clear_dns(adapter)
    assert netconfig.dns(adapter) == DnsSettings()


def test_domains_in_unicode_become_ascii(adapter: Adapter) -> None:
    settings = netconfig.set_dns(adapter, [], ["bücher.example", "_sip.corp.example"])
    assert settings.domains == ("xn--bcher-kva.example", "_sip.corp.example")


@pytest.mark.parametrize(
    ("servers", "domains", "error", "message"),
    [
        ("10.8.0.53", [], TypeError, r"write \['10.8.0.53'\]"),
        (None, [], TypeError, "list of addresses"),
        ([53], [], TypeError, "str or an ipaddress"),
        (["dns.example"], [], ValueError, "not an IP address: 'dns.example'"),
        (["10.8.0.300"], [], ValueError, "not an IP address"),
        (["10.8.0.0/24"], [], ValueError, "not an IP address"),
        (["0.0.0.0"], [], ValueError, "unicast"),
        (["224.0.0.251"], [], ValueError, "unicast"),
        (["ff02::fb"], [], ValueError, "unicast"),
        (["fe80::1%3"], [], ValueError, "zone"),
        (["10.8.0.53", "10.8.0.53"], [], ValueError, "listed twice"),
        ([], "corp.example", TypeError, r"write \['corp.example'\]"),
        ([], [None], TypeError, "must be a str"),
        ([], [""], ValueError, "not a domain name"),
        ([], ["corp..example"], ValueError, "not a domain name"),
        ([], ["-corp.example"], ValueError, "not a domain name"),
        ([], ["corp,example"], ValueError, "not a domain name"),
        ([], ["corp example"], ValueError, "not a domain name"),
        ([], ["a" * 64 + ".example"], ValueError, "not a domain name"),
        ([], [("a" * 60 + ".") * 5 + "example"], ValueError, "not a domain name"),
        ([], ["corp.example", "CORP.example"], ValueError, "listed twice"),
    ],
)
def test_bad_dns_settings_are_refused_and_change_nothing(
    adapter: Adapter, servers: Any, domains: Any, error: type[Exception], message: str
) -> None:
    netconfig.set_dns(adapter, ["10.8.0.1"], ["kept.example"])
    before = state(adapter)
    with pytest.raises(error, match=message):
        netconfig.set_dns(adapter, servers, domains)
    assert state(adapter) == before


# -- every call, every adapter ---------------------------------------------------------------


def every_call(adapter: Adapter) -> list[tuple[Any, tuple[Any, ...]]]:
    return [
        (netconfig.add_route, (adapter, "10.9.0.0/16")),
        (netconfig.remove_route, (adapter, "10.9.0.0/16")),
        (netconfig.routes, (adapter,)),
        (netconfig.set_dns, (adapter, ["10.8.0.53"])),
        (netconfig.clear_dns, (adapter,)),
        (netconfig.dns, (adapter,)),
    ]


def test_closed_adapter_is_handle_closed() -> None:
    adapter = wintun_cffi.emulated().create_adapter("Closed", tunnel_type="Test")
    adapter.close()
    for function, args in every_call(adapter):
        with pytest.raises(HandleClosedError):
            function(*args)


def test_not_an_adapter_is_type_error() -> None:
    for function, args in every_call("Vpn"):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be a wintun_cffi Adapter"):
            function(*args)


def test_native_adapter_off_windows_is_not_supported(tmp_path_factory: Any) -> None:
    import sys

    from wintun_cffi.conformance.double.build import build_double, compiler_available

    if sys.platform == "win32" or not compiler_available():
        pytest.skip("needs the C test double (a C compiler, not Windows)")
    wintun = wintun_cffi.load(str(build_double("0.14", tmp_path_factory.mktemp("double"))))
    with wintun.create_adapter("NativeRoutes", tunnel_type="Test") as adapter:
        for function, args in every_call(adapter):
            with pytest.raises(NotSupportedError, match="needs Windows"):
                function(*args)
        with pytest.raises(ValueError):  # bad input is still refused first
            netconfig.add_route(adapter, "10.9.0.1/16")


# -- the IP Helper rows, byte by byte (any OS) -----------------------------------------------


def route_row_bytes(route: Route, luid: int) -> bytes:
    ffi = _iphlpapi.declarations()
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    _iphlpapi.fill_route_row(row, luid, route)
    return bytes(ffi.buffer(row))


def test_ipv4_route_row_bytes() -> None:
    route = Route.parse("10.9.0.0/16", "10.8.0.1", 7)
    raw = route_row_bytes(route, 0x0035_0000_1200_0000)
    assert struct.unpack_from("<Q", raw, 0)[0] == 0x0035_0000_1200_0000  # InterfaceLuid
    assert struct.unpack_from("<H", raw, 12)[0] == 2  # DestinationPrefix: Windows AF_INET
    assert raw[16:20] == bytes([10, 9, 0, 0])
    assert raw[12 + 28] == 16  # PrefixLength
    assert struct.unpack_from("<H", raw, 44)[0] == 2  # NextHop
    assert raw[48:52] == bytes([10, 8, 0, 1])
    assert struct.unpack_from("<I", raw, 84)[0] == 7  # Metric


def test_ipv6_on_link_route_row_has_an_unspecified_ipv6_next_hop() -> None:
    raw = route_row_bytes(Route.parse("fd00:9::/48"), 9)
    assert struct.unpack_from("<H", raw, 12)[0] == 23  # Windows AF_INET6
    assert raw[20:36] == ipaddress.IPv6Address("fd00:9::").packed
    assert raw[40] == 48
    assert struct.unpack_from("<H", raw, 44)[0] == 23  # the family is set, the address zero
    assert raw[52:68] == bytes(16)


@pytest.mark.parametrize(
    "route",
    [
        Route.parse("0.0.0.0/0", None, 5),
        Route.parse("10.9.0.0/16", "10.8.0.1"),
        Route.parse("::/0", "fd00::1", 9999),
        Route.parse("fd00:9::7/128"),
    ],
    ids=str,
)
def test_route_rows_read_back(route: Route) -> None:
    ffi = _iphlpapi.declarations()
    row = ffi.new("MIB_IPFORWARD_ROW2 *")
    _iphlpapi.fill_route_row(row, 1, route)
    assert _iphlpapi.route_from_row(row) == route


def test_dns_settings_structure() -> None:
    ffi = _iphlpapi.declarations()
    for version, flags in [(4, 0x2 | 0x4), (6, 0x1 | 0x2 | 0x4)]:
        settings = ffi.new("DNS_INTERFACE_SETTINGS *")
        keep: list[Any] = []
        _iphlpapi.fill_dns_settings(settings, version, "10.8.0.53,10.8.0.54", "corp.example", keep)
        raw = bytes(ffi.buffer(settings))
        assert struct.unpack_from("<IxxxxQ", raw, 0) == (1, flags)  # Version, Flags
        assert ffi.string(settings.NameServer) == "10.8.0.53,10.8.0.54"
        assert ffi.string(settings.SearchList) == "corp.example"
        name_server = ffi.cast("uint8_t *", settings.NameServer)
        assert bytes(ffi.buffer(name_server, 6)) == "10.".encode("utf-16-le")  # UTF-16
        assert settings.Domain == ffi.NULL and settings.ProfileNameServer == ffi.NULL


def test_guid_text_is_the_registry_form() -> None:
    ffi = _iphlpapi.declarations()
    guid = ffi.new("GUID *")
    guid.Data1, guid.Data2, guid.Data3 = 0xDEADBABE, 0xCAFE, 0xBEEF
    guid.Data4 = list(bytes.fromhex("0123456789abcdef"))
    assert _iphlpapi.guid_text(guid) == "{DEADBABE-CAFE-BEEF-0123-456789ABCDEF}"


def test_windows_lists_split_on_commas_and_spaces() -> None:
    assert _iphlpapi.split_list("10.0.0.1,10.0.0.2 fd00::1") == ["10.0.0.1", "10.0.0.2", "fd00::1"]
    assert _iphlpapi.split_list("") == []


def test_registry_keys_of_the_fallback() -> None:
    guid = "{DEADBABE-CAFE-BEEF-0123-456789ABCDEF}"
    assert _dnsregistry.interface_key(4, guid) == (
        "SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\\" + guid
    )
    assert _dnsregistry.interface_key(6, guid).startswith(
        "SYSTEM\\CurrentControlSet\\Services\\Tcpip6\\Parameters\\Interfaces\\{"
    )
