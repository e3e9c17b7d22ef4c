"""wintun_cffi.netconfig: addresses, MTU, waiting for the interface, GUIDs from names.

The IP Helper declarations are checked on every OS against the x64 layout of the Windows SDK
(the numbers below were read from the SDK's and mingw-w64's netioapi.h / nldef.h and agree
with the size tests of WireGuard's winipcfg for amd64). The emulator path is checked end to
end through a session; the Windows path only on Windows, elevated, with wintun.dll.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import wintun_cffi
from tests import mingw_layout
from wintun_cffi import ip, netconfig
from wintun_cffi.api import Adapter, Wintun
from wintun_cffi.constants import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_FOUND,
    ERROR_OBJECT_ALREADY_EXISTS,
)
from wintun_cffi.errors import (
    AccessDeniedError,
    AdapterNotFoundError,
    AlreadyExistsError,
    EntryNotFoundError,
    HandleClosedError,
    LibraryLoadError,
    NotSupportedError,
    WintunError,
)
from wintun_cffi.netconfig import _iphlpapi

WINDOWS_REASON = "needs Windows with administrator rights and wintun.dll"

# -- struct layout (every OS) --------------------------------------------------------------

#: (type, field) -> offset on x64 Windows.
OFFSETS = {
    ("SOCKADDR_IN", "sin_addr"): 4,
    ("SOCKADDR_IN6", "sin6_flowinfo"): 4,
    ("SOCKADDR_IN6", "sin6_addr"): 8,
    ("SOCKADDR_IN6", "sin6_scope_id"): 24,
    ("MIB_UNICASTIPADDRESS_ROW", "InterfaceLuid"): 32,
    ("MIB_UNICASTIPADDRESS_ROW", "InterfaceIndex"): 40,
    ("MIB_UNICASTIPADDRESS_ROW", "PrefixOrigin"): 44,
    ("MIB_UNICASTIPADDRESS_ROW", "SuffixOrigin"): 48,
    ("MIB_UNICASTIPADDRESS_ROW", "ValidLifetime"): 52,
    ("MIB_UNICASTIPADDRESS_ROW", "PreferredLifetime"): 56,
    ("MIB_UNICASTIPADDRESS_ROW", "OnLinkPrefixLength"): 60,
    ("MIB_UNICASTIPADDRESS_ROW", "SkipAsSource"): 61,
    ("MIB_UNICASTIPADDRESS_ROW", "DadState"): 64,
    ("MIB_UNICASTIPADDRESS_ROW", "ScopeId"): 68,
    ("MIB_UNICASTIPADDRESS_ROW", "CreationTimeStamp"): 72,
    ("MIB_IPINTERFACE_ROW", "InterfaceLuid"): 8,
    ("MIB_IPINTERFACE_ROW", "InterfaceIndex"): 16,
    ("MIB_IPINTERFACE_ROW", "InterfaceIdentifier"): 24,
    ("MIB_IPINTERFACE_ROW", "AdvertisingEnabled"): 40,
    ("MIB_IPINTERFACE_ROW", "AdvertiseDefaultRoute"): 48,
    ("MIB_IPINTERFACE_ROW", "RouterDiscoveryBehavior"): 52,
    ("MIB_IPINTERFACE_ROW", "LinkLocalAddressBehavior"): 72,
    ("MIB_IPINTERFACE_ROW", "ZoneIndices"): 80,
    ("MIB_IPINTERFACE_ROW", "SitePrefixLength"): 144,
    ("MIB_IPINTERFACE_ROW", "Metric"): 148,
    ("MIB_IPINTERFACE_ROW", "NlMtu"): 152,
    ("MIB_IPINTERFACE_ROW", "Connected"): 156,
    ("MIB_IPINTERFACE_ROW", "ReachableTime"): 160,
    ("MIB_IPINTERFACE_ROW", "TransmitOffload"): 164,
    ("MIB_IPINTERFACE_ROW", "ReceiveOffload"): 165,
    ("MIB_IPINTERFACE_ROW", "DisableDefaultRoutes"): 166,
    ("IP_ADDRESS_PREFIX", "PrefixLength"): 28,
    ("MIB_IPFORWARD_ROW2", "InterfaceIndex"): 8,
    ("MIB_IPFORWARD_ROW2", "DestinationPrefix"): 12,
    ("MIB_IPFORWARD_ROW2", "NextHop"): 44,
    ("MIB_IPFORWARD_ROW2", "SitePrefixLength"): 72,
    ("MIB_IPFORWARD_ROW2", "ValidLifetime"): 76,
    ("MIB_IPFORWARD_ROW2", "PreferredLifetime"): 80,
    ("MIB_IPFORWARD_ROW2", "Metric"): 84,
    ("MIB_IPFORWARD_ROW2", "Protocol"): 88,
    ("MIB_IPFORWARD_ROW2", "Loopback"): 92,
    ("MIB_IPFORWARD_ROW2", "AutoconfigureAddress"): 93,
    ("MIB_IPFORWARD_ROW2", "Publish"): 94,
    ("MIB_IPFORWARD_ROW2", "Immortal"): 95,
    ("MIB_IPFORWARD_ROW2", "Age"): 96,
    ("MIB_IPFORWARD_ROW2", "Origin"): 100,
    ("MIB_IPFORWARD_TABLE2", "Table"): 8,
    ("MIB_UNICASTIPADDRESS_TABLE", "Table"): 8,
    ("GUID", "Data2"): 4,
    ("GUID", "Data3"): 6,
    ("GUID", "Data4"): 8,
    # Not in MinGW's headers: from Microsoft's documented definition (netioapi.h).
    ("DNS_INTERFACE_SETTINGS", "Flags"): 8,
    ("DNS_INTERFACE_SETTINGS", "Domain"): 16,
    ("DNS_INTERFACE_SETTINGS", "NameServer"): 24,
    ("DNS_INTERFACE_SETTINGS", "SearchList"): 32,
    ("DNS_INTERFACE_SETTINGS", "RegistrationEnabled"): 40,
    ("DNS_INTERFACE_SETTINGS", "RegisterAdapterName"): 44,
    ("DNS_INTERFACE_SETTINGS", "EnableLLMNR"): 48,
    ("DNS_INTERFACE_SETTINGS", "QueryAdapterName"): 52,
    ("DNS_INTERFACE_SETTINGS", "ProfileNameServer"): 56,
}

SIZES = {
    "SOCKADDR_IN": 16,
    "SOCKADDR_IN6": 28,
    "SOCKADDR_INET": 28,
    "MIB_UNICASTIPADDRESS_ROW": 80,
    "MIB_IPINTERFACE_ROW": 168,
    "IP_ADDRESS_PREFIX": 32,
    "MIB_IPFORWARD_ROW2": 104,
    "MIB_IPFORWARD_TABLE2": 112,  # one row (ANY_SIZE), as the SDK declares it
    "MIB_UNICASTIPADDRESS_TABLE": 88,  # the same
    "GUID": 16,
    "DNS_INTERFACE_SETTINGS": 64,
}
#: Declared by hand above from Microsoft's documentation: MinGW's headers lack them.
NOT_IN_MINGW = {"DNS_INTERFACE_SETTINGS"}


@pytest.fixture(scope="module")
def ffi() -> Any:
    import cffi

    if cffi.FFI().alignof("uint64_t") != 8:
        pytest.skip("this interpreter aligns uint64_t to 4 bytes in structs, unlike Windows")
    fresh = cffi.FFI()
    fresh.cdef(_iphlpapi.CDEF)  # parses without Windows
    return fresh


@pytest.mark.parametrize("name", sorted(SIZES))
def test_struct_size_matches_windows_x64(ffi: Any, name: str) -> None:
    assert ffi.sizeof(name) == SIZES[name]


@pytest.mark.parametrize(("name", "field"), sorted(OFFSETS))
def test_field_offset_matches_windows_x64(ffi: Any, name: str, field: str) -> None:
    assert ffi.offsetof(name, field) == OFFSETS[(name, field)]


def test_the_tables_agree_with_mingws_windows_headers() -> None:
    if not mingw_layout.available():
        pytest.skip(mingw_layout.NO_COMPILER)
    queries: list[tuple[str, str | None]] = [
        (name, None) for name in sorted(SIZES) if name not in NOT_IN_MINGW
    ] + [key for key in sorted(OFFSETS) if key[0] not in NOT_IN_MINGW]
    found = mingw_layout.layout(["winsock2.h", "ws2ipdef.h", "iphlpapi.h", "netioapi.h"], queries)
    expected: dict[tuple[str, str | None], int] = {
        (name, None): size for name, size in SIZES.items()
    }
    expected.update({(name, field): offset for (name, field), offset in OFFSETS.items()})
    assert found == {query: expected[query] for query in queries}


def test_every_declared_field_is_in_the_tables(ffi: Any) -> None:
    """Each structure's fields are all checked (up to the ones whose offset follows from the
    first field or the union)."""
    for name in ("MIB_IPFORWARD_ROW2", "DNS_INTERFACE_SETTINGS"):
        fields = [field for field, _ in ffi.typeof(name).fields]
        assert {field for field in fields[1:]} == {f for (n, f) in OFFSETS if n == name}


def test_cdef_declares_the_functions(ffi: Any) -> None:
    for function in (
        "InitializeUnicastIpAddressEntry",
        "CreateUnicastIpAddressEntry",
        "DeleteUnicastIpAddressEntry",
        "GetUnicastIpAddressTable",
        "InitializeIpInterfaceEntry",
        "GetIpInterfaceEntry",
        "SetIpInterfaceEntry",
        "InitializeIpForwardEntry",
        "CreateIpForwardEntry2",
        "DeleteIpForwardEntry2",
        "GetIpForwardTable2",
        "FreeMibTable",
        "ConvertInterfaceLuidToGuid",
        "SetInterfaceDnsSettings",
        "GetInterfaceDnsSettings",
        "FreeInterfaceDnsSettings",
    ):
        assert f"WINAPI {function}(" in _iphlpapi.CDEF
    assert ffi.typeof("MIB_IPINTERFACE_ROW *") is not None


def test_importing_wintun_cffi_does_not_touch_ip_helper() -> None:
    code = (
        "import sys, wintun_cffi, wintun_cffi.netconfig; "
        "print('wintun_cffi.netconfig._iphlpapi' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    ).stdout
    assert out.strip() == "False"


def test_unicast_row_ipv4_bytes() -> None:
    ffi = _iphlpapi.declarations()
    row = ffi.new("MIB_UNICASTIPADDRESS_ROW *")
    _iphlpapi.fill_unicast_row(row, 0x0035_0000_1200_0000, ipaddress.ip_interface("10.6.7.7/24"))
    raw = bytes(ffi.buffer(row))
    assert struct.unpack_from("<H", raw, 0)[0] == 2  # Windows AF_INET
    assert raw[4:8] == bytes([10, 6, 7, 7])  # network order, as in_addr
    assert struct.unpack_from("<Q", raw, 32)[0] == 0x0035_0000_1200_0000
    assert raw[60] == 24
    assert struct.unpack_from("<i", raw, 64)[0] == 4  # IpDadStatePreferred


def test_unicast_row_ipv6_bytes() -> None:
    ffi = _iphlpapi.declarations()
    row = ffi.new("MIB_UNICASTIPADDRESS_ROW *")
    _iphlpapi.fill_unicast_row(row, 7, ipaddress.ip_interface("fd00::7/64"))
    raw = bytes(ffi.buffer(row))
    assert struct.unpack_from("<H", raw, 0)[0] == 23  # Windows AF_INET6, not Linux's 10
    assert raw[8:24] == ipaddress.IPv6Address("fd00::7").packed
    assert struct.unpack_from("<Q", raw, 32)[0] == 7
    assert raw[60] == 64


@pytest.mark.parametrize(("family", "site_prefix_after"), [(2, 0), (23, 48)])
def test_prepare_mtu_clears_site_prefix_for_ipv4_only(family: int, site_prefix_after: int) -> None:
    ffi = _iphlpapi.declarations()
    row = ffi.new("MIB_IPINTERFACE_ROW *")
    row.Family = family
    row.SitePrefixLength = 48
    _iphlpapi.prepare_mtu(row, 1420)
    raw = bytes(ffi.buffer(row))
    assert struct.unpack_from("<I", raw, 152)[0] == 1420
    assert struct.unpack_from("<I", raw, 144)[0] == site_prefix_after


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (ERROR_ACCESS_DENIED, AccessDeniedError),
        (ERROR_OBJECT_ALREADY_EXISTS, AlreadyExistsError),
        (ERROR_NOT_FOUND, AdapterNotFoundError),
        (ERROR_INVALID_PARAMETER, WintunError),
    ],
)
def test_check_status_maps_win32_codes(code: int, cls: type[WintunError]) -> None:
    with pytest.raises(cls) as caught:
        _iphlpapi.check_status(code, "CreateUnicastIpAddressEntry")
    assert caught.value.winerror == code
    assert "CreateUnicastIpAddressEntry" in str(caught.value)


def test_access_denied_says_administrator() -> None:
    with pytest.raises(AccessDeniedError, match="administrator"):
        _iphlpapi.check_status(5, "SetIpInterfaceEntry")


def test_check_status_success_is_silent() -> None:
    _iphlpapi.check_status(0, "GetIpInterfaceEntry")


# -- guid_from_name ------------------------------------------------------------------------


def test_guid_from_name_is_stable_version_5() -> None:
    first = netconfig.guid_from_name("Demo")
    assert first == netconfig.guid_from_name("Demo")
    assert first.version == 5
    assert first == uuid.uuid5(netconfig.GUID_NAMESPACE, "DEMO")


def test_guid_from_name_ignores_case() -> None:
    assert netconfig.guid_from_name("Wintun Demo") == netconfig.guid_from_name("wINTUN dEMO")
    assert netconfig.guid_from_name("Éclair") == netconfig.guid_from_name("éCLAIR")


def test_guid_from_name_distinct_names_distinct_guids() -> None:
    names = ["Demo", "Demo2", "Demo ", "Straße", "STRASSE", "wg0", "wg1"]
    guids = {netconfig.guid_from_name(name) for name in names}
    assert len(guids) == len(names)


@pytest.mark.parametrize(
    ("name", "error"), [("", ValueError), (None, TypeError), ("a\0b", ValueError)]
)
def test_guid_from_name_refuses_bad_names(name: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        netconfig.guid_from_name(name)  # type: ignore[arg-type]


# -- the emulator ----------------------------------------------------------------------------


@pytest.fixture
def emulated_adapter() -> Iterator[Adapter]:
    wintun = wintun_cffi.emulated()
    adapter = wintun.create_adapter("NetConfig", tunnel_type="Test")
    yield adapter
    adapter.close()


def _ping(adapter: Adapter, source: str, destination: str, sequence: int) -> bytes:
    """Send an echo request through a session; the reply, or TimeoutError."""
    with adapter.start_session() as session:
        request = ip.icmp_echo(source, destination, identifier=0x77, sequence=sequence)
        session.send(request)
        return session.read(timeout=0.5)


def _is_echo_reply(packet: bytes, source: str, destination: str, sequence: int) -> bool:
    found = ip.addresses(packet)
    if found is None:
        return False
    src, dst, protocol = found
    header = 20 if src.version == 4 else 40
    kind = 0 if src.version == 4 else 129
    identifier, seq = struct.unpack_from("!HH", packet, header + 4)
    return (
        (str(src), str(dst)) == (source, destination)
        and protocol in (1, 58)
        and packet[header] == kind
        and (identifier, seq) == (0x77, sequence)
    )


def test_added_address_answers_and_removed_one_does_not(emulated_adapter: Adapter) -> None:
    netconfig.wait_for_interface(emulated_adapter, timeout=1)
    netconfig.add_address(emulated_adapter, "10.6.7.7/24")
    assert ipaddress.ip_interface("10.6.7.7/24") in emulated_adapter.host.interfaces
    reply = _ping(emulated_adapter, "10.6.7.1", "10.6.7.7", 1)
    assert _is_echo_reply(reply, "10.6.7.7", "10.6.7.1", 1)

    netconfig.remove_address(emulated_adapter, "10.6.7.7")  # prefix not needed to remove
    assert emulated_adapter.host.interfaces == ()
    with pytest.raises(TimeoutError):
        _ping(emulated_adapter, "10.6.7.1", "10.6.7.7", 2)


def test_ipv6_address_from_an_interface_object(emulated_adapter: Adapter) -> None:
    netconfig.add_address(emulated_adapter, ipaddress.IPv6Interface("fd00:6:7::7/64"))
    reply = _ping(emulated_adapter, "fd00:6:7::1", "fd00:6:7::7", 3)
    assert _is_echo_reply(reply, "fd00:6:7::7", "fd00:6:7::1", 3)


def test_adding_an_assigned_address_again_is_already_exists(emulated_adapter: Adapter) -> None:
    netconfig.add_address(emulated_adapter, "10.6.7.7/24")
    with pytest.raises(AlreadyExistsError) as caught:
        netconfig.add_address(emulated_adapter, "10.6.7.7/16")
    assert caught.value.winerror == ERROR_OBJECT_ALREADY_EXISTS
    assert emulated_adapter.host.interfaces == (ipaddress.ip_interface("10.6.7.7/24"),)


def test_removing_an_unassigned_address_is_not_found(emulated_adapter: Adapter) -> None:
    netconfig.add_address(emulated_adapter, "10.6.7.7/24")
    with pytest.raises(EntryNotFoundError) as caught:
        netconfig.remove_address(emulated_adapter, "10.6.7.8/24")
    assert caught.value.winerror == ERROR_NOT_FOUND
    assert "10.6.7.8 is not assigned to the adapter 'NetConfig'" in str(caught.value)
    assert "no adapter of that name" not in str(caught.value)
    assert not isinstance(caught.value, AdapterNotFoundError)
    assert len(emulated_adapter.host.interfaces) == 1


def test_mtu_recorded_per_family(emulated_adapter: Adapter) -> None:
    netconfig.set_mtu(emulated_adapter, 1420)
    netconfig.set_mtu(emulated_adapter, 1380, socket.AF_INET6)
    recorded = emulated_adapter.host.mtu
    assert (recorded[4], recorded[6]) == (1420, 1380)
    # Read back through netconfig itself.
    assert netconfig.mtu(emulated_adapter) == 1420
    assert netconfig.mtu(emulated_adapter, socket.AF_INET6) == 1380


def test_addresses_read_back_what_was_added(emulated_adapter: Adapter) -> None:
    assert netconfig.addresses(emulated_adapter) == []
    netconfig.add_address(emulated_adapter, "fd00:6:7::7/64")
    netconfig.add_address(emulated_adapter, "10.6.7.7/24")
    assert netconfig.addresses(emulated_adapter) == [
        ipaddress.ip_interface("10.6.7.7/24"),
        ipaddress.ip_interface("fd00:6:7::7/64"),
    ]
    netconfig.remove_address(emulated_adapter, "10.6.7.7")
    assert netconfig.addresses(emulated_adapter) == [ipaddress.ip_interface("fd00:6:7::7/64")]


def test_wait_for_a_removed_emulated_adapter_is_not_found() -> None:
    wintun = wintun_cffi.emulated()
    adapter = wintun.create_adapter("Gone", tunnel_type="Test")
    host = adapter.host
    host.terminate()
    try:
        with pytest.raises(AdapterNotFoundError):
            netconfig.wait_for_interface(adapter, timeout=0)
    finally:
        adapter.close()
    assert host.terminated


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.6.7",
        "10.6.7.7/33",
        "fd00::7/129",
        "not an address",
        "224.0.0.1/4",
        "0.0.0.0/0",
        "ff02::1/64",
        "fe80::1%3/64",
    ],
)
def test_bad_addresses_are_value_errors(emulated_adapter: Adapter, address: str) -> None:
    with pytest.raises(ValueError):
        netconfig.add_address(emulated_adapter, address)
    with pytest.raises(ValueError):
        netconfig.remove_address(emulated_adapter, address)
    assert emulated_adapter.host.interfaces == ()


@pytest.mark.parametrize("address", [167118599, b"10.6.7.7", None])
def test_non_address_types_are_type_errors(emulated_adapter: Adapter, address: object) -> None:
    with pytest.raises(TypeError):
        netconfig.add_address(emulated_adapter, address)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mtu", "family"),
    [
        (575, socket.AF_INET),
        (1279, socket.AF_INET6),
        (65536, socket.AF_INET),
        (65536, socket.AF_INET6),
        (0, socket.AF_INET),
    ],
)
def test_mtu_out_of_range_is_value_error(
    emulated_adapter: Adapter, mtu: int, family: socket.AddressFamily
) -> None:
    before = emulated_adapter.host.mtu
    with pytest.raises(ValueError):
        netconfig.set_mtu(emulated_adapter, mtu, family)
    assert emulated_adapter.host.mtu == before


@pytest.mark.parametrize(
    ("mtu", "family"), [(576, socket.AF_INET), (1280, socket.AF_INET6), (65535, socket.AF_INET6)]
)
def test_mtu_bounds_are_accepted(
    emulated_adapter: Adapter, mtu: int, family: socket.AddressFamily
) -> None:
    netconfig.set_mtu(emulated_adapter, mtu, family)
    assert emulated_adapter.host.mtu[4 if family == socket.AF_INET else 6] == mtu


def test_mtu_bad_family_and_type(emulated_adapter: Adapter) -> None:
    with pytest.raises(ValueError):
        netconfig.set_mtu(emulated_adapter, 1500, socket.AF_UNSPEC)
    with pytest.raises(TypeError):
        netconfig.set_mtu(emulated_adapter, 1500.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        netconfig.set_mtu(emulated_adapter, True)


@pytest.mark.parametrize("timeout", [-1, float("nan")])
def test_bad_timeout(emulated_adapter: Adapter, timeout: float) -> None:
    with pytest.raises(ValueError):
        netconfig.wait_for_interface(emulated_adapter, timeout=timeout)


def test_not_an_adapter_is_type_error() -> None:
    with pytest.raises(TypeError):
        netconfig.add_address("NetConfig", "10.6.7.7/24")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        netconfig.wait_for_interface(object())  # type: ignore[arg-type]


def _every_call(adapter: Adapter) -> list[tuple[Callable[..., None], tuple[object, ...]]]:
    """Each netconfig function with valid arguments for ``adapter``."""
    return [
        (netconfig.add_address, (adapter, "10.6.7.7/24")),
        (netconfig.remove_address, (adapter, "10.6.7.7/24")),
        (netconfig.set_mtu, (adapter, 1500)),
        (netconfig.wait_for_interface, (adapter,)),
    ]


def test_closed_adapter_is_handle_closed() -> None:
    adapter = wintun_cffi.emulated().create_adapter("Closed", tunnel_type="Test")
    adapter.close()
    for function, args in _every_call(adapter):
        with pytest.raises(HandleClosedError):
            function(*args)


# -- a native adapter off Windows (the C test double) --------------------------------------


@pytest.fixture(scope="module")
def double_wintun(tmp_path_factory: pytest.TempPathFactory) -> Wintun:
    """The 0.14 C double of this OS, as a native Wintun."""
    from wintun_cffi.conformance.double.build import build_double, double_unavailable

    reason = double_unavailable()
    if reason is not None:
        pytest.skip(reason)
    path = build_double("0.14", tmp_path_factory.mktemp("double"))
    return wintun_cffi.load(str(path))


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="on Windows a native adapter is configured through IP Helper "
    "(the IP Helper double's tests below)",
)
def test_native_adapter_off_windows_is_not_supported(double_wintun: Wintun) -> None:
    with double_wintun.create_adapter("NativeNetConfig", tunnel_type="Test") as adapter:
        for function, args in _every_call(adapter):
            with pytest.raises(NotSupportedError, match="needs Windows"):
                function(*args)
        # Bad input is still refused first, as ValueError.
        with pytest.raises(ValueError):
            netconfig.add_address(adapter, "10.6.7.300/24")


# -- Windows, elevated, with wintun.dll ----------------------------------------------------


def _is_admin() -> bool:
    import ctypes

    return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]


@pytest.fixture
def windows_adapter() -> Iterator[Adapter]:
    if sys.platform != "win32" or not _is_admin():
        pytest.skip(WINDOWS_REASON)
    try:
        wintun = wintun_cffi.load()
    except (FileNotFoundError, LibraryLoadError):
        pytest.skip(WINDOWS_REASON)
    name = "WintunCffiNetConfigTest"
    guid = netconfig.guid_from_name(name)
    if wintun.api == "0.14":
        adapter = wintun.create_adapter(name, tunnel_type="WintunCffiTest", guid=guid)
    else:
        adapter = wintun.create_adapter(name, pool="WintunCffiTest", guid=guid)
    try:
        netconfig.wait_for_interface(adapter, timeout=10)
        yield adapter
    finally:
        if wintun.api != "0.14":
            adapter.delete()
        adapter.close()


def _can_bind(address: str) -> bool:
    """True if a local socket can bind to ``address`` (it is assigned to this machine)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def test_windows_add_and_remove_address(windows_adapter: Adapter) -> None:
    address = "10.250.77.7"
    netconfig.add_address(windows_adapter, f"{address}/24")
    try:
        assert _can_bind(address)
        assert ipaddress.ip_interface(f"{address}/24") in netconfig.addresses(windows_adapter)
        with pytest.raises(AlreadyExistsError):
            netconfig.add_address(windows_adapter, f"{address}/24")
    finally:
        netconfig.remove_address(windows_adapter, address)
    assert not _can_bind(address)
    assert ipaddress.ip_interface(f"{address}/24") not in netconfig.addresses(windows_adapter)
    with pytest.raises(EntryNotFoundError):
        netconfig.remove_address(windows_adapter, address)


