"""Closing, interrupting and abandoning: the contracts the reliability page states, one test
each, on the emulator and on the native C double (``rig``) unless the test says otherwise."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import pickle
import signal
import sys
import threading
import weakref
from typing import Any

import pytest

import wintun_cffi
from emulator import Emulator
from tests.support import wait_until
from wintun_cffi.api import Wintun
from wintun_cffi.errors import (
    PacketInUseError,
    PacketReleasedError,
    SessionClosedError,
)
from wintun_cffi.session import Session

from .interrupts import moves_packets
from .traffic import DoubleBuilds, Rig, make_packet

PACKET = make_packet(1, 1, 100)
TIMEOUT = 5.0


# -- closing from a signal handler ------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX signals (setitimer)")
def test_close_from_a_signal_handler_ends_the_session_when_the_call_returns(rig: Rig) -> None:
    seen: list[bool] = []

    def handler(signum: int, frame: object) -> None:
        rig.session.close()  # inside receive(): it cannot end the session under that call
        seen.append(rig.session._ended)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(SessionClosedError):
            rig.session.receive(timeout=TIMEOUT)  # blocked until the handler closes
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert seen == [False]  # deferred while the call was in progress
    assert rig.session._ended  # and done once it returned
    rig.session = rig.adapter.start_session(0x20000)  # the driver let the session go


# -- iteration ----------------------------------------------------------------------------------


def test_a_close_cut_short_while_ending_is_finished_by_the_next_start_session(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = rig.wintun.backend
    end_session = backend.end_session

    def interrupted(handle: Any) -> None:
        monkeypatch.setattr(backend, "end_session", end_session)  # once
        raise KeyboardInterrupt

    monkeypatch.setattr(backend, "end_session", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rig.session.close()
    assert rig.session.closed
    rig.session = rig.adapter.start_session(0x20000)  # the earlier one is ended first
    moves_packets(rig, rig.session)  # raises unless packets move both ways


def test_when_iteration_ends_the_session_has_ended(rig: Rig) -> None:
    for _ in range(20):
        session = rig.session
        started: list[Session] = []
        errors: list[BaseException] = []

        def iterate(session: Session, started: list[Session], errors: list[BaseException]) -> None:
            try:
                for packet in session:
                    packet.release()
                started.append(rig.adapter.start_session(0x20000))  # at once: no waiting
            except BaseException as error:  # reported below
                errors.append(error)

        worker = threading.Thread(target=iterate, args=(session, started, errors))
        worker.start()
        session.close()
        worker.join(TIMEOUT)
        assert not worker.is_alive() and not errors, errors
        rig.session = started[0]


# -- batches ------------------------------------------------------------------------------------


def test_release_many_is_all_or_nothing(rig: Rig) -> None:
    assert rig.host.deliver_many([PACKET, PACKET])
    first, second = rig.session.receive_many(2, timeout=TIMEOUT)
    with pytest.raises(ValueError, match="more than once"):
        rig.session.release_many([first, first])
    assert not first.released and bytes(first.data) == PACKET  # nothing changed
    second.release()
    with pytest.raises(PacketReleasedError):
        rig.session.release_many([first, second])
    assert not first.released
    rig.session.release_many([first])
    assert first.released
    assert rig.session.receive_packet() is None  # the next call is fine


def test_release_many_refused_for_an_exported_packet_changes_nothing(rig: Rig) -> None:
    packets = [make_packet(1, index, 100) for index in range(3)]
    assert rig.host.deliver_many(packets)
    received = rig.session.receive_many(3, timeout=TIMEOUT)
    exported = pickle.PickleBuffer(received[1].data)  # holds an export of the view
    with pytest.raises(PacketInUseError):
        rig.session.release_many(received)
    # All or none: every packet is still the application's, with its bytes.
    assert [bytes(packet.data) for packet in received] == packets
    assert not any(packet.released for packet in received)
    del exported
    rig.session.release_many(received)
    assert all(packet.released for packet in received)
    assert rig.host.deliver(PACKET)
    with rig.session.receive(timeout=TIMEOUT) as packet:  # the ring moved on
        assert bytes(packet.data) == PACKET


def test_an_empty_batch_is_released_like_any_other(rig: Rig) -> None:
    with rig.session.receive_batch(8, timeout=0.01) as batch:  # nothing came: empty
        assert len(batch) == 0
    assert batch.released
    with pytest.raises(PacketReleasedError):
        batch.release()
    assert rig.host.deliver(PACKET)
    with rig.session.receive_batch(8, timeout=TIMEOUT) as batch:
        assert [bytes(view) for view in batch] == [PACKET]


# -- the user's exception is never masked -------------------------------------------------------


def test_an_exception_in_the_with_block_is_not_replaced(rig: Rig) -> None:
    assert rig.host.deliver(PACKET)
    with pytest.raises(KeyError, match="mine"):
        with rig.session.receive(timeout=TIMEOUT) as packet:
            kept = packet.data[:4]  # a derived view (the native backend refuses the release)
            raise KeyError("mine")
    del kept
    assert rig.host.deliver(PACKET)
    with rig.session.receive(timeout=TIMEOUT) as again:  # the session carries on, settled
        assert bytes(again.data) == PACKET


def test_a_derived_view_delays_the_release_of_a_packet_in_use(rig: Rig) -> None:
    assert rig.host.deliver(PACKET)
    packet = rig.session.receive(timeout=TIMEOUT)
    kept = packet.data[:4]
    if rig.kernel is not None:  # only the native backend sees derived views
        with pytest.raises(PacketInUseError):
            packet.release()
        assert bytes(packet.data) == PACKET  # nothing changed
    del kept
    packet.release()


# -- timeouts -----------------------------------------------------------------------------------


def test_a_timeout_longer_than_any_system_wait(rig: Rig) -> None:
    threading.Timer(0.05, rig.host.deliver, (PACKET,)).start()
    with rig.session.receive(timeout=30 * 86400) as packet:  # 30 days: more than poll() takes
        assert bytes(packet.data) == PACKET


# -- a logger that raises -------------------------------------------------------------------------


def _wintun(kind: str, builds: DoubleBuilds) -> Wintun:
    if kind == "emulator":
        return wintun_cffi.emulated()
    from wintun_cffi.conformance.double.build import double_available

    from .traffic import NO_DOUBLE

    if not double_available():
        pytest.skip(NO_DOUBLE)
    return builds.get("0.14")[1]


@pytest.mark.parametrize("kind", ["emulator", "double"])
@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_logger_raising_to_stop_stops_the_program_after_the_call(
    kind: str, stop: type[BaseException], builds: DoubleBuilds
) -> None:
    wintun = _wintun(kind, builds)

    def logger(level: int, when: object, message: str) -> None:
        raise stop("from the logger")

    wintun.set_logger(logger)
    try:
        with pytest.raises(stop, match="from the logger"):
            wintun.open_adapter("NoSuchAdapter")  # logs, fails: the stop comes first
        wintun.set_logger(None)
        with pytest.raises(wintun_cffi.AdapterNotFoundError):
            wintun.open_adapter("NoSuchAdapter")  # nothing left pending
    finally:
        wintun.set_logger(None)


@pytest.mark.parametrize("kind", ["emulator", "double"])
def test_a_logger_raising_an_error_is_reported_and_ignored(
    kind: str, builds: DoubleBuilds, caplog: pytest.LogCaptureFixture
) -> None:
    wintun = _wintun(kind, builds)

    def logger(level: int, when: object, message: str) -> None:
        raise RuntimeError("broken logger")

    wintun.set_logger(logger)
    try:
        with caplog.at_level(logging.ERROR, logger="wintun_cffi.logbridge"):
            with pytest.raises(wintun_cffi.AdapterNotFoundError):
                wintun.open_adapter("NoSuchAdapter")
        assert "broken logger" in caplog.text
    finally:
        wintun.set_logger(None)


# -- abandoned send buffers racing close ---------------------------------------------------------


def test_buffers_dropped_while_closing_report_nothing(rig: Rig) -> None:
    unraisable: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        buffers = [rig.session.allocate_send_packet(100) for _ in range(50)]
        closer = threading.Thread(target=rig.session.close)
        closer.start()
        del buffers
        gc.collect()
        closer.join(TIMEOUT)
        assert not closer.is_alive()
    finally:
        sys.unraisablehook = previous
    assert unraisable == []
    rig.session = rig.adapter.start_session(0x20000)


# -- descriptors run out (emulator) -------------------------------------------------------------


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd (Linux)")
def test_start_session_out_of_descriptors_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator import backend as emulated
    from wintun_cffi.fdevent import FdEvent

    wintun = wintun_cffi.emulated()
    with wintun.create_adapter("Fds", tunnel_type="Test") as adapter:
        real = FdEvent
        made: list[int] = []

        def scarce(*args: Any, **kwargs: Any) -> Any:
            if len(made) == 2:
                raise OSError(24, "Too many open files")
            made.append(1)
            return real(*args, **kwargs)

        before = len(os.listdir("/proc/self/fd"))
        monkeypatch.setattr(emulated, "FdEvent", scarce)
        with pytest.raises(OSError, match="Too many"):
            adapter.start_session(0x20000)
        monkeypatch.undo()
        assert len(os.listdir("/proc/self/fd")) == before  # the two made were closed
        adapter.start_session(0x20000).close()  # no phantom session holds the adapter


# -- asyncio --------------------------------------------------------------------------------------


def _emulated_session() -> tuple[Emulator, Any, Session]:
    wintun = wintun_cffi.emulated()
    adapter = wintun.create_adapter("Async", tunnel_type="Test")
    backend = wintun.backend
    assert isinstance(backend, Emulator)
    return backend, adapter, adapter.start_session(0x20000)


def test_a_cancelled_worker_await_hands_its_signal_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the read-wait event is not pollable (Windows, the proactor loop) an executor
    thread waits; cancelling its await just as it takes the signal must not strand a packet."""
    from wintun_cffi import aio

    monkeypatch.setattr(aio, "_pollable_fd", lambda session, loop: None)
    _, adapter, session = _emulated_session()
    host = adapter.host

    async def trial() -> None:
        doomed = asyncio.ensure_future(session.receive_async())
        live = asyncio.ensure_future(session.receive_async())
        await asyncio.sleep(0.02)  # both workers wait on the event
        doomed.cancel()
        host.deliver(PACKET)  # one signal: maybe taken by the cancelled await's worker
        packet = await asyncio.wait_for(live, TIMEOUT)
        packet.release()

    try:
        for _ in range(15):
            asyncio.run(trial())
    finally:
        session.close()
        adapter.close()


