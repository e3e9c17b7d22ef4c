"""The IP Helper API (``iphlpapi.dll``) calls behind :mod:`wintun_cffi.netconfig`; Windows only.

Nothing here runs on ``import wintun_cffi``: the declarations are parsed on first use and the
DLL is opened only when a native adapter is configured on Windows. The declarations
(:data:`~wintun_cffi.netconfig._iphlpapi.CDEF`) are plain text, so the layout test can parse them on any
OS and compare sizes and offsets with the x64 values of the Windows SDK.

The declarations use fixed-width types only, in the SDK's field order (``netioapi.h``,
``nldef.h``, ``ws2ipdef.h``): ``NET_LUID`` is a ``uint64_t`` (a union of one), the ``NL_*``
enums are 32-bit ints, ``SCOPE_ID`` is a ``uint32_t``, ``LARGE_INTEGER`` an ``int64_t``,
``BOOLEAN`` and ``NL_INTERFACE_OFFLOAD_ROD`` (eight one-bit flags) are one byte,
``ADDRESS_FAMILY`` a ``uint16_t``, ``PWSTR`` a ``char16_t *`` (UTF-16, as on Windows). The
functions return a Win32 error code (``NETIO_STATUS`` is a ``DWORD`` once ``iphlpapi.h`` is
included). ``SetInterfaceDnsSettings`` and its two companions exist only on newer Windows;
cffi resolves a function when it is first used, so the others work without them.
"""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any, Literal

