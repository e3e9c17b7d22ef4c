"""A model-based test of the packet path: a Hypothesis state machine mixes every way of
receiving (``receive_packet``, ``receive``, ``receive_many``, ``receive_batch``, iteration,
``receive_async``) and of sending (``send`` with each ``on_full``, ``send_many``,
``allocate_send_packet`` + ``send``), drops packets without releasing them, keeps their views
past release, interrupts calls at random points (``KeyboardInterrupt`` from a trace function,
:class:`tests.reliability.interrupts.Interrupter`) and closes the session; on the emulator and
on the native backend over the C double.

It keeps a model of the packets the application holds and checks, by sequence number
(:mod:`tests.reliability.exactly_once`): every packet delivered is handed out exactly once, in
order (an interrupted ``receive*`` call may lose what it was returning, counted), every packet
sent arrives exactly once, in order; and memory stays bounded: once the session has waited (and
so settled what was dropped), the session's ledgers record no more packets than the
application holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from contextlib import ExitStack
from typing import cast

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from wintun_cffi.conformance.double.build import double_available
from wintun_cffi.errors import RingFullError
from wintun_cffi.packets import PacketBatch, ReceivedPacket

from .exactly_once import ExactlyOnce, abandoned_first, recorded
from .interrupts import CAPACITY as SMALL_RING
from .interrupts import Interrupter, traced
from .traffic import BACKENDS, NO_DOUBLE, DoubleBuilds, Rig, make_packet, open_rig

SYSTEM, APPLICATION = 21, 22
MODEL = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    # No explain phase: it traces execution, and the interrupts need the trace function.
    # No shrinking, and the first failure only: bounded for CI (the steps are printed).
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
    database=None,
)
SIZES = st.sampled_from([28, 100, 600, 1500, 9000])
Holding = ReceivedPacket | PacketBatch


class PacketPath(RuleBasedStateMachine):
    """One session on one backend, driven at random; see the module documentation."""

    backend = "emulator"
    builds: DoubleBuilds | None = None

    def __init__(self) -> None:
        super().__init__()
        self._stack = ExitStack()
        self.rig: Rig = self._stack.enter_context(open_rig(self.backend, SMALL_RING, self.builds))
        self.record = ExactlyOnce(SMALL_RING)
        self.delivered = 0
        self.sent = 0
        #: What the application holds: a packet or a batch, with the keys it carries.
        self.held: list[Holding] = []
        #: Views of packets given back, kept: they must read as released.
        self.kept_views: list[memoryview] = []
        self.interrupts = 0

    # -- the far side ---------------------------------------------------------------------

    @rule(count=st.integers(1, 6), size=SIZES)
    def deliver(self, count: int, size: int) -> None:
        packets = [make_packet(SYSTEM, self.delivered + index, size) for index in range(count)]
        if self.rig.host.deliver_many(packets):
            self.record.on_delivered(packets)
            self.delivered += count

    def _collect(self) -> None:
        for packet in self.rig.host.collect():
            self.record.on_arrived(packet)

    # -- receiving ------------------------------------------------------------------------

    def _hand(self, got: Holding | list[ReceivedPacket] | None, keep: bool) -> None:
        """Note what a receive call handed out; keep it (held) or release it now."""
        if got is None:
            return
        items: list[Holding] = list(got) if isinstance(got, list) else [got]
        for item in items:
            if isinstance(item, bytes):  # a copy (read, read_many, read_into): nothing held
                self.record.on_handed(item)
                continue
            if isinstance(item, PacketBatch):
                for data in item:
                    self.record.on_handed(data)
            else:
                self.record.on_handed(item.data)
            if keep:
                self.held.append(item)
            else:
                item.release()

    def _receive(self, style: str, many: int) -> Holding | list[ReceivedPacket] | None:
        session = self.rig.session
        if style == "receive_packet":
            return session.receive_packet()
        if style == "receive":
            try:
                return session.receive(timeout=0.001)
            except TimeoutError:
                return None
        if style == "receive_many":
            return session.receive_many(many, timeout=0.001)
        if style == "receive_batch":
            return session.receive_batch(many, timeout=0.001)
        if style == "read_many":
            return session.read_many(many, timeout=0.001)  # type: ignore[return-value]
        if style in ("read", "read_into"):
            buffer = bytearray(0xFFFF)
            try:
                if style == "read":
                    return [session.read(timeout=0.001)]  # type: ignore[list-item]
                return [bytes(buffer[: session.read_into(buffer, timeout=0.001)])]  # type: ignore[list-item]
            except TimeoutError:
                return None
        if style == "iterate":
            iterator = cast(Generator[ReceivedPacket, None, None], iter(session))
            try:
                return next(iterator)
            finally:
                iterator.close()

        async def one() -> ReceivedPacket | None:
            try:
                return await asyncio.wait_for(session.receive_async(), 0.01)
            except TimeoutError:
                return None

        return asyncio.run(one())

    STYLES = (
        "receive_packet",
        "receive",
        "receive_many",
        "receive_batch",
        "read",
        "read_many",
        "read_into",
        "iterate",
        "async",
    )

    def _can(self, style: str) -> bool:
        """Iteration blocks until a packet comes: one is delivered first; False if the ring
        had no room for it (then the style is skipped)."""
        if style != "iterate":
            return True
        before = self.delivered
        self.deliver(1, 100)
        return self.delivered > before

    @rule(style=st.sampled_from(STYLES), many=st.integers(1, 8), keep=st.booleans())
    def receive(self, style: str, many: int, keep: bool) -> None:
        if self._can(style):
            self._hand(self._receive(style, many), keep)

    @rule(
        # Not async: there the interrupt goes through asyncio's tasks, which keep it (and
        # the frames holding the packet) in a reference cycle only the cyclic GC frees.
        style=st.sampled_from(STYLES[:-1]),
        many=st.integers(1, 8),
        at=st.integers(1, 80),
        mode=st.sampled_from(("calls", "lines")),
    )
    def receive_interrupted(self, style: str, many: int, at: int, mode: str) -> None:
        """A receive call with a ``KeyboardInterrupt`` at its ``at``-th point (if it gets
        there): what it was returning may be lost, nothing else."""
        if not self._can(style):
            return
        interrupter = Interrupter(mode, at)
        got: Holding | list[ReceivedPacket] | None = None
        try:
            with traced(interrupter):
                got = self._receive(style, many)
        except KeyboardInterrupt:
            self.interrupts += 1
            self.record.may_lose(
                many if style in ("receive_many", "receive_batch", "read_many") else 1
            )
            return
        self._hand(got, keep=False)

    # No preconditions: every step draws the same data whatever the timing did.
    @rule(pick=st.integers(0, 100), keep_view=st.booleans())
    def release(self, pick: int, keep_view: bool) -> None:
        if not self.held:
            return
        item = self.held.pop(pick % len(self.held))
        if keep_view and isinstance(item, ReceivedPacket):
            self.kept_views.append(item.data)
        item.release()

    @rule(pick=st.integers(0, 100))
    def drop(self, pick: int) -> None:
        """Drop a packet (or batch) without releasing it: the session must give it back."""
        if self.held:
            del self.held[pick % len(self.held)]

    # -- sending --------------------------------------------------------------------------

    def _send(self, style: str, count: int, size: int) -> Callable[[], None]:
        session = self.rig.session
        packets = [make_packet(APPLICATION, self.sent + index, size) for index in range(count)]
        self.sent += count

        def send() -> None:
            try:
                if style == "send_many":
                    done = session.send_many(packets)
                elif style == "allocate":
                    try:
                        with session.allocate_send_packet(size) as data:
                            data[:] = packets[0]
                        done = 1
                    except RingFullError:
                        done = 0
                else:
                    on_full = style.removeprefix("send-")
                    try:
                        done = int(session.send(packets[0], on_full=on_full, timeout=0.2))  # type: ignore[arg-type]
                    except (RingFullError, TimeoutError):
                        done = 0
            except KeyboardInterrupt:
                for packet in packets:
                    self.record.on_sent(packet, certain=False)
                raise
            for packet in packets[:done]:
                self.record.on_sent(packet)

        return send

    SENDS = ("send-raise", "send-drop", "send-wait", "send_many", "allocate")

    @rule(style=st.sampled_from(SENDS), count=st.integers(1, 6), size=SIZES)
    def send(self, style: str, count: int, size: int) -> None:
        self._send(style, count, size)()
        self._collect()

    @rule(
        style=st.sampled_from(SENDS),
        count=st.integers(1, 6),
        size=SIZES,
        at=st.integers(1, 60),
    )
    def send_interrupted(self, style: str, count: int, size: int, at: int) -> None:
        send = self._send(style, count, size)
        try:
            with traced(Interrupter("calls", at)):
                send()
        except KeyboardInterrupt:
            self.interrupts += 1
        self._collect()

    # -- closing --------------------------------------------------------------------------

    @rule()
    def close_and_restart(self) -> None:
        """Close with packets out; the old packets go with it; a new session starts."""
        self._settled_and_bounded()
        self.rig.session.close()
        for item in self.held:
            assert item.released  # ended with the session
        self.held.clear()
        self._collect()
        self.record.verify(drained=False, cycled=False)
        self.record = ExactlyOnce(SMALL_RING)
        self.rig.session = self.rig.adapter.start_session(SMALL_RING)
        if self.rig.kernel is not None:
            host = self.rig.kernel.host_for(self.rig.session._handle.pointer)  # type: ignore[attr-defined]
            self.rig.host = host

    # -- checks ---------------------------------------------------------------------------

    @invariant()
    def nothing_twice_nothing_reordered(self) -> None:
        self.record.verify(drained=False, cycled=False)

    @invariant()
    def views_given_back_are_released(self) -> None:
        for view in self.kept_views:
            with pytest.raises(ValueError):
                view[0]

    def _settled_and_bounded(self) -> None:
        """Wait once (settling what was dropped), then the ledgers hold only what the
        application holds."""
        session = self.rig.session
        got = session.receive_many(64, timeout=0)
        self._hand(got, keep=True)
        try:  # nothing left to take: this waits, and waiting settles
            self._hand(session.receive(timeout=0.005), keep=True)
        except TimeoutError:
            pass
        received, ready, allocated = recorded(session)
        ahead = abandoned_first(session, self.held)
        assert ahead == 0, (
            f"the session records {ahead} received packets nobody holds ahead of the oldest "
            "one held: settling should have given them back (they hold the ring up)"
        )
        assert received <= session.capacity // 4, f"the session records {received} packets: a leak"
        assert allocated == 0

    @rule()
    def memory_is_bounded(self) -> None:
        self._settled_and_bounded()

    def teardown(self) -> None:
        try:
            if not self.rig.session.closed:
                for item in self.held:
                    item.release()
                self.held.clear()
                # Everything delivered is handed out exactly once (drained), all of it.
                for _ in range(64):
                    got = self.rig.session.receive_many(64, timeout=0.005)
                    if not got:
                        break
                    self._hand(got, keep=False)
                self._settled_and_bounded()
                assert recorded(self.rig.session)[0] == 0
                self._collect()
                self.record.verify(drained=True, cycled=False)
        finally:
            self.held.clear()
            self._stack.close()


def _machine(backend: str, builds: DoubleBuilds) -> type[PacketPath]:
    return type(f"PacketPath_{backend}", (PacketPath,), {"backend": backend, "builds": builds})


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_packet_path_against_its_model(backend: str, builds: DoubleBuilds) -> None:
    if backend == "double" and not double_available():
        pytest.skip(NO_DOUBLE)
    run_state_machine_as_test(_machine(backend, builds), settings=MODEL)
