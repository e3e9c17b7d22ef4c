"""The backends the conformance suite runs on, and how each is set up and torn down.

* ``emulator-<api>``: :func:`wintun_cffi.emulated` (a fresh emulated machine per test).
* ``double-<api>``: :func:`wintun_cffi.load` on the C test double (built once per test
  session), with a :class:`~wintun_cffi.conformance.double.kernel.DoubleKernel` attaching an emulator host to each
  session; the double is reset after each test.
* ``linux-tun-<api>``: the emulator with ``host="linux-tun"``: the Linux kernel is the far
  side (a UDP socket), through a TUN interface per adapter. Root only, and only in a network
  namespace of its own with nothing but ``lo`` (``unshare --net``); see .ci/run.
* ``windows-native``: :func:`wintun_cffi.load` on the real ``wintun.dll`` (Windows, as
  administrator); its far side is a UDP socket. Under Wine the Windows build of the 0.14 C
  double stands in for wintun.dll, and the tests that need the far side skip.

The emulator and the double reproduce their generation's newest release unless a test asks
for another one of the same generation (the ``wintun_release`` parameter, see conftest.py).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emulator import Emulator
from emulator.host import RingField, RingName
from emulator.releases import Release
from wintun_cffi import Adapter, Session, load, netconfig
from wintun_cffi.conformance.double.build import build_double, double_unavailable
from wintun_cffi.conformance.double.kernel import DoubleKernel
from wintun_cffi.constants import ApiGeneration
from wintun_cffi.pytest_plugin import TrackingWintun

from .farside import FAR_INTERFACE, EmulatorFarSide, FarSide, SocketFarSide

Kind = Literal["emulator", "double", "windows", "linux-tun"]

BACKENDS: dict[str, tuple[Kind, ApiGeneration | None]] = {
    "emulator-0.14": ("emulator", "0.14"),
    "emulator-pool": ("emulator", "pool"),
    "emulator-seed": ("emulator", "seed"),
    "double-0.14": ("double", "0.14"),
    "double-pool": ("double", "pool"),
    "double-seed": ("double", "seed"),
    "windows-native": ("windows", None),  # the generation of whatever wintun.dll is found
    "linux-tun-0.14": ("linux-tun", "0.14"),
    "linux-tun-pool": ("linux-tun", "pool"),
}

#: The pool of every adapter the suite creates in the pool era.
POOL = "WintunCffiConformance"
WINDOWS_REASON = "needs Windows, administrator rights and wintun.dll"


def parse_backend_option(option: str | None) -> list[str]:
    """The backends named by ``--wintun-backend`` (all if empty); ValueError for unknown ones."""
    if not option:
        return list(BACKENDS)
    names = [name.strip() for name in option.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    return names


class Unavailable(Exception):
    """The backend cannot run here; the message is the skip reason."""


#: Why the windows-native backend's far side cannot run under Wine.
WINE_NETWORK_REASON = (
    "needs the Windows network stack as the far side (IP Helper, a UDP socket through the "
    "adapter): Wine has none; the Windows workflow runs it on real Windows"
)


@functools.cache
def under_wine() -> bool:
    """True if this Windows Python runs under Wine (ntdll exports wine_get_version)."""
    if sys.platform != "win32":
        return False
    return hasattr(getattr(ctypes, "windll").ntdll, "wine_get_version")


def windows_library(doubles: DoubleLibraries) -> tuple[str, DoubleKernel | None]:
    """wintun.dll's path if the windows-native backend can run (else :class:`Unavailable`),
    with the kernel of the C double when the double stands in for it.

    Under Wine, which has no Wintun driver, the Windows build of the 0.14 C double stands in
    for wintun.dll (with the emulator's driver as kernel) unless ``$WINTUN_DLL`` names one.
    """
    if sys.platform != "win32":
        raise Unavailable(f"{WINDOWS_REASON} (this is not Windows)")
    windll = getattr(ctypes, "windll")
    if not windll.shell32.IsUserAnAdmin():
        raise Unavailable(f"{WINDOWS_REASON} (not running as administrator)")
    from wintun_cffi.loader import ENV_VAR, find_library

    if under_wine() and not os.environ.get(ENV_VAR):
        return doubles.get("0.14")
    try:
        return find_library(), None
    except FileNotFoundError as error:
        raise Unavailable(f"{WINDOWS_REASON} ({error})") from None


class DoubleLibraries:
    """The C double of each generation: built and its kernel attached once per test session."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._loaded: dict[str, tuple[str, DoubleKernel]] = {}

    def get(self, api: str) -> tuple[str, DoubleKernel]:
        if api not in self._loaded:
            reason = double_unavailable()
            if reason is not None:
                raise Unavailable(reason)
            path = str(build_double(api, self._directory))
            self._loaded[api] = (path, DoubleKernel(path))
        return self._loaded[api]

    def close(self) -> None:
        for _, kernel in self._loaded.values():
            kernel.close()
        self._loaded.clear()


@dataclass
class BackendCase:
    """One backend prepared for one test."""

    name: str
    kind: Kind
    wintun: TrackingWintun
    kernel: DoubleKernel | None = None
    #: The release the emulated kernel and client reproduce; None for the real wintun.dll.
    release: Release | None = None
    _far_sides: list[FarSide] = field(default_factory=list)
    _prefix: str = ""

    @property
    def api(self) -> ApiGeneration:
        return self.wintun.api

    @property
    def emulated_kernel(self) -> bool:
        """True if the kernel is the emulator's (a fresh machine we fully control)."""
        return self.kind != "windows"

    def corrupt_at_registration(self, adapter: Adapter, ring: RingName, field: RingField,
                                value: int) -> None:
        """When ``adapter``'s next session registers its rings, ``field`` of ``ring`` holds
        ``value``; :class:`Unavailable` where the kernel is not the emulator's."""
        if self.kind == "double":
            assert self.kernel is not None
            self.kernel.corrupt_at_registration(ring, field, value)
        elif self.kind in ("emulator", "linux-tun"):
            adapter.host.corrupt_at_registration(ring, field, value)
        else:
            raise Unavailable("only an emulated kernel lets a test prepare the rings it "
                              "registers")

    def adapter_name(self, base: str) -> str:
        """A name for an adapter of this test (unique per run on a real system)."""
        return self._prefix + base

    def create_adapter(self, base: str = "Conformance", *, guid: uuid.UUID | None = None,
                       pool: str = POOL, exact: bool = False) -> Adapter:
        """Create adapter ``adapter_name(base)`` (``base`` itself if ``exact``) with this
        generation's arguments."""
        name = base if exact else self.adapter_name(base)
        if self.api == "0.14":
            return self.wintun.create_adapter(name, tunnel_type="WintunCffi", guid=guid)
        return self.wintun.create_adapter(name, pool=pool, guid=guid)

    def open_adapter(self, name: str, *, pool: str = POOL) -> Adapter:
        """Open by exact ``name`` with this generation's arguments."""
        if self.api == "0.14":
            return self.wintun.open_adapter(name)
        return self.wintun.open_adapter(name, pool=pool)

    def far_side(self, session: Session) -> FarSide:
        """The far side of ``session``'s adapter, 10.6.7.7/24 assigned to it."""
        far: FarSide
        if self.kind == "emulator":
            far = EmulatorFarSide(session.adapter.host)
        elif self.kind == "double":
            assert self.kernel is not None
            far = EmulatorFarSide(self.kernel.host_for(getattr(session._handle, "pointer")))
        elif self.kind == "linux-tun":
            session.adapter.host.add_address(FAR_INTERFACE)
            far = SocketFarSide()
        else:
            if under_wine():
                raise Unavailable(WINE_NETWORK_REASON)
            assign_windows_address(session.adapter)
            far = SocketFarSide()
        self._far_sides.append(far)
        return far

    def close(self) -> None:
        """Close every far side, adapter and session of the test; reset the double."""
        for far in self._far_sides:
            far.close()
        if self.kind == "windows" and self.api != "0.14":
            for adapter in self.wintun.open_adapters:
                if adapter.created:
                    adapter.delete(force_close_sessions=True)
        self.wintun.close()
        if self.kind == "linux-tun":
            emulator = self.wintun.backend
            assert isinstance(emulator, Emulator)
            emulator.close()  # pool-era adapters outlive free(): delete their interfaces now
        if self.kernel is not None:
            try:
                self.kernel.reset()
            except RuntimeError:
                gc.collect()  # a session dropped without close() ends in its finaliser
                self.kernel.reset()
            self.wintun.backend.set_logger(None)  # the C double keeps the pointer otherwise


def assign_windows_address(adapter: Adapter) -> None:
    """Assign FAR_INTERFACE to a real adapter with IP Helper (wintun_cffi.netconfig)."""
    netconfig.wait_for_interface(adapter)
    netconfig.add_address(adapter, FAR_INTERFACE)


def make_case(name: str, doubles: DoubleLibraries, windows_prefix: str,
              release: str | None = None) -> BackendCase:
    """Prepare backend ``name`` (as ``release`` of its generation, for an emulated kernel);
    :class:`Unavailable` if it cannot run here."""
    kind, api = BACKENDS[name]
    if kind == "emulator":
        assert api is not None
        emulator = Emulator(api, release=release)
        return BackendCase(name, kind, TrackingWintun(emulator), release=emulator.release)
    if kind == "linux-tun":
        assert api is not None
        linux_tun_available()
        emulator = Emulator(api, host="linux-tun", release=release)
        return BackendCase(name, kind, TrackingWintun(emulator), release=emulator.release)
    if kind == "double":
        assert api is not None
        path, kernel = doubles.get(api)
        chosen = kernel.emulate(release)  # undone by kernel.reset() when the case closes
        return BackendCase(name, kind, TrackingWintun.adopt(load(path)), kernel, chosen)
    if release is not None:
        raise Unavailable(f"the real wintun.dll is whatever release it is, not {release}")
    library, stand_in = windows_library(doubles)
    return BackendCase(name, kind, TrackingWintun.adopt(load(library)), stand_in,
                       _prefix=windows_prefix)


def windows_prefix() -> str:
    """A per-run prefix for real adapter names, so runs never meet each other's adapters."""
    return f"wcffi-{secrets.token_hex(3)} "


@functools.cache
def linux_tun_available() -> None:
    """Unavailable unless root, /dev/net/tun and a network namespace with nothing but lo
    (checked once, before the suite creates any interface)."""
    reason = "needs Linux, root, /dev/net/tun and its own network namespace (unshare --net)"
    if (not sys.platform.startswith("linux") or os.geteuid() != 0
            or not os.path.exists("/dev/net/tun")):
        raise Unavailable(reason)
    listing = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                             check=True)
    others = [link["ifname"] for link in json.loads(listing.stdout) if link["ifname"] != "lo"]
    if others:
        raise Unavailable(f"{reason}: this namespace also has {', '.join(others)}")
