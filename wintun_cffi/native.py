"""The native backend: Wintun's C API through cffi (ABI mode), as the Backend protocol.

It drives the real ``wintun.dll`` on Windows, or any library exporting the same ABI (the C test
double on Linux). Unlike the C API it refuses what would corrupt memory: handles that are closed
or come from elsewhere, packet tokens that are stale or foreign, and packet sizes above
``0xFFFF`` (which the real 0.14 DLL does not check).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat, takewhile
from operator import add, and_, getitem, sub
from typing import Any

from . import platform, validate
from .backend import (
    AdapterHandle,
    EnumCallback,
    GenerationBound,
    LoggerCallback,
    SessionHandle,
    refuse_handle,
)
from .constants import PACKET_SIZE_MASK, ApiGeneration
from .errors import (
    HandleClosedError,
    SessionActiveError,
    SessionClosedError,
    WintunError,
    error_from_code,
)
from .fdevent import WaitInterrupted
from .ledger import Direction, Ledger, consume, give_back_token, take_one
from .lifetime import getrefcount as _getrefcount
from .logbridge import LogBridge
from .platform._exports import ENUM_CALLBACK, LOGGER_CALLBACK
from .platform.loader import LoadedLibrary
from .send_rules import rules_for

_log = logging.getLogger(__name__)


class _LibraryLog:
    """The one logger of a loaded library, shared by every backend over it.

    ``WintunSetLogger`` keeps one callback per process and library: a second backend over the
    same library must not replace the first one's. So the library gets one C callback, made
    once and never freed (Wintun may call it at any time, from threads of its own, even after
    the call that logged returned), which hands each line to the logger of every backend that
    set one. Backends are held weakly: a backend that is gone hears nothing. Log bridges
    (:class:`~wintun_cffi.logbridge.LogBridge`) that forward to the same target forward each
    line to it once, and each still collects the lines of the calls in progress on its thread.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.native: Any = None  # the C callback: created once, kept for the process's life
        self.ffi: Any = None
        self.lib: Any = None  # a handle on the library, to remove the callback at exit
        self.loggers: weakref.WeakKeyDictionary[NativeBackend, LoggerCallback] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, level: int, timestamp: int | None, message: str) -> None:
        with self.lock:
            loggers = list(self.loggers.values())
        forwarded: list[object] = []
        for logger in loggers:
            try:
                if isinstance(logger, LogBridge):
                    target = logger.target
                    first = target is not None and all(t is not target for t in forwarded)
                    if first:
                        forwarded.append(target)
                    logger(level, timestamp, message, forward=first)
                else:
                    logger(level, timestamp, message)
            except Exception:  # one logger's failure must not keep the line from the others
                _log.exception("the Wintun logger raised (%r)", logger)

    def silence(self) -> None:
        """Remove the callback from the library (``WintunSetLogger(NULL)``), at exit: no thread
        of Wintun's may call into an interpreter that is finalizing."""
        with self.lock:
            if self.lib is not None:
                try:
                    self.lib.WintunSetLogger(self.ffi.NULL)
                except Exception:  # the library was unloaded already
                    pass
                self.lib = None


#: The shared logger of each loaded library, by its normalized path.
_library_logs: dict[str, _LibraryLog] = {}
_library_logs_lock = threading.Lock()


def _library_log(path: str) -> _LibraryLog:
    key = os.path.normcase(os.path.abspath(path))
    with _library_logs_lock:
        shared = _library_logs.get(key)
        if shared is None:
            shared = _library_logs[key] = _LibraryLog()
        return shared


@atexit.register
def _silence_libraries() -> None:
    with _library_logs_lock:
        shared = list(_library_logs.values())
    for one in shared:
        one.silence()


