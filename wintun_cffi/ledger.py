"""The packets of one direction of one session that are out of the ring, shared by both backends.

A packet leaves the ring when Wintun hands it over (``WintunReceivePacket``,
``WintunAllocateSendPacket``) and goes back when the application gives it back
(``WintunReleaseReceivePacket``, ``WintunSendPacket``). Between the two it is the
application's, and a packet nobody can give back any more stalls the ring: a received one keeps
Head where it is, an allocated one holds up every later send. The :class:`Ledger` is the one
record of those packets, and it keeps that record true whatever interrupts it.

**Interruptions.** Python raises ``KeyboardInterrupt`` (and whatever a signal handler raises)
between two steps of Python code: after a call returns, when a function starts, at the end of a
loop's pass. Each change of ownership is therefore made in one step that nothing can split:

* Taking from the ring and recording the packet happen in one call from Python's point of view:
  the backend appends each token it takes to a list the ledger owns (``raw``) in the same C
  call (``list.extend`` over ``map``), or, for the pure-Python emulator, in one line of plain
  stores. Turning raw tokens into packet objects is redone, never duplicated, if it is cut off.
* Giving back pops the ledger's entry and hands its token to the backend in one step: a
  ``map`` pipeline in C that pops and calls, so a packet is either still the application's or
  given back, never both and never neither.

**Abandoned packets** (dropped without being released or sent, or lost to an interruption
before the application saw them) are found by their reference count, oldest first, when the
session settles (:meth:`Ledger.settle`): received ones are released, allocated ones are sent
after the backend made them harmless. No finalizer runs on the hot path.

**Views.** Each packet's data is a :class:`memoryview` over ring memory, released when the
packet goes back, so nothing reads memory Wintun has taken back. Views *derived* from it
(slices, ``memoryview(data)``) survive that release; where the backend gives each packet a
buffer object of its own (the native backend), that object's reference count shows such views
and the packet is then refused (:class:`~wintun_cffi.errors.PacketInUseError`) rather than given
back under them (CPython only; elsewhere the check is skipped).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import chain, islice, repeat
from operator import attrgetter, is_not, itemgetter, methodcaller
from typing import Any, NamedTuple

from .errors import PacketInUseError, PacketReleasedError
from .lifetime import getrefcount as _getrefcount

#: Runs an iterator to its end, in C, keeping nothing.
consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
#: ``_call(f)`` is ``f()``, as a C callable for a ``map`` (operator.call from Python 3.11).
_call: Callable[[Callable[[], Any]], Any] = methodcaller("__call__")
_first = itemgetter(0)
_FIRST = (0,)
_tokens_of = attrgetter("_tokens")
_release = memoryview.release
_token_of = attrgetter("_token")
_view_of = attrgetter("_view")
_exporter_of = attrgetter("_exporter")
#: The direction flags of a capture: inbound, the system to
#: the application; outbound, the application to the system.
_INBOUND, _OUTBOUND = 1, 2
#: How many of the oldest entries one settling pass looks at.
_SETTLE_WINDOW = 16


class Direction(NamedTuple):
    """What a backend provides for one direction of one session.

    ``take`` and ``give`` must each change the ring and the ledger's record together: see the
    module documentation.
    """

    #: ``take(raw, amount)``: take packets from the ring, appending each token to ``raw`` in
    #: the step that takes it. Reading: ``amount`` is how many at most. Writing: ``amount`` is
    #: the sizes to allocate, in order, stopping at the first that does not fit. Raises the
    #: backend's error only if nothing was taken.
    take: Callable[[list[Any], Any], None]
    #: ``views(raw)``: ``(views, exporters)`` for the tokens of the last ``take`` (exporters
    #: are the per-packet buffer objects, or ``None`` where the backend has none).
    views: Callable[[list[Any]], tuple[list[memoryview], list[Any]]]
    #: ``give(token)``: hand one token back (release or send). Called inside a C pipeline: it
    #: must be a C callable, or one whose effect the backend completes in ``flush``.
    give: Callable[[Any], Any]
    #: ``flush()``: complete what ``give`` queued (the emulator), or ``None``.
    flush: Callable[[], None] | None
    #: ``harmless(view)``: make an allocated packet that is given up harmless before it is
    #: sent (writing only), or ``None``.
    harmless: Callable[[memoryview], None] | None
    #: The backend gives each packet a buffer object of its own (derived views are detected).
    exporters: bool
    #: ``span(raw)``: for a group, ``(exporter, slices)``: one buffer object over the ring
    #: memory from the first packet to the end of the last, and each packet's place in it;
    #: None where the packets wrap around the ring (or without buffer objects: no ``span``).
    span: Callable[[list[Any]], tuple[Any, list[slice]] | None] | None = None
    #: ``one(size)``: allocate one packet, a C callable returning its token or a false NULL
    #: (writing, native), for the single-packet path; None: ``take`` serves it.
    one: Callable[[int], Any] | None = None
    #: ``view(token, size)``: ``(view, exporter)`` of one packet (writing): the single-packet
    #: path skips the per-call machinery of ``views``.
    view: Callable[[Any, int], tuple[memoryview, Any]] | None = None
    #: ``write(token, data, size)``: copy ``data`` into an allocated packet (writing), for
    #: sending a copy without a packet object; None: not offered.
    write: Callable[[Any, Any, int], Any] | None = None
    #: ``copies(raw)``: a copy (``bytes``) of each packet of the tokens of the last ``take``
    #: (reading), for the copying path; None: copied through ``views``.
    copies: Callable[[list[Any]], list[bytes]] | None = None


class Held:
    """A packet held through the Backend protocol's single calls (no user object around it)."""

    __slots__ = ("_view", "_exporter", "_token")

    def __init__(self, owner: Any, view: memoryview, exporter: Any, token: Any) -> None:
        self._view: memoryview | None = view
        self._exporter = exporter
        self._token = token


