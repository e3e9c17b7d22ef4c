"""Ctrl+C at every step: a ``KeyboardInterrupt`` at each point the library runs through
during one operation (one interrupt per run), then a check that nothing was left broken.

A trace function counts the *interruption points* of an operation in the project's own files
(``wintun_cffi/`` and ``emulator/``); each run raises ``KeyboardInterrupt`` at one of them. Two
kinds of points:

* ``lines``: the start of every line executed (what a line-by-line debugger sees), except the
  line events at which nothing can interrupt a real program because nothing is called there:
  the implicit end of a ``with`` block (before its ``__exit__`` call), the entry of an
  exception handler (where a ``with`` block calls ``__exit__`` for an exception), and a line
  that starts with a ``NOP`` (a ``try:``). CPython's exception table does not cover those
  spots as it covers their neighbours, so an exception injected there would skip an
  ``__exit__`` or a ``finally`` (leaving a lock held), which no real Ctrl+C can do;
* ``calls``: where CPython really delivers a signal handler's exception, right after a call
  returns and when a function starts (finer than lines: mid-line, after each call).

After the interrupt: for a packet operation, the session must still move packets both ways,
more than twice the ring's capacity, so a stranded slot would show; for ``close()``, calling it
again must end the session, and the adapter must start a new session that moves packets both
ways. And every packet of the run, both ways, must have gone through *exactly once, in order*
(:mod:`tests.reliability.exactly_once`): what the operation and the check were handed, what
they sent and what the far side got. The one loss accepted is what a ``receive*`` call was
returning when the interrupt landed in it, counted. The cyclic garbage collector is left alone:
what an interrupted call left behind must be dealt with without it.

Usage (the full sweep; the test suite runs a bounded one)::

    python -m tests.reliability.interrupts                    # everything
    python -m tests.reliability.interrupts --backend double --operation close --every 1
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
        python -m tests.reliability.interrupts --backend double --sanitize
"""

from __future__ import annotations

import argparse
import dis
import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from wintun_cffi.conformance.double.build import double_available
from wintun_cffi.errors import WintunError
from wintun_cffi.session import Session

from .exactly_once import ExactlyOnce, recorded
from .traffic import BACKENDS, DoubleBuilds, Rig, make_packet, open_rig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = (os.path.join(ROOT, "wintun_cffi") + os.sep, os.path.join(ROOT, "emulator") + os.sep)
KERNEL = os.path.join(ROOT, "wintun_cffi", "conformance", "double", "kernel.py")
CAPACITY = 0x20000  # the smallest ring: a stranded slot blocks it soonest
MODES = ("lines", "calls")
#: Producer ids: packets the check sends and receives, and the ones an operation uses.
HEALTH, WORK = 7, 8
_CALLS = {dis.opmap[name] for name in ("CALL", "CALL_FUNCTION_EX") if name in dis.opmap}
_HEALTH_PACKETS = 2 * CAPACITY // 1500 + 32  # two laps of the ring and more, each way
_TIMEOUT = 5.0
#: Runs that may miss a point before it counts as not reached.
_ATTEMPTS = 3


# -- the interrupter -------------------------------------------------------------------------


class Interrupter:
    """The trace function: counts interruption points, raising at number ``at`` (1-based)."""

    def __init__(self, mode: str, at: int | None = None) -> None:
        self.mode = mode
        self.at = at
        self.points = 0
        self.fired_at: str | None = None
        self._last: dict[FrameType, int] = {}

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if event != "call" or not frame.f_code.co_filename.startswith(PROJECT):
            return None
        if _in_kernel(frame):
            return None  # the C double's kernel: the driver's side, where no Ctrl+C lands
        if self.mode == "calls":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            self._point(frame)  # a function starts: signals are checked here
        return self._local

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and self.mode == "lines":
            if frame.f_lasti not in _uninterruptible(frame.f_code):
                self._point(frame)
        elif event == "opcode":
            previous = self._last.get(frame)
            self._last[frame] = frame.f_lasti
            # A call just returned (one that raised goes to a handler, where no signal is
            # checked): the instruction after a CALL, right after that CALL ran.
            if previous is not None and _after_calls(frame.f_code).get(frame.f_lasti) == previous:
                self._point(frame)
        elif event == "return":
            self._last.pop(frame, None)
        return self._local

    def _point(self, frame: FrameType) -> None:
        self.points += 1
        if self.points == self.at and self.fired_at is None:
            code = frame.f_code
            self.fired_at = (
                f"{os.path.relpath(code.co_filename, ROOT)}:{frame.f_lineno}"
                f" (offset {frame.f_lasti})"
            )
            # CPython removes a trace function that raises: no 'return' event will drop the
            # frames kept here, and they would keep the interrupted calls' locals alive.
            self._last.clear()
            raise KeyboardInterrupt(f"interruption point {self.at}")