class NativeAdapter(AdapterHandle):
    """An adapter handle of the native backend."""

    __slots__ = ("backend", "pointer", "closed", "_release_call", "sessions")

    def __init__(self, backend: NativeBackend, pointer: Any) -> None:
        self.backend = backend
        self.pointer = pointer
        self.closed = False
        #: The sessions started through this handle and not yet ended, by start number: the C
        #: session's pointer until its handle exists, then the handle.
        self.sessions: dict[int, Any] = {}
        # WintunCloseAdapter / WintunFreeAdapter, made at most once however often closing is
        # retried after an interruption: the map calls it on its first pass only.
        release = "WintunCloseAdapter" if backend.api == "0.14" else "WintunFreeAdapter"
        self._release_call = map(getattr(backend._lib, release), (pointer,))

    def __repr__(self) -> str:
        return f"<NativeAdapter {'closed' if self.closed else self.pointer}>"


#: How many packets one pass over a ring takes at most (one DWORD out-parameter each).
_TAKE_LIMIT = 256
_start_numbers = itertools.count()


def _ended(handle: weakref.ref[NativeSession]) -> bool:
    session = handle()
    return session is None or session.ended


_view: Callable[[Any], memoryview] = memoryview


class NativeSession(SessionHandle):
    """A session handle of the native backend."""

    __slots__ = (
        "backend",
        "pointer",
        "ended",
        "finished",
        "kept",
        "waiter",
        "reads",
        "writes",
        "_end_call",
        "_started",
        "_key",
        "__weakref__",
    )

    def __init__(
        self,
        backend: NativeBackend,
        pointer: Any,
        waiter: platform.ReadWaiter,
        started: dict[int, Any],
        key: int,
    ) -> None:
        self.backend = backend
        self.pointer = pointer
        # Where the adapter handle keeps this session until it ends.
        self._started, self._key = started, key
        #: Refuses calls: set first when the session ends.
        self.ended = False
        #: The C session is freed (or deliberately kept): set last.
        self.finished = False
        #: What views derived from packets' data hold: the rings stay while anything does.
        self.kept: list[Any] = []
        self.waiter = waiter
        #: The packets out of each ring (see :mod:`wintun_cffi.ledger`).
        self.reads = Ledger(backend._reading(self))
        self.writes = Ledger(backend._writing(self))
        # WintunEndSession, at most once (see NativeAdapter._release_call).
        self._end_call = map(backend._lib.WintunEndSession, (pointer,))

    def __repr__(self) -> str:
        return f"<NativeSession {'ended' if self.ended else self.pointer}>"


