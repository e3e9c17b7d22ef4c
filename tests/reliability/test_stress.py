"""Many threads through one session on each backend: short stress runs, closing the session in
the middle of traffic, and the adapter vanishing mid-flight."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from wintun_cffi.constants import (
    ERROR_HANDLE_EOF,
)
from wintun_cffi.errors import (
    PacketReleasedError,
    RingFullError,
    SessionClosedError,
    SessionEndedError,
)

from .engine import HOST_PRODUCER, run_stress
from .traffic import Rig, make_packet, parse_packet, random_size, wait_until

pytestmark = pytest.mark.stress

JOIN = 10.0  # seconds a thread may take to end after the session went away


@pytest.mark.parametrize("senders, receivers", [(3, 3), (1, 4), (4, 1)])
def test_stress_keeps_every_packet_once_and_in_order(
    rig: Rig, senders: int, receivers: int
) -> None:
    figures = run_stress(
        rig, packets=400, senders=senders, receivers=receivers, seed=senders * 10 + receivers
    )
    assert figures.problems == []
    assert figures.sent == figures.collected == 400
    assert figures.delivered == figures.received == 400
    # What the driver counted agrees with what the threads saw (drops are whole batches).
    assert rig.host.statistics.in_packets == 400
    assert rig.host.statistics.out_packets == 400
    assert rig.host.statistics.out_discards == figures.dropped_packets


class _Traffic:
    """Endless traffic both ways until the session goes; records how each thread ended."""

    def __init__(self, rig: Rig, receive_timeout: float | None) -> None:
        self.rig = rig
        self.receive_timeout = receive_timeout
        self.stop = threading.Event()
        self.received = 0
        self.endings: dict[str, tuple[str, BaseException | None]] = {}
        #: What the next session call raised, for a thread whose packet was gone (it then
        #: tries once more, as a program that handles the error would).
        self.next_call: dict[str, BaseException | None] = {}
        self.threads: list[threading.Thread] = []

    def _run(self, name: str, body: Callable[[list[str]], None]) -> None:
        step = ["start"]
        try:
            body(step)
            self.endings[name] = (step[0], None)
        except BaseException as error:  # the outcome under test
            self.endings[name] = (step[0], error)
            if not isinstance(error, SessionClosedError):
                try:
                    self.rig.session.receive_packet()
                    self.next_call[name] = None
                except BaseException as then:
                    self.next_call[name] = then

    def start(self, senders: int = 3, receivers: int = 3) -> None:
        for index in range(senders):
            self._spawn(f"sender-{index}", self._sender, index)
        for index in range(receivers):
            self._spawn(f"receiver-{index}", self._receiver, index)
        far = threading.Thread(target=self._far_side, name="far side", daemon=True)
        far.start()
        self.threads.append(far)

    def _spawn(self, name: str, body: Callable[[list[str], int], None], index: int) -> None:
        thread = threading.Thread(
            target=self._run, args=(name, lambda s: body(s, index)), name=name, daemon=True
        )
        thread.start()
        self.threads.append(thread)

    def _sender(self, step: list[str], producer: int) -> None:
        rng = random.Random(producer)
        session = self.rig.session
        for sequence in range(1 << 30):
            size = random_size(rng, 9000)
            packet = make_packet(producer, sequence, size)
            if sequence % 2:
                step[0] = "send"
                session.send(packet, on_full="wait")  # no timeout: only the end stops it
                continue
            step[0] = "allocate"
            try:
                buffer = session.allocate_send_packet(size)
            except RingFullError:
                continue
            step[0] = "fill"
            buffer.data[:] = packet
            step[0] = "send buffer"
            buffer.send()

    def _receiver(self, step: list[str], index: int) -> None:
        rng = random.Random(100 + index)
        session = self.rig.session
        while True:
            step[0] = "receive"
            if index % 2:
                batch = session.receive_many(8, timeout=self.receive_timeout)
            else:
                batch = [session.receive(timeout=self.receive_timeout)]
            if not batch:
                raise TimeoutError("receive_many returned nothing: a hang")
            step[0] = "read"
            for packet in batch:
                assert parse_packet(packet.data)[0] == HOST_PRODUCER
            rng.shuffle(batch)
            step[0] = "release"
            for packet in batch:
                packet.release()
            self.received += len(batch)

    def _far_side(self) -> None:
        rng = random.Random(7)
        host = self.rig.host
        sequence = 0
        while not self.stop.is_set():
            batch = [
                make_packet(HOST_PRODUCER, sequence + i, random_size(rng, 9000))
                for i in range(rng.randint(1, 6))
            ]
            if host.deliver_many(batch):
                sequence += len(batch)
            host.collect()

    def join(self) -> list[str]:
        """Names of the threads still running after JOIN seconds (they hang)."""
        for thread in self.threads:
            thread.join(JOIN)
        return [thread.name for thread in self.threads if thread.is_alive()]


def _busy(traffic: _Traffic, rig: Rig) -> None:
    assert wait_until(
        lambda: traffic.received >= 100 and rig.host.statistics.in_packets >= 100, timeout=30
    ), "no traffic flowed"


def test_close_in_heavy_traffic_ends_every_thread(rig: Rig) -> None:
    traffic = _Traffic(rig, receive_timeout=None)  # receivers block for good
    traffic.start()
    try:
        _busy(traffic, rig)
        rig.session.close()
    finally:
        traffic.stop.set()
    assert traffic.join() == [], "threads hung after close"
    assert len(traffic.endings) == 6
    for name, (step, error) in traffic.endings.items():
        assert error is not None, f"{name} ended without an error"
        if isinstance(error, SessionClosedError):
            continue
        # A thread that held a packet when the session closed finds it gone.
        assert step in ("fill", "send buffer", "read", "release"), (name, step, error)
        assert isinstance(error, (PacketReleasedError, ValueError)), (name, step, error)
    # Every thread learns that the session closed: at once, or (its packet gone) at its next
    # call. Which of the two is a matter of timing.
    for name, (_, error) in traffic.endings.items():
        if not isinstance(error, SessionClosedError):
            assert isinstance(traffic.next_call[name], SessionClosedError), name
    with pytest.raises(SessionClosedError):
        rig.session.receive(timeout=0)


def test_adapter_removal_mid_flight_ends_every_thread(rig: Rig) -> None:
    traffic = _Traffic(rig, receive_timeout=JOIN)  # a TimeoutError would mean a hang
    traffic.start()
    try:
        _busy(traffic, rig)
        rig.host.terminate()
    finally:
        traffic.stop.set()
    assert traffic.join() == [], "threads hung after the adapter vanished"
    assert len(traffic.endings) == 6
    for name, (step, error) in traffic.endings.items():
        assert type(error) is SessionEndedError, (name, step, error)
        assert error.winerror == ERROR_HANDLE_EOF
    if rig.kernel is None:  # the emulator removed the adapter from the machine
        backend: Any = rig.wintun.backend  # the Emulator, with its adapter_names()
        names = backend.adapter_names()
        assert "Stress" not in names