def test_windows_set_mtu(windows_adapter: Adapter) -> None:
    netconfig.set_mtu(windows_adapter, 1420, socket.AF_INET)
    assert _iphlpapi.get_ip_interface(windows_adapter.luid, 4).NlMtu == 1420
    netconfig.set_mtu(windows_adapter, 1400, socket.AF_INET6)
    assert _iphlpapi.get_ip_interface(windows_adapter.luid, 6).NlMtu == 1400
    assert (netconfig.mtu(windows_adapter), netconfig.mtu(windows_adapter, socket.AF_INET6)) == (
        1420,
        1400,
    )


# -- Windows Python, IP Helper played by the IP Helper double (under Wine too) ---------------


class IpHelperDouble:
    """wintun_cffi/conformance/double/iphlpapi_double.c, loaded in place of iphlpapi.dll; its
    helper exports."""

    HELPERS = """
        typedef struct { uint16_t si_family; uint16_t port; uint8_t rest[24]; } ADDRESS;
        int IpHelperDoubleAddInterface(uint64_t Luid, uint32_t PollsUntilUp);
        void IpHelperDoubleReset(void);
        void IpHelperDoubleSetAccessDenied(int Denied);
        const char *IpHelperDoubleLastRejection(void);
        int IpHelperDoubleGetAddress(uint64_t Luid, uint32_t Index, ADDRESS *Address,
                                     uint8_t *PrefixLength);
        uint32_t IpHelperDoubleGetMtu(uint64_t Luid, uint16_t Family);
    """

    def __init__(self, path: str) -> None:
        import cffi

        self.ffi = cffi.FFI()
        self.ffi.cdef(self.HELPERS)
        self.lib: Any = self.ffi.dlopen(path)

    def rejection(self) -> str:
        reason = self.ffi.string(self.lib.IpHelperDoubleLastRejection())
        return reason.decode() if isinstance(reason, bytes) else reason

    def addresses(self, luid: int) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        found: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
        address, prefix = self.ffi.new("ADDRESS *"), self.ffi.new("uint8_t *")
        while self.lib.IpHelperDoubleGetAddress(luid, len(found), address, prefix):
            raw = bytes(self.ffi.buffer(address))
            family = struct.unpack_from("<H", raw)[0]
            packed = raw[4:8] if family == _iphlpapi.AF_INET else raw[8:24]
            found.append(ipaddress.ip_interface((ipaddress.ip_address(packed), prefix[0])))
        return found


