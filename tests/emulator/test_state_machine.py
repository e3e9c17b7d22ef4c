"""A stateful model of one session: the client against a reference model of the rings.

The driver's producer side is the real SessionDriver.deliver; its consumer side is played here,
synchronously, so every step is deterministic. The model knows only the ring arithmetic of docs/protocol.rst.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from emulator.client import SessionClient
from emulator.driver import AdapterStatistics, SessionDriver
from emulator.ring import Ring
from tests.support import ClientCalls
from wintun_cffi.errors import NoMoreItemsError, RingFullError
from wintun_cffi.fdevent import FdEvent

from .conftest import CAP, FLAG, MASK, header, rec, u32

SIZES = st.one_of(st.integers(0, 2000), st.integers(0xF000, 0xFFFF))


def pattern(serial: int, size: int) -> bytes:
    return (serial.to_bytes(4, "little") * (size // 4 + 1))[:size]


@dataclass
class Held:
    offset: int
    size: int
    token: int
    done: bool = False


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.send_ring = Ring.allocate(CAP)
        self.recv_ring = Ring.allocate(CAP)
        self.spare = Ring.allocate(CAP)  # the real consumer thread idles on this one
        self.read_wait, self.tail_moved, self.spare_event = FdEvent(), FdEvent(), FdEvent()
        self.stats = AdapterStatistics()
        self.driver = SessionDriver(
            self.send_ring,
            self.spare,
            self.read_wait,
            self.spare_event,
            lambda packet: None,
            self.stats,
            "model",
        )
        self.client = ClientCalls(SessionClient(self.send_ring, self.recv_ring, self.tail_moved))
        self.serial = 0
        # Send ring (driver -> application).
        self.d_tail = 0
        self.s_head = 0  # expected ring Head
        self.pending: deque[tuple[int, bytes]] = deque()
        self.held: list[Held] = []
        self.discards = 0
        # Receive ring (application -> driver).
        self.c_tail = 0
        self.r_head = 0  # ring Head, moved by our consumer
        self.r_tail = 0  # expected ring Tail
        self.allocs: list[Held] = []
        self.payloads: dict[int, bytes] = {}
        self.published: deque[bytes] = deque()
        self.sent_order: list[bytes] = []
        self.consumed: list[bytes] = []

    def teardown(self) -> None:
        self.driver.stop()
        for fd_event in (self.read_wait, self.tail_moved, self.spare_event):
            fd_event.close()

    def next_payload(self, size: int) -> bytes:
        self.serial += 1
        return pattern(self.serial, size)

    @initialize(read_start=st.integers(0, CAP // 4 - 1), write_start=st.integers(0, CAP // 4 - 1))
    def start_anywhere(self, read_start: int, write_start: int) -> None:
        """Walk both directions to arbitrary offsets through the API, so wraps happen."""
        target = read_start * 4
        while self.d_tail != target:
            chunk = min((target - self.d_tail) & MASK, 0x10004)
            assert self.driver.deliver([bytes(min(chunk - 4, 0xFFFF))])
            _, token = self.client.receive_packet()
            self.client.release_receive_packet(token)
            self.d_tail = (self.d_tail + chunk) & MASK
        self.s_head = target
        target = write_start * 4
        while self.c_tail != target:
            chunk = min((target - self.c_tail) & MASK, 0x10004)
            _, token = self.client.allocate_send_packet(min(chunk - 4, 0xFFFF))
            self.client.send_packet(token)
            self.c_tail = (self.c_tail + chunk) & MASK
        self.recv_ring.head = self.r_head = self.r_tail = target
        self.read_wait.consume()
        self.tail_moved.consume()
        self.stats.out_packets = self.stats.out_octets = 0

    # -- Send ring: the driver delivers, the application receives and releases ---------------

    @rule(sizes=st.lists(SIZES, min_size=1, max_size=10))
    def deliver(self, sizes: list[int]) -> None:
        batch = [self.next_payload(size) for size in sizes]
        needed = sum(rec(size) for size in sizes)
        fits = needed <= ((self.s_head - self.d_tail - 4) & MASK)
        assert self.driver.deliver(batch) is fits
        assert self.read_wait.consume() is fits
        if fits:
            for payload in batch:
                if self.d_tail + rec(len(payload)) > CAP:
                    event("deliver: record runs into the trailer")
                self.pending.append((self.d_tail, payload))
                self.d_tail = (self.d_tail + rec(len(payload))) & MASK
        else:
            event("deliver: whole batch dropped")
            self.discards += len(batch)
        assert self.stats.out_discards == self.discards

    @rule()
    def receive(self) -> None:
        if not self.pending:
            with pytest.raises(NoMoreItemsError):
                self.client.receive_packet()
            return
        offset, payload = self.pending.popleft()
        view, token = self.client.receive_packet()
        assert bytes(view) == payload  # FIFO, nothing lost or duplicated
        assert u32(self.send_ring, offset) == len(payload)
        self.held.append(Held(offset, len(payload), token))

    @precondition(lambda self: any(not h.done for h in self.held))
    @rule(pick=st.integers(0, 1000))
    def release(self, pick: int) -> None:
        candidates = [h for h in self.held if not h.done]
        chosen = candidates[pick % len(candidates)]
        self.client.release_receive_packet(chosen.token)
        chosen.done = True
        assert u32(self.send_ring, chosen.offset) == chosen.size | FLAG
        while self.held and self.held[0].done:
            first = self.held.pop(0)
            self.s_head = (first.offset + rec(first.size)) & MASK
        with pytest.raises(ValueError):
            self.client.release_receive_packet(chosen.token)

    # -- Receive ring: the application allocates and sends, the driver consumes --------------

    @rule(size=SIZES)
    def allocate(self, size: int) -> None:
        free = (self.r_head - self.c_tail - 4) & MASK
        if rec(size) > free:
            event("allocate: ring full")
            with pytest.raises(RingFullError):
                self.client.allocate_send_packet(size)
            return
        view, token = self.client.allocate_send_packet(size)
        assert u32(self.recv_ring, self.c_tail) == size | FLAG
        payload = self.next_payload(size)
        view[:] = payload
        self.payloads[token] = payload
        self.allocs.append(Held(self.c_tail, size, token))
        if self.c_tail + rec(size) > CAP:
            event("allocate: record runs into the trailer")
        self.c_tail = (self.c_tail + rec(size)) & MASK

    @rule(alertable=st.sampled_from([0, 1]))
    def set_alertable(self, alertable: int) -> None:
        self.recv_ring.alertable = alertable

    @precondition(lambda self: any(not h.done for h in self.allocs))
    @rule(pick=st.integers(0, 1000))
    def send_one(self, pick: int) -> None:
        candidates = [h for h in self.allocs if not h.done]
        chosen = candidates[pick % len(candidates)]
        self.client.send_packet(chosen.token)
        chosen.done = True
        assert u32(self.recv_ring, chosen.offset) == chosen.size
        old_tail = self.r_tail
        while self.allocs and self.allocs[0].done:
            first = self.allocs.pop(0)
            self.published.append(self.payloads.pop(first.token))
            self.r_tail = (first.offset + rec(first.size)) & MASK
        moved = self.r_tail != old_tail
        assert self.tail_moved.consume() is (moved and self.recv_ring.alertable != 0)
        with pytest.raises(ValueError):
            self.client.send_packet(chosen.token)

    @rule()
    def consume(self) -> None:
        """The driver's consumer, synchronously: every published record, in ring order."""
        head, tail = header(self.recv_ring)[:2]
        while head != tail:
            size = u32(self.recv_ring, head)
            assert size <= 0xFFFF  # never a flagged (unsent) record
            payload = bytes(self.recv_ring.data[head + 4 : head + 4 + size])
            assert payload == self.published.popleft()
            self.consumed.append(payload)
            head = (head + rec(size)) & MASK
        assert not self.published
        self.recv_ring.head = self.r_head = head

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def ring_fields_match_the_model(self) -> None:
        assert header(self.send_ring)[:2] == (self.s_head, self.d_tail)
        assert header(self.recv_ring)[:2] == (self.r_head, self.r_tail)
        assert self.client.outstanding() == (
            sum(not h.done for h in self.held) + sum(not h.done for h in self.allocs)
        )


SessionMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_session_state_machine = SessionMachine.TestCase
