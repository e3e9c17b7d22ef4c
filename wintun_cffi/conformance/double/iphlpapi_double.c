/*
 * iphlpapi_double.c: a Windows test double of the IP Helper calls that
 * wintun_cffi.netconfig makes, loaded in place of iphlpapi.dll through
 * wintun_cffi.netconfig._iphlpapi.use_library().
 *
 * Written for wintun-cffi; it contains no code from Windows or Wine. It is
 * compiled against Windows' own netioapi.h (MinGW-w64's copy), so every row
 * it receives is read with the sizes and offsets Windows defines, not with
 * the binding's declarations: a row the binding lays out wrongly shows up as
 * fields with values nobody wrote, and is refused. It keeps the state the
 * calls expect: the interfaces (by LUID), their unicast addresses and their
 * IPv4 / IPv6 rows (MTU among them).
 *
 * Every exported function checks its row in one check_* function, changes
 * the state under one lock, and returns a Win32 code; a refused row also
 * leaves its reason for IpHelperDoubleLastRejection(). More IP Helper calls
 * (route rows, DNS settings) are added the same way: a check_* function for
 * their row, a table in struct iface, a helper export to read it back.
 */

#include <winsock2.h>
#include <ws2ipdef.h>
#include <iphlpapi.h>
#include <netioapi.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The x64 layout the binding's declarations must agree with. */
_Static_assert(sizeof(SOCKADDR_INET) == 28, "SOCKADDR_INET");
_Static_assert(sizeof(MIB_UNICASTIPADDRESS_ROW) == 80, "MIB_UNICASTIPADDRESS_ROW");
_Static_assert(offsetof(MIB_UNICASTIPADDRESS_ROW, InterfaceLuid) == 32, "InterfaceLuid");
_Static_assert(offsetof(MIB_UNICASTIPADDRESS_ROW, DadState) == 64, "DadState");
_Static_assert(sizeof(MIB_IPINTERFACE_ROW) == 168, "MIB_IPINTERFACE_ROW");
_Static_assert(offsetof(MIB_IPINTERFACE_ROW, NlMtu) == 152, "NlMtu");

#define EXPORT __declspec(dllexport)
#define MAX_INTERFACES 16
#define MAX_ADDRESSES 32
#define FIRST_INDEX 40 /* interface indexes handed out: 40, 41, ... */

struct address {
    SOCKADDR_INET address;
    UINT8 prefix_length;
};

struct iface {
    bool used;
    NET_LUID luid;
    NET_IFINDEX index;
    ULONG polls_until_up; /* GetIpInterfaceEntry says ERROR_NOT_FOUND this often */
    MIB_IPINTERFACE_ROW rows[2]; /* [0] IPv4, [1] IPv6: what GetIpInterfaceEntry hands out */
    struct address addresses[MAX_ADDRESSES];
    unsigned address_count;
};

static SRWLOCK g_lock = SRWLOCK_INIT;
static struct iface g_ifaces[MAX_INTERFACES];
static bool g_access_denied;
static char g_rejection[256];

/* ---- helpers ------------------------------------------------------------- */

/* Remember why a row was refused; always ERROR_INVALID_PARAMETER. */
static DWORD reject(const char *function, const char *why)
{
    size_t n = strlen(function);
    if (n > sizeof g_rejection - 3)
        n = sizeof g_rejection - 3;
    memcpy(g_rejection, function, n);
    memcpy(g_rejection + n, ": ", 2);
    strncpy(g_rejection + n + 2, why, sizeof g_rejection - n - 3);
    g_rejection[sizeof g_rejection - 1] = 0;
    return ERROR_INVALID_PARAMETER;
}

static struct iface *find_iface(NET_LUID luid)
{
    for (int i = 0; i < MAX_INTERFACES; ++i)
        if (g_ifaces[i].used && g_ifaces[i].luid.Value == luid.Value)
            return &g_ifaces[i];
    return NULL;
}

