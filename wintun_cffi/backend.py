"""The Backend protocol: Wintun's C API in Python terms, one method per C function.

Two backends implement it: :class:`wintun_cffi.native.NativeBackend` (``wintun.dll`` or any
library exporting its ABI, through cffi) and :class:`emulator.Emulator` (pure Python). The
high-level API in :mod:`wintun_cffi.api` is written once, over this protocol.

Conventions shared by every implementation:

* Strings are :class:`str`, GUIDs :class:`uuid.UUID`, LUIDs :class:`int`.
* Handles (adapters, sessions) are opaque objects, instances of :class:`AdapterHandle` or
  :class:`SessionHandle`. A call refuses every handle that is not one of *this* backend's live
  handles, where the C API would use freed or foreign memory: an adapter handle already
  closed, a session handle already ended, or a handle another backend made (another instance,
  or another implementation) raise :class:`~wintun_cffi.errors.HandleClosedError` saying
  which. Something that is not a handle of the kind the call takes (``None``, a number, a
  session handle where an adapter handle belongs) raises :class:`TypeError`.
* Packets cross as a :class:`memoryview` over ring memory (no copy) plus an opaque token that
  releases or sends them. A token is good once, for the session that made it. Both backends
  keep them in a :class:`~wintun_cffi.ledger.Ledger` per direction, whose rules make every
  change of ownership safe against interruptions (``KeyboardInterrupt``).
* Failures raise the :class:`~wintun_cffi.errors.WintunError` subclass of the Win32 code. An
  empty Send ring raises :class:`~wintun_cffi.errors.NoMoreItemsError`.
* A function the backend's API generation lacks raises
  :class:`~wintun_cffi.errors.NotSupportedError` naming the generation.
* Arguments are checked before any call: a packet size outside ``0..0xFFFF``, a name that is
  empty, contains NUL or is too long, raise :class:`ValueError`; an argument of the wrong
  type, or a tunnel type / pool the generation does not take (or lacks), :class:`TypeError`.
  Nothing changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .constants import ApiGeneration
from .errors import HandleClosedError, NotSupportedError

if TYPE_CHECKING:
    from .ledger import Ledger

#: ``logger(level, timestamp, message)``: ``level`` is ``LOG_INFO``/``LOG_WARN``/``LOG_ERR``;
#: ``timestamp`` is in 100 ns units since 1601-01-01 UTC (0.14), or ``None`` where the API
#: generation passes none.
LoggerCallback = Callable[[int, "int | None", str], None]

#: ``callback(adapter_handle) -> continue?``; the handle is valid only during the call.
EnumCallback = Callable[[object], bool]


class AdapterHandle:
    """The base of every backend's adapter handles.

    It carries nothing: it lets a backend tell another backend's adapter handle
    (:class:`~wintun_cffi.errors.HandleClosedError`) from something that is not an adapter
    handle at all (:class:`TypeError`); see :func:`refuse_handle`.
    """

    __slots__ = ()


class SessionHandle:
    """The base of every backend's session handles (see :class:`AdapterHandle`)."""

    __slots__ = ()


def refuse_handle(
    handle: object, kind: type[AdapterHandle] | type[SessionHandle], function: str
) -> Exception:
    """The error a backend raises for ``handle``, which is not one of its own handles of
    ``kind``: :class:`~wintun_cffi.errors.HandleClosedError` if another backend made it,
    :class:`TypeError` if it is no handle of that kind at all.

    The caller has checked that the handle is not its own; whether its own handle is still
    open is the caller's to check too.
    """
    what = "an adapter" if kind is AdapterHandle else "a session"
    if isinstance(handle, kind):
        return HandleClosedError(
            f"{function}: {what} handle of another backend ({type(handle).__name__}), "
            "not of this one"
        )
    return TypeError(f"{function}: not {what} handle: {type(handle).__name__} {handle!r:.60}")


class GenerationBound:
    """What both backends share: the API generation, and refusing what it lacks."""

    _api: ApiGeneration

    @property
    def api(self) -> ApiGeneration:
        """The API generation this backend speaks: ``"0.14"``, ``"pool"`` or ``"seed"``."""
        return self._api

    def _require(self, function: str, *apis: ApiGeneration) -> None:
        """Raise NotSupportedError unless this generation is one of ``apis``."""
        if self._api not in apis:
            raise NotSupportedError.for_generation(function, self._api)


