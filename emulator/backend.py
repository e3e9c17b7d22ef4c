"""The emulated Wintun: adapters, sessions and the DLL's API, for one API generation.

:class:`Emulator` implements :class:`wintun_cffi.backend.Backend` in pure Python. It keeps the
adapters of one emulated machine, runs each session's client (:mod:`emulator.client`) and
driver (:mod:`emulator.driver`) over real ring memory, and gives every adapter a
:class:`~emulator.host.Host` for the system side.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from wintun_cffi import validate
from wintun_cffi.backend import (
    AdapterHandle,
    EnumCallback,
    GenerationBound,
    LoggerCallback,
    SessionHandle,
    refuse_handle,
)
from wintun_cffi.constants import (
    API_GENERATIONS,
    ERROR_ALREADY_EXISTS,
    ERROR_ALREADY_INITIALIZED,
    ERROR_BUFFER_OVERFLOW,
    ERROR_DUP_NAME,
    ERROR_FILE_NOT_FOUND,
    ERROR_INF_IN_USE_BY_DEVICES,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_FOUND,
    IF_TYPE_PROP_VIRTUAL,
    LOG_ERR,
    LOG_INFO,
    MAX_ADAPTER_NAME,
    ApiGeneration,
    is_valid_capacity,
    ring_size,
)
from wintun_cffi.errors import (
    HandleClosedError,
    SessionClosedError,
    WintunError,
    error_from_code,
)
from wintun_cffi.fdevent import FdEvent, WaitInterrupted
from wintun_cffi.ledger import Direction, Ledger, give_back_token, take_one
from wintun_cffi.lifetime import getrefcount as _getrefcount
from wintun_cffi.send_rules import rules_for
from wintun_cffi.validate import check_packet_size

from .client import SessionClient
from .configurator import HostConfigurator
from .driver import RegistrationRefused
from .host import Host
from .releases import Release, find_release
from .ring import Ring

_log = logging.getLogger(__name__)

#: 100 ns intervals between 1601-01-01 and 1970-01-01 (Windows FILETIME epoch).
_FILETIME_UNIX_EPOCH = 116444736000000000
_device_handles = itertools.count(0x1000, 4)
#: How many "Name N" suffixes the DLL tries before giving up with ERROR_DUP_NAME.
_MAX_NAME_SUFFIX = 1000

#: What plays the system side of each adapter: the in-memory :class:`Host`, or the Linux
#: kernel through a TUN interface (:class:`emulator.linux_tun.LinuxTunHost`, root only).
HostKind = Literal["memory", "linux-tun"]
HOST_KINDS: tuple[HostKind, ...] = ("memory", "linux-tun")


@dataclass(eq=False)
class EmulatedAdapter:
    """One adapter of the emulated machine."""

    name: str
    pool: str | None
    tunnel_type: str | None
    guid: uuid.UUID
    luid: int
    host: Host
    #: The emulated machine the adapter belongs to: its handles are refused elsewhere.
    emulator: Emulator = field(repr=False)
    session: EmulatedSession | None = None
    removed: bool = False


@dataclass(eq=False)
class EmulatedAdapterHandle(AdapterHandle):
    """What ``WintunCreateAdapter``/``WintunOpenAdapter`` return in the emulator."""

    adapter: EmulatedAdapter
    #: 0.14: closing the handle that created the adapter removes the adapter.
    created: bool
    closed: bool = False


@dataclass(eq=False)
class EmulatedSession(SessionHandle):
    """What ``WintunStartSession`` returns in the emulator."""

    adapter: EmulatedAdapter
    client: SessionClient
    read_wait_event: FdEvent
    receive_tail_moved: FdEvent
    interrupt: FdEvent
    #: The packets out of each ring (see :mod:`wintun_cffi.ledger`).
    reads: Ledger
    writes: Ledger
    #: Refuses calls: set first when the session ends.
    ended: bool = False
    #: Everything is freed: set last.
    finished: bool = False


def session_of(send_ring: Ring, adapter: EmulatedAdapter) -> EmulatedSession | None:
    """The adapter's session if it is the one on ``send_ring`` (else None)."""
    session = adapter.session
    return session if session is not None and session.client.send_ring is send_ring else None


