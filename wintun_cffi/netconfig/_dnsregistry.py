"""DNS settings through the registry, for Windows without ``SetInterfaceDnsSettings``.

Before Windows 10 version 1809 the per-interface DNS settings are registry values that the DNS
Client service reads: ``NameServer`` (the servers, comma-separated) and ``SearchList`` (the
search domains, comma-separated) in the interface's key under the TCP/IP service's parameters
(``Tcpip`` for IPv4, ``Tcpip6`` for IPv6). This module writes and reads them (with
:mod:`winreg`) and tells the DNS Client service that its parameters changed. Windows only;
nothing is loaded on import.
"""

from __future__ import annotations

import sys
from typing import Any

#: The parameters key of the TCP/IP service of each IP version, under HKEY_LOCAL_MACHINE.
SERVICE_KEYS = {
    4: r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters\Interfaces",
    6: r"SYSTEM\CurrentControlSet\Services\Tcpip6\Parameters\Interfaces",
}

# winsvc.h: the access right and control code that tell a service to re-read its parameters.
SERVICE_PAUSE_CONTINUE = 0x0040
SERVICE_CONTROL_PARAMCHANGE = 0x00000006
SC_MANAGER_CONNECT = 0x0001

_ADVAPI32_CDEF = """
typedef struct {
    uint32_t dwServiceType;
    uint32_t dwCurrentState;
    uint32_t dwControlsAccepted;
    uint32_t dwWin32ExitCode;
    uint32_t dwServiceSpecificExitCode;
    uint32_t dwCheckPoint;
    uint32_t dwWaitHint;
} SERVICE_STATUS;

void *WINAPI OpenSCManagerW(const char16_t *Machine, const char16_t *Database, uint32_t Access);
void *WINAPI OpenServiceW(void *Manager, const char16_t *Name, uint32_t Access);
int   WINAPI ControlService(void *Service, uint32_t Control, SERVICE_STATUS *Status);
int   WINAPI CloseServiceHandle(void *Handle);
"""


def interface_key(version: int, guid: str) -> str:
    """The registry key (under HKEY_LOCAL_MACHINE) of the interface ``guid`` (``{...}``)."""
    return f"{SERVICE_KEYS[version]}\\{guid}"


def _windows_only() -> None:
    if sys.platform != "win32":
        raise OSError("the Windows registry exists only on Windows")


def write(version: int, guid: str, servers: str, domains: str) -> None:
    """Set the ``NameServer`` and ``SearchList`` values of IP ``version`` of interface
    ``guid`` (comma-separated lists; empty clears). PermissionError without administrator
    rights."""
    _windows_only()
    if sys.platform == "win32":  # (for the type checker: winreg exists only here)
        import winreg

        # The interface's key exists once Windows built the interface; CreateKeyEx opens it.
        with winreg.CreateKeyEx(
            winreg.HKEY_LOCAL_MACHINE, interface_key(version, guid), 0, winreg.KEY_SET_VALUE
        ) as key:
            winreg.SetValueEx(key, "NameServer", 0, winreg.REG_SZ, servers)
            winreg.SetValueEx(key, "SearchList", 0, winreg.REG_SZ, domains)


def read(version: int, guid: str) -> tuple[str, str]:
    """The ``NameServer`` and ``SearchList`` values of IP ``version`` of interface ``guid``
    (empty where a value or the key is missing)."""
    _windows_only()
    values = ["", ""]
    if sys.platform == "win32":
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, interface_key(version, guid)) as key:
                for index, name in enumerate(("NameServer", "SearchList")):
                    try:
                        values[index] = str(winreg.QueryValueEx(key, name)[0])
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            pass
    return values[0], values[1]


def notify_dns_client() -> bool:
    """Ask the DNS Client service (``dnscache``) to re-read its parameters
    (``SERVICE_CONTROL_PARAMCHANGE``); False if it could not be told. It also notices
    registry changes by itself, later, so a refusal is not an error."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(_ADVAPI32_CDEF)
    advapi32: Any = ffi.dlopen("advapi32.dll")
    # OpenSCManagerW, OpenServiceW, ControlService, CloseServiceHandle
    manager = advapi32.OpenSCManagerW(ffi.NULL, ffi.NULL, SC_MANAGER_CONNECT)
    if manager == ffi.NULL:
        return False
    try:
        service = advapi32.OpenServiceW(manager, "dnscache", SERVICE_PAUSE_CONTINUE)
        if service == ffi.NULL:
            return False
        try:
            status = ffi.new("SERVICE_STATUS *")
            return bool(advapi32.ControlService(service, SERVICE_CONTROL_PARAMCHANGE, status))
        finally:
            advapi32.CloseServiceHandle(service)
    finally:
        advapi32.CloseServiceHandle(manager)
