"""A real Linux kernel on the far side of an emulated adapter, through a TUN interface.

:class:`LinuxTunHost` is a :class:`~emulator.host.Host` whose system is the Linux network stack:
the packets the application sends are written to a TUN device (one ``write`` per packet: TUN
has no batch write without ``IFF_VNET_HDR`` offloads, which only merge one flow's segments),
and what the kernel routes to the interface is delivered into the Send ring, one batch per
wakeup. One thread does both: the session driver's consumer also waits for the device
(:meth:`~emulator.driver.SessionDriver.watch_while_idle`), since a handoff between Python
threads costs more than the work of a packet. Addresses, MTUs and routes go to the kernel through iproute2's ``ip``
command; DNS settings are only recorded (a network namespace has no resolver of its own).

Needs root (``CAP_NET_ADMIN``) and ``/dev/net/tun``. The interface is named after the adapter
(a name Linux refuses, such as ``"My VPN"``, is mapped to one it takes: :func:`interface_name_for`,
the host's :attr:`~LinuxTunHost.interface_name`),
up while a session is attached, and deleted when the host closes (the adapter is removed). The
kernel sends no router solicitations through it: a session sees only the traffic that is sent
or routed to the interface, not the kernel's search for an IPv6 router.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import struct
import subprocess
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from wintun_cffi.constants import MAX_IP_PACKET_SIZE
from wintun_cffi.errors import AccessDeniedError, AlreadyExistsError, WintunError
from wintun_cffi.fdevent import FdEvent
from wintun_cffi.netconfig.values import Route

from . import netns
from .driver import SessionDriver
from .host import Family, Host, Interface, check_mtu
from .releases import Release
from .ring import Ring

_log = logging.getLogger(__name__)

TUN_DEVICE = "/dev/net/tun"
#: The kernel's interface name limit (IFNAMSIZ is 16 with the terminating NUL).
MAX_INTERFACE_NAME_BYTES = 15
NEEDS_ROOT = "creating a TUN interface needs root (CAP_NET_ADMIN)"

# <linux/if_tun.h>: _IOW('T', 202, int) and the flags of struct ifreq.
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_IFREQ = struct.Struct("16sH22x")  # ifr_name, ifr_flags, rest of the union
#: Most packets the reader takes from the kernel per wakeup (one all-or-nothing batch).
READ_BATCH = 128


class _InLinuxTerms(WintunError):
    """The base of the errors the Linux side raises where Wintun would fail: the message says
    what happened in Linux terms, the Win32 code follows it (not ``[WinError N]`` first)."""

    def __str__(self) -> str:
        return f"{self.strerror} (Win32 error {self.winerror})"


class TunPermissionError(_InLinuxTerms, AccessDeniedError, PermissionError):
    """No right to create a TUN interface: a :class:`PermissionError`, and the
    :class:`~wintun_cffi.errors.AccessDeniedError` (``ERROR_ACCESS_DENIED``) Wintun raises
    without administrator rights."""


class InterfaceExistsError(_InLinuxTerms, AlreadyExistsError, FileExistsError):
    """An interface of that name exists: a :class:`FileExistsError`, and the
    :class:`~wintun_cffi.errors.AlreadyExistsError` (``ERROR_ALREADY_EXISTS``) of Wintun."""


def check_interface_name(name: str) -> bytes:
    """``name`` as the kernel will see it; :class:`ValueError` if Linux would refuse it.

    Linux interface names are 1 to 15 bytes, not ``.`` or ``..``, without ``/``, ``:`` or
    whitespace. ``%`` is refused too: the TUN driver would read it as a numbering template and
    pick another name. Nothing is renamed silently.
    """
    encoded = name.encode()
    problem = None
    if not encoded:
        problem = "it is empty"
    elif len(encoded) > MAX_INTERFACE_NAME_BYTES:
        problem = f"it is {len(encoded)} bytes in UTF-8; the limit is {MAX_INTERFACE_NAME_BYTES}"
    elif name in (".", ".."):
        problem = "it is a path component"
    elif any(c in "/:%" or c.isspace() for c in name):
        problem = "it contains '/', ':', '%' or whitespace"
    if problem is not None:
        raise ValueError(f"{name!r} cannot name a Linux interface: {problem}")
    return encoded


class IpCommandError(OSError):
    """iproute2's ``ip`` failed; ``message`` is what it (usually the kernel) said."""

    def __init__(self, args: tuple[str, ...], message: str) -> None:
        super().__init__(f"`ip {' '.join(args)}` failed: {message}")
        self.message = message


