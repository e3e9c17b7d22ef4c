"""The emulator's driver playing the kernel for the C test double.

The double implements the client side of the rings (what ``wintun.dll`` does); this module
attaches an :class:`emulator.Host` (and so an emulator driver) to every session the double
starts, on the double's own ring memory and events, and stops it before the double frees
them. The events are eventfds on Linux and auto-reset Win32 events on Windows, waited on the
way each OS waits (:class:`~wintun_cffi.fdevent.FdEvent`,
:class:`~wintun_cffi.platform._win32.Win32Event`). A packet then goes: Python API -> native backend -> cffi -> C double -> ring memory <-
emulator driver <- emulator host, which checks the emulator's byte layout against an
independent C implementation.

:meth:`DoubleKernel.emulate` makes the double and its kernel one exact Wintun release of the
double's generation (the C side gets the driver version and the send-signal rule; the
emulator's driver gets the release's own rules).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import cffi

from emulator.driver import RegistrationRefused
from emulator.host import Host, RingField, RingName
from emulator.releases import NEWEST, Release, find_release
from emulator.ring import Ring
from wintun_cffi.constants import API_GENERATIONS, ERROR_INVALID_PARAMETER, ApiGeneration
from wintun_cffi.fdevent import FdEvent
from wintun_cffi.platform import IS_WINDOWS

_HELPERS = """
    int WintunDoubleGetSessionRings(void *Session, void **SendRing, void **ReceiveRing,
                                    uint32_t *RingSize, uint32_t *Capacity,
                                    void **ReadWaitEvent, void **ReceiveTailMovedEvent);
    void WintunDoubleSetSessionHooks(void (*OnStart)(void *), void (*OnEnd)(void *));
    void WintunDoubleSetRegisterHook(uint32_t (*OnRegister)(void *));
    void WintunDoubleSetSignalAtEnd(int Signal);
    int WintunDoubleReset(void);
    void WintunDoubleLog(int Level, const char16_t *Message);
    uint32_t WintunDoubleAdapterCount(void);
    uint32_t WintunDoubleSessionCount(void);
    const char *WintunDoubleApi(void);
    void WintunDoubleSetDriverVersion(uint32_t Version);
    void WintunDoubleSetSignalUnmovedTail(int Signal);