def session_ledgers(client: SessionClient, api: ApiGeneration) -> tuple[Ledger, Ledger]:
    """The ledgers of one emulated session: the client queues what they give back."""
    reading = Direction(
        client.take_received,
        client.received_views,
        client.released.append,
        client.flush_releases,
        None,
        False,
    )
    writing = Direction(
        client.take_allocated,
        client.allocated_views,
        client.sent.append,
        client.flush_sends,
        rules_for(api).give_up,
        False,
        view=client.allocated_view,
        write=client.write_allocated,
    )
    return Ledger(reading), Ledger(writing)


class Emulator(GenerationBound):
    """A pure-Python Wintun of API generation ``api`` (``"0.14"``, ``"pool"`` or ``"seed"``).

    ``release`` picks the exact Wintun release within the generation (``"0.9.1"``; see
    :data:`emulator.releases.RELEASES`); by default the generation's newest (0.14.1, 0.13,
    the 2020-11 snapshot). Its driver version and the rules that changed between releases
    follow it.
    """

    def __init__(
        self,
        api: ApiGeneration = "0.14",
        *,
        host: HostKind = "memory",
        release: str | None = None,
    ) -> None:
        if api not in API_GENERATIONS:
            raise ValueError(f"api must be one of {', '.join(API_GENERATIONS)}, not {api!r}")
        if host not in HOST_KINDS:
            raise ValueError(f"host must be one of {', '.join(HOST_KINDS)}, not {host!r}")
        self._release = find_release(api, release)
        self._api: ApiGeneration = api
        self._host_kind: HostKind = host
        self._lock = threading.RLock()
        self._adapters: list[EmulatedAdapter] = []
        self._luid_indexes = itertools.count(1)
        self._logger: LoggerCallback | None = None

    def __repr__(self) -> str:
        return (
            f"Emulator(api={self._api!r}, host={self._host_kind!r}, release={self._release.name!r})"
        )

    @property
    def release(self) -> Release:
        """The Wintun release this emulator reproduces."""
        return self._release

    # -- helpers ---------------------------------------------------------------------------

    def _log(self, level: int, message: str) -> None:
        logger = self._logger
        if logger is None:
            return
        timestamp = None
        if self._api == "0.14":  # only 0.14 passes a timestamp
            timestamp = time.time_ns() // 100 + _FILETIME_UNIX_EPOCH
        try:
            logger(level, timestamp, message)
        except BaseException:  # never into the call that logs (nor into C, in the real DLL)
            _log.exception("the Wintun logger raised")

    def _fail(self, code: int, function: str, message: str) -> WintunError:
        """Log ``message`` as Wintun would, and return the error to raise."""
        self._log(LOG_ERR, f"{function}: {message}" if self._api != "0.14" else message)
        return error_from_code(code, function)

    def _adapter(self, handle: object, function: str) -> EmulatedAdapter:
        if not isinstance(handle, EmulatedAdapterHandle) or handle.adapter.emulator is not self:
            raise refuse_handle(handle, AdapterHandle, function)
        if handle.closed:
            raise HandleClosedError.adapter_closed(function)
        return handle.adapter

    def _live_adapter(self, handle: object, function: str) -> EmulatedAdapter:
        adapter = self._adapter(handle, function)
        if adapter.removed:
            raise self._fail(ERROR_FILE_NOT_FOUND, function, "the adapter no longer exists")
        return adapter

    def _session(self, session: object, function: str) -> EmulatedSession:
        if not isinstance(session, EmulatedSession) or session.adapter.emulator is not self:
            raise refuse_handle(session, SessionHandle, function)
        if session.ended:
            raise HandleClosedError.session_ended(function)
        return session

    def _find(self, name: str) -> EmulatedAdapter | None:
        key = validate.name_key(name)
        for adapter in self._adapters:
            if validate.name_key(adapter.name) == key:
                return adapter
        return None

    def _free_name(self, name: str, function: str) -> str:
        """``"Name N"`` for the smallest N >= 1 that no adapter holds, as the DLL looks for
        one: it must fit the name buffer, and the DLL gives up after 1000 tries."""
        for number in range(1, _MAX_NAME_SUFFIX + 1):
            candidate = f"{name} {number}"
            if validate.utf16_units(candidate) > MAX_ADAPTER_NAME - 1:
                code = ERROR_BUFFER_OVERFLOW if self._api == "0.14" else ERROR_INVALID_PARAMETER
                raise self._fail(code, function, "Adapter name too long")
            if self._find(candidate) is None:
                return candidate
        raise self._fail(ERROR_DUP_NAME, function, "Too many adapters of that name")

    def _claim_name(self, name: str, function: str, keep: EmulatedAdapter | None = None) -> None:
        """Make ``name`` free: the adapter holding it is renamed to ``"Name N"``."""
        holder = self._find(name)
        if holder is not None and holder is not keep:
            holder.name = self._free_name(name, function)

    def _new_host(self, name: str) -> Host:
        if self._host_kind == "linux-tun":
            from .linux_tun import LinuxTunHost  # Linux only; imported when asked for

            return LinuxTunHost(name, release=self._release)
        return Host(name, release=self._release)

    def _remove(self, adapter: EmulatedAdapter) -> None:
        """The adapter disappears; its session dies (EOF for its reader)."""
        with self._lock:
            if adapter.removed:
                return
            adapter.removed = True
            self._adapters.remove(adapter)
        adapter.host.close()

    # -- adapters --------------------------------------------------------------------------

    def create_adapter(
        self,
        name: str,
        *,
        tunnel_type: str | None = None,
        pool: str | None = None,
        requested_guid: uuid.UUID | None = None,
    ) -> tuple[object, bool]:
        """``WintunCreateAdapter``: see :meth:`wintun_cffi.backend.Backend.create_adapter`."""
        validate.check_adapter_name(name)
        validate.check_guid(requested_guid)
        validate.check_adapter_kind(self._api, tunnel_type, pool)
        function = "WintunCreateAdapter"
        with self._lock:
            if requested_guid is not None and any(a.guid == requested_guid for a in self._adapters):
                raise self._fail(ERROR_ALREADY_EXISTS, function, "Requested GUID is already in use")
            if self._api == "0.14":
                self._log(
                    LOG_INFO,
                    "Using existing driver 0.14" if self._adapters else "Installing driver 0.14",
                )
            # Pool-era DLLs prefix the internal function's name (0.9: CreateAdapter).
            self._log(
                LOG_INFO,
                "Creating adapter" if self._api == "0.14" else "CreateAdapter: Creating adapter",
            )
            host = self._new_host(name)  # may refuse the name (Linux): nothing renamed yet
            self._claim_name(name, function)
            index = next(self._luid_indexes)
            adapter = EmulatedAdapter(
                name=name,
                pool=pool,
                tunnel_type=tunnel_type,
                guid=requested_guid or uuid.uuid4(),
                luid=(IF_TYPE_PROP_VIRTUAL << 48) | (index << 24),
                host=host,
                emulator=self,
            )
            adapter.host.set_terminate_hook(lambda: self._remove(adapter))
            self._adapters.append(adapter)
        return EmulatedAdapterHandle(adapter, created=True), False

    def open_adapter(self, name: str, *, pool: str | None = None) -> object:
        """``WintunOpenAdapter`` (seed: ``WintunGetAdapter``)."""
        validate.check_adapter_name(name)
        function = "WintunGetAdapter" if self._api == "seed" else "WintunOpenAdapter"
        validate.check_open_pool(self._api, pool)
        with self._lock:
            adapter = self._find(name)
            if adapter is None:
                if self._api != "0.14":  # the pool-era DLL reports a plain miss without logging
                    raise error_from_code(ERROR_FILE_NOT_FOUND, function)
                raise self._fail(ERROR_NOT_FOUND, function, "Failed to find matching adapter name")
            if self._api != "0.14" and (adapter.pool or "").casefold() != str(pool).casefold():
                raise self._fail(
                    ERROR_ALREADY_EXISTS, function, "Adapter is not a member of the pool"
                )
            return EmulatedAdapterHandle(adapter, created=False)

    def close_adapter(self, adapter: object) -> None:
        """``WintunCloseAdapter`` (0.14)."""
        self._require("WintunCloseAdapter", "0.14")
        target = self._adapter(adapter, "WintunCloseAdapter")
        assert isinstance(adapter, EmulatedAdapterHandle)
        if adapter.created:
            self._remove(target)  # idempotent: a retry after an interruption carries on
        adapter.closed = True

    def free_adapter(self, adapter: object) -> None:
        """``WintunFreeAdapter`` (pool era)."""
        self._require("WintunFreeAdapter", "pool", "seed")
        self._adapter(adapter, "WintunFreeAdapter")
        assert isinstance(adapter, EmulatedAdapterHandle)
        adapter.closed = True

    def delete_adapter(self, adapter: object, force_close_sessions: bool) -> bool:
        """``WintunDeleteAdapter`` (pool era); returns reboot required.

        With ``force_close_sessions`` the session dies with the adapter. Without it an open
        session holds the device: the adapter leaves the list, the session keeps working until
        it ends, and a reboot is reported as required (as Windows does).
        """
        self._require("WintunDeleteAdapter", "pool", "seed")
        target = self._adapter(adapter, "WintunDeleteAdapter")
        if force_close_sessions or target.session is None:
            self._remove(target)  # an adapter that is already gone counts as deleted
            return False
        with self._lock:
            if not target.removed:
                target.removed = True
                self._adapters.remove(target)
        return True

    def enum_adapters(self, pool: str, callback: EnumCallback) -> None:
        """``WintunEnumAdapters`` (pool era); each handle is valid during its callback only."""
        self._require("WintunEnumAdapters", "pool", "seed")
        validate.check_pool(pool)
        with self._lock:
            members = [a for a in self._adapters if (a.pool or "").casefold() == pool.casefold()]
        for member in members:
            handle = EmulatedAdapterHandle(member, created=False)
            try:
                if not callback(handle):
                    break
            finally:
                handle.closed = True

    def delete_driver(self) -> None:
        """``WintunDeleteDriver`` (0.14): refused while adapters exist."""
        self._require("WintunDeleteDriver", "0.14")
        with self._lock:
            if self._adapters:
                raise self._fail(
                    ERROR_INF_IN_USE_BY_DEVICES,
                    "WintunDeleteDriver",
                    "Driver is in use by adapters",
                )

    def delete_pool_driver(self, pool: str) -> bool:
        """``WintunDeletePoolDriver``: remove the pool's adapters, then the driver if unused."""
        self._require("WintunDeletePoolDriver", "pool", "seed")
        validate.check_pool(pool)
        with self._lock:
            members = [a for a in self._adapters if (a.pool or "").casefold() == pool.casefold()]
        for member in members:
            self._remove(member)
        with self._lock:
            if self._adapters:
                raise self._fail(
                    ERROR_INF_IN_USE_BY_DEVICES,
                    "WintunDeletePoolDriver",
                    "Driver is still in use by adapters of other pools",
                )
        return False

    def open_adapter_device_object(self, adapter: object) -> int:
        """``WintunOpenAdapterDeviceObject`` (seed): a stand-in device handle value."""
        self._require("WintunOpenAdapterDeviceObject", "seed")
        self._live_adapter(adapter, "WintunOpenAdapterDeviceObject")
        return next(_device_handles)

    def get_adapter_luid(self, adapter: object) -> int:
        """``WintunGetAdapterLUID``."""
        return self._adapter(adapter, "WintunGetAdapterLUID").luid

    def get_adapter_name(self, adapter: object) -> str:
        """``WintunGetAdapterName`` (pool era)."""
        self._require("WintunGetAdapterName", "pool", "seed")
        return self._live_adapter(adapter, "WintunGetAdapterName").name

    def set_adapter_name(self, adapter: object, name: str) -> None:
        """``WintunSetAdapterName`` (pool era); the adapter holding ``name`` is renamed."""
        self._require("WintunSetAdapterName", "pool", "seed")
        validate.check_adapter_name(name)
        with self._lock:
            target = self._live_adapter(adapter, "WintunSetAdapterName")
            self._claim_name(name, "WintunSetAdapterName", keep=target)
            target.name = name

    def get_running_driver_version(self) -> int:
        """``WintunGetRunningDriverVersion``: 0 and ``ERROR_FILE_NOT_FOUND`` if not loaded."""
        with self._lock:
            if not self._adapters:  # like wintun.sys, loaded while an adapter exists
                raise self._fail(
                    ERROR_FILE_NOT_FOUND, "WintunGetRunningDriverVersion", "Wintun is not loaded"
                )
        return self._release.driver_version_word

    def set_logger(self, logger: LoggerCallback | None) -> None:
        """``WintunSetLogger``."""
        if logger is not None and not callable(logger):
            raise TypeError(f"logger must be callable or None, not {type(logger).__name__}")
        self._logger = logger

    # -- sessions --------------------------------------------------------------------------

    def start_session(self, adapter: object, capacity: int) -> object:
        """``WintunStartSession``: rings of ``capacity`` bytes, the driver attached."""
        function = "WintunStartSession"
        with self._lock:
            target = self._live_adapter(adapter, function)
            # References: the attribute and the argument. Nothing else holds a session whose
            # starter was interrupted before it got the handle (or dropped it): end it.
            if (
                target.session is not None
                and _getrefcount is not None
                and (_getrefcount(target.session) <= 2)
            ):
                self.end_session(target.session)
            if target.session is not None:  # the driver refuses a second session first
                raise self._fail(ERROR_ALREADY_INITIALIZED, function, "Failed to register rings")
            if not isinstance(capacity, int) or not is_valid_capacity(capacity):
                raise self._fail(ERROR_INVALID_PARAMETER, function, "Failed to register rings")
            size = ring_size(capacity)
            region = memoryview(bytearray(2 * size))  # one zeroed region, two rings
            send_ring = Ring(region[:size], capacity)
            receive_ring = Ring(region[size:], capacity)
            events: list[FdEvent] = []
            try:  # descriptors may run out: close what was made, register nothing
                for manual_reset in (False, False, True):
                    events.append(FdEvent(manual_reset=manual_reset))
                read_wait_event, receive_tail_moved, interrupt = events
                client = SessionClient(send_ring, receive_ring, receive_tail_moved, self._release)
                session = EmulatedSession(
                    target,
                    client,
                    read_wait_event,
                    receive_tail_moved,
                    interrupt,
                    *session_ledgers(client, self._api),
                )
                # Recorded before its driver starts: a start cut short after that leaves a
                # session nothing holds, which the next start ends.
                target.session = session
                target.host.attach(send_ring, receive_ring, read_wait_event, receive_tail_moved)
            except BaseException as error:
                if session_of(send_ring, target) is not None:
                    if not isinstance(error, Exception):
                        raise  # interrupted once recorded: the next start ends it
                    target.session = None  # refused: no driver runs on these events
                for event in events:
                    event.close()
                if isinstance(error, RegistrationRefused):
                    raise self._fail(
                        ERROR_INVALID_PARAMETER, function, "Failed to register rings"
                    ) from None
                raise
            return session

    def end_session(self, session: object) -> None:
        """``WintunEndSession``: stop the driver and free the rings and events.

        Safe to call again after an interruption cut it short: it carries on where it stopped.
        """
        if not isinstance(session, EmulatedSession) or session.adapter.emulator is not self:
            raise refuse_handle(session, SessionHandle, "WintunEndSession")
        if session.finished:
            raise HandleClosedError.session_ended("WintunEndSession")
        if self._release.end_session_signals and not session.ended:
            session.read_wait_event.set()  # the snapshot to 0.10.4 wake a waiting reader
        session.ended = True
        session.interrupt.set()
        session.reads.end()
        session.writes.end()
        session.client.end()
        with self._lock:
            adapter = session.adapter
            if adapter.session is session:
                if adapter.removed:  # deleted while this session held it
                    adapter.host.close()
                else:
                    adapter.host.detach()
                adapter.session = None
        session.finished = True
        for event in (session.read_wait_event, session.receive_tail_moved, session.interrupt):
            event.close()

    def get_read_wait_event(self, session: object) -> int:
        """``WintunGetReadWaitEvent``: the event's descriptor (readable while signalled)."""
        return self._session(session, "WintunGetReadWaitEvent").read_wait_event.fileno()

    def receive_packet(self, session: object) -> tuple[memoryview, object]:
        """``WintunReceivePacket``."""
        return take_one(self._session(session, "WintunReceivePacket").reads, 1)

    def release_receive_packet(self, session: object, token: object) -> None:
        """``WintunReleaseReceivePacket`` (seed: ``WintunReceiveRelease``)."""
        give_back_token(
            self._session(session, self._release.release_function).reads,
            token,
            "not a packet received from this session, or already released",
        )

    def allocate_send_packet(self, session: object, size: int) -> tuple[memoryview, object]:
        """``WintunAllocateSendPacket``."""
        target = self._session(session, "WintunAllocateSendPacket")
        check_packet_size(size)
        return take_one(target.writes, (size,))

    def send_packet(self, session: object, token: object) -> None:
        """``WintunSendPacket``."""
        give_back_token(
            self._session(session, "WintunSendPacket").writes,
            token,
            "not a packet allocated in this session, or already sent",
        )

    def ledgers(self, session: object) -> tuple[Ledger, Ledger]:
        """The session's packet ledgers ``(reading, writing)``."""
        target = self._session(session, "ledgers")
        return target.reads, target.writes

    # -- waiting ---------------------------------------------------------------------------

    def wait_read_event(self, session: object, timeout: float | None) -> bool:
        """Wait on the read-wait event; see :meth:`wintun_cffi.backend.Backend.wait_read_event`."""
        target = self._session(session, "wait_read_event")
        try:
            return target.read_wait_event.wait(timeout, interrupt=target.interrupt)
        except WaitInterrupted:
            raise SessionClosedError("the session was closed while waiting") from None

    def signal_read_event(self, session: object) -> None:
        """Signal the read-wait event: one waiter wakes and looks again."""
        self._session(session, "signal_read_event").read_wait_event.set()

    def interrupt_waits(self, session: object) -> None:
        """Wake every waiter of ``session``, now and later."""
        self._session(session, "interrupt_waits").interrupt.set()

    def read_wait_fd(self, session: object) -> int | None:
        """The read-wait event's descriptor."""
        return self._session(session, "read_wait_fd").read_wait_event.fileno()

    # -- the system side ---------------------------------------------------------------------

    def host(self, adapter: object) -> Host:
        """The system side of the adapter behind an adapter handle."""
        return self._adapter(adapter, "host").host

    def configurator(self, adapter: object) -> HostConfigurator:
        """What applies network configuration (:mod:`wintun_cffi.netconfig`) to the adapter
        behind an adapter handle: its host."""
        return HostConfigurator(self.host(adapter))

    def close(self) -> None:
        """Shut the emulated machine down: every adapter is removed (its session dies; a Linux
        TUN host deletes its interface). Idempotent."""
        with self._lock:
            adapters = list(self._adapters)
        for adapter in adapters:
            self._remove(adapter)

    def adapter_names(self) -> list[str]:
        """The names of every adapter of the emulated machine (any pool)."""
        with self._lock:
            return [adapter.name for adapter in self._adapters]