@pytest.fixture(scope="module")
def ip_helper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpHelperDouble]:
    if sys.platform != "win32":
        pytest.skip("the IP Helper double is a Windows DLL, loaded by Windows Python")
    from wintun_cffi.conformance.double.build import build_iphlpapi_double, double_unavailable

    reason = double_unavailable()
    if reason is not None:
        pytest.skip(reason)
    path = str(build_iphlpapi_double(tmp_path_factory.mktemp("iphlpapi")))
    _iphlpapi.use_library(path)
    try:
        yield IpHelperDouble(path)
    finally:
        _iphlpapi.use_library(None)


@pytest.fixture
def configured(double_wintun: Wintun, ip_helper: IpHelperDouble) -> Iterator[Adapter]:
    """A native adapter on the C double whose interface the IP Helper double knows."""
    ip_helper.lib.IpHelperDoubleReset()
    with double_wintun.create_adapter("Configured", tunnel_type="Test") as adapter:
        assert ip_helper.lib.IpHelperDoubleAddInterface(adapter.luid, 0)
        yield adapter
        assert ip_helper.rejection() == ""  # every row the binding sent was well formed


def test_ip_helper_addresses_end_to_end(configured: Adapter, ip_helper: IpHelperDouble) -> None:
    netconfig.add_address(configured, "10.6.7.7/24")
    netconfig.add_address(configured, ipaddress.ip_interface("fd00::7/64"))
    assert ip_helper.addresses(configured.luid) == [
        ipaddress.ip_interface("10.6.7.7/24"),
        ipaddress.ip_interface("fd00::7/64"),
    ]
    with pytest.raises(AlreadyExistsError):
        netconfig.add_address(configured, "10.6.7.7/16")  # one row per address, any prefix
    netconfig.remove_address(configured, "10.6.7.7")
    assert ip_helper.addresses(configured.luid) == [ipaddress.ip_interface("fd00::7/64")]
    with pytest.raises(EntryNotFoundError):
        netconfig.remove_address(configured, "10.6.7.7")