class Group:
    """Packets taken together and given back as one (a batch): parallel lists, no object per
    packet. The ledger records the group once, under its first token.

    Where the backend can, the packets' views are slices of one view (``_base``) of one buffer
    object spanning them all: derived views of any of them then show on that one object.
    """

    __slots__ = ("_tokens", "_views", "_exporters", "_base", "_slices")

    def __init__(self) -> None:
        self._tokens: list[Any] = []
        #: None once given back.
        self._views: list[memoryview] | None = []
        #: One per packet, or the spanning one only (then ``_slices`` places the packets).
        self._exporters: list[Any] = []
        self._base: memoryview | None = None
        self._slices: list[slice] | None = None

    def _rebuild_views(self) -> None:
        """Fresh views of the packets (their old ones were released)."""
        if self._slices is None:
            self._views = [memoryview(exporter) for exporter in self._exporters]
        else:
            base = self._base = memoryview(self._exporters[0])
            self._views = list(map(base.__getitem__, self._slices))


#: ``make(owner, view, exporter, token)``: the object a ledger keeps for each packet (the
#: owner is passed along, not kept by the ledger: a session's own records would keep it alive).
Maker = Callable[[Any, memoryview, Any, Any], Any]


class Ledger:
    """The packets of one direction of one session that are out of the ring.

    ``entries`` maps each token to its packet object (anything with ``_view``, ``_exporter``
    and ``_token`` slots). Thread-safe: taking is serialised by a lock; giving back needs none.
    """

    __slots__ = (
        "direction",
        "entries",
        "raw",
        "_lock",
        "_queue",
        "_pipe",
        "_flush",
        "_get",
        "_enqueue",
        "_step",
        "_sizes",
        "_take_one",
        "_payloads",
        "_lengths",
        "_send_one",
        "capture",
        "packets",
        "octets",
        "passes",
        "settled",
        "given_up",
        "_reading",
    )

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self._reading = direction.harmless is None
        #: Where each packet goes as it passes (a capture), or None:
        #: received ones as they are taken, sent ones as they are given to the driver.
        self.capture: Any = None
        #: Packets and bytes through this direction: taken from the ring (reading), given to
        #: the driver (writing, given-up allocations included).
        self.packets = 0
        self.octets = 0
        #: Packets per pass over the ring (reading): how many each take found.
        self.passes: Counter[int] = Counter()
        #: Packets the ledger gave back for the application: received ones nobody held any
        #: more (dropped, or lost to an interruption), allocations made harmless.
        self.settled = 0
        #: Allocations given up (abandoned, dropped, cut short) and sent made harmless.
        self.given_up = 0
        #: token -> packet object, oldest first.
        self.entries: dict[Any, Any] = {}
        #: Tokens taken from the ring and not yet made packets of (only after an interruption
        #: does it stay non-empty between calls).
        self.raw: list[Any] = []
        self._lock = threading.Lock()
        self._flush = direction.flush
        # Giving back one packet: its token is queued, then this pipeline pops the queue and
        # the entry and gives the token back, all in C. A token left queued by an
        # interruption is given back by the next pass.
        self._queue: deque[Any] = deque()
        self._pipe = map(
            direction.give, map(_token_of, map(self.entries.pop, iter(self._queue.popleft, None)))
        )
        # Bound once: the hot path looks nothing up.
        self._get: Callable[[Any], Any] = self.entries.get
        self._enqueue = self._queue.append
        self._step = partial(next, self._pipe)
        # Allocating one packet: its size is queued, then this pipeline allocates it and puts
        # the token (or NULL) in ``raw``, in C.
        # Set whole (``_sizes[:] = (size,)``), never appended to: an allocation an interrupt
        # cut short before its C step leaves no size for the next one to allocate by mistake
        # (it would then write past the record: a corrupt ring).
        self._sizes: list[int] = []
        self._take_one = (
            None
            if direction.one is None
            else partial(
                next, map(self.raw.append, map(direction.one, iter(self._sizes.pop, None)))
            )
        )
        # Sending a copy, where allocating and writing are C calls: one ``next`` allocates
        # (a NULL is skipped: the sizes run out, IndexError), records the token in ``raw``,
        # copies the payload in and sends it. No Python runs in between: nothing can cut it.
        self._payloads: list[Any] = []
        self._lengths: list[int] = []
        self._send_one = (
            None
            if direction.one is None or direction.write is None or direction.flush is not None
            else partial(
                next,
                zip(
                    map(
                        self.raw.append,
                        filter(None, map(direction.one, iter(self._sizes.pop, None))),
                    ),
                    map(
                        direction.write,
                        map(self.raw.__getitem__, repeat(0)),
                        iter(self._payloads.pop, None),
                        iter(self._lengths.pop, None),
                    ),
                    map(direction.give, map(self.raw.pop, repeat(0))),
                    strict=False,
                ),
            )
        )

    # -- taking ------------------------------------------------------------------------------

    def fill(
        self, amount: Any, out: list[Any] | deque[Any], make: Maker, owner: Any = None
    ) -> None:
        """Take packets from the ring (``amount`` as in :attr:`Direction.take`), record them
        and append their objects (made by ``make`` for ``owner``) to ``out``.

        Packets an interrupted fill had taken but not handed out come first when reading;
        when writing, such allocations are made harmless and sent first (nobody can fill
        them). Raises the backend's error (e.g. NoMoreItemsError, RingFullError) only if
        nothing was appended.
        """
        writing = self.direction.harmless is not None
        with self._lock:
            raw = self.raw
            leftovers = bool(raw)
            if leftovers:
                if writing:
                    self._adopt([], Held)  # recorded, held by nobody: settled below
                else:
                    self._adopt(out, make, owner)
                    if out:
                        return
            if not (writing and leftovers):
                self.direction.take(raw, amount)
                self._record(out, make, owner)
                return
        self.settle()  # the allocations nobody can fill go out, harmless, before this one
        with self._lock:
            self.direction.take(self.raw, amount)
            self._record(out, make, owner)

    def allocate(self, size: int, make: Maker, owner: Any = None) -> Any:
        """One allocation of ``size`` bytes (checked by the caller), recorded and made a
        packet object by ``make``: :meth:`fill` for one, without its per-call machinery where
        the backend allocates in one C call (``Direction.one``)."""
        direction = self.direction
        view = direction.view
        if view is not None and not self.raw:
            with self._lock:
                raw = self.raw
                if not raw:
                    take_one = self._take_one
                    if take_one is None:
                        direction.take(raw, (size,))  # raises if it does not fit
                    else:
                        self._sizes[:] = (size,)
                        take_one()  # raw = [token], or [NULL] if the ring is full
                    token = raw[0]
                    if token:
                        data, exporter = view(token, size)
                        packet = make(owner, data, exporter, token)
                        self.entries[token] = packet
                        raw.clear()
                        return packet
                    raw.clear()  # full (or gone): the general path raises the right error
        out: list[Any] = []
        self.fill((size,), out, make, owner)
        return out[0]

    def send_copy(self, data: Any, size: int) -> None:
        """Allocate ``size`` bytes (checked by the caller), copy ``data`` in and send it, with
        no packet object (:attr:`Direction.write`). Raises the backend's error (the ring is
        full) and then changes nothing.

        Cut short, the allocation stays in ``raw``: the next :meth:`settle` makes it harmless
        and sends it, so the ring never waits for it.
        """
        send_one = self._send_one
        if send_one is not None:
            with self._lock:
                if not self.raw:
                    # Set whole, as _sizes: what a cut-short call left is overwritten.
                    self._sizes[:] = self._lengths[:] = (size,)
                    self._payloads[:] = (data,)
                    try:
                        send_one()
                    except IndexError:  # NULL: the ring is full (the general way raises)
                        self._payloads.clear()
                    else:  # _sent(), inline: the hot path
                        self.packets += 1
                        self.octets += size
                        if self.capture is not None:
                            self.capture.add_one(_OUTBOUND, data)
                        return
        write = self.direction.write
        assert write is not None, "a backend that offers write"
        with self._lock:
            raw = self.raw
            if raw:  # another call was cut short: its allocations are settled later
                self._adopt([], Held)
            take_one = self._take_one
            if take_one is None:
                self.direction.take(raw, (size,))
            else:
                self._sizes[:] = (size,)
                take_one()  # raw = [token], or [NULL] if the ring is full
                if not raw[0]:
                    raw.clear()
                    self.direction.take(raw, (size,))  # raises the backend's error
            write(raw[0], data, size)
            # Out of ``raw`` and given back in one C step.
            consume(map(self.direction.give, map(raw.pop, _FIRST)))
            self._sent(size, data)
        if self._flush is not None:
            self._flush()

    def take_copies(self, amount: int, out: deque[bytes] | list[bytes]) -> None:
        """Take up to ``amount`` packets from the ring (reading), copy each and give it back
        at once: the copies are appended to ``out``, in ring order, and no packet stays out.

        Packets an interrupted fill left taken come first. Cut short before its last step,
        nothing was handed over and the tokens stay taken (the next call copies them again);
        the last step hands the copies over, gives the packets back and empties ``raw`` in
        one C step. Raises the backend's error (NoMoreItemsError: the ring is empty) only if
        nothing was appended.
        """
        direction = self.direction
        with self._lock:
            raw = self.raw
            if not raw:
                direction.take(raw, amount)
            copy = direction.copies
            copies = list(map(bytes, direction.views(raw)[0])) if copy is None else copy(raw)
            consume(chain(map(out.append, copies), map(direction.give, raw), _clearing(raw)))
            self._received(copies)
        if self._flush is not None:
            self._flush()

    def fill_group(self, amount: Any, group: Group) -> None:
        """Like :meth:`fill`, but the packets become one :class:`Group` (no object each).

        Needs no packets left by an interrupted fill (``raw`` empty): :meth:`fill` first."""
        direction = self.direction
        with self._lock:
            raw = self.raw
            if raw:
                raise RuntimeError("packets of an interrupted fill are waiting: fill() first")
            direction.take(raw, amount)
            span = direction.span(raw) if direction.span is not None else None
            if span is None:
                group._views, group._exporters = direction.views(raw)
            else:
                group._exporters, group._slices = [span[0]], span[1]
                group._rebuild_views()
            group._tokens = raw.copy()
            # One entry (given back as one), recorded as the tokens leave ``raw``: one C step.
            consume(chain(map(self.entries.__setitem__, raw[:1], (group,)), _clearing(raw)))
            if self._reading:
                self._received(group._views or ())

    def _received(self, packets: Sequence[Any]) -> None:
        """Count one pass of received packets, and capture them (after the step that handed
        them over: cut short before, they are counted and captured when handed over again)."""
        count = len(packets)
        self.packets += count
        self.octets += sum(map(len, packets))
        self.passes[count] += 1
        if self.capture is not None:
            self.capture.add(_INBOUND, packets)

    def _sent(self, size: int, data: Any, given_up: bool = False) -> None:
        """Count (and capture) one packet given to the driver: with the application's data,
        or made harmless (``given_up``)."""
        capture = self.capture
        if given_up:
            self.given_up += 1
            if capture is not None:
                capture.add_given_up(data)
            return
        self.packets += 1
        self.octets += size
        if capture is not None:
            capture.add_one(_OUTBOUND, data)

    def _adopt(self, out: list[Any] | deque[Any], make: Maker, owner: Any = None) -> None:
        """Make packet objects of the raw tokens an interrupted fill left, record them, and
        move them to ``out``.

        A token is in ``raw`` or recorded, never both (:meth:`_record` moves it in one step),
        with one exception: a single allocation (:meth:`allocate`, :meth:`send_copy`) records
        its token a step before it leaves ``raw``, or leaves a NULL there (the ring was
        full). Cut short there, nobody was handed the packet and nobody can have sent it
        (settling adopts ``raw`` first): the record stands, and the token (or NULL) only has
        to leave ``raw``.
        """
        raw = self.raw
        raw[:] = [token for token in raw if token and token not in self.entries]
        self._record(out, make, owner)

    def _record(self, out: list[Any] | deque[Any], make: Maker, owner: Any = None) -> None:
        """Make packet objects of the raw tokens (none recorded yet), record them, and move
        them to ``out``.

        Cut short before its last line, nothing changed (the objects are made again next
        time); the last line records them, hands them over and empties ``raw`` in one C
        step, so a packet is never handed out twice, nor recorded without leaving ``raw``.
        """
        raw = self.raw
        views, exporters = self.direction.views(raw)
        packets = list(map(make, repeat(owner), views, exporters, raw))
        consume(
            chain(
                map(self.entries.__setitem__, raw, packets),
                map(out.append, packets),
                _clearing(raw),
            )
        )
        if self._reading:
            self._received(views)

    def regroup(self, packets: list[Any], group: Group) -> None:
        """Make recorded packets that nobody was handed yet (taken by a fill, still queued)
        one :class:`Group`: recorded under its first token, the packets' records gone."""
        tokens = list(map(_token_of, packets))
        group._tokens = tokens
        group._views = list(map(_view_of, packets))
        group._exporters = list(map(_exporter_of, packets))
        # One C step: the group takes the first packet's place (the oldest stays first).
        consume(
            chain(
                map(self.entries.__setitem__, tokens[:1], (group,)),
                map(self.entries.pop, tokens[1:]),
            )
        )

    # -- giving back -----------------------------------------------------------------------

    def give_back(self, packet: Any, given_up: bool = False) -> None:
        """Give one packet back (release or send): its view, then its token, in one step.

        Raises PacketReleasedError if it was already given back, and PacketInUseError (nothing
        changed, the packet keeps a usable view) while views derived from its data exist.
        """
        token = packet._token
        if self._get(token) is not packet:
            raise PacketReleasedError("the packet was already given back")
        view = packet._view
        exporter = packet._exporter
        # A send: its size (and bytes, to capture) while the view is there.
        size = -1 if self._reading or view is None else len(view)
        data = bytes(view) if size >= 0 and self.capture is not None else None
        # release_view(), its common case inline (the hot path): nothing derived, no export.
        if view is not None and exporter is not None and _getrefcount is not None:
            try:
                view.release()
            except BufferError:
                view = exporter = None
                raise _in_use(token, None) from None
            packet._view = view = None
            # References: the packet's slot, this local and the argument.
            if _getrefcount(exporter) > 3:
                packet._view = memoryview(exporter)
                exporter = None  # a kept traceback must not count as a derived view
                raise _in_use(token, packet._view)
        elif view is not None or exporter is not None:
            exporter = None
            release_view(packet)
        self._enqueue(token)
        try:
            self._step()
        except KeyError:  # another thread gave it back first
            raise PacketReleasedError("the packet was already given back") from None
        if size >= 0:
            self._sent(size, data, given_up)
        if self._queue:
            self._drain()
        if self._flush is not None:
            self._flush()

    def give_up(self, packet: Any) -> None:
        """Make an allocated packet harmless and send it (writing only)."""
        if self.entries.get(packet._token) is not packet:
            raise PacketReleasedError("the send buffer was already sent")
        self._make_harmless([packet])
        self.give_back(packet, given_up=True)

    def give_back_many(self, packets: Sequence[Any]) -> None:
        """Give several packets back, all or none: every packet is checked first, and
        PacketInUseError (every packet keeps a usable view) while views derived from any of
        them exist. Each step runs over the whole batch in C, as for a group."""
        if len(set(map(id, packets))) != len(packets):
            raise ValueError("the same packet appears more than once")
        tokens = list(map(_token_of, packets))
        if any(map(is_not, map(self.entries.get, tokens), packets)):
            raise PacketReleasedError("a packet of the batch was already given back")
        views = list(filter(None, map(_view_of, packets)))
        # Slots first, as for a group: cut short below, the views are rebuilt, never reused.
        consume(map(setattr, packets, repeat("_view"), repeat(None)))
        try:
            consume(map(_release, views))
        except BufferError:
            self._restore_views(packets, tokens)
            raise _in_use(tokens[0], None) from None
        del views
        # References to each exporter: the packet's slot, this list and the argument.
        exporters = list(map(_exporter_of, packets))
        if (
            _getrefcount is not None
            and exporters
            and exporters[0] is not None
            and (max(map(_getrefcount, exporters)) > 3)
        ):
            del exporters
            self._restore_views(packets, tokens)
            raise _in_use(tokens[0], None)
        del exporters
        self._give_tokens(tokens)
        if self._flush is not None:
            self._flush()

    def _restore_views(self, packets: Sequence[Any], tokens: list[Any]) -> None:
        """Fresh views for packets whose give-back was refused (their views were released).
        A packet with a buffer object of its own keeps it: derived views are counted on it."""
        fresh, _ = self.direction.views(tokens)
        for packet, view in zip(packets, fresh, strict=True):
            exporter = packet._exporter
            packet._view = view if exporter is None else memoryview(exporter)

    def give_back_group(self, group: Group) -> None:
        """Give a group's packets back, all at once: PacketInUseError (fresh views in place,
        nothing given back) while views derived from any of them exist."""
        tokens = group._tokens
        if not tokens:  # an empty batch (a receive that timed out): nothing to give back
            if group._views is None:
                raise PacketReleasedError("the batch was already given back")
            group._views = None
            return
        if self._get(tokens[0]) is not group:
            raise PacketReleasedError("the batch was already given back")
        views = None if self._reading else group._views  # sent: counted once they went
        octets = 0 if views is None else sum(map(len, views))
        copies = None if views is None or self.capture is None else list(map(bytes, views))
        views = None
        release_group_views(group, self.direction.views)
        self._give_group(tokens[0])
        if not self._reading:
            self.packets += len(tokens)
            self.octets += octets
            if copies is not None:
                self.capture.add(_OUTBOUND, copies)
        if self._flush is not None:
            self._flush()

    def _give_group(self, key: Any) -> None:
        """Pop a group's entry and give all its tokens back, in one C step."""
        consume(
            map(
                self.direction.give,
                chain.from_iterable(map(_tokens_of, map(self.entries.pop, (key,)))),
            )
        )

    def _make_harmless(self, packets: Iterable[Any]) -> list[bytes]:
        """Make allocations harmless; returns what each then holds where a capture wants it
        (else nothing)."""
        harmless = self.direction.harmless
        found: list[bytes] = []
        if harmless is None:
            return found
        for packet in packets:
            view = _writable_view(packet)
            if view is not None:
                harmless(view)
                if self.capture is not None:
                    found.append(bytes(view))
            elif self.capture is not None:
                found.append(b"")
        return found

    def _make_group_harmless(self, group: Group) -> list[bytes]:
        harmless = self.direction.harmless
        if harmless is None:
            return []
        if group._views is None and group._tokens:
            # Released by a give-back an interruption cut short.
            _restore_group_views(group, self.direction.views)
        for view in group._views or ():
            harmless(view)
        if self.capture is None:
            return []
        return list(map(bytes, group._views or ()))

    def _give_tokens(self, tokens: list[Any]) -> None:
        """Pop each token's entry and give the token back, each pair in one C step."""
        consume(
            map(
                self.direction.give,
                map(_first, zip(tokens, map(self.entries.pop, tokens), strict=False)),
            )
        )

    def _drain(self) -> None:
        """Give back the tokens that interrupted calls left queued."""
        try:
            while self._queue:
                next(self._pipe)
        except (IndexError, KeyError):  # another thread took the last one first
            pass

    # -- settling ----------------------------------------------------------------------------

    def settle(self) -> int:
        """Give back what nobody can give back any more; returns how many packets went back.

        That is: tokens interrupted calls left queued; for writing, allocations an interrupted
        call took but never handed out; and the oldest packets that no object outside the
        ledger refers to (received ones are released, allocated ones made harmless and sent).
        Packets whose data still has derived views wait for a later pass.
        """
        if self._queue:
            self._drain()
        if self.raw and self.direction.harmless is not None:
            with self._lock:
                if self.raw:
                    self._adopt([], Held)
        given = 0
        while True:
            abandoned = self._abandoned()
            packets = [held for held in abandoned if not isinstance(held, Group)]
            # What each allocation made harmless holds, where a capture wants it.
            contents: dict[int, list[bytes]] = {
                id(packet): [data]
                for packet, data in zip(packets, self._make_harmless(packets), strict=False)
            }
            for group in abandoned:
                if isinstance(group, Group):
                    contents[id(group)] = self._make_group_harmless(group)
            ready = [packet for packet in packets if _settleable(packet)]
            groups = [
                held
                for held in abandoned
                if isinstance(held, Group) and _group_settleable(held, self.direction.views)
            ]
            if not ready and not groups:
                break
            self._give_tokens([packet._token for packet in ready])
            for group in groups:
                self._give_group(group._tokens[0])
            count = len(ready) + sum(len(group._tokens) for group in groups)
            given += count
            if self._reading:
                self.settled += count
            else:
                self.given_up += count
                if self.capture is not None:
                    for held in chain(ready, groups):
                        for data in contents.get(id(held), ()):
                            self.capture.add_given_up(data)
        if self._flush is not None:
            self._flush()
        return given

    def settle_if_stuck(self) -> None:
        """:meth:`settle` if nothing outside the ledger refers to the oldest packet out (one
        look: such a packet keeps the ring's space from coming back)."""
        for held in self.entries.values():
            # References: the entry, this loop and the argument.
            if _getrefcount is not None and _getrefcount(held) <= 3:
                held = None
                self.settle()
            return

    def _abandoned(self) -> list[Any]:
        """The oldest packets (and groups) that nothing outside the ledger refers to, up to
        the first one that something does (only the oldest hold the ring up)."""
        if _getrefcount is None:
            return []
        snapshot = list(islice(self.entries.values(), _SETTLE_WINDOW))
        found: list[Any] = []
        for held in snapshot:
            # References: the entry, the snapshot list, this loop and the argument.
            if _getrefcount(held) > 4:
                break
            found.append(held)
        return found

    # -- the end -----------------------------------------------------------------------------

    def end(self) -> list[Any]:
        """The session is ending: forget every packet and release its view. Returns what
        views derived from the packets' data still hold (the buffer objects, or the views
        that could not be released): while anything refers to those, the memory must outlive
        the session. Calling it again returns nothing more."""
        self._queue.clear()
        self.raw.clear()
        kept = _forget(self.entries)
        # References: the list and the argument; more are derived views.
        return [] if _getrefcount is None else [held for held in kept if _getrefcount(held) > 3]


