"""Fixtures of the native tests: each generation of the C test double, built and loaded once.

The double keeps global state per loaded library, so every generation is loaded once per test
session (one :class:`DoubleKernel`, one backend) and reset after each test: the test's sessions
are ended, its adapter handles released, the logger removed, then ``DoubleKernel.reset()``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cffi
import pytest

from emulator.host import Host
from emulator.ring import Ring
from wintun_cffi.conformance.double.build import build_double, double_available, double_unavailable
from wintun_cffi.conformance.double.kernel import DoubleKernel
from wintun_cffi.constants import API_GENERATIONS, ApiGeneration
from wintun_cffi.native import NativeAdapter, NativeBackend, NativeSession
from wintun_cffi.platform.loader import LoadedLibrary, open_wintun

GENERATIONS: tuple[ApiGeneration, ...] = API_GENERATIONS
#: Why the C test double cannot be had here (empty when it can).
NO_DOUBLE = double_unavailable() or ""
CAPACITY = 0x20000
POOL = "NativeTests"

# Double helpers the DoubleKernel does not declare (this suite's own declarations).
_EXTRA_HELPERS = """
    typedef struct { uint32_t Data1; uint16_t Data2; uint16_t Data3; uint8_t Data4[8]; } GUID;
    int WintunDoubleGetAdapterInfo(void *Adapter, char16_t *Name, GUID *Guid, int *Present);
    void WintunDoubleSetDriverVersion(uint32_t Version);
    void WintunDoubleMarkDead(void *Session);
"""


class TrackingBackend(NativeBackend):
    """A NativeBackend that remembers the handles it made, so a test's leftovers get closed."""

    def __init__(self, library: LoadedLibrary) -> None:
        super().__init__(library)
        self.adapters: list[NativeAdapter] = []
        self.sessions: list[NativeSession] = []

    def create_adapter(
        self,
        name: str,
        *,
        tunnel_type: str | None = None,
        pool: str | None = None,
        requested_guid: uuid.UUID | None = None,
    ) -> tuple[object, bool]:
        handle, reboot = super().create_adapter(
            name, tunnel_type=tunnel_type, pool=pool, requested_guid=requested_guid
        )
        assert isinstance(handle, NativeAdapter)
        self.adapters.append(handle)
        return handle, reboot

    def open_adapter(self, name: str, *, pool: str | None = None) -> object:
        handle = super().open_adapter(name, pool=pool)
        assert isinstance(handle, NativeAdapter)
        self.adapters.append(handle)
        return handle

    def start_session(self, adapter: object, capacity: int) -> object:
        session = super().start_session(adapter, capacity)
        assert isinstance(session, NativeSession)
        self.sessions.append(session)
        return session

    def cleanup(self) -> None:
        """End every session, release every adapter handle, remove the logger."""
        for session in self.sessions:
            if not session.ended:
                self.end_session(session)
        for adapter in self.adapters:
            if not adapter.closed:
                if self.api == "0.14":
                    self.close_adapter(adapter)
                else:
                    self.free_adapter(adapter)
        self.sessions.clear()
        self.adapters.clear()
        self.set_logger(None)


@dataclass
class Loaded:
    """One generation of the double, loaded for the whole test session."""

    api: ApiGeneration
    path: str
    kernel: DoubleKernel
    backend: TrackingBackend
    helpers: Any  # the _EXTRA_HELPERS library
    helpers_ffi: cffi.FFI