from .. import constants as c
from ..errors import AccessDeniedError, AdapterNotFoundError, AlreadyExistsError, error_from_code
from ..lifetime import backoff
from .values import DnsSettings, Interface, Route

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The declarations, kept as text so that any OS can check the layout.
CDEF = """
typedef struct {
    uint16_t sin_family;
    uint16_t sin_port;
    uint8_t  sin_addr[4];
    uint8_t  sin_zero[8];
} SOCKADDR_IN;

typedef struct {
    uint16_t sin6_family;
    uint16_t sin6_port;
    uint32_t sin6_flowinfo;
    uint8_t  sin6_addr[16];
    uint32_t sin6_scope_id;
} SOCKADDR_IN6;

typedef union {
    SOCKADDR_IN  Ipv4;
    SOCKADDR_IN6 Ipv6;
    uint16_t     si_family;
} SOCKADDR_INET;

typedef struct {
    SOCKADDR_INET Address;
    uint64_t InterfaceLuid;
    uint32_t InterfaceIndex;
    int32_t  PrefixOrigin;
    int32_t  SuffixOrigin;
    uint32_t ValidLifetime;
    uint32_t PreferredLifetime;
    uint8_t  OnLinkPrefixLength;
    uint8_t  SkipAsSource;
    int32_t  DadState;
    uint32_t ScopeId;
    int64_t  CreationTimeStamp;
} MIB_UNICASTIPADDRESS_ROW;

typedef struct {
    uint32_t NumEntries;
    MIB_UNICASTIPADDRESS_ROW Table[1];
} MIB_UNICASTIPADDRESS_TABLE;

typedef struct {
    uint16_t Family;
    uint64_t InterfaceLuid;
    uint32_t InterfaceIndex;
    uint32_t MaxReassemblySize;
    uint64_t InterfaceIdentifier;
    uint32_t MinRouterAdvertisementInterval;
    uint32_t MaxRouterAdvertisementInterval;
    uint8_t  AdvertisingEnabled;
    uint8_t  ForwardingEnabled;
    uint8_t  WeakHostSend;
    uint8_t  WeakHostReceive;
    uint8_t  UseAutomaticMetric;
    uint8_t  UseNeighborUnreachabilityDetection;
    uint8_t  ManagedAddressConfigurationSupported;
    uint8_t  OtherStatefulConfigurationSupported;
    uint8_t  AdvertiseDefaultRoute;
    int32_t  RouterDiscoveryBehavior;
    uint32_t DadTransmits;
    uint32_t BaseReachableTime;
    uint32_t RetransmitTime;
    uint32_t PathMtuDiscoveryTimeout;
    int32_t  LinkLocalAddressBehavior;
    uint32_t LinkLocalAddressTimeout;
    uint32_t ZoneIndices[16];
    uint32_t SitePrefixLength;
    uint32_t Metric;
    uint32_t NlMtu;
    uint8_t  Connected;
    uint8_t  SupportsWakeUpPatterns;
    uint8_t  SupportsNeighborDiscovery;
    uint8_t  SupportsRouterDiscovery;
    uint32_t ReachableTime;
    uint8_t  TransmitOffload;
    uint8_t  ReceiveOffload;
    uint8_t  DisableDefaultRoutes;
} MIB_IPINTERFACE_ROW;

typedef struct {
    SOCKADDR_INET Prefix;
    uint8_t       PrefixLength;
} IP_ADDRESS_PREFIX;

typedef struct {
    uint64_t InterfaceLuid;
    uint32_t InterfaceIndex;
    IP_ADDRESS_PREFIX DestinationPrefix;
    SOCKADDR_INET NextHop;
    uint8_t  SitePrefixLength;
    uint32_t ValidLifetime;
    uint32_t PreferredLifetime;
    uint32_t Metric;
    int32_t  Protocol;
    uint8_t  Loopback;
    uint8_t  AutoconfigureAddress;
    uint8_t  Publish;
    uint8_t  Immortal;
    uint32_t Age;
    int32_t  Origin;
} MIB_IPFORWARD_ROW2;

typedef struct {
    uint32_t NumEntries;
    MIB_IPFORWARD_ROW2 Table[1];
} MIB_IPFORWARD_TABLE2;

typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t  Data4[8];
} GUID;

typedef struct {
    uint32_t Version;
    uint64_t Flags;
    char16_t *Domain;
    char16_t *NameServer;
    char16_t *SearchList;
    uint32_t RegistrationEnabled;
    uint32_t RegisterAdapterName;
    uint32_t EnableLLMNR;
    uint32_t QueryAdapterName;
    char16_t *ProfileNameServer;
} DNS_INTERFACE_SETTINGS;

void     WINAPI InitializeUnicastIpAddressEntry(MIB_UNICASTIPADDRESS_ROW *Row);
uint32_t WINAPI CreateUnicastIpAddressEntry(const MIB_UNICASTIPADDRESS_ROW *Row);
uint32_t WINAPI DeleteUnicastIpAddressEntry(const MIB_UNICASTIPADDRESS_ROW *Row);
uint32_t WINAPI GetUnicastIpAddressTable(uint16_t Family, MIB_UNICASTIPADDRESS_TABLE **Table);
void     WINAPI InitializeIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
uint32_t WINAPI GetIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
uint32_t WINAPI SetIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
void     WINAPI InitializeIpForwardEntry(MIB_IPFORWARD_ROW2 *Row);
uint32_t WINAPI CreateIpForwardEntry2(const MIB_IPFORWARD_ROW2 *Row);
uint32_t WINAPI DeleteIpForwardEntry2(const MIB_IPFORWARD_ROW2 *Row);
uint32_t WINAPI GetIpForwardTable2(uint16_t Family, MIB_IPFORWARD_TABLE2 **Table);
void     WINAPI FreeMibTable(void *Memory);
uint32_t WINAPI ConvertInterfaceLuidToGuid(const uint64_t *InterfaceLuid, GUID *InterfaceGuid);
uint32_t WINAPI SetInterfaceDnsSettings(GUID Interface, const DNS_INTERFACE_SETTINGS *Settings);
uint32_t WINAPI GetInterfaceDnsSettings(GUID Interface, DNS_INTERFACE_SETTINGS *Settings);
void     WINAPI FreeInterfaceDnsSettings(DNS_INTERFACE_SETTINGS *Settings);
"""

# Windows' address family numbers (ws2def.h); AF_INET6 differs from Linux's 10.
AF_INET = 2
AF_INET6 = 23
#: NL_DAD_STATE: usable at once, without waiting for duplicate address detection.
IP_DAD_STATE_PREFERRED = 4

_declarations: Any = None
_library: Any = None


def declarations() -> Any:
    """A cffi FFI holding :data:`~wintun_cffi.netconfig._iphlpapi.CDEF` (parsed on first use; any OS)."""
    global _declarations
    if _declarations is None:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(CDEF)
        _declarations = ffi
    return _declarations