def _forget(entries: dict[Any, Any]) -> list[Any]:
    """Empty ``entries``, releasing each packet's view and clearing its slots; returns every
    buffer object, and every view that could not be released (exported) where there is
    none (a buffer object counts its views' references itself)."""
    found: list[Any] = []
    while entries:
        _, held = entries.popitem()
        if isinstance(held, Group):
            views, held._views = held._views, None
            base, held._base = held._base, None
            exporters = list(filter(None, held._exporters))
            held._exporters = []
            found += exporters
            for view in chain(views or (), (base,) if base is not None else ()):
                try:
                    view.release()
                except BufferError:
                    if not exporters:
                        found.append(view)
            continue
        view, held._view = held._view, None
        exporter, held._exporter = held._exporter, None
        if exporter is not None:
            found.append(exporter)
        if view is not None:
            try:
                view.release()
            except BufferError:
                if exporter is None:
                    found.append(view)
    return found


def release_view(packet: Any) -> None:
    """Release the packet's view (its slot becomes None). Raises PacketInUseError, with a
    fresh view in the slot, while views derived from it still exist or it is exported."""
    view = packet._view
    if view is not None:
        try:
            view.release()
        except BufferError:
            view = None  # a kept traceback must not hold it
            raise _in_use(packet._token, None) from None
        packet._view = view = None
    exporter = packet._exporter
    # References: the packet's slot, this local and the argument.
    in_use = exporter is not None and _getrefcount is not None and _getrefcount(exporter) > 3
    exporter = None  # a kept traceback must not count as a derived view
    if in_use:
        packet._view = memoryview(packet._exporter)
        raise _in_use(packet._token, packet._view)