static bool known_family(ADDRESS_FAMILY family)
{
    return family == AF_INET || family == AF_INET6;
}

/* The index of a known family's row: 0 for IPv4, 1 for IPv6. */
static int family_slot(ADDRESS_FAMILY family)
{
    return family == AF_INET6;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *bytes = p;
    for (size_t i = 0; i < n; ++i)
        if (bytes[i])
            return false;
    return true;
}

static bool same_address(const SOCKADDR_INET *a, const SOCKADDR_INET *b)
{
    if (a->si_family != b->si_family)
        return false;
    if (a->si_family == AF_INET)
        return !memcmp(&a->Ipv4.sin_addr, &b->Ipv4.sin_addr, sizeof a->Ipv4.sin_addr);
    return !memcmp(&a->Ipv6.sin6_addr, &b->Ipv6.sin6_addr, sizeof a->Ipv6.sin6_addr);
}

/* ---- row checks ------------------------------------------------------------- */

/* A unicast row as InitializeUnicastIpAddressEntry left it plus what the
 * binding sets: the address, the LUID, the prefix length and DadState. */
static DWORD check_unicast_row(const char *function, const MIB_UNICASTIPADDRESS_ROW *row)
{
    if (!row)
        return reject(function, "Row is NULL");
    const SOCKADDR_INET *a = &row->Address;
    unsigned bits;
    if (a->si_family == AF_INET) {
        bits = 32;
        if (a->Ipv4.sin_port || !all_zero(a->Ipv4.sin_zero, sizeof a->Ipv4.sin_zero))
            return reject(function, "sin_port / sin_zero not zero");
        if (!all_zero((const char *)a + sizeof(SOCKADDR_IN), sizeof *a - sizeof(SOCKADDR_IN)))
            return reject(function, "bytes after the SOCKADDR_IN not zero");
    } else if (a->si_family == AF_INET6) {
        bits = 128;
        if (a->Ipv6.sin6_port || a->Ipv6.sin6_flowinfo || a->Ipv6.sin6_scope_id)
            return reject(function, "sin6_port / sin6_flowinfo / sin6_scope_id not zero");
    } else {
        return reject(function, "Address.si_family is neither AF_INET (2) nor AF_INET6 (23)");
    }
    if (row->InterfaceLuid.Value == 0)
        return reject(function, "InterfaceLuid is zero");
    if (row->InterfaceIndex != 0)
        return reject(function, "InterfaceIndex set (the LUID names the interface)");
    if (row->PrefixOrigin != IpPrefixOriginUnchanged || row->SuffixOrigin != IpSuffixOriginUnchanged)
        return reject(function, "PrefixOrigin / SuffixOrigin not as initialised");
    if (row->ValidLifetime != 0xFFFFFFFFu || row->PreferredLifetime != 0xFFFFFFFFu)
        return reject(function, "lifetimes not infinite as initialised");
    if (row->OnLinkPrefixLength > bits)
        return reject(function, "OnLinkPrefixLength too long for the family (or never set)");
    if (row->SkipAsSource)
        return reject(function, "SkipAsSource set");
    if (row->DadState != IpDadStatePreferred)
        return reject(function, "DadState is not IpDadStatePreferred");
    if (row->ScopeId.Value || row->CreationTimeStamp.QuadPart)
        return reject(function, "ScopeId / CreationTimeStamp not zero");
    return NO_ERROR;
}

/* An interface row for Get: the key (Family, InterfaceLuid) over an
 * initialised row. */
static DWORD check_interface_key(const char *function, const MIB_IPINTERFACE_ROW *row)
{
    if (!row)
        return reject(function, "Row is NULL");
    if (!known_family(row->Family))
        return reject(function, "Family is neither AF_INET (2) nor AF_INET6 (23)");
    if (row->InterfaceLuid.Value == 0)
        return reject(function, "InterfaceLuid is zero");
    return NO_ERROR;
}

