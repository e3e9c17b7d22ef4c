/* SPDX-License-Identifier: MIT
 *
 * Declarations of the Wintun 0.14 API (0.14 and 0.14.1), written for wintun-cffi from the
 * project's specification. build_ffi.py turns this file into wintun_cffi/platform/_ffi_0_14.py.
 * Style: plain function types, `typedef RET (WINAPI WINTUN_X_FUNC)(...)`.
 */

#pragma once

#include <winsock2.h>
#include <windows.h>
#include <ipexport.h>
#include <ifdef.h>
#include <ws2ipdef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ALIGNED
#    if defined(_MSC_VER)
#        define ALIGNED(n) __declspec(align(n))
#    elif defined(__GNUC__)
#        define ALIGNED(n) __attribute__((aligned(n)))
#    else
#        error "no way to declare ALIGNED on this compiler"
#    endif
#endif

/* Older MinGW headers do not know this annotation. */
#ifndef _Post_maybenull_
#    define _Post_maybenull_
#endif

/* Adapter names and tunnel types hold at most this many WCHARs, terminator included. */
#ifndef MAX_ADAPTER_NAME
#    define MAX_ADAPTER_NAME 128
#endif

/** An open adapter. */
typedef struct _WINTUN_ADAPTER *WINTUN_ADAPTER_HANDLE;

/**
 * Makes a new adapter named Name; TunnelType names the kind of tunnel. RequestedGUID picks the
 * network GUID (NULL: derived from Name). Returns NULL on failure, see GetLastError.
 * Release with WintunCloseAdapter, which also removes the adapter.
 */
typedef _Must_inspect_result_
_Return_type_success_(return != NULL)
_Post_maybenull_
WINTUN_ADAPTER_HANDLE(WINAPI WINTUN_CREATE_ADAPTER_FUNC)
(_In_z_ LPCWSTR Name, _In_z_ LPCWSTR TunnelType, _In_opt_ const GUID *RequestedGUID);

/** Opens the existing adapter named Name. NULL and GetLastError on failure. */
typedef _Must_inspect_result_
_Return_type_success_(return != NULL)
_Post_maybenull_
WINTUN_ADAPTER_HANDLE(WINAPI WINTUN_OPEN_ADAPTER_FUNC)(_In_z_ LPCWSTR Name);

/** Releases an adapter handle; removes the adapter if this handle created it. */
typedef VOID(WINAPI WINTUN_CLOSE_ADAPTER_FUNC)(_In_opt_ WINTUN_ADAPTER_HANDLE Adapter);

/** Uninstalls the driver when no adapter uses it any more. FALSE and GetLastError on failure. */
typedef _Return_type_success_(return != FALSE)
BOOL(WINAPI WINTUN_DELETE_DRIVER_FUNC)(VOID);

/** Stores the adapter's LUID. */
typedef VOID(WINAPI WINTUN_GET_ADAPTER_LUID_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _Out_ NET_LUID *Luid);

/** (major << 16) | minor of the loaded driver; 0 and GetLastError when none is loaded. */
typedef _Return_type_success_(return != 0)
DWORD(WINAPI WINTUN_GET_RUNNING_DRIVER_VERSION_FUNC)(VOID);

/** How serious a log message is. */
typedef enum
{
    WINTUN_LOG_INFO, /* informational */
    WINTUN_LOG_WARN, /* warning */
    WINTUN_LOG_ERR   /* error */
} WINTUN_LOGGER_LEVEL;

/** Receives one log message; Timestamp counts 100 ns units since 1601-01-01 UTC. */
typedef VOID(CALLBACK *WINTUN_LOGGER_CALLBACK)(
    _In_ WINTUN_LOGGER_LEVEL Level,
    _In_ DWORD64 Timestamp,
    _In_z_ LPCWSTR Message);

/** Installs the process-wide logger; NULL turns logging off. */
typedef VOID(WINAPI WINTUN_SET_LOGGER_FUNC)(_In_ WINTUN_LOGGER_CALLBACK NewLogger);

/* Ring capacity bounds in bytes; a capacity is a power of two between them. */
#define WINTUN_MIN_RING_CAPACITY 0x20000 /* 128 KiB */
#define WINTUN_MAX_RING_CAPACITY 0x4000000 /* 64 MiB */

/** A running session. */
typedef struct _TUN_SESSION *WINTUN_SESSION_HANDLE;

/** Starts a session with rings of Capacity bytes each. NULL and GetLastError on failure. */
typedef _Must_inspect_result_
_Return_type_success_(return != NULL)
_Post_maybenull_
WINTUN_SESSION_HANDLE(WINAPI WINTUN_START_SESSION_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _In_ DWORD Capacity);

/** Ends a session; every packet pointer of it dangles afterwards. */
typedef VOID(WINAPI WINTUN_END_SESSION_FUNC)(_In_ WINTUN_SESSION_HANDLE Session);

/** The event that is signalled when packets wait to be received. Owned by the session. */
typedef HANDLE(WINAPI WINTUN_GET_READ_WAIT_EVENT_FUNC)(_In_ WINTUN_SESSION_HANDLE Session);

/* Largest packet payload in bytes. */
#define WINTUN_MAX_IP_PACKET_SIZE 0xFFFF

/**
 * Takes the next packet sent out through the adapter and stores its size. NULL and GetLastError
 * (ERROR_NO_MORE_ITEMS when empty) on failure. Give it back with WintunReleaseReceivePacket.
 */
typedef _Must_inspect_result_
_Return_type_success_(return != NULL)
_Post_maybenull_
_Post_writable_byte_size_(*PacketSize)
BYTE *(WINAPI WINTUN_RECEIVE_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _Out_ DWORD *PacketSize);

/** Gives a received packet's ring space back. */
typedef VOID(
    WINAPI WINTUN_RELEASE_RECEIVE_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ const BYTE *Packet);

/** Reserves room for a packet of PacketSize bytes. NULL and GetLastError on failure. */
typedef _Must_inspect_result_
_Return_type_success_(return != NULL)
_Post_maybenull_
_Post_writable_byte_size_(PacketSize)
BYTE *(WINAPI WINTUN_ALLOCATE_SEND_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ DWORD PacketSize);

/** Hands an allocated packet to the driver; packets go out in allocation order. */
typedef VOID(WINAPI WINTUN_SEND_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ const BYTE *Packet);

#ifdef __cplusplus
}
#endif
