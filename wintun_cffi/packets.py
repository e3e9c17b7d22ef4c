"""The packets a session hands to the application: received packets and send buffers.

Both are views of ring memory (no copy) that go back to Wintun exactly once: a
:class:`ReceivedPacket` is released, a :class:`SendBuffer` sent (or given up). After that, or
once their session closed, they refuse any use: their memory belongs to Wintun again.

A packet dropped without being given back is found by its session (it settles before it waits,
and before it allocates or sends): a received one is released, a send buffer is made harmless
and sent, so the ring never waits for it. What is still out when the session closes ends with
it.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import attrgetter
from typing import TYPE_CHECKING, Any, overload

from .errors import NotIPPacketError, PacketInUseError, PacketReleasedError
from .ledger import Group

if TYPE_CHECKING:
    from .session import Session

_view_of = attrgetter("_view")


class _RingPacket:
    """A packet's view of ring memory, owned by the application until it gives it back."""

    __slots__ = ("_view", "_exporter", "_token", "_session")
    #: What the packet is, and what giving it back is called, for error messages.
    _what = "packet"
    _given_back = "released"

    def __init__(self, session: Session, view: memoryview, exporter: Any, token: Any) -> None:
        self._session = session
        self._view: memoryview | None = view
        self._exporter = exporter
        self._token = token

    @property
    def data(self) -> memoryview:
        """The packet's bytes, writable in place; refused once given back."""
        view = self._view
        if view is None:
            raise PacketReleasedError(self._gone())
        return view

    def _gone(self) -> str:
        if self._session.closed:
            return f"the {self._what}'s session was closed; its memory belongs to Wintun again"
        return f"the {self._what} was {self._given_back}; its memory belongs to Wintun again"

    def _is_given_back(self) -> bool:
        return self._view is None or self._session.closed

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        view = self._view
        state = self._given_back if view is None else f"{view.nbytes} bytes"
        return f"<{type(self).__name__} {state}>"


class ReceivedPacket(_RingPacket):
    """A packet the driver delivered: a zero-copy view of ring memory until released.

    Use it as a context manager, or call :meth:`release`, to give its space back to the ring.
    """

    __slots__ = ()

    @property
    def released(self) -> bool:
        """True once released (or its session closed)."""
        return self._is_given_back()

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def release(self) -> None:
        """Give the packet's ring space back. Releasing twice raises PacketReleasedError;
        while views derived from :attr:`data` exist it raises PacketInUseError (nothing
        changes, the packet stays usable; derived views are seen by the native backend, and
        exports such as ``pickle.PickleBuffer`` by both)."""
        session = self._session
        try:  # the session's guard (wintun_cffi.lifetime), written out: the hot path
            live = session._live
            if live is None:
                raise PacketReleasedError(self._gone())
            session._reads.give_back(self)
        finally:
            live = None
            if session._closing is not None:
                session._finish(False)

    def __enter__(self) -> ReceivedPacket:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self._view is None or self._session._live is None:  # released, or session closed
            return
        try:
            self.release()
        except PacketInUseError:
            if exc_type is None:
                raise
            # An exception is on its way out: never mask it. The session releases the
            # packet once the views derived from it are gone.


class CopiedPacket(ReceivedPacket):
    """A received packet that owns a copy of its bytes: the ring already has its space back.

    :meth:`Session.read <wintun_cffi.session.Session.read>` copies packets ahead; a zero-copy
    receive that comes while such copies wait hands them out first, in ring order, as these.
    Use it like any :class:`ReceivedPacket`; releasing it only ends its use.
    """

    __slots__ = ()

    def __init__(self, session: Session, data: bytes) -> None:
        super().__init__(session, memoryview(data), None, None)

    def release(self) -> None:
        """End the packet's use (its ring space went back when it was copied). Releasing
        twice raises PacketReleasedError."""
        view = self._view
        if view is None:
            raise PacketReleasedError(self._gone())
        self._view = None
        try:
            view.release()
        except BufferError:  # exported: the export keeps the copy alive, nothing to refuse
            pass