def interface_name_for(adapter_name: str) -> str:
    """The kernel interface name of adapter ``adapter_name``: the name itself where Linux
    takes it (:func:`check_interface_name`); otherwise (``"My VPN"``, a name over 15 bytes)
    up to 10 of its ASCII letters, digits, ``-``, ``_`` and ``.`` (others become ``-``), a
    ``-`` and 4 hex digits of the name's SHA-256, so that each adapter name maps to one
    interface name, always the same."""
    try:
        check_interface_name(adapter_name)
    except ValueError:
        pass
    else:
        return adapter_name
    kept = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in adapter_name
    ).strip("-.")
    digest = hashlib.sha256(adapter_name.encode()).hexdigest()[:4]
    return f"{kept[:10] or 'wintun'}-{digest}"


def ip_command(*args: str) -> str:
    """Run iproute2's ``ip`` with ``args``; its output, or :class:`IpCommandError` (an
    :class:`OSError`) with its message."""
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, "the Linux TUN host needs iproute2's `ip` command on PATH"
        ) from None
    if result.returncode != 0:
        raise IpCommandError(args, result.stderr.strip())
    return result.stdout


def _open_tun(encoded: bytes) -> int:
    """A non-blocking descriptor of a new TUN interface (no packet information header)."""
    try:
        fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"{TUN_DEVICE} is missing: this kernel has no TUN support loaded (modprobe tun)",
            TUN_DEVICE,
        ) from None
    except PermissionError:
        raise TunPermissionError(NEEDS_ROOT) from None
    try:
        request = bytearray(_IFREQ.pack(encoded, _IFF_TUN | _IFF_NO_PI))
        fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError as error:
        os.close(fd)
        _raise_setiff(error, encoded.decode())
    given = _IFREQ.unpack(request)[0].rstrip(b"\0")
    if given != encoded:  # never expected: names with '%' are refused before
        os.close(fd)
        raise OSError(f"the kernel named the interface {given!r}, not {encoded!r}")
    return fd


def _raise_setiff(error: OSError, name: str) -> NoReturn:
    if error.errno == errno.EPERM:
        raise TunPermissionError(NEEDS_ROOT) from None
    if error.errno in (errno.EBUSY, errno.EEXIST, errno.EINVAL):
        # EBUSY: a TUN interface of that name is in use; EINVAL: another kind of interface.
        raise InterfaceExistsError(
            f"cannot create TUN interface {name!r}: an interface of that name "
            f"already exists ({os.strerror(error.errno)})"
        ) from None
    raise error


def _close_all(*descriptors: int) -> None:
    for descriptor in descriptors:
        os.close(descriptor)