@functools.cache
def _uninterruptible(code: CodeType) -> frozenset[int]:
    """Offsets of line starts no signal can reach: a ``NOP`` (a ``try:`` line), an exception
    handler's entry (``PUSH_EXC_INFO``), and the start of a ``with`` block's implicit
    ``__exit__(None, None, None)`` call (three ``LOAD_CONST None`` and the call; after a
    ``SWAP`` where a ``return`` leaves the block)."""
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    found = {i.offset for i in instructions if i.opname in ("NOP", "PUSH_EXC_INFO")}
    for index in range(len(instructions) - 3):
        start = index + 1 if instructions[index].opname == "SWAP" else index
        window = instructions[start : start + 5]
        if (
            len(window) == 5
            and all(i.opname == "LOAD_CONST" and i.argval is None for i in window[:3])
            and any(i.opname == "CALL" and i.arg == 2 for i in window[3:])
        ):
            found.add(instructions[index].offset)
    return frozenset(found)


def _in_kernel(frame: FrameType | None) -> bool:
    """True inside the hooks by which the C double calls its kernel (the emulator's driver,
    standing in for wintun.sys, where a Ctrl+C in the application never arrives)."""
    while frame is not None:
        if frame.f_code.co_filename == KERNEL:
            return True
        frame = frame.f_back
    return False


@functools.cache
def _after_calls(code: CodeType) -> dict[int, int]:
    """The offset of each instruction that follows a call, mapped to the call's offset."""
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    return {
        after.offset: call.offset
        for call, after in itertools.pairwise(instructions)
        if call.opcode in _CALLS
    }


@contextmanager
def traced(interrupter: Interrupter) -> Iterator[None]:
    sys.settrace(interrupter)
    try:
        yield
    finally:
        sys.settrace(None)


# -- the operations -------------------------------------------------------------------------


@dataclass
class Operation:
    """``prepare(rig, record)`` runs untraced and returns what ``act(rig, state, record)``
    needs; both note in ``record`` every packet they deliver, are handed and send.
    ``receives``: how many packets one of the operation's ``receive*`` calls can return (what
    an interrupt landing as it returns may lose); 0 for an operation that receives nothing."""

    name: str
    prepare: Callable[[Rig, ExactlyOnce], Any]
    act: Callable[[Rig, Any, ExactlyOnce], None]
    receives: int = 0


def _deliver(rig: Rig, count: int, record: ExactlyOnce, size: int = 600) -> None:
    packets = [make_packet(WORK, index, size) for index in range(count)]
    if not rig.host.deliver_many(packets):
        raise RuntimeError("the ring did not take the operation's packets")
    record.on_delivered(packets)


def _delivered(count: int) -> Callable[[Rig, ExactlyOnce], None]:
    return lambda rig, record: _deliver(rig, count, record)


def _nothing(rig: Rig, record: ExactlyOnce) -> None:
    pass


def _receive_and_release(rig: Rig, _: None, record: ExactlyOnce) -> None:
    packet = rig.session.receive_packet()
    assert packet is not None
    record.on_handed(packet.data)
    packet.release()


def _receive_waiting(rig: Rig, _: None, record: ExactlyOnce) -> None:
    timer = threading.Timer(0.02, _deliver, (rig, 1, record))
    timer.start()
    try:
        with rig.session.receive(timeout=_TIMEOUT) as packet:
            record.on_handed(packet.data)
    finally:
        timer.join()


def _receive_many(rig: Rig, _: None, record: ExactlyOnce) -> None:
    packets = rig.session.receive_many(8, timeout=_TIMEOUT)
    for packet in packets:
        record.on_handed(packet.data)
    rig.session.release_many(packets)