class SendBuffer(_RingPacket):
    """Ring space allocated for one outgoing packet: fill :attr:`data`, then :meth:`send`.

    As a context manager it yields the writable view and sends on normal exit. A buffer left
    by an exception or by :meth:`abandon`, or dropped (found when the session next settles),
    is made harmless and sent, so later packets are not held up (packets go out in
    allocation order). What "harmless" means depends on the driver's generation: see the
    protocol page.
    """

    __slots__ = ()
    _what = "send buffer"
    _given_back = "sent"

    @property
    def sent(self) -> bool:
        """True once sent, abandoned, or its session closed."""
        return self._is_given_back()

    def send(self) -> None:
        """Hand the packet to the driver (it goes out in allocation order).

        Before Wintun 0.14, a buffer that does not hold an IP packet is refused with
        :class:`~wintun_cffi.errors.NotIPPacketError` and stays unsent.
        """
        session = self._session
        try:  # the session's guard (wintun_cffi.lifetime), written out: the hot path
            live = session._live
            if live is None:
                raise PacketReleasedError(self._gone())
            check = session._rules.check_packet
            if check is not None:
                check(self.data)
            session._writes.give_back(self)
        finally:
            live = None
            if session._closing is not None:
                session._finish(False)

    def abandon(self) -> None:
        """Give up the packet without sending its contents (it is made harmless and sent)."""
        session = self._session
        try:
            live = session._live
            if live is None:
                raise PacketReleasedError(self._gone())
            session._writes.give_up(self)
        finally:
            live = None
            if session._closing is not None:
                session._finish(False)

    def __enter__(self) -> memoryview:
        view = self._view  # the data property, inline: the hot path
        if view is None:
            raise PacketReleasedError(self._gone())
        return view

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self._view is None or self._session._live is None:  # sent, or its session closed
            return
        if exc_type is None:
            try:
                self.send()
            except NotIPPacketError:
                self.abandon()  # never leave the slot holding up later packets
                raise
            return
        try:
            self.abandon()
        except PacketInUseError:
            pass  # never mask the exception; the session sends it once the views are gone


class PacketBatch(Group):
    """Packets received together and released as one (:meth:`Session.receive_batch
    <wintun_cffi.session.Session.receive_batch>`): a sequence of their data, zero-copy
    :class:`memoryview` objects of ring memory, in ring order.

    The cheapest way through a session: no packet object per packet, only its view. Use it as a context manager,
    or call :meth:`release`; afterwards (or once the session closed) the views are released.
    """

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    def _hold_copies(self, packets: list[ReceivedPacket]) -> None:
        """Make this batch hold copies (:class:`CopiedPacket`) instead of ring packets."""
        self._views = list(map(_view_of, packets))
        self._exporters = [None] * len(packets)
        self._tokens = [None] * len(packets)  # no ring space: release only ends their use

    def _live_views(self) -> list[memoryview]:
        views = self._views
        if views is None or self._session.closed:
            state = "session was closed" if self._session.closed else "batch was released"
            raise PacketReleasedError(f"the {state}; its memory belongs to Wintun again")
        return views

    def __len__(self) -> int:
        return len(self._tokens)

    @overload
    def __getitem__(self, index: int) -> memoryview: ...

    @overload
    def __getitem__(self, index: slice) -> list[memoryview]: ...

    def __getitem__(self, index: int | slice) -> memoryview | list[memoryview]:
        return self._live_views()[index]

    def __iter__(self) -> Iterator[memoryview]:
        return iter(self._live_views())

    @property
    def released(self) -> bool:
        """True once released (or its session closed)."""
        return self._views is None or self._session.closed

    def release(self) -> None:
        """Give every packet's ring space back at once. Releasing twice raises
        PacketReleasedError; while views derived from one of the packets exist (native
        backend; exports on both) it raises
        PacketInUseError (nothing changes, the batch stays usable)."""
        session = self._session
        try:  # the session's guard (wintun_cffi.lifetime), written out: the hot path
            live = session._live
            if live is None:
                raise PacketReleasedError("the batch's session was closed")
            tokens = self._tokens
            if tokens and tokens[0] is None:  # copies: their ring space went back before
                views = self._views
                if views is None:
                    raise PacketReleasedError("the batch was already released")
                self._views = None
            else:
                session._reads.give_back_group(self)
        finally:
            live = None
            if session._closing is not None:
                session._finish(False)

    def __enter__(self) -> PacketBatch:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if self._views is None or self._session._live is None:  # released, or session closed
            return
        try:
            self.release()
        except PacketInUseError:
            if exc_type is None:
                raise

    def __repr__(self) -> str:
        state = "released" if self._views is None else f"{len(self._tokens)} packets"
        return f"<PacketBatch {state}>"


__all__ = ["CopiedPacket", "PacketBatch", "ReceivedPacket", "SendBuffer"]