def _iphlpapi() -> Any:
    """``iphlpapi.dll`` from System32, opened on first use (Windows only)."""
    global _library
    if _library is None:
        from ..platform import open_library

        system_root = os.environ.get("SystemRoot", r"C:\Windows")
        path = os.path.join(system_root, "System32", "iphlpapi.dll")
        _library = open_library(declarations(), path)
    return _library


def use_library(path: str | None) -> None:
    """Send the calls to the library at absolute ``path`` instead of System32's
    ``iphlpapi.dll``; ``None`` goes back to System32.

    The seam for tests: a test double exporting the same functions (the project's IP Helper
    double, built with MinGW) then plays Windows' network configuration, under Wine too,
    whose ``iphlpapi.dll`` lacks these calls. Windows only.
    """
    global _library
    if path is None:
        _library = None
        return
    from ..platform import open_library

    _library = open_library(declarations(), path)


def windows_family(version: int) -> int:
    """Windows' ``AF_INET`` / ``AF_INET6`` for IP version 4 / 6."""
    return AF_INET if version == 4 else AF_INET6


def check_status(status: int, function: str) -> None:
    """Raise the WintunError for a failed IP Helper call (``status`` is a Win32 code)."""
    if status == c.ERROR_SUCCESS:
        return
    if status == c.ERROR_ACCESS_DENIED:
        raise AccessDeniedError(
            f"{function}: changing an adapter's network configuration needs administrator "
            "rights (run elevated)",
            status,
        )
    raise error_from_code(status, function)


def set_sockaddr(sockaddr: Any, address: Address) -> None:
    """Write ``address`` (family and bytes, in network order) into a ``SOCKADDR_INET``."""
    ffi = declarations()
    packed = address.packed
    if address.version == 4:
        sockaddr.Ipv4.sin_family = AF_INET
        ffi.memmove(sockaddr.Ipv4.sin_addr, packed, len(packed))
    else:
        sockaddr.Ipv6.sin6_family = AF_INET6
        ffi.memmove(sockaddr.Ipv6.sin6_addr, packed, len(packed))


def sockaddr_address(sockaddr: Any) -> Address:
    """The address in a ``SOCKADDR_INET`` (ValueError for a family other than IPv4/IPv6)."""
    ffi = declarations()
    if sockaddr.si_family == AF_INET:
        return ipaddress.IPv4Address(bytes(ffi.buffer(sockaddr.Ipv4.sin_addr)))
    if sockaddr.si_family == AF_INET6:
        return ipaddress.IPv6Address(bytes(ffi.buffer(sockaddr.Ipv6.sin6_addr)))
    raise ValueError(f"not an IPv4 or IPv6 socket address (family {sockaddr.si_family})")


def fill_unicast_row(row: Any, luid: int, interface: Interface) -> None:
    """Set the fields of an initialised ``MIB_UNICASTIPADDRESS_ROW`` that name ``interface``."""
    set_sockaddr(row.Address, interface.ip)
    row.InterfaceLuid = luid
    row.OnLinkPrefixLength = interface.network.prefixlen
    row.DadState = IP_DAD_STATE_PREFERRED


def prepare_mtu(row: Any, mtu: int) -> None:
    """Set ``NlMtu`` on a row read by ``GetIpInterfaceEntry``, ready for ``SetIpInterfaceEntry``."""
    row.NlMtu = mtu
    if row.Family == AF_INET:
        # SetIpInterfaceEntry refuses an IPv4 row whose SitePrefixLength is not 0 (the field
        # only means something for IPv6), and GetIpInterfaceEntry may have filled it in.
        row.SitePrefixLength = 0


def _unicast_row(luid: int, interface: Interface) -> Any:
    row = declarations().new("MIB_UNICASTIPADDRESS_ROW *")
    # InitializeUnicastIpAddressEntry: defaults (manual origins, infinite lifetimes).
    _iphlpapi().InitializeUnicastIpAddressEntry(row)
    fill_unicast_row(row, luid, interface)
    return row


def create_unicast_address(luid: int, interface: Interface) -> None:
    """Assign ``interface`` to the interface of ``luid``."""
    row = _unicast_row(luid, interface)
    # CreateUnicastIpAddressEntry: ERROR_OBJECT_ALREADY_EXISTS if the address is assigned.
    check_status(_iphlpapi().CreateUnicastIpAddressEntry(row), "CreateUnicastIpAddressEntry")