def _receive_batch(rig: Rig, _: None, record: ExactlyOnce) -> None:
    with rig.session.receive_batch(8, timeout=_TIMEOUT) as batch:
        for data in batch:
            record.on_handed(data)


def _read(rig: Rig, _: None, record: ExactlyOnce) -> None:
    record.on_handed(rig.session.read(timeout=_TIMEOUT))


def _read_many(rig: Rig, _: None, record: ExactlyOnce) -> None:
    for data in rig.session.read_many(8, timeout=_TIMEOUT):
        record.on_handed(data)


def _read_into(rig: Rig, _: None, record: ExactlyOnce) -> None:
    buffer = bytearray(2048)
    size = rig.session.read_into(buffer, timeout=_TIMEOUT)
    record.on_handed(bytes(buffer[:size]))


def _sending(record: ExactlyOnce, packets: list[bytes], send: Callable[[], int]) -> None:
    """Run ``send`` (which sends a prefix of ``packets`` and returns its length), noting what
    went out: all of them maybe, if it was cut short."""
    try:
        count = send()
    except BaseException:
        for packet in packets:
            record.on_sent(packet, certain=False)
        raise
    for packet in packets[:count]:
        record.on_sent(packet)


def _allocate_and_send(rig: Rig, _: None, record: ExactlyOnce) -> None:
    packet = make_packet(WORK, 1, 300)

    def send() -> int:
        with rig.session.allocate_send_packet(len(packet)) as data:
            data[:] = packet
        return 1

    _sending(record, [packet], send)


def _abandon(rig: Rig, _: None, record: ExactlyOnce) -> None:
    rig.session.allocate_send_packet(300).abandon()


def _send(rig: Rig, _: None, record: ExactlyOnce) -> None:
    packet = make_packet(WORK, 1, 300)
    _sending(record, [packet], lambda: int(rig.session.send(packet)))


def _send_many(rig: Rig, _: None, record: ExactlyOnce) -> None:
    packets = [make_packet(WORK, index, 300) for index in range(8)]
    _sending(record, packets, lambda: rig.session.send_many(packets))


def _iterate(rig: Rig, _: None, record: ExactlyOnce) -> None:
    for packet in rig.session:
        record.on_handed(packet.data)
        packet.release()
        return


def _close(rig: Rig, _: None, record: ExactlyOnce) -> None:
    rig.session.close()


def _start_session(rig: Rig, _: None, record: ExactlyOnce) -> None:
    rig.session = rig.adapter.start_session(CAPACITY)


def _closed_first(rig: Rig, record: ExactlyOnce) -> None:
    rig.session.close()


OPERATIONS = {
    op.name: op
    for op in (
        Operation("receive_packet+release", _delivered(4), _receive_and_release, 1),
        Operation("receive (waiting)", _nothing, _receive_waiting, 1),
        Operation("receive_many+release_many", _delivered(12), _receive_many, 8),
        Operation("receive_batch", _delivered(12), _receive_batch, 8),
        Operation("read", _delivered(4), _read, 1),
        Operation("read_many", _delivered(12), _read_many, 8),
        Operation("read_into", _delivered(4), _read_into, 1),
        Operation("allocate+send", _nothing, _allocate_and_send),
        Operation("abandon", _nothing, _abandon),
        Operation("send", _nothing, _send),
        Operation("send_many", _nothing, _send_many),
        Operation("iterate", _delivered(2), _iterate, 1),
        Operation("close", _delivered(3), _close),
        Operation("start_session", _closed_first, _start_session),
    )
}
#: The operations that end the session they start with.
ENDING = ("close", "start_session")


# -- the checks -----------------------------------------------------------------------------


def _host_of(rig: Rig, session: Session) -> Any:
    if rig.kernel is None:
        return rig.adapter.host
    return rig.kernel.host_for(session._handle.pointer)  # type: ignore[attr-defined]


def moves_packets(rig: Rig, session: Session, record: ExactlyOnce | None = None) -> None:
    """:func:`exchange` with the far side of ``session`` in ``rig``."""
    exchange(_host_of(rig, session), session, record)