"""


if sys.platform == "win32":
    from wintun_cffi.platform._win32 import Win32Event

    def adopt_event(value: int) -> Win32Event:
        """The double's event HANDLE ``value`` as an event the emulator's driver waits on."""
        return Win32Event(adopt_handle=value)

else:

    def adopt_event(value: int) -> FdEvent:
        """The double's eventfd ``value`` as an event the emulator's driver waits on."""
        return FdEvent(adopt_eventfd=value)


class DoubleKernel:
    """Attach an emulator host to each session of the C double loaded from ``path``."""

    def __init__(self, path: str) -> None:
        self.ffi = cffi.FFI()
        self.ffi.cdef(_HELPERS)
        self.lib: Any = self.ffi.dlopen(path)  # the WintunDouble* helpers
        self._lock = threading.Lock()
        self._hosts: dict[int, Host] = {}
        #: The host of the most recent session (tests usually run one at a time).
        self.last_host: Host | None = None
        # The driver judges a session's rings before WintunStartSession returns: a refusal
        # fails the call, as the real driver's does.
        self._on_register = self.ffi.callback(
            "uint32_t(void *)", self._registered, error=ERROR_INVALID_PARAMETER
        )
        self._on_end = self.ffi.callback("void(void *)", self._ended)
        self.lib.WintunDoubleSetRegisterHook(self._on_register)  # type: ignore[attr-defined]
        self.lib.WintunDoubleSetSessionHooks(self.ffi.NULL, self._on_end)  # type: ignore[attr-defined]
        #: The release the double and its driver reproduce (see :meth:`emulate`).
        self.release = NEWEST[self.generation]
        self._registration_faults: list[tuple[RingName, RingField, int]] = []
        #: Sessions whose rings the driver refused (their rings were marked dead instead).
        self.refused_registrations = 0

    @property
    def api(self) -> str:
        """The generation the double was compiled for."""
        name = self.ffi.string(self.lib.WintunDoubleApi())
        return name.decode() if isinstance(name, bytes) else name

    @property
    def generation(self) -> ApiGeneration:
        """:attr:`api`, checked to be a known generation."""
        api = self.api
        for generation in API_GENERATIONS:
            if api == generation:
                return generation
        raise RuntimeError(f"the double reports an unknown generation {api!r}")

    def emulate(self, release: str | None) -> Release:
        """Reproduce release ``release`` of the double's generation (its newest if None),
        for the sessions started from now on; :meth:`reset` returns to the newest."""
        chosen = find_release(self.generation, release)
        self.lib.WintunDoubleSetDriverVersion(chosen.driver_version_word)
        self.lib.WintunDoubleSetSignalUnmovedTail(int(chosen.signals_unmoved_tail))
        self.lib.WintunDoubleSetSignalAtEnd(int(chosen.end_session_signals))
        self.release = chosen
        return chosen

    def corrupt_at_registration(self, ring: RingName, field: RingField, value: int) -> None:
        """Like :meth:`emulator.Host.corrupt_at_registration`, for the next session: rings
        the driver refuses fail ``WintunStartSession`` with ``ERROR_INVALID_PARAMETER``
        (counted in :attr:`refused_registrations`)."""
        self._registration_faults.append((ring, field, value))

    def _registered(self, session: Any) -> int:
        ffi = self.ffi
        send, receive = ffi.new("void **"), ffi.new("void **")
        size, capacity = ffi.new("uint32_t *"), ffi.new("uint32_t *")
        read_wait, tail_moved = ffi.new("void **"), ffi.new("void **")
        if not self.lib.WintunDoubleGetSessionRings(
            session, send, receive, size, capacity, read_wait, tail_moved
        ):
            raise RuntimeError("WintunDoubleGetSessionRings failed")
        send_ring = Ring(memoryview(ffi.buffer(send[0], size[0])), capacity[0])
        receive_ring = Ring(memoryview(ffi.buffer(receive[0], size[0])), capacity[0])
        host = Host(f"double-{int(ffi.cast('uintptr_t', session)):x}", release=self.release)
        faults, self._registration_faults = self._registration_faults, []
        for fault in faults:
            host.corrupt_at_registration(*fault)
        try:
            host.attach(
                send_ring,
                receive_ring,
                adopt_event(self._value(read_wait[0])),
                adopt_event(self._value(tail_moved[0])),
            )
        except RegistrationRefused:
            self.refused_registrations += 1
            return ERROR_INVALID_PARAMETER
        with self._lock:
            self._hosts[int(ffi.cast("uintptr_t", session))] = host
            self.last_host = host
        return 0

    def _value(self, handle: Any) -> int:
        """A HANDLE's value: the event HANDLE on Windows, the descriptor elsewhere."""
        return int(self.ffi.cast("uintptr_t" if IS_WINDOWS else "intptr_t", handle))

    def _ended(self, session: Any) -> None:
        with self._lock:
            host = self._hosts.pop(int(self.ffi.cast("uintptr_t", session)), None)
        if host is not None:
            host.detach()  # dead markers, consumer joined, before the double frees memory

    def host_for(self, session_pointer: Any) -> Host:
        """The host attached to the session at ``session_pointer`` (a cffi pointer)."""
        with self._lock:
            return self._hosts[int(self.ffi.cast("uintptr_t", session_pointer))]

    def reset(self) -> None:
        """Remove every adapter of the double (its sessions must have ended)."""
        if not self.lib.WintunDoubleReset():
            raise RuntimeError("WintunDoubleReset failed: a session is still open")
        self.release = NEWEST[self.generation]  # the double restored its defaults
        self._registration_faults.clear()

    def close(self) -> None:
        """Uninstall the hooks."""
        self.lib.WintunDoubleSetRegisterHook(self.ffi.NULL)
        self.lib.WintunDoubleSetSessionHooks(self.ffi.NULL, self.ffi.NULL)