def delete_unicast_address(luid: int, interface: Interface) -> None:
    """Remove the address of ``interface`` from the interface of ``luid``."""
    row = _unicast_row(luid, interface)
    # DeleteUnicastIpAddressEntry: the row is keyed by InterfaceLuid and Address.
    check_status(_iphlpapi().DeleteUnicastIpAddressEntry(row), "DeleteUnicastIpAddressEntry")


def list_unicast_addresses(luid: int) -> list[Interface]:
    """The unicast addresses of the interface of ``luid`` with their on-link prefixes
    (IPv4, then IPv6), those Windows assigns itself (link-local) included."""
    ffi = declarations()
    library = _iphlpapi()
    found: list[Interface] = []
    for family in (AF_INET, AF_INET6):
        table = ffi.new("MIB_UNICASTIPADDRESS_TABLE **")
        # GetUnicastIpAddressTable allocates the table; FreeMibTable frees it.
        check_status(library.GetUnicastIpAddressTable(family, table), "GetUnicastIpAddressTable")
        try:
            rows = ffi.cast("MIB_UNICASTIPADDRESS_ROW *", ffi.addressof(table[0], "Table"))
            for index in range(table[0].NumEntries):
                row = rows[index]
                if row.InterfaceLuid == luid:
                    address = sockaddr_address(row.Address)
                    found.append(ipaddress.ip_interface((address, row.OnLinkPrefixLength)))
        finally:
            library.FreeMibTable(table[0])
    return found


def _get_interface_status(luid: int, family: int) -> tuple[int, Any]:
    row = declarations().new("MIB_IPINTERFACE_ROW *")
    library = _iphlpapi()
    # InitializeIpInterfaceEntry, then GetIpInterfaceEntry keyed by Family and InterfaceLuid.
    library.InitializeIpInterfaceEntry(row)
    row.Family = family
    row.InterfaceLuid = luid
    return int(library.GetIpInterfaceEntry(row)), row


def get_ip_interface(luid: int, version: int) -> Any:
    """The ``MIB_IPINTERFACE_ROW`` of ``luid`` for IP ``version`` (4 or 6)."""
    status, row = _get_interface_status(luid, windows_family(version))
    check_status(status, "GetIpInterfaceEntry")
    return row


def set_mtu(luid: int, version: int, mtu: int) -> None:
    """Set the IP ``version`` MTU of the interface of ``luid``."""
    row = get_ip_interface(luid, version)
    prepare_mtu(row, mtu)
    # SetIpInterfaceEntry writes the whole row back; only NlMtu changed.
    check_status(_iphlpapi().SetIpInterfaceEntry(row), "SetIpInterfaceEntry")


def interface_exists(luid: int) -> bool:
    """True once Windows has created an IPv4 or IPv6 interface for ``luid``."""
    for family in (AF_INET, AF_INET6):
        status, _ = _get_interface_status(luid, family)
        if status == c.ERROR_SUCCESS:
            return True
        if status not in (c.ERROR_NOT_FOUND, c.ERROR_FILE_NOT_FOUND):
            check_status(status, "GetIpInterfaceEntry")
    return False


# -- routes ---------------------------------------------------------------------------------


def fill_route_row(row: Any, luid: int, route: Route) -> None:
    """Set the fields of an initialised ``MIB_IPFORWARD_ROW2`` that describe ``route``: the
    interface, the destination prefix, the next hop (unspecified: on-link) and the metric."""
    destination = route.destination
    row.InterfaceLuid = luid
    set_sockaddr(row.DestinationPrefix.Prefix, destination.network_address)
    row.DestinationPrefix.PrefixLength = destination.prefixlen
    unspecified = ipaddress.ip_address(0 if destination.version == 4 else "::")
    set_sockaddr(row.NextHop, route.next_hop if route.next_hop is not None else unspecified)
    row.Metric = route.metric


def route_from_row(row: Any) -> Route:
    """The :class:`~wintun_cffi.netconfig.Route` a ``MIB_IPFORWARD_ROW2`` describes."""
    prefix = sockaddr_address(row.DestinationPrefix.Prefix)
    destination = ipaddress.ip_network(f"{prefix}/{row.DestinationPrefix.PrefixLength}")
    hop = sockaddr_address(row.NextHop)
    return Route(destination, None if hop.is_unspecified else hop, int(row.Metric))