class LinuxTunHost(Host):
    """The Linux kernel plays the system side of one adapter, through a TUN interface.

    What the application sends reaches the kernel's network stack (answered by it, by sockets
    in the interface's network namespace, or routed on); what the kernel routes to the
    interface reaches the application. :meth:`deliver` still injects packets by hand;
    :meth:`receive` and :meth:`collect` are not available (read with a socket instead).
    """

    def __init__(self, name: str, *, release: Release | None = None) -> None:
        #: The kernel's name of the interface: ``name``, or what :func:`interface_name_for`
        #: maps it to where Linux would refuse it.
        self.interface_name = interface_name_for(name)
        encoded = check_interface_name(self.interface_name)  # before touching the device
        super().__init__(name, capture_limit=0, release=release)
        self.echo_responder = False  # the kernel answers echo requests itself
        #: Packets from the application the kernel refused (``write`` failed).
        self.write_errors = 0
        self._lifecycle = threading.RLock()
        # The interface lives in the creating thread's network namespace; every change to it
        # is made from there, whichever thread asks (see _kernel).
        self._namespace = netns.open_current()
        try:
            self._fd = _open_tun(encoded)
        except BaseException:
            os.close(self._namespace)
            raise
        # Dropped without close() (an emulator nobody shut down): the interface still goes.
        self._release_fd = weakref.finalize(self, _close_all, self._fd, self._namespace)
        self._up = False
        # One reusable buffer for reading the device: no 64 KiB allocation per read.
        self._read_buffer = bytearray(MAX_IP_PACKET_SIZE)
        try:
            with self._kernel():
                self._configure_ipv6()
                self._refresh_mtu()
        except BaseException:
            self._release_fd()
            self._fd = -1
            raise

    @property
    def closed(self) -> bool:
        """True once the TUN interface is deleted."""
        return self._fd < 0

    def fileno(self) -> int:
        """The TUN device's descriptor (``-1`` once closed)."""
        return self._fd

    # -- kernel configuration ---------------------------------------------------------------

    @contextmanager
    def _kernel(self) -> Iterator[None]:
        """Hold the lifecycle lock with the calling thread in the interface's namespace: ``ip``
        and ``/proc/sys/net`` act on the namespace of the thread that runs them."""
        with self._lifecycle:
            if self._fd < 0:  # closed: nothing left to change, and no namespace to enter
                yield
                return
            with netns.entered(self._namespace):
                yield

    def _ipv6_setting(self, setting: str) -> str:
        return f"/proc/sys/net/ipv6/conf/{self.interface_name}/{setting}"

    def _configure_ipv6(self) -> None:
        # keep_addr_on_down: Windows keeps an adapter's addresses while no session runs; Linux
        # drops IPv6 addresses when a link goes down unless told otherwise.
        # router_solicitations: the kernel would send router solicitations into the session
        # whenever the link comes up, packets the application never asked for; a Wintun
        # adapter has no router to find. No file: IPv6 is disabled, so nothing to quieten.
        for setting, value in (("keep_addr_on_down", "1"), ("router_solicitations", "0")):
            try:
                with open(self._ipv6_setting(setting), "w") as file:
                    file.write(value)
            except FileNotFoundError:
                pass

    def _link_mtu(self) -> int:
        link = json.loads(ip_command("-j", "link", "show", "dev", self.interface_name))[0]
        return int(link["mtu"])

    def _ipv6_mtu(self) -> int | None:
        try:
            with open(self._ipv6_setting("mtu")) as setting:
                return int(setting.read())
        except FileNotFoundError:
            return None

    def _write_ipv6_mtu(self, mtu: int) -> None:
        try:
            with open(self._ipv6_setting("mtu"), "w") as setting:
                setting.write(str(mtu))
        except FileNotFoundError:
            raise OSError(
                f"IPv6 is disabled on {self.interface_name!r}: it has no IPv6 MTU"
            ) from None

    def _refresh_mtu(self) -> None:
        link = self._link_mtu()
        ipv6 = self._ipv6_mtu()
        self._mtu = {4: link, 6: link if ipv6 is None else ipv6}

    def set_mtu(self, mtu: int, family: Family | None = None) -> None:
        """Set the MTU of one family or both, in the kernel.

        Linux has one link MTU, which IPv4 uses, and an IPv6 MTU that may only be lower. Both
        families, or IPv4, set the link MTU (IPv6 keeps a lower MTU it had); IPv6 alone must
        not exceed the link MTU. A link MTU below 1280 disables IPv6 on the interface.
        """
        families = check_mtu(mtu, family)
        with self._kernel():
            self._require_open()
            if family == 6:
                link = self._link_mtu()
                if mtu > link:
                    raise ValueError(
                        f"on Linux the IPv6 MTU cannot exceed the link MTU ({link}); "
                        "set the IPv4 MTU first"
                    )
                self._write_ipv6_mtu(mtu)
            elif 4 in families:
                lower_ipv6 = self._ipv6_mtu() if family == 4 else None
                ip_command("link", "set", "dev", self.interface_name, "mtu", str(mtu))
                if lower_ipv6 is not None and lower_ipv6 < mtu:
                    self._write_ipv6_mtu(lower_ipv6)  # the kernel raised it with the link's
            self._refresh_mtu()

    def add_address(self, address: str | Interface) -> None:
        """Assign ``address`` (``"10.6.7.7/24"``) to the interface in the kernel."""
        interface = ipaddress.ip_interface(address)
        with self._kernel():
            self._require_open()
            self._apply_address(interface)
            super().add_address(interface)

    def _apply_address(self, interface: Interface) -> None:
        # nodad: the address is usable at once (a point-to-point TUN has no neighbours).
        extra = ("nodad",) if interface.version == 6 else ()
        ip_command("addr", "replace", str(interface), "dev", self.interface_name, *extra)

    def remove_address(self, address: str | Interface) -> None:
        """Unassign ``address``; :class:`KeyError` if it is not assigned."""
        interface = ipaddress.ip_interface(address)
        with self._kernel():
            self._require_open()
            super().remove_address(interface)
            ip_command("addr", "del", str(interface), "dev", self.interface_name)

    def add_route(self, route: Route) -> None:
        """Add ``route`` to the record, and to the kernel while the link is up (Linux drops a
        link's routes when it goes down; the next session puts them back)."""
        with self._kernel():
            self._require_open()
            if self._up:
                try:
                    self._apply_route(route)
                except IpCommandError as error:  # e.g. a next hop that is our own address
                    raise ValueError(
                        f"the Linux kernel refused the route {route}: {error.message}"
                    ) from None
            super().add_route(route)

    def remove_route(self, route: Route) -> None:
        """Remove the route with the destination and next hop of ``route``; :class:`KeyError`
        if there is none."""
        with self._kernel():
            self._require_open()
            for existing in self.routes:
                if existing.key == route.key:
                    if self._up:
                        ip_command("route", "del", *self._route_arguments(existing))
                    break
            super().remove_route(route)

    def _route_arguments(self, route: Route) -> list[str]:
        # onlink: the next hop is across the tunnel, reachable whatever the addresses.
        via = ["via", str(route.next_hop), "onlink"] if route.next_hop is not None else []
        return [
            str(route.destination),
            "dev",
            self.interface_name,
            *via,
            "metric",
            str(route.metric),
        ]

    def _apply_route(self, route: Route) -> None:
        ip_command("route", "replace", *self._route_arguments(route))

    def _require_open(self) -> None:
        if self._fd < 0:
            raise ValueError(f"the TUN interface {self.interface_name!r} is closed")

    # -- sessions ----------------------------------------------------------------------------

    def attach(
        self,
        send_ring: Ring,
        receive_ring: Ring,
        read_wait_event: FdEvent,
        receive_tail_moved: FdEvent,
    ) -> SessionDriver:
        """Start the session's driver (which reads the device too) and bring the interface
        up."""
        with self._kernel():
            self._require_open()
            driver = super().attach(send_ring, receive_ring, read_wait_event, receive_tail_moved)
            try:
                ip_command("link", "set", "dev", self.interface_name, "up")
                self._up = True
                for interface in self.interfaces:  # in case the kernel dropped one meanwhile
                    self._apply_address(interface)
                for route in self.routes:  # the kernel dropped them when the link went down
                    self._apply_route(route)
                self._refresh_mtu()
            except BaseException:
                self.detach()
                raise
            return driver

    def _starting(self, driver: SessionDriver) -> None:
        driver.watch_while_idle(self._fd, self._read_available)

    def detach(self) -> None:
        """Stop the driver (and with it the reading) and bring the interface down."""
        with self._kernel():
            super().detach()
            if self._up and self._fd >= 0:
                self._up = False
                ip_command("link", "set", "dev", self.interface_name, "down")

    def close(self) -> None:
        """End the session, if any, and delete the interface (closing its descriptor).
        Idempotent."""
        with self._lifecycle:
            if self._fd < 0:
                return
            try:
                super().close()  # detach() and forget the routes and DNS settings
            finally:
                self._fd = -1
                self._release_fd()

    def terminate(self) -> None:
        """The adapter disappears: the session dies and the interface is deleted."""
        try:
            super().terminate()
        finally:
            self.close()

    # -- traffic -----------------------------------------------------------------------------

    def _from_application(self, packet: bytes) -> None:
        """The driver's consumer hands an application's packet to the kernel (TUN takes one
        packet per write)."""
        if self._observers:
            self._observe(packet)
        try:
            os.write(self._fd, packet)
        except OSError as error:  # e.g. a malformed header the kernel refuses
            self.write_errors += 1
            _log.debug("the kernel refused a packet on %s: %s", self.interface_name, error)

    def _read_available(self) -> bool:
        """Deliver what the kernel routed to the interface, up to :data:`READ_BATCH` packets
        as one batch (runs on the driver's consumer thread); False if the device failed."""
        fd, buffers = self._fd, [self._read_buffer]
        view = memoryview(self._read_buffer)
        readv = os.readv
        batch: list[bytes] = []
        try:
            while len(batch) < READ_BATCH:
                batch.append(bytes(view[: readv(fd, buffers)]))
        except BlockingIOError:
            pass
        except OSError as error:  # the interface vanished under us
            _log.warning("stopped reading from %s: %s", self.interface_name, error)
            return False
        finally:
            if batch:
                self.deliver_many(batch)
        return True

    def receive(self, timeout: float | None = None) -> bytes:
        """Not available: the application's packets go to the kernel."""
        raise NotImplementedError(self._no_capture())

    def collect(self) -> list[bytes]:
        """Not available: the application's packets go to the kernel."""
        raise NotImplementedError(self._no_capture())

    def _no_capture(self) -> str:
        return (
            f"{self.interface_name!r} hands the application's packets to the Linux kernel; receive them "
            "with a socket in the interface's network namespace"
        )