class NativeBackend(GenerationBound):
    """Wintun's C API from a loaded library (see :func:`wintun_cffi.platform.loader.open_wintun`)."""

    def __init__(self, library: LoadedLibrary) -> None:
        self.path = library.path
        self._api: ApiGeneration = library.api
        self._ffi = library.ffi
        self._lib = library.lib
        self._logger_callback: Any = None  # kept alive while installed
        names = {"seed": ("WintunGetAdapter", "WintunReceiveRelease")}.get(self._api)
        self._open_name, self._release_name = names or (
            "WintunOpenAdapter",
            "WintunReleaseReceivePacket",
        )
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
            raise refuse_handle(handle, AdapterHandle, function)
        if handle.closed:
            raise HandleClosedError.adapter_closed(function)
        return handle.pointer

    def _session(self, handle: object, function: str) -> NativeSession:
        if not isinstance(handle, NativeSession) or handle.backend is not self:
            raise refuse_handle(handle, SessionHandle, function)
        if handle.ended:
            raise HandleClosedError.session_ended(function)
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
        self._release_adapter(adapter, "WintunCloseAdapter")

    def free_adapter(self, adapter: object) -> None:
        """``WintunFreeAdapter`` (pool era)."""
        self._require("WintunFreeAdapter", "pool", "seed")
        self._release_adapter(adapter, "WintunFreeAdapter")

    def _release_adapter(self, adapter: object, function: str) -> None:
        self._adapter(adapter, function)
        assert isinstance(adapter, NativeAdapter)
        consume(adapter._release_call)  # the C call, once; a retry after Ctrl+C skips it
        adapter.closed = True

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
        """``WintunSetLogger`` with the generation's exact callback ABI, shared by every
        backend over this library: each backend's ``logger`` gets every line; ``None``
        removes this backend's (the library's callback too once no backend has one).

        Wintun may call the logger later, from a thread of its own: the real ``wintun.dll``
        logs again from a thread-pool thread after a failed ``WintunCreateAdapter`` has
        returned. Such lines reach the loggers set then; at exit the callback is removed
        from the library before the interpreter finalizes.
        """
        if logger is not None and not callable(logger):
            raise TypeError(f"logger must be callable or None, not {type(logger).__name__}")
        shared = _library_log(self.path)
        with shared.lock:
            if logger is None:
                shared.loggers.pop(self, None)
            else:
                shared.loggers[self] = logger
            if shared.native is None:
                shared.native = self._native_logger(shared)
                shared.ffi = self._ffi
            if shared.loggers:
                self._lib.WintunSetLogger(shared.native)
                shared.lib = self._lib
            else:
                self._lib.WintunSetLogger(self._ffi.NULL)
                shared.lib = None
        self._logger_callback = shared.native if logger is not None else None

    def _native_logger(self, logger: LoggerCallback) -> Any:
        """The C callback of this generation's logger type, calling ``logger``."""
        ffi = self._ffi
        kind = ffi.typeof(LOGGER_CALLBACK[self._api])
        returns_bool = kind.result.cname != "void"
        with_timestamp = len(kind.args) == 3

        def report(exception: Any, value: Any, traceback: Any) -> None:
            _log.error("the Wintun logger raised", exc_info=(exception, value, traceback))

        if with_timestamp:

            def deliver(level: int, timestamp: int, message: Any) -> None:
                logger(int(level), int(timestamp), ffi.string(message))

            return ffi.callback(kind, deliver, onerror=report)
        if returns_bool:

            def deliver_bool(level: int, message: Any) -> int:
                logger(int(level), None, ffi.string(message))
                return 1

            return ffi.callback(kind, deliver_bool, error=1, onerror=report)

        def deliver_plain(level: int, message: Any) -> None:
            logger(int(level), None, ffi.string(message))

        return ffi.callback(kind, deliver_plain, onerror=report)

    # -- sessions --------------------------------------------------------------------------

    def start_session(self, adapter: object, capacity: int) -> object:
        """``WintunStartSession``."""
        pointer = self._adapter(adapter, "WintunStartSession")
        assert isinstance(adapter, NativeAdapter)
        if not isinstance(capacity, int) or not 0 <= capacity <= 0xFFFFFFFF:
            raise ValueError(f"capacity must be a DWORD, not {capacity!r}")
        self._end_orphans(adapter)
        started, key = adapter.sessions, next(_start_numbers)
        # The new session lands in ``started`` in the C step that makes it, and its handle
        # replaces it there in one store: a start cut short leaves either a bare C session
        # or a handle nothing holds, and the next start ends it.
        started.update(
            zip((key,), map(self._lib.WintunStartSession, (pointer,), (capacity,)), strict=False)
        )
        session = started[key]
        if not session:
            del started[key]
            raise self._error("WintunStartSession")
        try:
            waiter = platform.ReadWaiter(self._ffi, self._lib.WintunGetReadWaitEvent(session))
        except Exception:
            consume(map(self._lib.WintunEndSession, map(started.pop, (key,))))
            raise
        handle = NativeSession(self, session, waiter, started, key)
        started[key] = handle
        return handle

    def _end_orphans(self, adapter: NativeAdapter) -> None:
        """End the sessions of ``adapter`` that nothing refers to any more (their starter was
        interrupted before it got the handle, or dropped it): the driver would otherwise
        refuse every new session."""
        started = adapter.sessions
        for key, entry in list(started.items()):
            if not isinstance(entry, NativeSession):  # a bare C session: pop and end at once
                consume(map(self._lib.WintunEndSession, map(started.pop, (key,))))
            elif entry.kept:  # ended with derived views alive: ends once they are gone
                self.end_session(entry)
                if not entry.finished:
                    raise SessionActiveError(
                        "the adapter's previous session is still kept by views derived from "
                        f"its packets' data ({len(entry.kept)} buffers): drop them (copy "
                        "packet data with bytes(packet) instead), then start again"
                    )
            # References: the dict, the snapshot's tuple, this loop and the argument.
            elif _getrefcount is not None and _getrefcount(entry) <= 4:
                self.end_session(entry)

    def end_session(self, session: object) -> None:
        """``WintunEndSession``: the views of the session's packets are released first.

        If views derived from a packet's data still exist, freeing the rings would leave them
        pointing at freed memory: the session is then left allocated (a deliberate leak, with
        a :class:`ResourceWarning`) rather than risk a crash. Safe to call again after an
        interruption cut it short: it carries on where it stopped.
        """
        if not isinstance(session, NativeSession) or session.backend is not self:
            raise refuse_handle(session, SessionHandle, "WintunEndSession")
        if session.finished:
            raise HandleClosedError.session_ended("WintunEndSession")
        session.ended = True
        session.waiter.interrupt()
        kept = session.reads.end() + session.writes.end()  # nothing more on a second call
        if kept:
            session.kept = kept
            warnings.warn(
                f"views derived from the data of packets ({len(kept)} buffers) still existed "
                "when the session ended; its rings stay allocated until they are gone (the "
                "adapter's next start_session() ends it then). Copy packet data "
                "(bytes(packet)) instead of keeping views of it.",
                ResourceWarning,
                stacklevel=2,
            )
        # References to each: the list and the argument; more are derived views.
        if session.kept and _getrefcount is not None and max(map(_getrefcount, session.kept)) > 2:
            return  # kept: in ``started`` still, ended by a later call once they are gone
        session.kept = []
        consume(session._end_call)  # the C call, once; a retry after Ctrl+C skips it
        session.finished = True
        session._started.pop(session._key, None)
        session.waiter.close()

    def get_read_wait_event(self, session: object) -> int:
        """``WintunGetReadWaitEvent``: the HANDLE's value (a descriptor off Windows)."""
        pointer = self._session(session, "WintunGetReadWaitEvent").pointer
        return int(self._ffi.cast("intptr_t", self._lib.WintunGetReadWaitEvent(pointer)))

    def _reading(self, session: NativeSession) -> Direction:
        """How a session's ledger takes from and gives back to the Send ring, in C steps."""
        ffi, pointer, error = self._ffi, session.pointer, self._error
        c_receive, buffer = self._c_receive, ffi.buffer
        sizes = ffi.new("DWORD[]", _TAKE_LIMIT)  # one out-parameter per packet of a pass
        size_slots = [sizes + index for index in range(_TAKE_LIMIT)]
        handle = weakref.ref(session)  # not a reference: a handle nothing holds is an orphan

        def take(raw: list[Any], limit: int) -> None:
            if _ended(handle):  # the C session is freed: never pass its pointer again
                raise HandleClosedError.session_ended("WintunReceivePacket")
            # Each packet C hands over is in raw before Python can run anything else.
            raw.extend(takewhile(bool, map(c_receive, repeat(pointer, limit), size_slots)))
            if not raw:
                raise error("WintunReceivePacket")

        def views(raw: list[Any]) -> tuple[list[memoryview], list[Any]]:
            exporters = list(map(buffer, raw, sizes[0 : len(raw)]))  # one each: shows derived views
            return list(map(_view, exporters)), exporters

        def span(raw: list[Any]) -> tuple[Any, list[slice]] | None:
            count = len(raw)
            offsets = list(map(sub, raw, repeat(raw[0], count)))  # pointers into one ring
            if offsets[-1] < 0:
                return None  # wrapped around the ring: the last lies below the first
            ends = list(map(add, offsets, sizes[0:count]))
            return buffer(raw[0], ends[-1]), list(map(slice, offsets, ends))

        def copies(raw: list[Any]) -> list[bytes]:
            return list(map(bytes, map(buffer, raw, sizes[0 : len(raw)])))

        return Direction(
            take,
            views,
            partial(self._c_release, pointer),
            None,
            None,
            True,
            span,
            copies=copies,
        )

    def _writing(self, session: NativeSession) -> Direction:
        """How a session's ledger takes from and gives back to the Receive ring, in C steps."""
        pointer, error = session.pointer, self._error
        c_allocate, buffer, cast = self._c_allocate, self._ffi.buffer, self._ffi.cast
        handle = weakref.ref(session)

        def take(raw: list[Any], sizes: Sequence[int]) -> None:
            if _ended(handle):
                raise HandleClosedError.session_ended("WintunAllocateSendPacket")
            # Sizes are checked by the caller: the DLL would write past the ring.
            raw.extend(takewhile(bool, map(c_allocate, repeat(pointer), sizes)))
            if not raw:
                raise error("WintunAllocateSendPacket")

        def views(raw: list[Any]) -> tuple[list[memoryview], list[Any]]:
            # Each record's size from its header, just before the payload (flag masked):
            # whatever allocated them, even a call an interruption cut short.
            headers = map(cast, repeat("uint32_t *"), raw)
            sizes = map(and_, map(getitem, headers, repeat(-1)), repeat(PACKET_SIZE_MASK))
            exporters = list(map(buffer, raw, sizes))
            return list(map(_view, exporters)), exporters

        def view(token: Any, size: int) -> tuple[memoryview, Any]:
            exporter = buffer(token, size)
            return memoryview(exporter), exporter

        give_up = rules_for(self._api).give_up
        return Direction(
            take,
            views,
            partial(self._c_send, pointer),
            None,
            give_up,
            True,
            one=partial(c_allocate, pointer),
            view=view,
            write=self._ffi.memmove,
        )

    def ledgers(self, session: object) -> tuple[Ledger, Ledger]:
        """The session's packet ledgers ``(reading, writing)``."""
        target = self._session(session, "ledgers")
        return target.reads, target.writes

    def receive_packet(self, session: object) -> tuple[memoryview, object]:
        """``WintunReceivePacket``."""
        return take_one(self._session(session, "WintunReceivePacket").reads, 1)

    def release_receive_packet(self, session: object, token: object) -> None:
        """``WintunReleaseReceivePacket`` (seed: ``WintunReceiveRelease``)."""
        give_back_token(
            self._session(session, self._release_name).reads,
            token,
            "not a packet received from this session, or already released",
        )

    def allocate_send_packet(self, session: object, size: int) -> tuple[memoryview, object]:
        """``WintunAllocateSendPacket``; sizes above 0xFFFF are refused before the call."""
        target = self._session(session, "WintunAllocateSendPacket")
        validate.check_packet_size(size)
        return take_one(target.writes, (size,))

    def send_packet(self, session: object, token: object) -> None:
        """``WintunSendPacket``."""
        give_back_token(
            self._session(session, "WintunSendPacket").writes,
            token,
            "not a packet allocated in this session, or already sent",
        )

    # -- waiting ---------------------------------------------------------------------------

    def wait_read_event(self, session: object, timeout: float | None) -> bool:
        """Wait on the read-wait event (consuming it); see the Backend protocol."""
        target = self._session(session, "wait_read_event")
        try:
            return target.waiter.wait(timeout)
        except WaitInterrupted:
            raise SessionClosedError("the session was closed while waiting") from None

    def signal_read_event(self, session: object) -> None:
        """Signal the read-wait event: one waiter wakes and looks again."""
        self._session(session, "signal_read_event").waiter.signal()

    def interrupt_waits(self, session: object) -> None:
        """Wake every waiter of ``session``, now and later."""
        self._session(session, "interrupt_waits").waiter.interrupt()

    def read_wait_fd(self, session: object) -> int | None:
        """The read-wait descriptor off Windows; None on Windows (a HANDLE, not pollable)."""
        return self._session(session, "read_wait_fd").waiter.fd
