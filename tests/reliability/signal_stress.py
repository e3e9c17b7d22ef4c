"""Real signals against the packet path: an interval timer (``SIGALRM``) whose handler raises
``KeyboardInterrupt`` while the main thread receives or sends, and handlers that call
``Session.close()`` or ``Adapter.close()`` while the main thread is already inside ``close()``.

Each *trial* opens a session (the emulator, or the native backend over the C double given by
its path) and runs one scenario:

* ``receive``: the far side delivers numbered packets from a thread of its own; the main thread
  receives them in every style (``receive_packet``, ``receive``, ``receive_many``,
  ``receive_batch``, ``read``, ``read_many``, ``read_into``, iteration, and ``receive_async``, which is not interrupted: see
  ``_receive_once``) while the timer interrupts it. The handler
  raises only while the main thread is inside a library call (armed around each call, disarmed
  as it returns), so an interrupt that lands in a ``receive*`` call is known and may lose what
  that call was returning (the one documented loss); anything else lost fails.
* ``send``: the main thread sends numbered packets (``send``, ``send_many``,
  ``allocate_send_packet`` + ``send``) while the timer interrupts it; the far side must get
  each one whose call returned exactly once, in order (one cut short: at most once).
* ``close``: packets are out when the main thread calls ``close()`` (plain, or as a ``with``
  block ends); a timer set to fire about then runs a handler that calls ``close()`` again,
  ``Adapter.close()``, or raises ``KeyboardInterrupt`` (a second Ctrl+C, after which ``close()``
  is called again). The session must end and the adapter start a new one.

After each ``receive`` and ``send`` trial the session moves packets both ways again (more than
two laps of the ring), and the whole trial is checked by :mod:`tests.reliability.exactly_once`.

Trials run in child processes, each watched: one that does not finish in time is killed and
counted as a hang (with the stacks it printed). Usage::

    python -m tests.reliability.signal_stress --backend emulator --minutes 10
    python -m tests.reliability.signal_stress --backend double --minutes 10
    python -m tests.reliability.signal_stress --backend double --sanitize --minutes 1

It prints the counts (packets, interrupts, duplicates, losses, hangs) and exits 1 on any
problem.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

from wintun_cffi.conformance.double.build import asan_runtime, build_double, double_available
from wintun_cffi.errors import RingFullError, SessionClosedError, WintunError
from wintun_cffi.packets import ReceivedPacket
from wintun_cffi.session import Session

from .exactly_once import ExactlyOnce
from .interrupts import _in_kernel, exchange
from .races import Machine
from .traffic import BACKENDS, NO_DOUBLE, make_packet

ROOT = Path(__file__).resolve().parents[2]
CAPACITY = 0x20000
SCENARIOS = ("receive", "send", "close")
#: The far side's producer id, and the application's.
SYSTEM, APPLICATION = 11, 12
#: Seconds one trial may take before its child process is deemed hung.
TRIAL_LIMIT = 25.0
#: Result lines a child prints start with this.
_RESULT = "signal-stress-result "


@dataclass
class Counts:
    """What the trials moved and found."""

    trials: int = 0
    packets: int = 0
    interrupts: int = 0
    interrupts_in_receive: int = 0
    close_reentries: int = 0
    duplicates: int = 0
    documented_losses: int = 0
    losses: int = 0
    hangs: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name, value in asdict(other).items():
            if name == "problems":
                self.problems.extend(value[: max(0, 20 - len(self.problems))])
            else:
                setattr(self, name, getattr(self, name) + value)

    @property
    def failed(self) -> bool:
        return bool(self.duplicates or self.losses or self.hangs or self.errors or self.problems)


# -- the interrupting timer ---------------------------------------------------------------------


class Alarm:
    """An interval timer whose handler raises ``KeyboardInterrupt`` while :attr:`armed`."""

    def __init__(self, rng: random.Random, low: float, high: float) -> None:
        self.rng = rng
        self.low, self.high = low, high
        self.armed = False
        self.active = False  # the timer runs (see running())
        self.fired = 0
        self.action: Callable[[], None] | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if not self.active:
            return  # the trial is over: re-arming would outlive this handler
        signal.setitimer(signal.ITIMER_REAL, self.rng.uniform(self.low, self.high))
        if _in_kernel(frame):
            return  # the C double's kernel (the driver's side): no Ctrl+C lands there
        if self.armed:
            self.armed = False
            self.fired += 1
            if self.action is not None:
                self.action()
            else:
                raise KeyboardInterrupt("SIGALRM")

    @contextmanager
    def running(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGALRM, self._handler)
        self.active = True
        signal.setitimer(signal.ITIMER_REAL, self.rng.uniform(self.low, self.high))
        try:
            yield
        finally:
            self.active = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            self.armed = False


# -- the scenarios ----------------------------------------------------------------------------


class _Feeder:
    """The far side delivering numbered packets from a thread of its own until stopped."""

    def __init__(self, host: Any, record: ExactlyOnce, rng: random.Random) -> None:
        self.host, self.record = host, record
        self.sizes = [rng.choice((40, 200, 600, 1500)) for _ in range(64)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="feeder")

    def _run(self) -> None:
        sequence = 0
        while not self.stop.is_set():
            packet = make_packet(SYSTEM, sequence, self.sizes[sequence % 64])
            if self.host.deliver(packet):
                self.record.on_delivered([packet])
                sequence += 1
            else:
                time.sleep(0.0002)

    def __enter__(self) -> _Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()


def _receive_once(session: Session, alarm: Alarm, style: str) -> list[bytes]:
    """One receive call in ``style`` with the alarm armed around the library's part; returns
    copies of what it handed out (all released, or dropped without release now and then)."""
    got: list[bytes] = []
    alarm.armed = True
    if style == "receive_packet":
        packet = session.receive_packet()
        alarm.armed = False
        if packet is None:
            return got
        packets = [packet]
    elif style == "receive":
        try:
            packets = [session.receive(timeout=0.01)]
        except TimeoutError:
            alarm.armed = False
            return got
        alarm.armed = False
    elif style == "receive_many":
        packets = session.receive_many(8, timeout=0.01)
        alarm.armed = False
    elif style in ("read", "read_into"):
        try:
            if style == "read":
                got = [session.read(timeout=0.01)]
            else:
                buffer = bytearray(2048)
                got = [bytes(buffer[: session.read_into(buffer, timeout=0.01)])]
        except TimeoutError:
            pass
        alarm.armed = False
        return got
    elif style == "read_many":
        got = session.read_many(8, timeout=0.01)
        alarm.armed = False
        return got
    elif style == "iterate":
        iterator = cast(Generator[ReceivedPacket, None, None], iter(session))
        packets = [next(iterator)]
        alarm.armed = False
        iterator.close()  # untouched since: the generator ends without touching the ring
    elif style == "receive_async":
        # Not interrupted: an interrupt inside a task is kept by asyncio in a reference
        # cycle (task, exception, traceback, frames) with whatever the frames held, a packet
        # included, until the cyclic GC runs; this stress leaves the GC alone.
        alarm.armed = False
        packets = [asyncio.run(asyncio.wait_for(session.receive_async(), 0.05))]
    else:
        batch = session.receive_batch(8, timeout=0.01)
        alarm.armed = False
        got = [bytes(data) for data in batch]
        alarm.armed = True
        batch.release()
        alarm.armed = False
        return got
    got = [bytes(packet.data) for packet in packets]
    alarm.armed = True
    if len(packets) > 1:
        session.release_many(packets)
    elif got and alarm.rng.random() < 0.9:
        packets[0].release()
    # else: dropped without release, as a program may
    alarm.armed = False
    return got


#: What one call of each style can return at most (what an interrupt in it may lose).
_RECEIVES = {
    "receive_packet": 1,
    "receive": 1,
    "receive_many": 8,
    "iterate": 1,
    "receive_async": 1,
    "receive_batch": 8,
    "read": 1,
    "read_into": 1,
    "read_many": 8,
}


def _receive_trial(machine: Machine, rng: random.Random, counts: Counts, seconds: float) -> None:
    with machine.adapter() as adapter, adapter.start_session(CAPACITY) as session:
        record = ExactlyOnce(CAPACITY)
        host = machine.host(adapter, session)
        alarm = Alarm(rng, 0.0005, 0.004)
        deadline = time.monotonic() + seconds
        try:
            with _Feeder(host, record, rng) as feeder, alarm.running(), _telling(record, counts):
                while time.monotonic() < deadline:
                    style = rng.choice(tuple(_RECEIVES))
                    try:
                        for data in _receive_once(session, alarm, style):
                            record.on_handed(data)
                    except KeyboardInterrupt:
                        alarm.armed = False
                        record.may_lose(_RECEIVES[style])
                        counts.interrupts_in_receive += 1
                    except TimeoutError:  # receive_async's wait_for
                        alarm.armed = False
                feeder.stop.set()
        finally:
            counts.interrupts += alarm.fired
        # Untimed: what the feeder delivered last, then two laps of the ring each way.
        _exchange_and_verify(host, session, record, counts)


def _send_trial(machine: Machine, rng: random.Random, counts: Counts, seconds: float) -> None:
    with machine.adapter() as adapter, adapter.start_session(CAPACITY) as session:
        record = ExactlyOnce(CAPACITY)
        host = machine.host(adapter, session)
        alarm = Alarm(rng, 0.0005, 0.004)
        stop = threading.Event()

        def collect() -> None:
            while not stop.is_set():
                for packet in host.collect():
                    record.on_arrived(packet)
                time.sleep(0.0005)

        collector = threading.Thread(target=collect, daemon=True, name="collector")
        collector.start()
        sequence = 0
        deadline = time.monotonic() + seconds
        with alarm.running(), _counting(alarm, counts), _telling(record, counts):
            while time.monotonic() < deadline:
                style = rng.choice(("send", "send_many", "allocate"))
                count = 4 if style == "send_many" else 1
                packets = [
                    make_packet(APPLICATION, sequence + index, rng.choice((40, 600, 1500)))
                    for index in range(count)
                ]
                sequence += count
                try:
                    alarm.armed = True
                    if style == "send":
                        sent = int(session.send(packets[0], on_full="drop"))
                    elif style == "send_many":
                        sent = session.send_many(packets)
                    else:
                        try:
                            with session.allocate_send_packet(len(packets[0])) as data:
                                data[:] = packets[0]
                            sent = 1
                        except RingFullError:
                            sent = 0
                    alarm.armed = False
                except KeyboardInterrupt:
                    alarm.armed = False
                    for packet in packets:
                        record.on_sent(packet, certain=False)
                    continue
                for packet in packets[:sent]:
                    record.on_sent(packet)
        stop.set()
        collector.join()
        for packet in host.collect():
            record.on_arrived(packet)
        _exchange_and_verify(host, session, record, counts)


def _again(session: Session, close: Callable[[], None], reentered: list[bool]) -> None:
    """The handler's action: note whether the main thread's close() has begun, and close."""
    reentered.append(session.closed)
    close()


def _close_trial(machine: Machine, rng: random.Random, counts: Counts, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        adapter = machine.adapter()
        session = adapter.start_session(CAPACITY)
        host = machine.host(adapter, session)
        host.deliver_many([make_packet(SYSTEM, index, 200) for index in range(16)])
        held = session.receive_many(8, timeout=1.0)  # out when the session ends
        how = rng.choice(("session.close", "adapter.close", "KeyboardInterrupt"))
        alarm = Alarm(rng, 0.000_05, 0.000_6)
        reentered: list[bool] = []

        if how == "session.close":
            alarm.action = functools.partial(_again, session, session.close, reentered)
        elif how == "adapter.close":
            alarm.action = functools.partial(_again, session, adapter.close, reentered)
        interrupted = False
        with alarm.running():
            alarm.armed = True
            try:
                if rng.random() < 0.5:
                    with session:
                        time.sleep(rng.uniform(0, 0.0005))
                else:
                    time.sleep(rng.uniform(0, 0.0005))
                    session.close()
            except KeyboardInterrupt:
                interrupted = True
            alarm.armed = False
        counts.interrupts += alarm.fired
        counts.close_reentries += sum(reentered)
        if interrupted:
            session.close()  # a second Ctrl+C cut the first close short: finish it
        del held
        if not session.closed:
            counts.problems.append("close(): the session is not closed")
        if adapter.closed:
            adapter = machine.adapter()
        adapter.start_session(CAPACITY).close()  # the session really ended
        adapter.close()
        counts.trials += 1


@contextmanager
def _counting(alarm: Alarm, counts: Counts) -> Iterator[None]:
    try:
        yield
    finally:
        counts.interrupts += alarm.fired


@contextmanager
def _telling(record: ExactlyOnce, counts: Counts) -> Iterator[None]:
    """A trial's loop ended by the library's error (a dead ring, say): what the record had
    found by then (a damaged packet, a duplicate) goes with it."""
    try:
        yield
    except WintunError:
        counts.problems.extend(record.tally(drained=False, cycled=False).problems[:3])
        raise


def _exchange_and_verify(host: Any, session: Session, record: ExactlyOnce, counts: Counts) -> None:
    """Two laps of the ring each way more, then the check of the whole trial (run even if
    the session stalled, so that duplicates are counted)."""
    exchanged = False
    try:
        exchange(host, session, record)
        exchanged = True
    finally:
        tally = record.tally(drained=exchanged, cycled=exchanged)
        counts.trials += 1
        counts.packets += tally.handed + tally.arrived
        counts.duplicates += tally.duplicates
        counts.documented_losses += min(tally.lost, tally.allowed_losses)
        if tally.problems:
            counts.losses += max(0, tally.lost - tally.allowed_losses)
            counts.problems.extend(tally.problems[:3])


TRIALS: dict[str, Callable[[Machine, random.Random, Counts, float], None]] = {
    "receive": _receive_trial,
    "send": _send_trial,
    "close": _close_trial,
}


# -- the child process ----------------------------------------------------------------------


def child(where: str, scenario: str, seconds: float, seed: int) -> int:
    """Run one scenario for ``seconds`` in this process; print its counts as one line."""
    faulthandler.dump_traceback_later(TRIAL_LIMIT + seconds, exit=True)  # stacks if hung
    machine = Machine(where)
    counts = Counts()
    try:
        TRIALS[scenario](machine, random.Random(seed), counts, seconds)
    except (WintunError, AssertionError, SessionClosedError, TimeoutError) as error:
        counts.errors += 1
        counts.problems.append(f"{scenario}: {type(error).__name__}: {error}")
    finally:
        machine.close()
    faulthandler.cancel_dump_traceback_later()
    print(_RESULT + json.dumps(asdict(counts)), flush=True)
    return 0


# -- the watchdog -----------------------------------------------------------------------------


def run_watched(
    where: str, scenario: str, seconds: float, seed: int, env: dict[str, str] | None = None
) -> Counts:
    """One child process running ``scenario``; a hang (or a crash) is counted, not waited for."""
    command = [sys.executable, "-m", "tests.reliability.signal_stress", "--child", where]
    command += ["--scenario", scenario, "--seconds", str(seconds), "--seed", str(seed)]
    counts = Counts()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TRIAL_LIMIT + seconds + 15,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        counts.hangs += 1
        stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else ""
        counts.problems.append(f"{scenario} seed {seed}: hung (killed); {stderr[-1500:]}")
        return counts
    results = [line for line in done.stdout.splitlines() if line.startswith(_RESULT)]
    if "Timeout (0:" in done.stderr:  # faulthandler's watchdog ended a hung child
        counts.hangs += 1
        counts.problems.append(f"{scenario} seed {seed}: hung; {done.stderr[-1500:]}")
    elif done.returncode != 0 or not results or "AddressSanitizer" in done.stderr:
        counts.errors += 1
        counts.problems.append(
            f"{scenario} seed {seed}: child exited {done.returncode}; {done.stderr[-1500:]}"
        )
    if results:
        found = json.loads(results[-1][len(_RESULT) :])
        problems = found.pop("problems")
        counts.add(Counts(**found, problems=[f"{scenario} seed {seed}: {p}" for p in problems]))
    return counts


def stress(
    where: str,
    seconds: float,
    per_child: float = 2.0,
    seed: int = 0,
    env: dict[str, str] | None = None,
    report: Callable[[str], None] | None = None,
) -> Counts:
    """Every scenario in turn, in child processes of ``per_child`` seconds, for ``seconds``."""
    total = Counts()
    deadline = time.monotonic() + seconds
    round_ = 0
    while True:
        for scenario in SCENARIOS:
            found = run_watched(where, scenario, per_child, seed * 100_003 + round_, env)
            if report is not None and found.failed:
                for problem in found.problems:
                    report(f"  {problem}")
            total.add(found)
            round_ += 1
        if time.monotonic() >= deadline:
            return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.signal_stress",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--backend", choices=BACKENDS, default="emulator")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--per-child", type=float, default=2.0, help="seconds of each child process (default 2)"
    )
    parser.add_argument(
        "--sanitize",
        action="store_true",
        help="the double built with AddressSanitizer (its runtime preloaded in the children)",
    )
    parser.add_argument("--child", metavar="WHERE", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not hasattr(signal, "setitimer"):
        print("needs POSIX signals (setitimer)")
        return 1
    if args.child is not None:
        return child(args.child, args.scenario, args.seconds, args.seed)
    env = None
    with tempfile.TemporaryDirectory(prefix="signal-stress-") as directory:
        where = "emulator"
        if args.backend == "double":
            if not double_available():
                print(f"double: not available ({NO_DOUBLE})")
                return 1
            where = str(build_double("0.14", Path(directory), sanitize=args.sanitize))
            if args.sanitize:
                runtime = asan_runtime()
                if runtime is None:
                    print("no AddressSanitizer runtime (libasan.so)")
                    return 1
                env = dict(os.environ, LD_PRELOAD=str(runtime), ASAN_OPTIONS="detect_leaks=0")
        started = time.monotonic()
        counts = stress(
            where, args.minutes * 60, args.per_child, seed=args.seed, env=env, report=print
        )
    print(
        f"{args.backend}{' (ASan)' if args.sanitize else ''}: {counts.trials} trials in "
        f"{time.monotonic() - started:.0f} s: {counts.packets} packets, {counts.interrupts} "
        f"interrupts ({counts.interrupts_in_receive} in a receive call, "
        f"{counts.close_reentries} close() re-entered), {counts.duplicates} duplicates, "
        f"{counts.losses} losses ({counts.documented_losses} documented), {counts.hangs} hangs, "
        f"{counts.errors} errors"
    )
    print("FAILED" if counts.failed else "OK")
    return 1 if counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