def _route_row(luid: int, route: Route) -> Any:
    row = declarations().new("MIB_IPFORWARD_ROW2 *")
    # InitializeIpForwardEntry: defaults (infinite lifetimes, protocol "network management").
    _iphlpapi().InitializeIpForwardEntry(row)
    fill_route_row(row, luid, route)
    return row


def create_route(luid: int, route: Route) -> None:
    """Add ``route`` to the interface of ``luid``."""
    # CreateIpForwardEntry2: ERROR_OBJECT_ALREADY_EXISTS for the same prefix and next hop.
    check_status(
        _iphlpapi().CreateIpForwardEntry2(_route_row(luid, route)), "CreateIpForwardEntry2"
    )


def delete_route(luid: int, route: Route) -> None:
    """Remove the route of ``luid`` with the destination and next hop of ``route``."""
    # DeleteIpForwardEntry2: keyed by interface, destination prefix and next hop.
    check_status(
        _iphlpapi().DeleteIpForwardEntry2(_route_row(luid, route)), "DeleteIpForwardEntry2"
    )


def list_routes(luid: int) -> list[Route]:
    """Every route of the interface of ``luid`` (IPv4, then IPv6)."""
    ffi = declarations()
    library = _iphlpapi()
    found: list[Route] = []
    for family in (AF_INET, AF_INET6):
        table = ffi.new("MIB_IPFORWARD_TABLE2 **")
        # GetIpForwardTable2 allocates the table; FreeMibTable frees it.
        check_status(library.GetIpForwardTable2(family, table), "GetIpForwardTable2")
        try:
            rows = ffi.cast("MIB_IPFORWARD_ROW2 *", ffi.addressof(table[0], "Table"))
            for index in range(table[0].NumEntries):
                if rows[index].InterfaceLuid == luid:
                    found.append(route_from_row(rows[index]))
        finally:
            library.FreeMibTable(table[0])
    return found


# -- DNS -------------------------------------------------------------------------------------

#: ``DNS_INTERFACE_SETTINGS`` version and flags (netioapi.h).
DNS_INTERFACE_SETTINGS_VERSION1 = 1
DNS_SETTING_IPV6 = 0x0001
DNS_SETTING_NAMESERVER = 0x0002
DNS_SETTING_SEARCHLIST = 0x0004


def interface_guid(luid: int) -> Any:
    """The GUID of the interface of ``luid`` (a cffi ``GUID *``), which the DNS settings are
    keyed by."""
    ffi = declarations()
    guid = ffi.new("GUID *")
    # ConvertInterfaceLuidToGuid
    check_status(
        _iphlpapi().ConvertInterfaceLuidToGuid(ffi.new("uint64_t *", luid), guid),
        "ConvertInterfaceLuidToGuid",
    )
    return guid


def guid_text(guid: Any) -> str:
    """A ``GUID`` as Windows writes it in registry paths: ``{xxxxxxxx-xxxx-...}``, upper case."""
    import uuid

    data4 = bytes(guid.Data4)
    fields = (
        guid.Data1,
        guid.Data2,
        guid.Data3,
        data4[0],
        data4[1],
        int.from_bytes(data4[2:], "big"),
    )
    return "{" + str(uuid.UUID(fields=fields)).upper() + "}"


def has_interface_dns_settings() -> bool:
    """True if this Windows exports ``SetInterfaceDnsSettings`` (Windows 10 1809 and later)."""
    try:
        _iphlpapi().SetInterfaceDnsSettings  # noqa: B018 - resolving is the question
    except (AttributeError, OSError):
        return False
    return True


def fill_dns_settings(
    settings: Any, version: int, servers: str, domains: str, keep: list[Any]
) -> None:
    """Fill a zeroed ``DNS_INTERFACE_SETTINGS`` that sets the name servers and search list of
    IP ``version``; ``keep`` holds the strings for as long as the structure is used."""
    ffi = declarations()
    name_server, search_list = ffi.new("char16_t[]", servers), ffi.new("char16_t[]", domains)
    keep += [name_server, search_list]
    settings.Version = DNS_INTERFACE_SETTINGS_VERSION1
    settings.Flags = DNS_SETTING_NAMESERVER | DNS_SETTING_SEARCHLIST
    if version == 6:
        settings.Flags |= DNS_SETTING_IPV6
    settings.NameServer = name_server
    settings.SearchList = search_list