class DoubleLibraries:
    """Builds and loads each generation of the double on first use, once per test session."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._loaded: dict[str, Loaded] = {}

    def path(self, api: ApiGeneration) -> str:
        return str(build_double(api, self.directory))

    def get(self, api: ApiGeneration) -> Loaded:
        if api not in self._loaded:
            path = self.path(api)
            kernel = DoubleKernel(path)
            backend = TrackingBackend(open_wintun(path))
            ffi = cffi.FFI()
            ffi.cdef(_EXTRA_HELPERS)
            self._loaded[api] = Loaded(api, path, kernel, backend, ffi.dlopen(path), ffi)
        return self._loaded[api]

    def close(self) -> None:
        for loaded in self._loaded.values():
            loaded.kernel.close()


@pytest.fixture(scope="session")
def libraries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoubleLibraries]:
    if not double_available():
        pytest.skip(NO_DOUBLE)
    libraries = DoubleLibraries(tmp_path_factory.mktemp("double"))
    yield libraries
    libraries.close()


@dataclass
class Double:
    """What a test gets: the loaded double of one generation, reset afterwards."""

    loaded: Loaded

    @property
    def api(self) -> ApiGeneration:
        return self.loaded.api

    @property
    def path(self) -> str:
        return self.loaded.path

    @property
    def backend(self) -> TrackingBackend:
        return self.loaded.backend

    @property
    def kernel(self) -> DoubleKernel:
        return self.loaded.kernel

    def create(self, name: str = "Native", **kwargs: Any) -> NativeAdapter:
        """Create an adapter with this generation's arguments (tunnel type or pool)."""
        if self.api == "0.14":
            kwargs.setdefault("tunnel_type", "Tests")
        else:
            kwargs.setdefault("pool", POOL)
        handle, reboot = self.backend.create_adapter(name, **kwargs)
        assert reboot is False
        assert isinstance(handle, NativeAdapter)
        return handle

    def open(self, name: str, pool: str = POOL) -> object:
        if self.api == "0.14":
            return self.backend.open_adapter(name)
        return self.backend.open_adapter(name, pool=pool)

    def release(self, adapter: object) -> None:
        """Release a handle the generation's way (CloseAdapter or FreeAdapter)."""
        if self.api == "0.14":
            self.backend.close_adapter(adapter)
        else:
            self.backend.free_adapter(adapter)

    def remove(self, adapter: object, force: bool = True) -> None:
        """Take the adapter out of the system (0.14: close its creating handle)."""
        if self.api == "0.14":
            self.backend.close_adapter(adapter)
        else:
            self.backend.delete_adapter(adapter, force)

    def session(self, capacity: int = CAPACITY) -> tuple[NativeSession, Host]:
        """A new adapter's session and the emulator host playing its kernel side."""
        session = self.backend.start_session(
            self.create(f"Session {uuid.uuid4().hex[:8]}"), capacity
        )
        assert isinstance(session, NativeSession)
        return session, self.kernel.host_for(session.pointer)

    def rings(self, session: NativeSession) -> tuple[Ring, Ring]:
        """The (Send, Receive) rings of a live session, as the driver sees them."""
        driver = self.kernel.host_for(session.pointer).driver
        assert driver is not None
        return driver.send_ring, driver.receive_ring

    def adapter_info(self, adapter: NativeAdapter) -> tuple[str, uuid.UUID, bool]:
        """(name, GUID, still in the system) as the double stores them."""
        ffi = self.loaded.helpers_ffi
        name, guid, present = ffi.new("char16_t[128]"), ffi.new("GUID *"), ffi.new("int *")
        pointer = ffi.cast("void *", adapter.pointer)
        assert self.loaded.helpers.WintunDoubleGetAdapterInfo(pointer, name, guid, present)
        return (
            str(ffi.string(name)),
            uuid.UUID(bytes_le=bytes(ffi.buffer(guid, 16))),
            bool(present[0]),
        )

    def adapter_count(self) -> int:
        return int(self.kernel.lib.WintunDoubleAdapterCount())

    def session_count(self) -> int:
        return int(self.kernel.lib.WintunDoubleSessionCount())

    def reset(self) -> None:
        self.backend.cleanup()
        self.kernel.reset()


@pytest.fixture(params=GENERATIONS)
def double(request: pytest.FixtureRequest, libraries: DoubleLibraries) -> Iterator[Double]:
    """The double of each generation in turn, clean before and after the test."""
    loaded = libraries.get(request.param)
    state = Double(loaded)
    state.reset()
    yield state
    state.reset()


def run_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``target`` in a daemon thread; the list gets its result or exception."""
    outcome: list[object] = []

    def body() -> None:
        try:
            outcome.append(target())
        except BaseException as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome
