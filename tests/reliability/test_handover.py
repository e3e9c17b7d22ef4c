"""Exactly once: the defects an adversarial hunt found on the packet path, one regression test
each (on the emulator and on the native C double, ``rig``, unless the test says otherwise).

Every test counts packets by their sequence numbers: each packet the system sent is handed
to the application once, and nothing is handed out twice. None calls ``gc.collect()``: the
cyclic collector is left to run (or not) as it would in a program.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from wintun_cffi import ledger
from wintun_cffi import packets as packets_module
from wintun_cffi.conformance.double.build import double_available
from wintun_cffi.errors import PacketInUseError, SessionActiveError

from .interrupts import Interrupter, traced
from .traffic import BACKENDS, HEADER_SIZE, NO_DOUBLE, Rig, make_packet, parse_packet

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = 9  # the producer id of the packets these tests send
TIMEOUT = 5.0


def _deliver(rig: Rig, first: int, count: int, size: int = 200) -> None:
    packets = [make_packet(SEQUENCE, number, size) for number in range(first, first + count)]
    assert rig.host.deliver_many(packets), "the ring took the packets"


def _number(data: bytes | memoryview) -> int:
    producer, number = parse_packet(bytes(data))
    assert producer == SEQUENCE
    return number


def _in_checkout(program: str) -> str:
    """``program``, importing this checkout's packages (an embedded Windows Python ignores
    the current directory and PYTHONPATH)."""
    return f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n{program}"


def _restart(rig: Rig) -> None:
    """A new session on the rig's adapter (the double's far side is new with it)."""
    rig.session = rig.adapter.start_session(0x20000)
    if rig.kernel is not None:
        assert rig.kernel.last_host is not None
        rig.host = rig.kernel.last_host


def _drain(rig: Rig) -> list[int]:
    """Every packet the session hands out now, released, by number."""
    numbers = []
    while (packet := rig.session.receive_packet()) is not None:
        numbers.append(_number(packet.data))
        packet.release()
    return numbers


@contextmanager
def _interrupt_at_line(code: Any, index: int) -> Iterator[list[int]]:
    """Raise KeyboardInterrupt at the ``index``-th line event inside ``code`` (as a Ctrl+C
    delivered there would); yields a list that counts the line events seen."""
    seen = [0]

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            seen[0] += 1
            if seen[0] == index + 1:
                raise KeyboardInterrupt
        return local

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    sys.settrace(trace)
    try:
        yield seen
    finally:
        sys.settrace(None)


# -- 1. an interrupt between recording packets and handing them out --------------------------


@pytest.mark.parametrize(
    "receive",
    [
        pytest.param(lambda session: [session.receive(timeout=TIMEOUT)], id="receive"),
        pytest.param(lambda session: session.receive_many(8, timeout=TIMEOUT), id="many"),
    ],
)
def test_an_interrupt_while_packets_are_recorded_hands_none_out_twice(
    rig: Rig, receive: Callable[[Any], list[Any]]
) -> None:
    code = ledger.Ledger._record.__code__
    sent = handed = 0
    index = 0
    while True:
        _deliver(rig, sent, 40)
        sent += 40
        numbers: list[int] = []
        with _interrupt_at_line(code, index) as seen:
            try:
                for packet in receive(rig.session):
                    numbers.append(_number(packet.data))
                    packet.release()
            except KeyboardInterrupt:
                pass
        numbers += _drain(rig)  # what the interrupted call had taken comes out here
        assert numbers == list(range(handed, sent)), f"interrupted at line {index}"
        handed = sent
        if seen[0] <= index:  # every line of the record was tried
            break
        index += 1
    assert index >= 3


def test_an_interrupt_while_copies_become_packets_keeps_ring_order(rig: Rig) -> None:
    """read() copies ahead; a zero-copy receive turns those copies into packets one by one. A
    Ctrl+C midway left the older ones queued and the newer ones copied, and read() handed the
    newer copies out first (found by the real-signal stress). At most the packet being made
    is lost, and what follows keeps ring order."""
    code = packets_module._RingPacket.__init__.__code__
    sent = handed = 0
    index = 0
    while True:
        _deliver(rig, sent, 12)
        sent += 12
        numbers = [_number(rig.session.read(timeout=TIMEOUT))]  # the rest is copied ahead
        with _interrupt_at_line(code, index) as seen:
            try:
                packet = rig.session.receive_packet()
                assert packet is not None
                numbers.append(_number(packet.data))
                packet.release()
            except KeyboardInterrupt:
                pass
        while True:
            try:
                numbers.append(_number(rig.session.read(timeout=0)))
            except TimeoutError:
                break
        assert numbers == sorted(set(numbers)), f"interrupted at line {index}: {numbers}"
        assert len(set(range(handed, sent)) - set(numbers)) <= 1, (index, numbers)
        handed = sent
        if seen[0] <= index:  # every line of every packet made was tried
            break
        index += 1
    assert index >= 8


# -- 1b. an interrupt inside a single allocation (found by the real-signal stress) ----------


@pytest.mark.parametrize("style", ["send", "allocate"])
def test_an_interrupt_inside_a_single_allocation_leaves_the_next_one_whole(
    rig: Rig, style: str
) -> None:
    """Cut short between queueing its size and allocating, an allocation once left its size
    for the next one, which then allocated that size and wrote its own past it (a corrupt
    ring on the native backend). A Ctrl+C at every point of one small send, then larger ones."""
    small, large = make_packet(SEQUENCE, 0, HEADER_SIZE), make_packet(SEQUENCE, 1, 1500)
    at = 1
    while True:
        interrupter = Interrupter("calls", at)
        with traced(interrupter):
            try:
                if style == "send":
                    rig.session.send(small)
                else:
                    with rig.session.allocate_send_packet(len(small)) as data:
                        data[:] = small
            except KeyboardInterrupt:
                pass
        for _ in range(3):
            rig.session.send(large)  # larger than what the interrupted call asked for
        arrived = [rig.host.receive(timeout=TIMEOUT) for _ in range(3)]
        arrived = [packet for packet in arrived if packet != small]  # it went, or not
        arrived += [rig.host.receive(timeout=TIMEOUT) for _ in range(3 - len(arrived))]
        assert arrived == [large] * 3, f"interrupted at {interrupter.fired_at}"
        rig.host.collect()
        if interrupter.fired_at is None:  # every point was tried
            break
        at += 1
    assert at >= 3


# -- 2. close() re-entered on the ending thread --------------------------------------------------

#: A signal handler's close() lands inside the end of the session (``end_session``) or of the
#: adapter (``close_adapter``): run in a process of its own, so that a hang fails the test.
_REENTRY = """
import sys
from tests.reliability.traffic import DoubleBuilds, open_rig