def exchange(host: Any, session: Session, record: ExactlyOnce | None = None) -> None:
    """More than two laps of the ring each way between ``session`` and ``host``, receiving
    in every style in turn: a stranded slot or a stuck waiter would stop it, and afterwards
    the session must record no packet (a leak otherwise). Every packet is noted in
    ``record``; without one, a record of its own is checked (exactly once, in order, the ring
    cycled twice)."""
    own = record is None
    if record is None:
        record = ExactlyOnce(session.capacity)
    size = 1500
    received = 0
    sent_to_app = 0
    turn = 0
    deadline = time.monotonic() + 10
    while received < _HEALTH_PACKETS:
        if time.monotonic() > deadline:
            raise AssertionError(f"the application received {received} of {_HEALTH_PACKETS}")
        # Bursts of 1 to 5: a receive then takes several at once, and keeps some for later.
        burst = min(1 + turn % 5, _HEALTH_PACKETS - sent_to_app)
        if burst > 0:
            packets = [make_packet(HEALTH, sent_to_app + index, size) for index in range(burst)]
            if host.deliver_many(packets):
                record.on_delivered(packets)
                sent_to_app += burst
        turn += 1
        for data in _receive_some(session, style=turn % len(_RECEIVE_STYLES)):
            key = record.on_handed(data)
            if key is not None and key[0] == HEALTH:
                received += 1
    for index in range(_HEALTH_PACKETS):
        packet = make_packet(HEALTH, index, size)
        session.send(packet, on_full="wait", timeout=_TIMEOUT)
        record.on_sent(packet)
    arrived = 0
    while arrived < _HEALTH_PACKETS:
        key = record.on_arrived(host.receive(timeout=_TIMEOUT))
        if key is not None and key[0] == HEALTH:
            arrived += 1
    # Everything was given back: the session records nothing more (a receive that waits
    # settles what an interrupt abandoned first).
    try:
        record.on_handed(session.read(timeout=0.01))
    except TimeoutError:
        pass
    held, _, allocated = recorded(session)
    if held or allocated:
        raise AssertionError(
            f"the session still records {held} received and {allocated} allocated packets "
            "that the application gave back or dropped: a leak"
        )
    if own:
        record.verify()


def _receive_some(session: Session, style: int) -> list[bytes]:
    """Packets received in one of the ways a program does it (each a copy; all released)."""
    how = _RECEIVE_STYLES[style]
    if how == "receive_many":
        packets = session.receive_many(16, timeout=0.05)
        copies = [bytes(packet.data) for packet in packets]
        session.release_many(packets)
        return copies
    if how == "receive_batch":
        with session.receive_batch(16, timeout=0.05) as batch:
            return [bytes(data) for data in batch]
    if how == "read_many":
        return session.read_many(16, timeout=0.05)
    if how == "read":
        try:
            return [session.read(timeout=0.05)]
        except TimeoutError:
            return []
    if how == "receive":
        try:
            with session.receive(timeout=0.05) as packet:
                return [bytes(packet.data)]
        except TimeoutError:
            return []
    copies = []
    for _ in range(16):
        one = session.receive_packet()
        if one is None:
            break
        copies.append(bytes(one.data))
        one.release()
    return copies


#: The ways :func:`moves_packets` receives, in turn.
_RECEIVE_STYLES = (
    "receive_many",
    "read",
    "receive_packet",
    "receive",
    "read_many",
    "receive_batch",
)


def _bounded(call: Callable[[], None], what: str) -> None:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            call()
        except BaseException as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=body, daemon=True, name=what)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        raise AssertionError(f"{what} hung")
    if errors:
        raise errors[0]


def check_after(rig: Rig, operation: str, record: ExactlyOnce) -> None:
    """The session (or, after close/start_session, a new one) works, and every packet went
    through exactly once, in order; raises if not. ``record`` holds what the operation did."""
    if operation in ENDING:
        # What the session still had in its ring ended with it: not lost, but nothing may
        # have been handed out twice or out of order.
        record.verify(drained=False, cycled=False)
        if operation == "start_session" and not rig.session.closed:
            session = rig.session  # the interrupt came after the new session was made
        else:
            _bounded(rig.session.close, "close() again")
            assert rig.session.closed
            session = rig.adapter.start_session(CAPACITY)
            rig.session = session
        record = ExactlyOnce(CAPACITY)
    else:
        session = rig.session
    _bounded(lambda: moves_packets(rig, session, record), "moving packets")
    record.verify()


