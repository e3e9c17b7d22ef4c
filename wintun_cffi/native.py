"""The native backend: Wintun's C API through cffi (ABI mode), as the Backend protocol.

It drives the real ``wintun.dll`` on Windows, or any library exporting the same ABI (the C test
double on Linux). Unlike the C API it refuses what would corrupt memory: handles that are closed
or come from elsewhere, packet tokens that are stale or foreign, and packet sizes above
``0xFFFF`` (which the real 0.14 DLL does not check).
"""

from __future__ import annotations

import logging
import threading
import uuid
import warnings
from typing import Any, Iterable, Sequence

from . import platform, validate
from ._exports import ENUM_CALLBACK, LOGGER_CALLBACK
from .backend import (
    EnumCallback,
    GenerationBound,
    LoggerCallback,
    PacketCalls,
    as_many_as_possible,
)
from .constants import ApiGeneration
from .errors import (
    HandleClosedError,
    SessionClosedError,
    WintunError,
    error_from_code,
)
from .fdevent import WaitInterrupted
from .loader import LoadedLibrary
from .outstanding import Outstanding

_log = logging.getLogger(__name__)

#: The logger callback each library (by path) points at. The library keeps it after the
#: backend that installed it is gone, so it must stay alive until replaced or removed.
_installed_loggers: dict[str, Any] = {}


class NativeAdapter:
    """An adapter handle of the native backend."""

    __slots__ = ("backend", "pointer", "closed")

    def __init__(self, backend: NativeBackend, pointer: Any) -> None:
        self.backend = backend
        self.pointer = pointer
        self.closed = False

    def __repr__(self) -> str:
        return f"<NativeAdapter {'closed' if self.closed else self.pointer}>"


class NativeSession:
    """A session handle of the native backend."""

    __slots__ = ("backend", "pointer", "ended", "waiter", "reads", "writes", "calls")

    def __init__(self, backend: NativeBackend, pointer: Any, waiter: platform.ReadWaiter) -> None:
        self.backend = backend
        self.pointer = pointer
        self.ended = False
        self.waiter = waiter
        #: Views of packets received and not released / allocated and not sent, by pointer.
        self.reads = Outstanding()
        self.writes = Outstanding()
        self.calls = backend._packet_calls(self)

    def __repr__(self) -> str:
        return f"<NativeSession {'ended' if self.ended else self.pointer}>"


