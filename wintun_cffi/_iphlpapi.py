"""The IP Helper API (``iphlpapi.dll``) calls behind :mod:`wintun_cffi.netconfig`; Windows only.

Nothing here runs on ``import wintun_cffi``: the declarations are parsed on first use and the
DLL is opened only when a native adapter is configured on Windows. The declarations
(:data:`~wintun_cffi._iphlpapi.CDEF`) are plain text, so the layout test can parse them on any
OS and compare sizes and offsets with the x64 values of the Windows SDK.

The declarations use fixed-width types only, in the SDK's field order (``netioapi.h``,
``nldef.h``, ``ws2ipdef.h``): ``NET_LUID`` is a ``uint64_t`` (a union of one), the ``NL_*``
enums are 32-bit ints, ``SCOPE_ID`` is a ``uint32_t``, ``LARGE_INTEGER`` an ``int64_t``,
``BOOLEAN`` and ``NL_INTERFACE_OFFLOAD_ROD`` (eight one-bit flags) are one byte. The functions
return a Win32 error code (``NETIO_STATUS`` is a ``DWORD`` once ``iphlpapi.h`` is included).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from . import constants as c
from .errors import AccessDeniedError, error_from_code

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

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

void     WINAPI InitializeUnicastIpAddressEntry(MIB_UNICASTIPADDRESS_ROW *Row);
uint32_t WINAPI CreateUnicastIpAddressEntry(const MIB_UNICASTIPADDRESS_ROW *Row);
uint32_t WINAPI DeleteUnicastIpAddressEntry(const MIB_UNICASTIPADDRESS_ROW *Row);
void     WINAPI InitializeIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
uint32_t WINAPI GetIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
uint32_t WINAPI SetIpInterfaceEntry(MIB_IPINTERFACE_ROW *Row);
"""

# Windows' address family numbers (ws2def.h); AF_INET6 differs from Linux's 10.
AF_INET = 2
AF_INET6 = 23
#: NL_DAD_STATE: usable at once, without waiting for duplicate address detection.
IP_DAD_STATE_PREFERRED = 4

_declarations: Any = None
_library: Any = None


def declarations() -> Any:
    """A cffi FFI holding :data:`~wintun_cffi._iphlpapi.CDEF` (parsed on first use; any OS)."""
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
        from .platform import open_library

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
    from .platform import open_library

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


def fill_unicast_row(row: Any, luid: int, interface: Interface) -> None:
    """Set the fields of an initialised ``MIB_UNICASTIPADDRESS_ROW`` that name ``interface``."""
    ffi = declarations()
    packed = interface.ip.packed
    if interface.version == 4:
        row.Address.Ipv4.sin_family = AF_INET
        ffi.memmove(row.Address.Ipv4.sin_addr, packed, len(packed))
    else:
        row.Address.Ipv6.sin6_family = AF_INET6
        ffi.memmove(row.Address.Ipv6.sin6_addr, packed, len(packed))
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