@runtime_checkable
class Backend(Protocol):
    """Wintun's C API, one method per C function across the API generations."""

    @property
    def api(self) -> ApiGeneration:
        """The API generation this backend speaks: ``"0.14"``, ``"pool"`` or ``"seed"``."""
        ...

    # -- adapters ---------------------------------------------------------------------------

    def create_adapter(
        self,
        name: str,
        *,
        tunnel_type: str | None = None,
        pool: str | None = None,
        requested_guid: uuid.UUID | None = None,
    ) -> tuple[object, bool]:
        """``WintunCreateAdapter``: returns ``(adapter handle, reboot required)``.

        0.14 takes ``tunnel_type``; the pool era takes ``pool``. Passing the other one, or
        neither, raises :class:`TypeError`.
        """
        ...

    def open_adapter(self, name: str, *, pool: str | None = None) -> object:
        """``WintunOpenAdapter`` (seed: ``WintunGetAdapter``). The pool era needs ``pool``."""
        ...

    def close_adapter(self, adapter: object) -> None:
        """``WintunCloseAdapter`` (0.14): release the handle; remove the adapter it created."""
        ...

    def free_adapter(self, adapter: object) -> None:
        """``WintunFreeAdapter`` (pool era): release the handle; the adapter stays."""
        ...

    def delete_adapter(self, adapter: object, force_close_sessions: bool) -> bool:
        """``WintunDeleteAdapter`` (pool era): remove the adapter; returns reboot required."""
        ...

    def enum_adapters(self, pool: str, callback: EnumCallback) -> None:
        """``WintunEnumAdapters`` (pool era): call ``callback`` per adapter of ``pool``."""
        ...

    def delete_driver(self) -> None:
        """``WintunDeleteDriver`` (0.14): remove the driver when no adapter uses it."""
        ...

    def delete_pool_driver(self, pool: str) -> bool:
        """``WintunDeletePoolDriver`` (pool era): remove a pool's adapters; reboot required."""
        ...

    def open_adapter_device_object(self, adapter: object) -> int:
        """``WintunOpenAdapterDeviceObject`` (seed only): a device HANDLE for CloseHandle."""
        ...

    def get_adapter_luid(self, adapter: object) -> int:
        """``WintunGetAdapterLUID``: the adapter's 64-bit NET_LUID."""
        ...

    def get_adapter_name(self, adapter: object) -> str:
        """``WintunGetAdapterName`` (pool era)."""
        ...

    def set_adapter_name(self, adapter: object, name: str) -> None:
        """``WintunSetAdapterName`` (pool era)."""
        ...

    def get_running_driver_version(self) -> int:
        """``WintunGetRunningDriverVersion``: ``(major << 16) | minor``."""
        ...

    def set_logger(self, logger: LoggerCallback | None) -> None:
        """``WintunSetLogger``: install ``logger`` (``None`` disables logging).

        A logger that raises never lets the exception into C; it is reported and ignored.
        """
        ...

    # -- sessions ---------------------------------------------------------------------------

    def start_session(self, adapter: object, capacity: int) -> object:
        """``WintunStartSession``: a session handle with rings of ``capacity`` bytes."""
        ...

    def end_session(self, session: object) -> None:
        """``WintunEndSession``: every packet view of the session is invalid afterwards."""
        ...

    def get_read_wait_event(self, session: object) -> int:
        """``WintunGetReadWaitEvent``: the raw event (a HANDLE on Windows, else an fd)."""
        ...

    def receive_packet(self, session: object) -> tuple[memoryview, object]:
        """``WintunReceivePacket``: ``(writable view of the payload, token)``."""
        ...

    def release_receive_packet(self, session: object, token: object) -> None:
        """``WintunReleaseReceivePacket`` (seed: ``WintunReceiveRelease``)."""
        ...

    def allocate_send_packet(self, session: object, size: int) -> tuple[memoryview, object]:
        """``WintunAllocateSendPacket``: ``(writable view of size bytes, token)``."""
        ...

    def send_packet(self, session: object, token: object) -> None:
        """``WintunSendPacket``: hand an allocated packet to the driver."""
        ...

    def ledgers(self, session: object) -> tuple[Ledger, Ledger]:
        """The session's packet ledgers, ``(reading, writing)``: the fast path of the high-level
        API (see :mod:`wintun_cffi.ledger`). The single calls above go through them too."""
        ...

    # -- waiting (the platform seam; not C functions) ---------------------------------------

    def wait_read_event(self, session: object, timeout: float | None) -> bool:
        """Wait until the read-wait event is signalled (consuming it): True, or False on timeout.

        Raises :class:`~wintun_cffi.errors.SessionClosedError` once :meth:`interrupt_waits`
        was called for the session, including for waits already blocked.
        """
        ...

    def signal_read_event(self, session: object) -> None:
        """Signal the read-wait event (``SetEvent``): wakes one waiter, which looks again."""
        ...

    def interrupt_waits(self, session: object) -> None:
        """Wake every :meth:`wait_read_event` of ``session``, now and later, until it ends."""
        ...

    def read_wait_fd(self, session: object) -> int | None:
        """A file descriptor readable while the read-wait event is signalled, if there is one."""
        ...