class NativeBackend(GenerationBound):
    """Wintun's C API from a loaded library (see :func:`wintun_cffi.loader.open_wintun`)."""

    def __init__(self, library: LoadedLibrary) -> None:
        self.path = library.path
        self._api: ApiGeneration = library.api
        self._ffi = library.ffi
        self._lib = library.lib
        self._logger_callback: Any = None  # kept alive while installed
        names = {"seed": ("WintunGetAdapter", "WintunReceiveRelease")}.get(self._api)
        self._open_name, self._release_name = names or (
            "WintunOpenAdapter", "WintunReleaseReceivePacket")
        self._c_release = getattr(self._lib, self._release_name)
        self._c_receive = self._lib.WintunReceivePacket
        self._c_allocate = self._lib.WintunAllocateSendPacket
        self._c_send = self._lib.WintunSendPacket

    def __repr__(self) -> str:
        return f"NativeBackend(api={self._api!r}, path={self.path!r})"

    # -- helpers ---------------------------------------------------------------------------

    def _error(self, function: str) -> WintunError:
        return error_from_code(platform.last_error(self._ffi), function)

    def _adapter(self, handle: object, function: str) -> Any:
        if not isinstance(handle, NativeAdapter) or handle.backend is not self:
            raise TypeError(f"{function}: not an adapter handle of this library: {handle!r}")
        if handle.closed:
            raise HandleClosedError(f"{function}: the adapter handle was closed")
        return handle.pointer

    def _session(self, handle: object, function: str) -> NativeSession:
        if not isinstance(handle, NativeSession) or handle.backend is not self:
            raise TypeError(f"{function}: not a session handle of this library: {handle!r}")
        if handle.ended:
            raise HandleClosedError(f"{function}: the session has ended")
        return handle

    def _guid(self, guid: uuid.UUID | None) -> Any:
        if guid is None:
            return self._ffi.NULL
        native = self._ffi.new("GUID *")
        self._ffi.memmove(native, guid.bytes_le, 16)
        return native

    # -- adapters --------------------------------------------------------------------------

    def create_adapter(
        self,
        name: str,
        *,
        tunnel_type: str | None = None,
        pool: str | None = None,
        requested_guid: uuid.UUID | None = None,
    ) -> tuple[object, bool]:
        """``WintunCreateAdapter``."""
        validate.check_adapter_name(name)
        validate.check_guid(requested_guid)
        validate.check_adapter_kind(self._api, tunnel_type, pool)
        guid = self._guid(requested_guid)
        if self._api == "0.14":
            pointer = self._lib.WintunCreateAdapter(name, tunnel_type, guid)
            reboot = False
        else:
            reboot_out = self._ffi.new("BOOL *")
            pointer = self._lib.WintunCreateAdapter(pool, name, guid, reboot_out)
            reboot = bool(reboot_out[0])
        if not pointer:
            raise self._error("WintunCreateAdapter")
        return NativeAdapter(self, pointer), reboot

    def open_adapter(self, name: str, *, pool: str | None = None) -> object:
        """``WintunOpenAdapter`` (seed: ``WintunGetAdapter``)."""
        validate.check_adapter_name(name)
        validate.check_open_pool(self._api, pool)
        function = getattr(self._lib, self._open_name)
        pointer = function(name) if self._api == "0.14" else function(pool, name)
        if not pointer:
            raise self._error(self._open_name)
        return NativeAdapter(self, pointer)

    def close_adapter(self, adapter: object) -> None:
        """``WintunCloseAdapter`` (0.14)."""
        self._require("WintunCloseAdapter", "0.14")
        pointer = self._adapter(adapter, "WintunCloseAdapter")
        assert isinstance(adapter, NativeAdapter)
        adapter.closed = True
        self._lib.WintunCloseAdapter(pointer)

    def free_adapter(self, adapter: object) -> None:
        """``WintunFreeAdapter`` (pool era)."""
        self._require("WintunFreeAdapter", "pool", "seed")
        pointer = self._adapter(adapter, "WintunFreeAdapter")
        assert isinstance(adapter, NativeAdapter)
        adapter.closed = True
        self._lib.WintunFreeAdapter(pointer)

    def delete_adapter(self, adapter: object, force_close_sessions: bool) -> bool:
        """``WintunDeleteAdapter`` (pool era)."""
        self._require("WintunDeleteAdapter", "pool", "seed")
        pointer = self._adapter(adapter, "WintunDeleteAdapter")
        reboot = self._ffi.new("BOOL *")
        if not self._lib.WintunDeleteAdapter(pointer, bool(force_close_sessions), reboot):
            raise self._error("WintunDeleteAdapter")
        return bool(reboot[0])

    def enum_adapters(self, pool: str, callback: EnumCallback) -> None:
        """``WintunEnumAdapters`` (pool era); each handle is valid during its callback only."""
        self._require("WintunEnumAdapters", "pool", "seed")
        validate.check_pool(pool)
        failures: list[BaseException] = []

        def each(pointer: Any, _param: Any) -> int:
            handle = NativeAdapter(self, pointer)
            try:
                return 1 if callback(handle) else 0
            except BaseException as error:  # re-raised once back in Python
                failures.append(error)
                return 0
            finally:
                handle.closed = True

        native_callback = self._ffi.callback(ENUM_CALLBACK[self._api], each, error=0)
        ok = self._lib.WintunEnumAdapters(pool, native_callback, 0)
        if failures:
            raise failures[0]
        if not ok:
            raise self._error("WintunEnumAdapters")

    def delete_driver(self) -> None:
        """``WintunDeleteDriver`` (0.14)."""
        self._require("WintunDeleteDriver", "0.14")
        if not self._lib.WintunDeleteDriver():
            raise self._error("WintunDeleteDriver")

    def delete_pool_driver(self, pool: str) -> bool:
        """``WintunDeletePoolDriver`` (pool era)."""
        self._require("WintunDeletePoolDriver", "pool", "seed")
        validate.check_pool(pool)
        reboot = self._ffi.new("BOOL *")
        if not self._lib.WintunDeletePoolDriver(pool, reboot):
            raise self._error("WintunDeletePoolDriver")
        return bool(reboot[0])

    def open_adapter_device_object(self, adapter: object) -> int:
        """``WintunOpenAdapterDeviceObject`` (seed): a HANDLE to close with CloseHandle."""
        self._require("WintunOpenAdapterDeviceObject", "seed")
        pointer = self._adapter(adapter, "WintunOpenAdapterDeviceObject")
        handle = self._lib.WintunOpenAdapterDeviceObject(pointer)
        value = int(self._ffi.cast("intptr_t", handle))
        if value == -1:  # INVALID_HANDLE_VALUE
            raise self._error("WintunOpenAdapterDeviceObject")
        return value

    def get_adapter_luid(self, adapter: object) -> int:
        """``WintunGetAdapterLUID``."""
        pointer = self._adapter(adapter, "WintunGetAdapterLUID")
        luid = self._ffi.new("NET_LUID *")
        self._lib.WintunGetAdapterLUID(pointer, luid)
        return int(luid.Value)

    def get_adapter_name(self, adapter: object) -> str:
        """``WintunGetAdapterName`` (pool era)."""
        self._require("WintunGetAdapterName", "pool", "seed")
        pointer = self._adapter(adapter, "WintunGetAdapterName")
        buffer = self._ffi.new("WCHAR[128]")
        if not self._lib.WintunGetAdapterName(pointer, buffer):
            raise self._error("WintunGetAdapterName")
        return str(self._ffi.string(buffer))

    def set_adapter_name(self, adapter: object, name: str) -> None:
        """``WintunSetAdapterName`` (pool era)."""
        self._require("WintunSetAdapterName", "pool", "seed")
        pointer = self._adapter(adapter, "WintunSetAdapterName")
        validate.check_adapter_name(name)
        if not self._lib.WintunSetAdapterName(pointer, name):
            raise self._error("WintunSetAdapterName")

    def get_running_driver_version(self) -> int:
        """``WintunGetRunningDriverVersion``."""
        version = int(self._lib.WintunGetRunningDriverVersion())
        if version == 0:
            raise self._error("WintunGetRunningDriverVersion")
        return version

    def set_logger(self, logger: LoggerCallback | None) -> None:
        """``WintunSetLogger`` with the generation's exact callback ABI."""
        if logger is None:
            self._lib.WintunSetLogger(self._ffi.NULL)
            self._logger_callback = None
            _installed_loggers.pop(self.path, None)
            return
        if not callable(logger):
            raise TypeError(f"logger must be callable or None, not {type(logger).__name__}")
        ffi = self._ffi
        kind = ffi.typeof(LOGGER_CALLBACK[self._api])
        returns_bool = kind.result.cname != "void"
        with_timestamp = len(kind.args) == 3

        def report(exception: Any, value: Any, traceback: Any) -> None:
            _log.error("the Wintun logger raised", exc_info=(exception, value, traceback))

        if with_timestamp:
            def deliver(level: int, timestamp: int, message: Any) -> None:
                logger(int(level), int(timestamp), ffi.string(message))
            native = ffi.callback(kind, deliver, onerror=report)
        elif returns_bool:
            def deliver_bool(level: int, message: Any) -> int:
                logger(int(level), None, ffi.string(message))
                return 1
            native = ffi.callback(kind, deliver_bool, error=1, onerror=report)
        else:
            def deliver_plain(level: int, message: Any) -> None:
                logger(int(level), None, ffi.string(message))
            native = ffi.callback(kind, deliver_plain, onerror=report)
        self._lib.WintunSetLogger(native)
        self._logger_callback = native
        _installed_loggers[self.path] = native

    # -- sessions --------------------------------------------------------------------------

    def start_session(self, adapter: object, capacity: int) -> object:
        """``WintunStartSession``."""
        pointer = self._adapter(adapter, "WintunStartSession")
        if not isinstance(capacity, int) or not 0 <= capacity <= 0xFFFFFFFF:
            raise ValueError(f"capacity must be a DWORD, not {capacity!r}")
        session = self._lib.WintunStartSession(pointer, capacity)
        if not session:
            raise self._error("WintunStartSession")
        try:
            waiter = platform.ReadWaiter(self._ffi, self._lib.WintunGetReadWaitEvent(session))
        except BaseException:
            self._lib.WintunEndSession(session)
            raise
        return NativeSession(self, session, waiter)

    def end_session(self, session: object) -> None:
        """``WintunEndSession``: the views of the session's packets are released first.

        If views derived from a packet's data still exist, freeing the rings would leave them
        pointing at freed memory: the session is then left allocated (a deliberate leak, with
        a :class:`ResourceWarning`) rather than risk a crash.
        """
        target = self._session(session, "WintunEndSession")
        target.ended = True
        target.waiter.interrupt()
        exported = target.reads.release_all() + target.writes.release_all()
        if exported:
            warnings.warn(
                f"{exported} packets still had views derived from their data when the session "
                "ended; its rings are kept allocated so those views stay valid. Copy packet "
                "data (bytes(packet)) instead of keeping views of it.",
                ResourceWarning, stacklevel=2,
            )
            return
        self._lib.WintunEndSession(target.pointer)
        target.waiter.close()

    def get_read_wait_event(self, session: object) -> int:
        """``WintunGetReadWaitEvent``: the HANDLE's value (a descriptor off Windows)."""
        pointer = self._session(session, "WintunGetReadWaitEvent").pointer
        return int(self._ffi.cast("intptr_t", self._lib.WintunGetReadWaitEvent(pointer)))

    def _packet_calls(self, session: NativeSession) -> PacketCalls:
        """The C packet functions bound to one session, with the checks the C API lacks."""
        ffi, pointer, reads, writes = self._ffi, session.pointer, session.reads, session.writes
        c_receive, c_release = self._c_receive, self._c_release
        c_allocate, c_send = self._c_allocate, self._c_send
        buffer, error = ffi.buffer, self._error
        sizes = threading.local()  # one DWORD out-parameter per thread, not one per call

        def receive() -> tuple[memoryview, object]:
            if session.ended:  # the C session is freed: never pass its pointer again
                raise HandleClosedError("WintunReceivePacket: the session has ended")
            try:
                size = sizes.out
            except AttributeError:
                size = sizes.out = ffi.new("DWORD *")
            packet = c_receive(pointer, size)
            if not packet:
                raise error("WintunReceivePacket")
            exporter = buffer(packet, size[0])  # one per packet: shows derived views
            view = memoryview(exporter)
            reads[packet] = (view, exporter)
            return view, packet

        def release(token: object) -> None:
            reads.take(token, "not a packet received from this session, or already released")
            c_release(pointer, token)

        def allocate(size: int) -> tuple[memoryview, object]:
            if size.__class__ is not int or not 0 <= size <= 0xFFFF:
                validate.check_packet_size(size)  # the DLL would write past the ring
            if session.ended:
                raise HandleClosedError("WintunAllocateSendPacket: the session has ended")
            packet = c_allocate(pointer, size)
            if not packet:
                raise error("WintunAllocateSendPacket")
            exporter = buffer(packet, size)
            view = memoryview(exporter)
            writes[packet] = (view, exporter)
            return view, packet

        def send(token: object) -> None:
            writes.take(token, "not a packet allocated in this session, or already sent")
            c_send(pointer, token)

        # The C API has no batch calls: the batch forms loop here, saving the Python layers
        # above one call per packet.
        def receive_many(limit: int) -> list[tuple[memoryview, object]]:
            return as_many_as_possible(lambda _: receive(), range(limit))

        def release_many(tokens: Iterable[object]) -> None:
            for token in tokens:
                release(token)

        def allocate_many(sizes: Sequence[int]) -> list[tuple[memoryview, object]]:
            for size in sizes:
                validate.check_packet_size(size)
            return as_many_as_possible(allocate, sizes)

        def send_many(tokens: Iterable[object]) -> None:
            for token in tokens:
                send(token)

        return PacketCalls(
            receive, release, allocate, send, receive_many, release_many, allocate_many, send_many
        )

    def packet_calls(self, session: object) -> PacketCalls:
        """The packet functions (single and batch) bound to ``session``."""
        return self._session(session, "packet_calls").calls

    def receive_packet(self, session: object) -> tuple[memoryview, object]:
        """``WintunReceivePacket``."""
        return self._session(session, "WintunReceivePacket").calls.receive()

    def release_receive_packet(self, session: object, token: object) -> None:
        """``WintunReleaseReceivePacket`` (seed: ``WintunReceiveRelease``)."""
        self._session(session, self._release_name).calls.release(token)

    def allocate_send_packet(self, session: object, size: int) -> tuple[memoryview, object]:
        """``WintunAllocateSendPacket``; sizes above 0xFFFF are refused before the call."""
        if size.__class__ is not int or not 0 <= size <= 0xFFFF:
            validate.check_packet_size(size)
        return self._session(session, "WintunAllocateSendPacket").calls.allocate(size)

    def send_packet(self, session: object, token: object) -> None:
        """``WintunSendPacket``."""
        self._session(session, "WintunSendPacket").calls.send(token)

    # -- waiting ---------------------------------------------------------------------------

    def wait_read_event(self, session: object, timeout: float | None) -> bool:
        """Wait on the read-wait event (consuming it); see the Backend protocol."""
        target = self._session(session, "wait_read_event")
        try:
            return target.waiter.wait(timeout)
        except WaitInterrupted:
            raise SessionClosedError("the session was closed while waiting") from None

    def interrupt_waits(self, session: object) -> None:
        """Wake every waiter of ``session``, now and later."""
        self._session(session, "interrupt_waits").waiter.interrupt()

    def read_wait_fd(self, session: object) -> int | None:
        """The read-wait descriptor off Windows; None on Windows (a HANDLE, not pollable)."""
        return self._session(session, "read_wait_fd").waiter.fd