def set_dns(luid: int, wanted: DnsSettings) -> None:
    """Make ``wanted`` the DNS settings of the interface of ``luid`` (both IP versions)."""
    guid = interface_guid(luid)
    domains = ",".join(wanted.domains)
    through_api = has_interface_dns_settings()
    for version in (4, 6):
        servers = ",".join(str(server) for server in wanted.for_version(version))
        if through_api:
            settings = declarations().new("DNS_INTERFACE_SETTINGS *")
            keep: list[Any] = []
            fill_dns_settings(settings, version, servers, domains, keep)
            # SetInterfaceDnsSettings: only the fields named in Flags are changed.
            check_status(
                _iphlpapi().SetInterfaceDnsSettings(guid[0], settings), "SetInterfaceDnsSettings"
            )
        else:
            from . import _dnsregistry

            _dnsregistry.write(version, guid_text(guid), servers, domains)
    if not through_api:
        from . import _dnsregistry

        _dnsregistry.notify_dns_client()


def get_dns(luid: int) -> DnsSettings:
    """The DNS settings of the interface of ``luid``."""
    guid = interface_guid(luid)
    through_api = has_interface_dns_settings()
    servers: list[str] = []
    domains: list[str] = []
    for version in (4, 6):
        if through_api:
            settings = declarations().new("DNS_INTERFACE_SETTINGS *")
            settings.Version = DNS_INTERFACE_SETTINGS_VERSION1
            settings.Flags = DNS_SETTING_IPV6 if version == 6 else 0
            # GetInterfaceDnsSettings allocates the strings; FreeInterfaceDnsSettings frees them.
            check_status(
                _iphlpapi().GetInterfaceDnsSettings(guid[0], settings), "GetInterfaceDnsSettings"
            )
            try:
                listed, searched = _wide(settings.NameServer), _wide(settings.SearchList)
            finally:
                _iphlpapi().FreeInterfaceDnsSettings(settings)
        else:
            from . import _dnsregistry

            listed, searched = _dnsregistry.read(version, guid_text(guid))
        servers += split_list(listed)
        domains = domains or split_list(searched)  # the same list is set for both versions
    return DnsSettings.parse(servers, domains)


def _wide(pointer: Any) -> str:
    ffi = declarations()
    return "" if pointer == ffi.NULL else str(ffi.string(pointer))


def split_list(text: str) -> list[str]:
    """The items of a list Windows stores as text, separated by commas or spaces."""
    return [item for item in text.replace(",", " ").split() if item]


class IpHelper:
    """The :class:`~wintun_cffi.netconfig.configurator.Configurator` of a native adapter on
    Windows: IP Helper calls on the interface of ``luid``."""

    def __init__(self, luid: int) -> None:
        self.luid = luid

    def addresses(self) -> list[Interface]:
        return list_unicast_addresses(self.luid)

    def add_address(self, interface: Interface) -> None:
        create_unicast_address(self.luid, interface)

    def remove_address(self, interface: Interface) -> bool:
        try:
            delete_unicast_address(self.luid, interface)
        except AdapterNotFoundError as error:
            if error.winerror != c.ERROR_NOT_FOUND:
                raise
            return False
        return True

    def mtu(self, version: Literal[4, 6]) -> int:
        return int(get_ip_interface(self.luid, version).NlMtu)

    def set_mtu(self, mtu: int, version: Literal[4, 6]) -> None:
        set_mtu(self.luid, version, mtu)

    def routes(self) -> list[Route]:
        return list_routes(self.luid)

    def add_route(self, route: Route) -> bool:
        try:
            create_route(self.luid, route)
        except AlreadyExistsError:
            return False
        return True

    def remove_route(self, route: Route) -> bool:
        try:
            delete_route(self.luid, route)
        except AdapterNotFoundError as error:
            if error.winerror != c.ERROR_NOT_FOUND:
                raise
            return False
        return True

    def dns(self) -> DnsSettings:
        return get_dns(self.luid)

    def set_dns(self, settings: DnsSettings) -> None:
        set_dns(self.luid, settings)

    def wait_for_interface(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        sleep = backoff(0.01, 0.1)  # Windows signals nothing when it is done
        while not interface_exists(self.luid):
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Windows created no IP interface for the adapter within {timeout} s"
                )
            sleep()