def test_ip_helper_mtu_end_to_end(configured: Adapter, ip_helper: IpHelperDouble) -> None:
    # The IPv4 row comes back with a SitePrefixLength that Set refuses: prepare_mtu clears it.
    netconfig.set_mtu(configured, 1420, socket.AF_INET)
    netconfig.set_mtu(configured, 1400, socket.AF_INET6)
    assert ip_helper.lib.IpHelperDoubleGetMtu(configured.luid, _iphlpapi.AF_INET) == 1420
    assert ip_helper.lib.IpHelperDoubleGetMtu(configured.luid, _iphlpapi.AF_INET6) == 1400
    assert _iphlpapi.get_ip_interface(configured.luid, 4).NlMtu == 1420
    assert netconfig.mtu(configured) == 1420  # read back through GetIpInterfaceEntry
    assert netconfig.mtu(configured, socket.AF_INET6) == 1400


def test_ip_helper_refuses_a_row_written_back_unprepared(
    configured: Adapter, ip_helper: IpHelperDouble
) -> None:
    row = _iphlpapi.get_ip_interface(configured.luid, 4)
    row.NlMtu = 1300  # without prepare_mtu: SitePrefixLength still set
    with pytest.raises(WintunError) as caught:
        _iphlpapi.check_status(
            _iphlpapi._iphlpapi().SetIpInterfaceEntry(row), "SetIpInterfaceEntry"
        )
    assert caught.value.winerror == ERROR_INVALID_PARAMETER
    assert "SitePrefixLength" in ip_helper.rejection()
    ip_helper.lib.IpHelperDoubleReset()  # forget the refusal this test provoked
    ip_helper.lib.IpHelperDoubleAddInterface(configured.luid, 0)


