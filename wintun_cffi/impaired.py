"""Impairments over any session: :class:`ImpairedSession` wraps a
:class:`~wintun_cffi.session.Session` of any backend (the real driver included) and impairs the
packets the application receives and sends (see :mod:`wintun_cffi.impair` for what each
setting does and the determinism rule).

A delayed or reordered packet cannot stay in ring memory, so the wrapper offers the copying
API: :meth:`ImpairedSession.read` and :meth:`ImpairedSession.read_many` return bytes,
:meth:`ImpairedSession.send` and :meth:`ImpairedSession.send_many` take bytes-like objects.

A thread of the wrapper receives from the session as packets come (copies each and releases
it at once), so that each packet's delay counts from its arrival; another releases delayed
packets when their time comes. Use the wrapper, not the session, for packets while it is
open: the wrapper's thread takes whatever the session receives.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import validate
from .errors import SessionClosedError
from .impair import (
    ImpairedPath,
    Impairer,
    Impairment,
    ImpairmentStatistics,
    Scheduler,
    Seed,
)
from .session import BytesLike, Session

if TYPE_CHECKING:
    from .api import Adapter

#: Packets the wrapper's receiving thread takes from the session in one call.
_RECEIVE_BATCH = 64
#: Released packets waiting for :meth:`ImpairedSession.read` before the receiving thread
#: stops taking packets from the session (the session's ring then fills, as without it).
DEFAULT_READY_LIMIT = 4096


@dataclass
class ImpairedSessionStatistics:
    """What an :class:`ImpairedSession` did, each way."""

    #: The impairment of the packets the application receives.
    inbound: ImpairmentStatistics
    #: The impairment of the packets the application sends.
    outbound: ImpairmentStatistics
    #: Released packets to send that found the session's ring full (dropped).
    ring_full: int = 0
    #: Released packets to send that the session refused (e.g. closed meanwhile, or not IP
    #: before Wintun 0.14); dropped.
    send_failed: int = 0


class ImpairedSession:
    """``session`` with impaired traffic: ``inbound`` for the packets the application
    receives, ``outbound`` for those it sends (None: unimpaired, changeable later through
    :attr:`inbound` and :attr:`outbound`). Each way's :class:`~wintun_cffi.impair.Impairer`
    is seeded from ``seed`` (``f"{seed}/inbound"``, ``f"{seed}/outbound"``).

    The wrapper owns the session: :meth:`close` closes it. A reader blocked in :meth:`read`
    wakes on :meth:`close` (:class:`~wintun_cffi.errors.SessionClosedError`); no thread of the
    wrapper outlives it. Packets still held by an impairment at close are discarded (counted
    in its ``discarded``).

    Sending never raises for what happens later: a released packet that finds the ring full
    or that the session refuses is dropped and counted (:attr:`statistics`), since a delayed
    packet is sent by another thread.
    """

    def __init__(
        self,
        session: Session,
        *,
        inbound: Impairment | None = None,
        outbound: Impairment | None = None,
        seed: Seed = 0,
        clock: Callable[[], float] = time.monotonic,
        ready_limit: int = DEFAULT_READY_LIMIT,
    ) -> None:
        if ready_limit < 1:
            raise ValueError(f"ready_limit must be at least 1, not {ready_limit}")
        self.session = session
        self._ready: collections.deque[bytes] = collections.deque()
        self._ready_limit = ready_limit
        self._state = threading.Condition(threading.Lock())
        self._closed = False
        self._failure: BaseException | None = None  # why the receiving thread ended
        self._ring_full = 0
        self._send_failed = 0
        self._scheduler = Scheduler(f"session-{id(self):x}", clock=clock)
        self._inbound = ImpairedPath(
            Impairer(inbound, seed=f"{seed}/inbound"), self._to_application, self._scheduler
        )
        self._outbound = ImpairedPath(
            Impairer(outbound, seed=f"{seed}/outbound"), self._to_session, self._scheduler
        )
        self._receiver = threading.Thread(
            target=self._receive_loop, name="wintun-impaired-receive", daemon=True
        )
        self._receiver.start()

    # -- state ------------------------------------------------------------------------------

    @property
    def adapter(self) -> Adapter:
        """The session's adapter."""
        return self.session.adapter

    @property
    def closed(self) -> bool:
        """True once :meth:`close` started, or the session was closed."""
        return self._closed or self.session.closed

    @property
    def inbound(self) -> Impairer:
        """The impairment of the packets the application receives (change its
        :attr:`~wintun_cffi.impair.Impairer.settings` at any time)."""
        return self._inbound.impairer

    @property
    def outbound(self) -> Impairer:
        """The impairment of the packets the application sends."""
        return self._outbound.impairer

    @property
    def statistics(self) -> ImpairedSessionStatistics:
        """A snapshot of the counters of both ways."""
        return ImpairedSessionStatistics(
            self.inbound.statistics,
            self.outbound.statistics,
            ring_full=self._ring_full,
            send_failed=self._send_failed,
        )

    # -- receiving --------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        session, state, put_many = self.session, self._state, self._inbound.put_many
        try:
            while True:
                with state:
                    while len(self._ready) >= self._ready_limit and not self._closed:
                        state.wait()
                    if self._closed:
                        return
                packets = session.receive_many(_RECEIVE_BATCH)
                try:
                    copies = [bytes(packet.data) for packet in packets]
                finally:
                    session.release_many(packets)
                put_many(copies)
        except BaseException as error:  # SessionClosedError at the end, or the session's trouble
            with state:
                self._failure = error
                state.notify_all()

    def _to_application(self, packet: bytes) -> None:
        with self._state:
            self._ready.append(packet)
            self._state.notify_all()

    def read(self, timeout: float | None = None) -> bytes:
        """The next packet, waiting up to ``timeout`` seconds (None: forever);
        :class:`TimeoutError` then. Raises
        :class:`~wintun_cffi.errors.SessionClosedError` once closed, and the session's error
        if it failed, once the packets released before are read."""
        [packet] = self._take(1, timeout, raise_timeout=True)
        return packet

    def read_many(self, max_packets: int, timeout: float | None = None) -> list[bytes]:
        """Up to ``max_packets`` packets; waits up to ``timeout`` for the first one (an empty
        list if none came)."""
        return self._take(validate.check_max_packets(max_packets), timeout, raise_timeout=False)

    def _take(self, limit: int, timeout: float | None, *, raise_timeout: bool) -> list[bytes]:
        validate.check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        state, ready = self._state, self._ready
        with state:
            while True:
                if self._closed:
                    raise SessionClosedError("the session is closed")
                if ready:
                    taken = [ready.popleft() for _ in range(min(limit, len(ready)))]
                    state.notify_all()  # room for the receiving thread
                    return taken
                if self._failure is not None:
                    if isinstance(self._failure, SessionClosedError):
                        raise SessionClosedError("the session is closed")
                    raise self._failure
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    if raise_timeout:
                        raise TimeoutError(f"no packet within {timeout} s")
                    return []
                state.wait(remaining)

    # -- sending ----------------------------------------------------------------------------

    def send(self, data: BytesLike) -> None:
        """Send a copy of ``data`` through the outbound impairment; a size the session would
        refuse raises here (:class:`ValueError`), and so does a closed session."""
        self.send_many((data,))

    def send_many(self, packets: Iterable[BytesLike]) -> int:
        """Send copies of ``packets`` through the outbound impairment, in order; returns how
        many were taken (all of them)."""
        copies = [bytes(packet) for packet in packets]
        for copy in copies:
            validate.check_packet_size(len(copy))
        if self.closed:
            raise SessionClosedError("the session is closed")
        self._outbound.put_many(copies)
        return len(copies)

    def _to_session(self, packet: bytes) -> None:
        try:
            sent = self.session.send(packet, on_full="drop")
        except Exception:  # closed meanwhile, or a packet this generation refuses
            self._send_failed += 1
            return
        if not sent:
            self._ring_full += 1

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the wrapper and the session; waits for the wrapper's threads. Idempotent."""
        with self._state:
            self._closed = True
            self._state.notify_all()
        try:
            self.session.close()  # wakes the receiving thread
        finally:
            if self._receiver is not threading.current_thread():
                self._receiver.join()
            self._scheduler.close()
            self.inbound.discard()
            self.outbound.discard()

    def __enter__(self) -> ImpairedSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<ImpairedSession {state} {self.session!r}>"


__all__ = ["DEFAULT_READY_LIMIT", "ImpairedSession", "ImpairedSessionStatistics"]
