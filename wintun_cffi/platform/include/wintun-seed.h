/* SPDX-License-Identifier: MIT
 *
 * Declarations of the first Wintun API snapshot (2020-11, before 0.9), written for wintun-cffi
 * from the project's specification. build_ffi.py turns this file into wintun_cffi/platform/_ffi_seed.py.
 * Style: function-pointer typedefs, `typedef RET (WINAPI *WINTUN_X_FUNC)(...)`.
 */

#pragma once

#include <Windows.h>
#include <IPExport.h>
#include <ifdef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Pool names hold at most this many WCHARs, terminator included. */
#define WINTUN_MAX_POOL 256

/* Adapter names hold at most this many WCHARs, terminator included. */
#ifndef MAX_ADAPTER_NAME
#    define MAX_ADAPTER_NAME 128
#endif

/** An adapter handle. */
typedef void *WINTUN_ADAPTER_HANDLE;

/**
 * Installs a new adapter of pool Pool named Name. RequestedGUID picks the network GUID (NULL:
 * random). RebootRequired, if given, is set when Windows needs a reboot. NULL and GetLastError
 * on failure. Free the handle with WintunFreeAdapter.
 */
typedef _Return_type_success_(return != NULL) WINTUN_ADAPTER_HANDLE (WINAPI *WINTUN_CREATE_ADAPTER_FUNC)(
    _In_z_ const WCHAR *Pool,
    _In_z_ const WCHAR *Name,
    _In_opt_ const GUID *RequestedGUID,
    _Out_opt_ BOOL *RebootRequired);

/** Uninstalls an adapter; ForceCloseSessions ends sessions that still use it. */
typedef _Return_type_success_(return != FALSE) BOOL(WINAPI *WINTUN_DELETE_ADAPTER_FUNC)(
    _In_ WINTUN_ADAPTER_HANDLE Adapter,
    _In_ BOOL ForceCloseSessions,
    _Out_opt_ BOOL *RebootRequired);

/** Removes every adapter of pool Pool, then the driver if no other pool needs it. */
typedef _Return_type_success_(return != FALSE)
    BOOL(WINAPI *WINTUN_DELETE_POOL_DRIVER_FUNC)(_In_z_ const WCHAR *Pool, _Out_opt_ BOOL *RebootRequired);

/** Called once per adapter of a pool; return FALSE to stop early. */
typedef BOOL(CALLBACK *WINTUN_ENUM_CALLBACK)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _In_ LPARAM Param);

/** Calls Callback for each adapter of pool Pool. FALSE and GetLastError on failure. */
typedef _Return_type_success_(return != FALSE) BOOL(WINAPI *WINTUN_ENUM_ADAPTERS_FUNC)(
    _In_z_ const WCHAR *Pool,
    _In_ WINTUN_ENUM_CALLBACK Callback,
    _In_ LPARAM Param);

/** Releases an adapter handle; the adapter stays installed. */
typedef void(WINAPI *WINTUN_FREE_ADAPTER_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter);

/** Opens the adapter named Name in pool Pool. NULL and GetLastError on failure. */
typedef _Return_type_success_(return != NULL)
    WINTUN_ADAPTER_HANDLE(WINAPI *WINTUN_GET_ADAPTER_FUNC)(_In_z_ const WCHAR *Pool, _In_z_ const WCHAR *Name);

/** Opens the adapter's device object. INVALID_HANDLE_VALUE and GetLastError on failure. */
typedef _Return_type_success_(return != INVALID_HANDLE_VALUE)
    HANDLE(WINAPI *WINTUN_OPEN_ADAPTER_DEVICE_OBJECT_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter);

/** Stores the adapter's LUID. */
typedef void(WINAPI *WINTUN_GET_ADAPTER_LUID_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _Out_ NET_LUID *Luid);

/** Copies the adapter's name into Name, a buffer of MAX_ADAPTER_NAME WCHARs. */
typedef _Return_type_success_(return != FALSE) BOOL(WINAPI *WINTUN_GET_ADAPTER_NAME_FUNC)(
    _In_ WINTUN_ADAPTER_HANDLE Adapter,
    _Out_cap_c_(MAX_ADAPTER_NAME) WCHAR *Name);

/** Renames the adapter. FALSE and GetLastError on failure. */
typedef _Return_type_success_(return != FALSE)
    BOOL(WINAPI *WINTUN_SET_ADAPTER_NAME_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _In_z_ const WCHAR *Name);

/** (major << 16) | minor of the loaded driver; 0 and GetLastError when none is loaded. */
typedef DWORD(WINAPI *WINTUN_GET_RUNNING_DRIVER_VERSION_FUNC)(void);

/** How serious a log message is. */
typedef enum _WINTUN_LOGGER_LEVEL
{
    WINTUN_LOG_INFO,
    WINTUN_LOG_WARN,
    WINTUN_LOG_ERR
} WINTUN_LOGGER_LEVEL;

/** Receives one log message. The DLL ignores the returned value. */
typedef BOOL(CALLBACK *WINTUN_LOGGER_CALLBACK)(_In_ WINTUN_LOGGER_LEVEL Level, _In_z_ const WCHAR *Message);

/** Installs the process-wide logger; NULL turns logging off. */
typedef void(WINAPI *WINTUN_SET_LOGGER_FUNC)(_In_ WINTUN_LOGGER_CALLBACK NewLogger);

/* Ring capacity bounds in bytes; a capacity is a power of two between them. */
#define WINTUN_MIN_RING_CAPACITY 0x20000 /* 128 KiB */
#define WINTUN_MAX_RING_CAPACITY 0x4000000 /* 64 MiB */

/** A running session. */
typedef void *WINTUN_SESSION_HANDLE;

/** Starts a session with rings of Capacity bytes each. NULL and GetLastError on failure. */
typedef _Return_type_success_(return != NULL)
    WINTUN_SESSION_HANDLE(WINAPI *WINTUN_START_SESSION_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _In_ DWORD Capacity);

/** Ends a session; every packet pointer of it dangles afterwards. */
typedef void(WINAPI *WINTUN_END_SESSION_FUNC)(_In_ WINTUN_SESSION_HANDLE Session);

/** The event that is signalled when packets wait to be received. Owned by the session. */
typedef HANDLE(WINAPI *WINTUN_GET_READ_WAIT_EVENT_FUNC)(_In_ WINTUN_SESSION_HANDLE Session);

/* Largest packet payload in bytes. */
#define WINTUN_MAX_IP_PACKET_SIZE 0xFFFF

/** Takes the next outgoing packet and stores its size. NULL and GetLastError on failure. */
typedef _Return_type_success_(return != NULL) _Ret_bytecount_(*PacketSize) BYTE *(
    WINAPI *WINTUN_RECEIVE_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _Out_ DWORD *PacketSize);

/** Gives a received packet's ring space back. */
typedef void(WINAPI *WINTUN_RECEIVE_RELEASE_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ const BYTE *Packet);

/** Reserves room for a packet of PacketSize bytes. NULL and GetLastError on failure. */
typedef _Return_type_success_(return != NULL) _Ret_bytecount_(PacketSize) BYTE *(
    WINAPI *WINTUN_ALLOCATE_SEND_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ DWORD PacketSize);

/** Hands an allocated packet to the driver; packets go out in allocation order. */
typedef void(WINAPI *WINTUN_SEND_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ const BYTE *Packet);

#ifdef __cplusplus
}
#endif