def release_group_views(group: Group, fresh: Callable[[list[Any]], Any]) -> None:
    """Release a group's views, all or none: PacketInUseError (every packet with a fresh view
    again) while views derived from any of them exist or one is exported. ``fresh(tokens)``
    gives fresh views where the packets have no buffer objects (:attr:`Direction.views`)."""
    views, exporters = group._views, group._exporters
    if views is not None:
        group._views = None  # first: cut short below, the views are rebuilt, never reused
        try:
            consume(map(_release, views))
            if group._base is not None:
                group._base.release()
        except BufferError:
            views = None  # a kept traceback must not hold them
            _restore_group_views(group, fresh)
            raise _in_use(group._tokens[0], None) from None
    # References to each exporter: the group's list and the argument.
    if (
        _getrefcount is not None
        and exporters
        and exporters[0] is not None
        and (max(map(_getrefcount, exporters)) > 2)
    ):
        group._rebuild_views()
        raise _in_use(group._tokens[0], None)


def _restore_group_views(group: Group, fresh: Callable[[list[Any]], Any]) -> None:
    """Fresh views for a group whose give-back was refused (some of its views were
    released): over its buffer objects where it has them, else from ``fresh(tokens)``."""
    if group._exporters and group._exporters[0] is not None:
        group._rebuild_views()
    else:
        group._views = list(fresh(group._tokens)[0])


