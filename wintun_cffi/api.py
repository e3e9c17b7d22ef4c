"""The high-level API: :class:`Wintun` and :class:`Adapter`, written once over a Backend.

Get a :class:`Wintun` from :func:`wintun_cffi.load` (the real ``wintun.dll``, or a library
exporting its ABI) or :func:`wintun_cffi.emulated` (the pure-Python emulator). Everything below
works the same on both.
"""

from __future__ import annotations

import uuid
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from . import validate
from .backend import Backend
from .constants import DEFAULT_RING_CAPACITY, ApiGeneration
from .errors import HandleClosedError, NotSupportedError, WintunError
from .lifetime import Lifetime
from .logbridge import LogBridge, UserLogger
from .session import Session

if TYPE_CHECKING:
    from emulator.host import Host

_T = TypeVar("_T")


class Wintun:
    """Wintun as loaded from one backend: creates and opens adapters, holds the logger.

    By default Wintun's log goes to the :mod:`logging` logger ``"wintun_cffi.driver"``.
    """

    def __init__(self, backend: Backend, *, path: str | None = None) -> None:
        self.backend = backend
        #: The library's path, for a native backend.
        self.path = path
        self._log = LogBridge()
        backend.set_logger(self._log)

    def __repr__(self) -> str:
        where = f" from {self.path!r}" if self.path else ""
        return f"<Wintun api={self.api!r} backend={type(self.backend).__name__}{where}>"

    @property
    def api(self) -> ApiGeneration:
        """The API generation: ``"0.14"``, ``"pool"`` (0.9 to 0.13) or ``"seed"``."""
        return self.backend.api

    def call(self, function: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        """Call a backend function; a WintunError it raises carries the log lines it caused."""
        with self._log.capture() as lines:
            try:
                return function(*args, **kwargs)
            except WintunError as error:
                error.log = tuple(lines)
                raise

    def set_logger(self, logger: UserLogger | None) -> None:
        """Send Wintun's log to ``logger(level, timestamp, message)``, or nowhere (``None``).

        ``timestamp`` is a UTC :class:`datetime.datetime` (``None`` before Wintun 0.14). A
        logger that raises is reported on the ``logging`` logger of this module and ignored.
        Every object over the same library gets every line it logs; Wintun may call the
        logger later, from a thread of its own (see :ref:`the logger <the-logger>`).
        """
        if logger is not None and not callable(logger):
            raise TypeError(f"logger must be callable or None, not {type(logger).__name__}")
        self._log.target = logger

    @property
    def running_driver_version(self) -> tuple[int, int]:
        """``(major, minor)`` of the loaded driver.

        Raises :class:`~wintun_cffi.errors.DriverNotLoadedError` if no driver is loaded.
        """
        version = self.call(self.backend.get_running_driver_version)
        return version >> 16, version & 0xFFFF

    def create_adapter(
        self,
        name: str,
        *,
        tunnel_type: str | None = None,
        pool: str | None = None,
        guid: uuid.UUID | None = None,
    ) -> Adapter:
        """Create an adapter. Wintun 0.14 takes ``tunnel_type``; the pool era takes ``pool``.

        ``guid`` fixes the adapter's GUID (and so its network profile); see
        :func:`wintun_cffi.netconfig.guid_from_name`.
        """
        validate.check_adapter_name(name)
        validate.check_guid(guid)
        validate.check_adapter_kind(self.api, tunnel_type, pool)
        handle, reboot = self.call(
            self.backend.create_adapter,
            name,
            tunnel_type=tunnel_type,
            pool=pool,
            requested_guid=guid,
        )
        adapter = Adapter(self, handle, name=name, pool=pool, guid=guid, created=True)
        adapter.reboot_required = reboot
        return adapter

    def open_adapter(self, name: str, *, pool: str | None = None) -> Adapter:
        """Open an existing adapter by name (case-insensitive); the pool era needs ``pool``."""
        validate.check_adapter_name(name)
        validate.check_open_pool(self.api, pool)
        handle = self.call(self.backend.open_adapter, name, pool=pool)
        return Adapter(self, handle, name=name, pool=pool, guid=None, created=False)

    def adapters(self, pool: str) -> list[Adapter]:
        """Every adapter of ``pool``, opened (pool era only). Close them when done."""
        validate.check_pool(pool)
        names: list[str] = []

        def collect(handle: object) -> bool:
            names.append(self.backend.get_adapter_name(handle))
            return True

        self.call(self.backend.enum_adapters, pool, collect)
        return [self.open_adapter(name, pool=pool) for name in names]

    def delete_driver(self, pool: str | None = None) -> bool:
        """Uninstall: 0.14 removes the driver if no adapter uses it (no ``pool``); the pool era
        deletes ``pool``'s adapters, then the driver if unused. Returns reboot required.

        0.14's ``WintunDeleteDriver`` may return success while logging errors (it does when
        it cannot take its installation lock): those lines then come as a
        :class:`RuntimeWarning`.
        """
        if self.api == "0.14":
            if pool is not None:
                raise TypeError("Wintun 0.14 has no pools: call delete_driver() without one")
            with self._log.capture() as lines:
                self.call(self.backend.delete_driver)
            if lines.errors:
                # wintun.dll 0.14.1 returns success when it could not even look for the
                # driver: what it logged is the only sign.
                warnings.warn(
                    "WintunDeleteDriver returned success but logged errors, so the driver may "
                    "still be installed: " + " | ".join(lines.errors),
                    RuntimeWarning,
                    stacklevel=2,
                )
            return False
        validate.check_pool(pool)
        assert pool is not None
        return self.call(self.backend.delete_pool_driver, pool)


class Adapter(Lifetime):
    """A Wintun adapter handle; close it (or use ``with``) when done.

    In Wintun 0.14, closing the handle that created the adapter removes the adapter. Closing
    waits for calls in progress on other threads (a :meth:`start_session` say) and closes the
    adapter's sessions first, so the handle is never freed under a call.
    """

    def __init__(
        self,
        wintun: Wintun,
        handle: object,
        *,
        name: str,
        pool: str | None,
        guid: uuid.UUID | None,
        created: bool,
    ) -> None:
        self.wintun = wintun
        #: True if creating the adapter asked for a reboot (pool era).
        self.reboot_required = False
        #: The pool (pool era) or ``None``.
        self.pool = pool
        #: True if this handle created the adapter.
        self.created = created
        self._handle = handle
        self._name = name
        self._guid = guid
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        # Closing waits for a session that this thread is ending (see _end).
        self._end_deferred = False
        self._luid = wintun.call(wintun.backend.get_adapter_luid, handle)
        self._begin_lifetime()

    def __repr__(self) -> str:
        state = "closed" if self._live is None else f"luid={self._luid:#x}"
        return f"<Adapter {self._name!r} {state}>"

    def _closed_error(self) -> HandleClosedError:
        return HandleClosedError(f"the adapter {self._name!r} is closed")

    @property
    def handle(self) -> object:
        """The backend's adapter handle, for advanced use; refused once closed."""
        if self._live is None:
            raise self._closed_error()
        return self._handle

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._live is None

    @property
    def luid(self) -> int:
        """The adapter's NET_LUID (64 bits: interface type 53, index in bits 24 to 47)."""
        return self._luid

    @property
    def guid(self) -> uuid.UUID | None:
        """The GUID requested at creation, where known."""
        return self._guid

    @property
    def name(self) -> str:
        """The adapter's name (read from Wintun in the pool era)."""
        if self.wintun.api == "0.14":
            return self._name
        self._name = self._call(self.wintun.backend.get_adapter_name)
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if self.wintun.api == "0.14":
            raise NotSupportedError.for_generation("WintunSetAdapterName", self.wintun.api)
        validate.check_adapter_name(name)
        self._call(self.wintun.backend.set_adapter_name, name)
        self._name = name

    def _call(self, function: Callable[..., _T], *args: object) -> _T:
        """``function(handle, *args)`` while the adapter cannot be closed under it."""
        try:
            live = self._live
            if live is None:
                raise self._closed_error()
            return self.wintun.call(function, self._handle, *args)
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    @property
    def host(self) -> Host:
        """The system side of an emulated adapter (:class:`emulator.Host`)."""
        host = getattr(self.wintun.backend, "host", None)
        if host is None:
            raise NotSupportedError("only emulated adapters have a host side")
        result: Host = host(self.handle)
        return result

    def start_session(self, capacity: int = DEFAULT_RING_CAPACITY) -> Session:
        """Start a session with rings of ``capacity`` bytes (a power of two, 128 KiB to
        64 MiB). One session per adapter at a time."""
        validate.check_capacity(capacity)
        self._end_earlier_sessions()
        backend = self.wintun.backend
        try:
            live = self._live
            if live is None:
                raise self._closed_error()
            handle = self.wintun.call(backend.start_session, self._handle, capacity)
            session = Session(self, backend, handle, capacity)
            self._sessions.add(session)
            return session
        finally:
            live = None
            if self._closing is not None:
                self._finish(False)

    def _end_earlier_sessions(self) -> None:
        """End what would keep the driver from starting a session: a close an interruption
        cut short, and a session the application dropped without closing (its packets,
        recorded by the backend, keep it alive)."""
        for earlier in list(self._sessions):
            if earlier.closed:
                earlier.close()
            elif earlier._dropped():
                warnings.warn(f"unclosed {earlier!r}", ResourceWarning, stacklevel=3)
                earlier.close()

    def _forget_session(self, session: Session) -> None:
        self._sessions.discard(session)

    def _session_ended(self) -> None:
        """One of this adapter's sessions has ended: a close that waited for it finishes."""
        if self._end_deferred and not self._sessions:
            self._end_deferred = False
            self._finish(False)

    def delete(self, force_close_sessions: bool = False) -> bool:
        """Remove the adapter (pool era); returns reboot required. The handle stays open."""
        if self.wintun.api == "0.14":
            raise NotSupportedError.for_generation("WintunDeleteAdapter", self.wintun.api)
        for session in list(self._sessions):
            session.close()
        return self._call(self.wintun.backend.delete_adapter, bool(force_close_sessions))

    def close(self) -> None:
        """Close this adapter's sessions, then the handle. Idempotent; safe to call again
        after an interruption cut it short."""
        self._stop_calls()
        self._finish(True)

    def _end(self) -> bool:
        for session in list(self._sessions):
            session.close()
        if self._sessions:  # closed from a signal handler while this thread ends one of them:
            self._end_deferred = True  # that end finishes closing the adapter
            return False
        backend = self.wintun.backend
        release = backend.close_adapter if self.wintun.api == "0.14" else backend.free_adapter
        try:
            self.wintun.call(release, self._handle)
        except HandleClosedError:  # released by an earlier close an interruption cut short
            pass
        return True

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_live", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1, source=self)
            try:
                self.close()
            except Exception:
                pass