# -- the sweep -----------------------------------------------------------------------------


@dataclass
class Outcome:
    operation: str
    backend: str
    mode: str
    points: int
    tried: int = 0
    interrupted: int = 0
    failures: list[str] = field(default_factory=list)


def _run_once(
    backend: str, operation: Operation, mode: str, at: int | None, builds: DoubleBuilds
) -> tuple[Interrupter, str | None]:
    with open_rig(backend, CAPACITY, builds) as rig:
        record = ExactlyOnce(CAPACITY)
        state = operation.prepare(rig, record)
        interrupter = Interrupter(mode, at)
        failure: str | None = None
        try:
            with traced(interrupter):
                operation.act(rig, state, record)
        except KeyboardInterrupt:
            if operation.receives:  # what the interrupted receive* was returning: lost
                record.may_lose(operation.receives)
        except (WintunError, ValueError, TimeoutError) as error:
            if interrupter.fired_at is None:
                failure = f"the operation failed without an interrupt: {error!r}"
        # No gc.collect(): what the interrupted frames held must not need the cyclic GC.
        if failure is None:
            try:
                check_after(rig, operation.name, record)
            except BaseException as error:
                failure = f"{type(error).__name__}: {error}"
        return interrupter, failure


def sweep(
    backend: str, name: str, mode: str, every: int = 1, builds: DoubleBuilds | None = None
) -> Outcome:
    """Interrupt ``name`` at every ``every``-th point (and the last) on ``backend``."""
    operation = OPERATIONS[name]
    own = builds is None
    builds = builds or DoubleBuilds()
    try:
        # The path can be a few points longer or shorter from run to run where it depends
        # on the driver thread's timing (is it asleep?): count the shortest of a few runs,
        # and try a point again when a run happened to end before it.
        points = []
        for _ in range(_ATTEMPTS):
            counted, failure = _run_once(backend, operation, mode, None, builds)
            if failure is not None:
                outcome = Outcome(name, backend, mode, counted.points)
                outcome.failures.append(f"without an interrupt: {failure}")
                return outcome
            points.append(counted.points)
        outcome = Outcome(name, backend, mode, min(points))
        chosen = sorted(set(range(1, outcome.points + 1, every)) | {outcome.points})
        for at in chosen:
            for _ in range(_ATTEMPTS):
                interrupter, failure = _run_once(backend, operation, mode, at, builds)
                if interrupter.fired_at is not None or failure is not None:
                    break
            outcome.tried += 1
            if interrupter.fired_at is not None:
                outcome.interrupted += 1
            if failure is not None:
                outcome.failures.append(f"point {at} ({interrupter.fired_at}): {failure}")
        return outcome
    finally:
        if own:
            builds.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--operation", choices=sorted(OPERATIONS), action="append")
    parser.add_argument("--mode", choices=MODES, action="append")
    parser.add_argument("--every", type=int, default=1, help="try every N-th point (default 1)")
    parser.add_argument(
        "--sanitize",
        action="store_true",
        help="the double built with AddressSanitizer (run with its runtime in LD_PRELOAD)",
    )
    args = parser.parse_args(argv)
    backends = args.backend or [b for b in BACKENDS if b != "double" or double_available()]
    builds = DoubleBuilds(sanitize=args.sanitize)
    failed = 0
    try:
        for backend in backends:
            for name in args.operation or OPERATIONS:
                for mode in args.mode or MODES:
                    started = time.monotonic()
                    outcome = sweep(backend, name, mode, args.every, builds)
                    failed += len(outcome.failures)
                    print(
                        f"{backend:8} {mode:5} {name:28} {outcome.points:4} points, "
                        f"{outcome.interrupted:4} interrupted, {len(outcome.failures)} failed "
                        f"({time.monotonic() - started:.1f} s)",
                        flush=True,
                    )
                    for failure in outcome.failures:
                        print(f"    {failure}", flush=True)
    finally:
        builds.close()
    print("interrupt sweep: " + ("all passed" if not failed else f"{failed} failures"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