backend, where, again = sys.argv[1:4]
with open_rig(backend, 0x20000, DoubleBuilds()) as rig:
    session, adapter, target = rig.session, rig.adapter, rig.wintun.backend
    original = getattr(target, where)

    def ending(handle):
        if again in ("session", "both"):
            session.close()
        if again in ("adapter", "both"):
            adapter.close()
        assert not session._ended or where == "close_adapter"  # the end under way finishes
        original(handle)

    setattr(target, where, ending)
    (adapter if where == "close_adapter" else session).close()
    setattr(target, where, original)
    print("ended:", session._ended, adapter._ended)
"""


@pytest.mark.parametrize(
    ("where", "again", "adapter_ended"),
    [
        ("end_session", "session", False),
        ("end_session", "adapter", True),
        ("end_session", "both", True),
        ("close_adapter", "adapter", True),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_close_entered_again_while_ending_does_not_hang(
    backend: str, where: str, again: str, adapter_ended: bool
) -> None:
    if backend == "double" and not double_available():
        pytest.skip(NO_DOUBLE)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _in_checkout(_REENTRY), backend, where, again],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"close() entered again from {where} hung")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ended: True {adapter_ended}" in done.stdout


# -- 3. receive() then receive_batch() ------------------------------------------------------


def test_a_batch_of_prefetched_packets_leaves_no_record_behind(rig: Rig) -> None:
    session = rig.session
    sent = handed = 0
    for _ in range(60):  # more than twice the ring's capacity in all
        _deliver(rig, sent, 40, size=1000)
        sent += 40
        numbers = []
        with session.receive(timeout=TIMEOUT) as packet:  # prefetches the rest
            numbers.append(_number(packet.data))
        with session.receive_batch(64, timeout=TIMEOUT) as batch:  # those come first
            numbers += [_number(data) for data in batch]
        numbers += _drain(rig)
        assert numbers == list(range(handed, sent))
        handed = sent
        assert session._reads.entries == {}  # nothing out, nothing recorded
    assert sent * 1000 > 2 * session.capacity


def test_a_dropped_batch_of_prefetched_packets_is_given_back(rig: Rig) -> None:
    session = rig.session
    sent = 0
    for _ in range(60):
        _deliver(rig, sent, 40, size=1000)  # fails once the ring stalls
        sent += 40
        session.receive(timeout=TIMEOUT).release()
        session.receive_batch(64, timeout=TIMEOUT)  # dropped: never released
        _drain(rig)
    assert len(session._reads.entries) <= 2  # the latest drop at most waits for the next call


# -- 4. a batch whose view is exported --------------------------------------------------------


def test_a_batch_with_an_exported_view_is_refused_and_stays_usable(rig: Rig) -> None:
    session = rig.session
    _deliver(rig, 0, 3)
    batch = session.receive_batch(8, timeout=TIMEOUT)
    assert len(batch) == 3
    exported = pickle.PickleBuffer(batch[1])
    with pytest.raises(PacketInUseError):
        batch.release()
    assert [_number(data) for data in batch] == [0, 1, 2]  # nothing changed
    del exported
    batch.release()
    assert batch.released
    _deliver(rig, 3, 1)
    assert _drain(rig) == [3]


def test_close_with_an_exported_batch_view_ends_the_session(rig: Rig) -> None:
    session = rig.session
    _deliver(rig, 0, 3)
    batch = session.receive_batch(8, timeout=TIMEOUT)
    exported = pickle.PickleBuffer(batch[0])
    with pytest.warns(ResourceWarning) if rig.name == "double" else _nothing():
        session.close()
    assert session._ended
    del exported, batch
    _restart(rig)  # the adapter takes a new one
    _deliver(rig, 3, 1)
    assert _drain(rig) == [3]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# -- 6. a session nobody closed, and a start cut short --------------------------------------


def test_a_dropped_session_does_not_block_the_next_start(rig: Rig) -> None:
    rig.session.close()  # (the rig's own generator keeps its first session)
    _restart(rig)
    _deliver(rig, 0, 10)
    packet = rig.session.receive(timeout=TIMEOUT)  # the others are prefetched: recorded
    packet.release()
    del packet
    rig.session = None  # type: ignore[assignment]  # dropped, never closed
    with pytest.warns(ResourceWarning, match="unclosed"):
        _restart(rig)
    _deliver(rig, 10, 1)
    assert _drain(rig) == [10]


def test_a_start_interrupted_once_the_session_exists_does_not_block_the_next(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.session.close()

    class Interrupted(weakref.WeakSet[Any]):
        def add(self, item: Any) -> None:
            raise KeyboardInterrupt  # lands after Session(...) was made

    sessions = rig.adapter._sessions
    monkeypatch.setattr(rig.adapter, "_sessions", Interrupted())
    with pytest.warns(ResourceWarning, match="unclosed"):  # the lost session, ended
        try:
            rig.adapter.start_session(0x20000)
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(rig.adapter, "_sessions", sessions)
        _restart(rig)
    _deliver(rig, 0, 1)
    assert _drain(rig) == [0]


def test_a_session_kept_by_a_live_reference_is_still_refused(rig: Rig) -> None:
    with pytest.raises(SessionActiveError):
        rig.adapter.start_session(0x20000)
    assert not rig.session.closed


# -- 7. a session open at interpreter exit ----------------------------------------------------


def test_a_session_open_at_exit_is_closed_without_an_error() -> None:
    program = textwrap.dedent(
        """
        import atexit
        import warnings

        # Registered before the library's own hook, so it runs after it (last in, first out).
        atexit.register(lambda: print("closed at exit:", session.closed, adapter.closed))
        warnings.simplefilter("default")  # show the ResourceWarning

        import wintun_cffi

        wintun = wintun_cffi.emulated("0.14")
        adapter = wintun.create_adapter("Exit", tunnel_type="T")
        session = adapter.start_session(0x20000)
        adapter.host.deliver(bytes([0x45]) + bytes(39))
        packet = session.receive(timeout=5)  # out, never released
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", _in_checkout(program)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "closed at exit: True True" in done.stdout
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "Error" not in done.stderr, done.stderr


