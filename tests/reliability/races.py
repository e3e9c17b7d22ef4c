"""Closing while calls are in progress: from another thread, and from a signal handler on the
thread that is inside the call. Each scenario ends every thread with a defined error and never
touches freed memory; run against the C double built with AddressSanitizer, a use-after-free
aborts the process.

Usage (the tests run these in a subprocess, under AddressSanitizer where there is one)::

    python -m tests.reliability.races emulator all 50
    python -m tests.reliability.races /path/to/libwintun_double_0_14_asan.so all 50
"""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import wintun_cffi
from wintun_cffi.api import Adapter, Wintun
from wintun_cffi.conformance.double.kernel import DoubleKernel
from wintun_cffi.errors import (
    HandleClosedError,
    PacketReleasedError,
    RingFullError,
    SessionClosedError,
    SessionEndedError,
)
from wintun_cffi.session import Session

from .interrupts import exchange
from .traffic import make_packet

CAPACITY = 0x20000
#: What a call may raise because its session or adapter closed under it: nothing else.
CLOSED = (SessionClosedError, SessionEndedError, PacketReleasedError, HandleClosedError)
_PACKET = make_packet(1, 1, 200)


class Machine:
    """A Wintun (emulated, or the C double with the emulator's driver as its kernel)."""

    def __init__(self, where: str) -> None:
        self.kernel: DoubleKernel | None = None
        if where == "emulator":
            self.wintun: Wintun = wintun_cffi.emulated()
        else:
            self.kernel = DoubleKernel(where)
            self.wintun = wintun_cffi.load(where)
        self.wintun.set_logger(None)

    def adapter(self) -> Adapter:
        return self.wintun.create_adapter("Race", tunnel_type="Race")

    def host(self, adapter: Adapter, session: Session) -> Any:
        if self.kernel is None:
            return adapter.host
        return self.kernel.host_for(session._handle.pointer)  # type: ignore[attr-defined]

    def check_next_session(self, adapter: Adapter) -> None:
        """The adapter starts a new session (the old one really ended), through which every
        packet goes exactly once, in order, more than two laps of the ring each way, leaving
        nothing recorded (:func:`tests.reliability.interrupts.exchange`)."""
        with adapter.start_session(CAPACITY) as session:
            host = self.host(adapter, session)
            host.collect()  # what the race's session sent (the emulator's host outlives it)
            exchange(host, session)

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.reset()
            self.kernel.close()


def _busy(session: Session, host: Any | None, errors: list[BaseException]) -> None:
    """Packet calls of every kind until the session closes under them (delivering from the
    far side too, unless ``host`` is None)."""
    try:
        while True:
            if host is not None:
                host.deliver(_PACKET)
            packet = session.receive_packet()
            if packet is not None:
                bytes(packet.data)
                packet.release()
            try:
                session.send(_PACKET)
                with session.allocate_send_packet(len(_PACKET)) as data:
                    data[:] = _PACKET
            except RingFullError:
                pass
            session.release_many(session.receive_many(4, timeout=0))
    except CLOSED:
        return
    except BaseException as error:
        errors.append(error)


def session_close_vs_calls(machine: Machine, rng: random.Random) -> None:
    """Three threads in packet calls; another thread closes the session."""
    with machine.adapter() as adapter:
        session = adapter.start_session(CAPACITY)
        host = machine.host(adapter, session)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_busy, args=(session, host, errors)) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0, 0.01))
        session.close()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive(), "a thread hung after close()"
        assert not errors, errors
        machine.check_next_session(adapter)  # the session really ended


def adapter_close_vs_start(machine: Machine, rng: random.Random) -> None:
    """One thread starts and ends sessions; another closes the adapter under it."""
    adapter = machine.adapter()
    errors: list[BaseException] = []

    def cycle() -> None:
        try:
            while True:
                session = adapter.start_session(CAPACITY)
                session.close()
        except CLOSED:
            return
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=cycle)
    thread.start()
    time.sleep(rng.uniform(0, 0.005))
    adapter.close()
    thread.join(10)
    assert not thread.is_alive(), "start_session hung after the adapter closed"
    assert not errors, errors


def _after(seconds: float, action: Callable[[], None]) -> Callable[[], None]:
    """Run ``action`` in a signal handler on the main thread in ``seconds``; returns undo."""

    def handler(signum: int, frame: object) -> None:
        action()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def undo() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    return undo


def _feed(host: Any, stop: threading.Event) -> None:
    """The far side, on a thread of its own as the operating system would be."""
    while not stop.is_set():
        if not host.deliver(_PACKET):
            time.sleep(0.0005)


def signal_close_in_calls(machine: Machine, rng: random.Random) -> None:
    """The main thread is in packet calls; a signal handler on it closes the session."""
    with machine.adapter() as adapter:
        session = adapter.start_session(CAPACITY)
        stop = threading.Event()
        feeder = threading.Thread(target=_feed, args=(machine.host(adapter, session), stop))
        feeder.start()
        errors: list[BaseException] = []
        undo = _after(rng.uniform(0.001, 0.01), session.close)
        try:
            _busy(session, None, errors)
        finally:
            undo()
            stop.set()
            feeder.join()
        assert not errors, errors
        session.close()  # returns once ended (it may have ended when the call returned)
        machine.check_next_session(adapter)


def signal_close_iterating(machine: Machine, rng: random.Random) -> None:
    """The main thread iterates over the session, blocked; a signal handler closes it."""
    with machine.adapter() as adapter:
        session = adapter.start_session(CAPACITY)
        undo = _after(rng.uniform(0.001, 0.02), session.close)
        try:
            for packet in session:
                packet.release()
        finally:
            undo()
        assert session.closed
        machine.check_next_session(adapter)  # the iteration ended: the session ended


SCENARIOS: dict[str, Callable[[Machine, random.Random], None]] = {
    "session-close-vs-calls": session_close_vs_calls,
    "adapter-close-vs-start": adapter_close_vs_start,
    "signal-close-in-calls": signal_close_in_calls,
    "signal-close-iterating": signal_close_iterating,
}
#: The scenarios that need POSIX signals (setitimer).
SIGNAL_SCENARIOS = ("signal-close-in-calls", "signal-close-iterating")


def available(name: str) -> bool:
    return name not in SIGNAL_SCENARIOS or hasattr(signal, "setitimer")


def run(where: str, names: list[str], iterations: int, seed: int = 1) -> dict[str, int]:
    """Each scenario ``iterations`` times; returns how many runs of each completed."""
    machine = Machine(where)
    rng = random.Random(seed)
    done: dict[str, int] = {}
    try:
        for name in names:
            for _ in range(iterations):
                SCENARIOS[name](machine, rng)
                done[name] = done.get(name, 0) + 1
    finally:
        machine.close()
    return done


def main(argv: list[str]) -> int:
    where, which, iterations = argv[0], argv[1], int(argv[2])
    names = [n for n in SCENARIOS if available(n)] if which == "all" else which.split(",")
    for name, count in run(where, names, iterations).items():
        print(f"race {name}: {count} runs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