def test_ip_helper_wait_for_interface_polls_until_windows_built_it(
    double_wintun: Wintun, ip_helper: IpHelperDouble
) -> None:
    ip_helper.lib.IpHelperDoubleReset()
    with double_wintun.create_adapter("Late", tunnel_type="Test") as adapter:
        with pytest.raises(TimeoutError):
            netconfig.wait_for_interface(adapter, timeout=0.05)  # not there at all
        # Built after three more polls (two per poll: IPv4, then IPv6).
        assert ip_helper.lib.IpHelperDoubleAddInterface(adapter.luid, 6)
        with pytest.raises(AdapterNotFoundError):
            netconfig.add_address(adapter, "10.6.7.7/24")  # the rows exist, the interface not
        netconfig.wait_for_interface(adapter, timeout=5)
        netconfig.set_mtu(adapter, 1500)
        assert ip_helper.lib.IpHelperDoubleGetMtu(adapter.luid, _iphlpapi.AF_INET) == 1500


def test_ip_helper_access_denied_says_administrator(
    configured: Adapter, ip_helper: IpHelperDouble
) -> None:
    ip_helper.lib.IpHelperDoubleSetAccessDenied(1)
    for function, args in _every_call(configured)[:3]:
        with pytest.raises(AccessDeniedError, match="administrator"):
            function(*args)
    ip_helper.lib.IpHelperDoubleSetAccessDenied(0)