# -- 8. a packet lost to an interrupt does not hold Head under continuous traffic -------------


def test_an_abandoned_packet_is_given_back_without_a_wait(rig: Rig) -> None:
    session = rig.session
    _deliver(rig, 0, 1)
    session.receive(timeout=TIMEOUT)  # lost as it returned: nobody holds it
    sent, numbers = 1, []
    while sent * 1000 < 3 * session.capacity:  # three laps; the application never waits
        _deliver(rig, sent, 20, size=1000)
        sent += 20
        numbers += _drain(rig)
    assert numbers == list(range(1, sent))


# -- 9. arguments checked up front, the same on every backend -------------------------------


@pytest.mark.parametrize("timeout", [float("nan"), -1, "1", True])
def test_a_bad_timeout_is_refused_before_anything_happens(rig: Rig, timeout: Any) -> None:
    _deliver(rig, 0, 1)
    for call in (
        lambda: rig.session.receive(timeout=timeout),
        lambda: rig.session.receive_many(4, timeout=timeout),
        lambda: rig.session.receive_batch(4, timeout=timeout),
        lambda: rig.session.send(make_packet(1, 1, HEADER_SIZE), on_full="wait", timeout=timeout),
    ):
        with pytest.raises((TypeError, ValueError), match="timeout"):
            call()
    assert _drain(rig) == [0]  # nothing was taken


@pytest.mark.parametrize("style", ["many", "batch"])
def test_any_large_max_packets_takes_what_there_is(rig: Rig, style: str) -> None:
    _deliver(rig, 0, 5)
    if style == "many":
        packets = rig.session.receive_many(2**70, timeout=TIMEOUT)
        assert [_number(packet.data) for packet in packets] == list(range(5))
        rig.session.release_many(packets)
    else:
        with rig.session.receive_batch(2**70, timeout=TIMEOUT) as batch:
            assert [_number(data) for data in batch] == list(range(5))