def _group_settleable(group: Group, fresh: Callable[[list[Any]], Any]) -> bool:
    try:
        release_group_views(group, fresh)
    except PacketInUseError:
        return False
    return True


def _settleable(packet: Any) -> bool:
    """Release an abandoned packet's view; False while derived views still reach its memory."""
    try:
        release_view(packet)
    except PacketInUseError:
        return False
    return True


def _writable_view(packet: Any) -> memoryview | None:
    """The packet's view, or a fresh one where its own was released (None if there is no
    way to one: then its give-back was already under way, and what it holds goes out)."""
    view: memoryview | None = packet._view
    if view is not None:
        try:
            _ = view.obj  # raises once released
            return view
        except ValueError:
            pass
    return _fresh_view(packet)


def _fresh_view(packet: Any) -> memoryview | None:
    exporter = packet._exporter
    return None if exporter is None else memoryview(exporter)


def _in_use(token: Any, view: memoryview | None) -> PacketInUseError:
    return PacketInUseError(
        "views derived from the packet's data (slices, memoryview(), arrays) still exist and "
        "would outlive its memory; drop them, then try again",
        token,
        view,
    )


# -- the Backend protocol's single calls, over a ledger -----------------------------------------


def take_one(ledger: Ledger, amount: Any) -> tuple[memoryview, Any]:
    """One packet through the protocol (``WintunReceivePacket`` with ``amount`` 1,
    ``WintunAllocateSendPacket`` with ``amount`` ``(size,)``): ``(view, token)``."""
    out: list[Held] = []
    ledger.fill(amount, out, Held)
    held = out[0]
    assert held._view is not None
    return held._view, held._token


def give_back_token(ledger: Ledger, token: Any, refusal: str) -> None:
    """Give back the packet of ``token`` through the protocol; ValueError(refusal) if the
    ledger does not hold it."""
    try:
        held = ledger.entries[token]
    except (KeyError, TypeError):
        raise ValueError(refusal) from None
    ledger.give_back(held)


def _clearing(items: list[Any]) -> Iterator[Any]:
    """An iterator whose one step empties ``items``: the last step of a C pipeline."""
    return map(_call, (items.clear,))


__all__ = [
    "Direction",
    "Group",
    "Held",
    "Ledger",
    "Maker",
    "consume",
    "give_back_token",
    "release_group_views",
    "release_view",
    "take_one",
]
