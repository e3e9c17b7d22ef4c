"""The backends the conformance suite runs on, and how each is set up and torn down.

* ``emulator-<api>``: :func:`wintun_cffi.emulated` (a fresh emulated machine per test).
* ``double-<api>``: :func:`wintun_cffi.load` on the C test double (built once per test
  session), with a :class:`~wintun_cffi.conformance.double.kernel.DoubleKernel` attaching an
  emulator host to each session; the double is reset after each test.
* ``linux-tun-<api>``: the emulator with ``host="linux-tun"``: the Linux kernel is the far
  side (a UDP socket), through a TUN interface per adapter. Root only, and only in a network
  namespace of its own with nothing but ``lo`` (``unshare --net``).
* ``windows-native``: :func:`wintun_cffi.load` on the real ``wintun.dll`` (Windows, as
  administrator); its far side is a UDP socket. Under Wine the Windows build of the 0.14 C
  double stands in for wintun.dll, and the tests that need the far side skip. What it does to
  the machine: :mod:`wintun_cffi.conformance.windows`.
* ``module:factory``: a user's backend. ``factory()`` is called once per test and returns an
  object implementing :class:`wintun_cffi.backend.Backend`. The tests that need a far side
  skip unless that object also has a method ``conformance_far_side(session)`` returning a
  :class:`~wintun_cffi.conformance.farside.FarSide`; its ``close()``, if it has one, is called
  after the test.

The emulator and the double reproduce their generation's newest release unless a test asks
for another one of the same generation (the ``wintun_release`` parameter, see conftest.py).
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emulator import Emulator
from emulator.host import RingField, RingName
from emulator.releases import Release
from wintun_cffi import Adapter, Session, load
from wintun_cffi.backend import Backend
from wintun_cffi.constants import ApiGeneration
from wintun_cffi.errors import WintunError
from wintun_cffi.pytest_plugin import TrackingWintun

from .double.build import build_double, double_unavailable
from .double.kernel import DoubleKernel
from .farside import FAR_INTERFACE, EmulatorFarSide, FarSide, SocketFarSide
from .windows import (
    ADAPTER_PREFIX,
    RunLock,
    assign_far_address,
    is_administrator,
    remove_stale_adapters,
    under_wine,
)

#: The user property (pytest) naming the backend a conformance test ran on.
BACKEND_PROPERTY = "wintun_backend"

Kind = Literal["emulator", "double", "windows", "linux-tun", "user"]

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

#: The pool of every adapter the suite creates in the pool era, and the one other pool a
#: test uses.
POOL = "WintunCffiConformance"
OTHER_POOL = POOL + "Other"
#: The name of the method a user's backend may have to give the suite a far side.
FAR_SIDE_HOOK = "conformance_far_side"
#: The attribute by which a user's backend (set to True) says each instance is a machine of
#: its own that nothing else uses: the tests that remove drivers then run on it too.
FRESH_MACHINE = "conformance_fresh_machine"
WINDOWS_REASON = "needs Windows, administrator rights and wintun.dll"
#: Why the windows-native backend skips where the library loads but no adapter can be made
#: (Wine: the real wintun.dll, without a driver); the probe's error follows it.
NO_DRIVER_REASON = "no Wintun driver here: adapters cannot be created"
#: The name of the adapter the windows-native backend creates and closes before its first test.
PROBE_ADAPTER = "Probe"
#: Why the windows-native backend's far side cannot run under Wine.
WINE_NETWORK_REASON = (
    "needs the Windows network stack as the far side (IP Helper, a UDP socket through the "
    "adapter): Wine has none; the Windows workflow runs it on real Windows"
)


class Unavailable(Exception):
    """The backend cannot run here; the message is the skip reason."""


class UserBackendError(ValueError):
    """A ``module:factory`` backend that cannot be used; the message says why."""


def kind_of(name: str) -> tuple[Kind, ApiGeneration | None]:
    """The kind and API generation of backend ``name`` (None: whatever the library says)."""
    return ("user", None) if is_user_backend(name) else BACKENDS[name]


def is_user_backend(name: str) -> bool:
    """True for a ``module:factory`` name."""
    return ":" in name


def parse_backend_option(option: str | None) -> list[str]:
    """The backends named by ``--wintun-backend`` (all built-in ones if empty); ValueError
    for an unknown name or a ``module:factory`` that cannot be imported."""
    if not option:
        return list(BACKENDS)
    names = [name.strip() for name in option.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS and not is_user_backend(name)]
    if unknown:
        raise ValueError(
            f"unknown backend {', '.join(unknown)}; choose from {', '.join(BACKENDS)}, or "
            "name your own as module:factory"
        )
    for name in names:
        if is_user_backend(name):
            user_factory(name)
    return names


def user_factory(spec: str) -> Callable[[], object]:
    """The callable that ``module:factory`` names (``factory`` may be dotted);
    :class:`UserBackendError` if it cannot be imported or is not callable."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UserBackendError(f"{spec!r}: name your backend's factory as module:function")
    try:
        found: object = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # whatever the user's module raised importing
        raise UserBackendError(
            f"{spec}: cannot import module {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UserBackendError(f"{spec}: module {module_name!r} has no {attribute!r}") from None
    if not callable(found):
        raise UserBackendError(
            f"{spec}: {attribute} = {found!r:.40} is not a function that returns a backend"
        )
    return found


def make_user_backend(spec: str) -> Backend:
    """Call the factory ``spec`` names; :class:`UserBackendError` unless it returns a
    :class:`~wintun_cffi.backend.Backend`."""
    factory = user_factory(spec)
    try:
        backend = factory()
    except (Exception, SystemExit) as error:  # whatever the user's factory raised (exit too)
        raise UserBackendError(f"{spec}() raised {type(error).__name__}: {error}") from None
    if not isinstance(backend, Backend):
        missing = [
            name for name in dir(Backend) if not name.startswith("_") and not hasattr(backend, name)
        ]
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise UserBackendError(
            f"{spec}() returned a {type(backend).__name__}, not a "
            f"wintun_cffi.backend.Backend (it lacks {shown})"
        )
    return backend


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


class WindowsNative:
    """The ``windows-native`` backend for one test session.

    The library is ``dll`` (else where :func:`wintun_cffi.load` looks; under Wine, which has
    no Wintun driver, the Windows build of the 0.14 C double unless ``$WINTUN_DLL`` names a
    library), loaded with ``sha256`` checked. Before the first test the machine-wide
    :class:`~wintun_cffi.conformance.windows.RunLock` is taken and stale test adapters are
    removed (:attr:`removed`); :meth:`close` releases the lock.
    """

    def __init__(
        self, doubles: DoubleLibraries, dll: str | None = None, sha256: str | None = None
    ) -> None:
        self._doubles = doubles
        self._dll = dll
        self._sha256 = sha256
        self._lock: RunLock | None = None
        self._reason: str | None = None
        #: Names of the adapters a killed run had left, removed before the first test.
        self.removed: list[str] = []
        #: True if the run before this one ended without releasing the lock.
        self.previous_run_killed = False

    def open(self) -> tuple[TrackingWintun, DoubleKernel | None]:
        """A Wintun on the library for one test, and the double's kernel when the double
        stands in; :class:`Unavailable` (the same reason each time) if it cannot run here."""
        if self._reason is not None:
            raise Unavailable(self._reason)
        try:
            library, stand_in = self._library()
            wintun = TrackingWintun.adopt(load(library, sha256=self._sha256))
            if self._lock is None:
                self._prepare(wintun, stand_in)
        except Unavailable as reason:
            self._reason = str(reason)
            raise
        return wintun, stand_in

    def _library(self) -> tuple[str, DoubleKernel | None]:
        if sys.platform != "win32":
            raise Unavailable(f"{WINDOWS_REASON} (this is not Windows)")
        if not is_administrator():
            raise Unavailable(f"{WINDOWS_REASON} (not running as administrator)")
        from wintun_cffi.platform.loader import ENV_VAR, find_library

        if under_wine() and self._dll is None and not os.environ.get(ENV_VAR):
            return self._doubles.get("0.14")
        try:
            return find_library(self._dll), None
        except FileNotFoundError as error:
            raise Unavailable(f"{WINDOWS_REASON} ({error})") from None

    def _prepare(self, wintun: TrackingWintun, stand_in: DoubleKernel | None) -> None:
        lock = RunLock.take()
        if lock is None:
            raise Unavailable(
                "another conformance run on this machine is using the "
                "windows-native backend; run one at a time"
            )
        self._lock = lock
        self.previous_run_killed = lock.abandoned
        self.removed = remove_stale_adapters(wintun, (POOL, OTHER_POOL))
        if stand_in is None:
            self._probe(wintun)

    @staticmethod
    def _probe(wintun: TrackingWintun) -> None:
        """:class:`Unavailable` (:data:`NO_DRIVER_REASON`, once for every test) unless an
        adapter can be created: without a driver each test would fail the same way."""
        name = ADAPTER_PREFIX + PROBE_ADAPTER
        try:
            if wintun.api == "0.14":
                adapter = wintun.create_adapter(name, tunnel_type="WintunCffi")
            else:
                adapter = wintun.create_adapter(name, pool=POOL)
        except WintunError as error:
            raise Unavailable(f"{NO_DRIVER_REASON} ({error})") from None
        with adapter:
            if wintun.api != "0.14":
                adapter.delete(force_close_sessions=True)

    def close(self) -> None:
        """Release the run lock."""
        if self._lock is not None:
            self._lock.release()


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
        """True if the kernel is the emulator's (a fresh machine we fully control), or a
        user's backend says it is a fresh machine of its own (:data:`FRESH_MACHINE`)."""
        if self.kind == "user":
            return getattr(self.wintun.backend, FRESH_MACHINE, False) is True
        return self.kind in ("emulator", "double", "linux-tun")

    def corrupt_at_registration(
        self, adapter: Adapter, ring: RingName, field: RingField, value: int
    ) -> None:
        """When ``adapter``'s next session registers its rings, ``field`` of ``ring`` holds
        ``value``; :class:`Unavailable` where the kernel is not the emulator's."""
        if self.kind == "double":
            assert self.kernel is not None
            self.kernel.corrupt_at_registration(ring, field, value)
        elif self.kind in ("emulator", "linux-tun"):
            adapter.host.corrupt_at_registration(ring, field, value)
        else:
            raise Unavailable("only an emulated kernel lets a test prepare the rings it registers")

    def adapter_name(self, base: str) -> str:
        """The name of this test's adapter ``base`` (with the fixed prefix on a real system)."""
        return self._prefix + base

    def create_adapter(
        self,
        base: str = "Conformance",
        *,
        guid: uuid.UUID | None = None,
        pool: str = POOL,
        exact: bool = False,
    ) -> Adapter:
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

    def another_backend(self) -> Backend:
        """A second backend of this kind and generation: another instance, for the tests of
        handles one backend made and another is given. It installs no logger; the test
        closes what it creates in it."""
        if self.kind in ("emulator", "linux-tun"):
            return Emulator(self.api)  # another emulated machine; an in-memory host will do
        if self.kind == "user":
            return make_user_backend(self.name)
        from wintun_cffi.native import NativeBackend
        from wintun_cffi.platform.loader import open_wintun

        assert self.wintun.path is not None
        return NativeBackend(open_wintun(self.wintun.path))  # the same library, loaded again

    def far_side(self, session: Session) -> FarSide:
        """The far side of ``session``'s adapter, 10.6.7.7/24 assigned to it."""
        far: FarSide
        if self.kind == "emulator":
            far = EmulatorFarSide(session.adapter.host)
        elif self.kind == "double":
            assert self.kernel is not None
            far = EmulatorFarSide(self.kernel.host_for(session._handle.pointer))  # type: ignore[attr-defined]
        elif self.kind == "linux-tun":
            session.adapter.host.add_address(FAR_INTERFACE)
            far = SocketFarSide()
        elif self.kind == "user":
            hook = getattr(self.wintun.backend, FAR_SIDE_HOOK, None)
            if hook is None:
                raise Unavailable(
                    f"needs a far side: the backend has no {FAR_SIDE_HOOK}(session) method"
                )
            far = hook(session)
        else:
            if under_wine():
                raise Unavailable(WINE_NETWORK_REASON)
            assign_far_address(session.adapter)
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
        if self.kind in ("linux-tun", "user"):
            # Pool-era adapters of the Linux TUN backend outlive free(): delete their
            # interfaces now. A user's backend is closed if it can be.
            close = getattr(self.wintun.backend, "close", None)
            if close is not None:
                close()
        if self.kernel is not None:
            try:
                self.kernel.reset()
            except RuntimeError:
                gc.collect()  # a session dropped without close() ends in its finaliser
                self.kernel.reset()
            self.wintun.backend.set_logger(None)  # the C double keeps the pointer otherwise


def make_case(
    name: str, doubles: DoubleLibraries, windows: WindowsNative, release: str | None = None
) -> BackendCase:
    """Prepare backend ``name`` (as ``release`` of its generation, for an emulated kernel);
    :class:`Unavailable` if it cannot run here."""
    kind, api = kind_of(name)
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
        raise Unavailable(f"{name} is whatever release it is, not {release}")
    if kind == "user":
        return BackendCase(name, kind, TrackingWintun(make_user_backend(name)))
    wintun, stand_in = windows.open()
    return BackendCase(name, kind, wintun, stand_in, _prefix=ADAPTER_PREFIX)


@functools.cache
def linux_tun_available() -> None:
    """Unavailable unless root, /dev/net/tun and a network namespace with nothing but lo
    (checked once, before the suite creates any interface)."""
    reason = "needs Linux, root, /dev/net/tun and its own network namespace (unshare --net)"
    if (
        not sys.platform.startswith("linux")
        or os.geteuid() != 0
        or not os.path.exists("/dev/net/tun")
    ):
        raise Unavailable(reason)
    listing = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True
    )
    others = [link["ifname"] for link in json.loads(listing.stdout) if link["ifname"] != "lo"]
    if others:
        raise Unavailable(f"{reason}: this namespace also has {', '.join(others)}")
    # A namespace made by `unshare --net` starts with lo down: the far side's socket needs it.
    subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, check=True)
