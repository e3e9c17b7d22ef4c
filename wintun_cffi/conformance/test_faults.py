"""Faults only the emulator's far side can cause: the adapter terminating and corrupt rings
(what a driver does with a record that is not IP: test_generations.py). Each test skips where
the far side is a plain socket."""

from __future__ import annotations

import threading

import pytest

from wintun_cffi import RingCorruptError, Session, SessionClosedError, SessionEndedError
from wintun_cffi.constants import ERROR_HANDLE_EOF, ERROR_INVALID_DATA

from .farside import RawFarSide

TIMEOUT = 5.0


def test_termination_ends_the_session(session: Session, raw: RawFarSide) -> None:
    raw.terminate()
    with pytest.raises(SessionEndedError) as caught:
        session.receive(TIMEOUT)
    assert caught.value.winerror == ERROR_HANDLE_EOF
    assert not isinstance(caught.value, SessionClosedError)  # the driver ended it, not us
    with pytest.raises(SessionEndedError) as caught:
        session.allocate_send_packet(20)
    assert caught.value.winerror == ERROR_HANDLE_EOF
    with pytest.raises(SessionEndedError):
        session.receive_packet()
    session.close()  # closing an ended session is still fine


def test_termination_wakes_a_blocked_receiver(session: Session, raw: RawFarSide) -> None:
    errors: list[BaseException] = []
    blocked = threading.Event()

    def receive() -> None:
        blocked.set()
        try:
            session.receive(TIMEOUT * 2)
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=receive, daemon=True)
    worker.start()
    assert blocked.wait(TIMEOUT)
    raw.terminate()
    worker.join(TIMEOUT)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SessionEndedError)
    assert errors[0].winerror == ERROR_HANDLE_EOF


def test_corrupt_send_ring(session: Session, raw: RawFarSide) -> None:
    assert raw.deliver(bytes([0x45]) + bytes(27))
    raw.corrupt_record("send", 0, 0x10000)  # a Size above 0xFFFF
    for _ in range(2):  # a failed receive changes nothing, so it fails again
        with pytest.raises(RingCorruptError) as caught:
            session.receive_packet()
        assert caught.value.winerror == ERROR_INVALID_DATA
    with pytest.raises(RingCorruptError):
        session.receive(TIMEOUT)