def test_windows_routes(windows_adapter: Adapter) -> None:
    netconfig.add_address(windows_adapter, "10.250.77.7/24")
    added = netconfig.add_route(windows_adapter, "10.251.0.0/16", metric=7)
    via = netconfig.add_route(windows_adapter, "10.252.0.0/16", next_hop="10.250.77.1")
    try:
        listed = netconfig.routes(windows_adapter)
        assert added in listed and via in listed
        with pytest.raises(AlreadyExistsError):
            netconfig.add_route(windows_adapter, "10.251.0.0/16", metric=8)
    finally:
        netconfig.remove_route(windows_adapter, "10.251.0.0/16")
        netconfig.remove_route(windows_adapter, "10.252.0.0/16", next_hop="10.250.77.1")
        netconfig.remove_address(windows_adapter, "10.250.77.7")
    assert added not in netconfig.routes(windows_adapter)
    with pytest.raises(EntryNotFoundError):
        netconfig.remove_route(windows_adapter, "10.251.0.0/16")


def test_windows_dns(windows_adapter: Adapter) -> None:
    wanted = netconfig.set_dns(
        windows_adapter, ["10.250.77.53", "fd00:250::53"], domains=["wintun-cffi.example"]
    )
    try:
        assert netconfig.dns(windows_adapter) == wanted
    finally:
        netconfig.clear_dns(windows_adapter)
    assert netconfig.dns(windows_adapter) == netconfig.DnsSettings()


def test_windows_dns_through_the_registry(
    windows_adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback of Windows before 1809, forced on a newer one: what it writes is what
    SetInterfaceDnsSettings reads back."""
    monkeypatch.setattr(_iphlpapi, "has_interface_dns_settings", lambda: False)
    wanted = netconfig.set_dns(windows_adapter, ["10.250.77.54"], domains=["fallback.example"])
    try:
        assert netconfig.dns(windows_adapter) == wanted
        monkeypatch.undo()
        assert netconfig.dns(windows_adapter) == wanted
    finally:
        netconfig.clear_dns(windows_adapter)