def test_async_leaves_no_loop_or_session_behind() -> None:
    _, adapter, session = _emulated_session()
    host = adapter.host

    async def one() -> None:
        threading.Timer(0.01, host.deliver, (PACKET,)).start()
        receiving = session.receive_async()  # noqa: F821 (deleted below, after the runs)
        packet = await asyncio.wait_for(receiving, TIMEOUT)
        packet.release()

    for _ in range(5):
        asyncio.run(one())  # a new loop each time
    from wintun_cffi.aio import _AsyncState

    state = session._async  # registrations of the descriptor path (none on the worker path)
    assert state is None or (isinstance(state, _AsyncState) and not state.waiting)
    session.close()
    reference = weakref.ref(session)
    del session, state
    gc.collect()
    assert reference() is None  # no loop keeps the session alive
    adapter.close()


def test_close_wakes_awaiters_of_an_idle_loop_promptly() -> None:
    _, adapter, session = _emulated_session()
    loop = asyncio.new_event_loop()
    try:
        waiting = loop.create_task(session.receive_async())
        loop.run_until_complete(asyncio.sleep(0.02))  # the awaiter is registered; loop idles
        closer = threading.Thread(target=session.close)
        closer.start()
        closer.join(TIMEOUT)
        assert not closer.is_alive()  # close() never reaches into the idle loop
        with pytest.raises(SessionClosedError):
            loop.run_until_complete(asyncio.wait_for(waiting, TIMEOUT))
    finally:
        loop.close()
        adapter.close()
    assert wait_until(lambda: session._ended)