#define SAME(field)                                                                    \
    if (memcmp(&row->field, &given->field, sizeof row->field))                         \
        return reject(function, #field " differs from what GetIpInterfaceEntry returned");

/* An interface row for Set: the row Get handed out, with NlMtu changed and,
 * for IPv4, SitePrefixLength zero (Windows refuses anything else there). */
static DWORD check_interface_update(const char *function, const MIB_IPINTERFACE_ROW *row,
                                    const MIB_IPINTERFACE_ROW *given)
{
    if (row->Family == AF_INET && row->SitePrefixLength != 0)
        return reject(function, "SitePrefixLength of an IPv4 row is not zero");
    if (row->NlMtu < (row->Family == AF_INET ? 576u : 1280u) || row->NlMtu > 0xFFFFu)
        return reject(function, "NlMtu out of range for the family");
    SAME(Family) SAME(InterfaceLuid) SAME(InterfaceIndex) SAME(MaxReassemblySize)
    SAME(InterfaceIdentifier) SAME(MinRouterAdvertisementInterval)
    SAME(MaxRouterAdvertisementInterval) SAME(AdvertisingEnabled) SAME(ForwardingEnabled)
    SAME(WeakHostSend) SAME(WeakHostReceive) SAME(UseAutomaticMetric)
    SAME(UseNeighborUnreachabilityDetection) SAME(ManagedAddressConfigurationSupported)
    SAME(OtherStatefulConfigurationSupported) SAME(AdvertiseDefaultRoute)
    SAME(RouterDiscoveryBehavior) SAME(DadTransmits) SAME(BaseReachableTime)
    SAME(RetransmitTime) SAME(PathMtuDiscoveryTimeout) SAME(LinkLocalAddressBehavior)
    SAME(LinkLocalAddressTimeout) SAME(ZoneIndices) SAME(Metric) SAME(Connected)
    SAME(SupportsWakeUpPatterns) SAME(SupportsNeighborDiscovery) SAME(SupportsRouterDiscovery)
    SAME(ReachableTime) SAME(TransmitOffload) SAME(ReceiveOffload) SAME(DisableDefaultRoutes)
    if (row->Family == AF_INET6)
        SAME(SitePrefixLength)
    return NO_ERROR;
}

#undef SAME

/* What GetIpInterfaceEntry reports: distinct values in every field, so a
 * row written back with a field moved is caught. Like Windows, the IPv4 row
 * comes with a SitePrefixLength that SetIpInterfaceEntry then refuses. */
static void make_interface_row(MIB_IPINTERFACE_ROW *row, const struct iface *f,
                               ADDRESS_FAMILY family)
{
    memset(row, 0, sizeof *row);
    row->Family = family;
    row->InterfaceLuid = f->luid;
    row->InterfaceIndex = f->index;
    row->MaxReassemblySize = 0xFFFF;
    row->InterfaceIdentifier = 0x0102030405060708ull ^ f->luid.Value;
    row->MinRouterAdvertisementInterval = 200;
    row->MaxRouterAdvertisementInterval = 600;
    row->WeakHostSend = TRUE;
    row->UseAutomaticMetric = TRUE;
    row->UseNeighborUnreachabilityDetection = TRUE;
    row->RouterDiscoveryBehavior = RouterDiscoveryDisabled;
    row->DadTransmits = 1;
    row->BaseReachableTime = 30000;
    row->RetransmitTime = 1000;
    row->PathMtuDiscoveryTimeout = 600000;
    row->LinkLocalAddressBehavior = LinkLocalDelayed;
    row->LinkLocalAddressTimeout = 6000;
    for (int i = 0; i < ScopeLevelCount; ++i)
        row->ZoneIndices[i] = i == 1 || i == 2 ? f->index : 0;
    row->SitePrefixLength = 64;
    row->Metric = 5;
    row->NlMtu = 0xFFFF; /* Wintun's adapter reports the largest packet until told */
    row->Connected = TRUE;
    row->SupportsNeighborDiscovery = family == AF_INET6;
    row->ReachableTime = 27000;
}

/* ---- the IP Helper calls ---------------------------------------------------- */

EXPORT VOID WINAPI InitializeUnicastIpAddressEntry(PMIB_UNICASTIPADDRESS_ROW Row)
{
    memset(Row, 0, sizeof *Row);
    Row->PrefixOrigin = IpPrefixOriginUnchanged;
    Row->SuffixOrigin = IpSuffixOriginUnchanged;
    Row->ValidLifetime = 0xFFFFFFFFu;
    Row->PreferredLifetime = 0xFFFFFFFFu;
    Row->OnLinkPrefixLength = 0xFF; /* not a valid length until the caller sets one */
}

EXPORT NETIO_STATUS WINAPI CreateUnicastIpAddressEntry(const MIB_UNICASTIPADDRESS_ROW *Row)
{
    AcquireSRWLockExclusive(&g_lock);
    DWORD status = check_unicast_row("CreateUnicastIpAddressEntry", Row);
    struct iface *f = status ? NULL : find_iface(Row->InterfaceLuid);
    if (status)
        ;
    else if (g_access_denied)
        status = ERROR_ACCESS_DENIED;
    else if (!f || f->polls_until_up)
        status = ERROR_NOT_FOUND;
    else if (f->address_count == MAX_ADDRESSES)
        status = ERROR_NOT_ENOUGH_MEMORY;
    else {
        for (unsigned i = 0; i < f->address_count; ++i)
            if (same_address(&f->addresses[i].address, &Row->Address))
                status = ERROR_OBJECT_ALREADY_EXISTS; /* one row per address, any prefix */
        if (!status) {
            f->addresses[f->address_count].address = Row->Address;
            f->addresses[f->address_count].prefix_length = Row->OnLinkPrefixLength;
            ++f->address_count;
        }
    }
    ReleaseSRWLockExclusive(&g_lock);
    return status;
}

EXPORT NETIO_STATUS WINAPI DeleteUnicastIpAddressEntry(const MIB_UNICASTIPADDRESS_ROW *Row)
{
    AcquireSRWLockExclusive(&g_lock);
    DWORD status = check_unicast_row("DeleteUnicastIpAddressEntry", Row);
    struct iface *f = status ? NULL : find_iface(Row->InterfaceLuid);
    if (status)
        ;
    else if (g_access_denied)
        status = ERROR_ACCESS_DENIED;
    else if (!f || f->polls_until_up)
        status = ERROR_NOT_FOUND;
    else {
        status = ERROR_NOT_FOUND; /* keyed by LUID and address; the prefix is ignored */
        for (unsigned i = 0; i < f->address_count; ++i)
            if (same_address(&f->addresses[i].address, &Row->Address)) {
                f->addresses[i] = f->addresses[--f->address_count];
                status = NO_ERROR;
                break;
            }
    }
    ReleaseSRWLockExclusive(&g_lock);
    return status;
}

EXPORT VOID WINAPI InitializeIpInterfaceEntry(PMIB_IPINTERFACE_ROW Row)
{
    memset(Row, 0, sizeof *Row);
}

EXPORT NETIO_STATUS WINAPI GetIpInterfaceEntry(PMIB_IPINTERFACE_ROW Row)
{
    AcquireSRWLockExclusive(&g_lock);
    DWORD status = check_interface_key("GetIpInterfaceEntry", Row);
    struct iface *f = status ? NULL : find_iface(Row->InterfaceLuid);
    if (status)
        ;
    else if (!f)
        status = ERROR_NOT_FOUND;
    else if (f->polls_until_up) {
        --f->polls_until_up; /* Windows has not built the interface yet */
        status = ERROR_NOT_FOUND;
    } else
        *Row = f->rows[family_slot(Row->Family)];
    ReleaseSRWLockExclusive(&g_lock);
    return status;
}

EXPORT NETIO_STATUS WINAPI SetIpInterfaceEntry(PMIB_IPINTERFACE_ROW Row)
{
    AcquireSRWLockExclusive(&g_lock);
    DWORD status = check_interface_key("SetIpInterfaceEntry", Row);
    struct iface *f = status ? NULL : find_iface(Row->InterfaceLuid);
    if (status)
        ;
    else if (!f || f->polls_until_up)
        status = ERROR_NOT_FOUND;
    else {
        MIB_IPINTERFACE_ROW *stored = &f->rows[family_slot(Row->Family)];
        status = check_interface_update("SetIpInterfaceEntry", Row, stored);
        if (!status && g_access_denied)
            status = ERROR_ACCESS_DENIED;
        if (!status)
            stored->NlMtu = Row->NlMtu;
    }
    ReleaseSRWLockExclusive(&g_lock);
    return status;
}

/* ---- helpers for tests ------------------------------------------------------ */

/* Windows has an interface for `Luid`, built after `PollsUntilUp` more
 * GetIpInterfaceEntry calls. FALSE if it exists already or the table is full. */
EXPORT BOOL IpHelperDoubleAddInterface(UINT64 Luid, ULONG PollsUntilUp)
{
    NET_LUID luid = { .Value = Luid };
    BOOL ok = FALSE;
    AcquireSRWLockExclusive(&g_lock);
    if (!find_iface(luid))
        for (int i = 0; i < MAX_INTERFACES; ++i)
            if (!g_ifaces[i].used) {
                struct iface *f = &g_ifaces[i];
                memset(f, 0, sizeof *f);
                f->used = true;
                f->luid = luid;
                f->index = FIRST_INDEX + i;
                f->polls_until_up = PollsUntilUp;
                make_interface_row(&f->rows[0], f, AF_INET);
                make_interface_row(&f->rows[1], f, AF_INET6);
                ok = TRUE;
                break;
            }
    ReleaseSRWLockExclusive(&g_lock);
    return ok;
}

/* Forget every interface, the refusal reason and the access-denied switch. */
EXPORT VOID IpHelperDoubleReset(VOID)
{
    AcquireSRWLockExclusive(&g_lock);
    memset(g_ifaces, 0, sizeof g_ifaces);
    g_access_denied = false;
    g_rejection[0] = 0;
    ReleaseSRWLockExclusive(&g_lock);
}

/* Changes fail with ERROR_ACCESS_DENIED, as for a process without elevation. */
EXPORT VOID IpHelperDoubleSetAccessDenied(BOOL Denied)
{
    g_access_denied = Denied != FALSE;
}

/* Why the last refused row was refused ("" if none was). */
EXPORT const char *IpHelperDoubleLastRejection(VOID)
{
    return g_rejection;
}

/* The `Index`th address of the interface: FALSE past the last one. */
EXPORT BOOL IpHelperDoubleGetAddress(UINT64 Luid, ULONG Index, SOCKADDR_INET *Address,
                                     UINT8 *PrefixLength)
{
    NET_LUID luid = { .Value = Luid };
    BOOL ok = FALSE;
    AcquireSRWLockExclusive(&g_lock);
    struct iface *f = find_iface(luid);
    if (f && Index < f->address_count) {
        *Address = f->addresses[Index].address;
        *PrefixLength = f->addresses[Index].prefix_length;
        ok = TRUE;
    }
    ReleaseSRWLockExclusive(&g_lock);
    return ok;
}

/* The interface's MTU for AF_INET or AF_INET6; 0 if there is no such interface. */
EXPORT ULONG IpHelperDoubleGetMtu(UINT64 Luid, ADDRESS_FAMILY Family)
{
    NET_LUID luid = { .Value = Luid };
    ULONG mtu = 0;
    AcquireSRWLockExclusive(&g_lock);
    struct iface *f = find_iface(luid);
    if (f && known_family(Family))
        mtu = f->rows[family_slot(Family)].NlMtu;
    ReleaseSRWLockExclusive(&g_lock);
    return mtu;
}
