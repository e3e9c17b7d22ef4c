"""wintun_cffi.fdevent: auto-reset and manual-reset events over descriptors."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterator

import pytest

from wintun_cffi import fdevent
from wintun_cffi.fdevent import FdEvent, WaitInterrupted


@pytest.fixture(params=["native", "socketpair"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "socketpair":
        monkeypatch.setattr(fdevent, "_HAS_EVENTFD", False)
    yield str(request.param)


def readable(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


def test_auto_reset_event_signal_is_taken_once(kind: str) -> None:
    event = FdEvent()
    assert not event.is_set() and not readable(event.fileno())
    assert not event.consume()
    event.set()
    event.set()  # signals coalesce
    assert event.is_set() and readable(event.fileno())
    assert event.is_set()  # is_set does not consume
    assert event.consume()
    assert not event.consume() and not event.is_set()
    event.close()
    assert event.fileno() == -1
    event.set()  # setting a closed event is harmless


def test_manual_reset_event_stays_set(kind: str) -> None:
    event = FdEvent(manual_reset=True)
    assert not event.consume()
    event.set()
    for _ in range(3):
        assert event.consume() and event.wait(0)
    event.close()


def test_wait_times_out_and_returns_a_signal(kind: str) -> None:
    event = FdEvent()
    assert event.wait(0) is False
    assert event.wait(0.01) is False
    event.set()
    assert event.wait(0) is True
    assert event.wait(0) is False
    event.close()


def test_wait_wakes_when_another_thread_sets(kind: str) -> None:
    event = FdEvent()
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(event.wait(10.0)))
    thread.start()
    event.set()
    thread.join(10.0)
    assert got == [True]
    event.close()


def test_one_signal_wakes_one_of_two_waiters(kind: str) -> None:
    event = FdEvent()
    results: list[bool] = []
    lock = threading.Lock()
    started = threading.Barrier(3)

    def waiter() -> None:
        started.wait(5.0)
        woke = event.wait(0.3)
        with lock:
            results.append(woke)

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait(5.0)
    event.set()
    for t in threads:
        t.join(10.0)
    assert sorted(results) == [False, True]
    event.close()


def test_interrupt_ends_a_wait(kind: str) -> None:
    event, interrupt = FdEvent(), FdEvent(manual_reset=True)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            event.wait(10.0, interrupt=interrupt)
        except WaitInterrupted as error:
            errors.append(error)

    thread = threading.Thread(target=waiter)
    thread.start()
    interrupt.set()
    thread.join(10.0)
    assert len(errors) == 1 and not thread.is_alive()
    event.set()
    with pytest.raises(WaitInterrupted):  # the interrupt wins even over a pending signal
        event.wait(0, interrupt=interrupt)
    assert event.consume()
    event.close()
    interrupt.close()


@pytest.mark.skipif(not hasattr(os, "eventfd"), reason="needs eventfd")
def test_adopted_eventfd_is_not_closed() -> None:
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    event = FdEvent(adopt_eventfd=fd)
    assert event.fileno() == fd
    os.eventfd_write(fd, 1)
    assert event.wait(0)
    event.set()
    assert os.eventfd_read(fd) == 1
    event.close()
    os.fstat(fd)  # still open
    os.close(fd)
