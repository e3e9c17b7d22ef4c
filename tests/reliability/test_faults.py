"""Faults: corrupt rings, raising callbacks, sessions ended under the application's feet, and
handles left to the garbage collector; on the emulator and on the native C double."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import wintun_cffi
from wintun_cffi.api import Wintun
from wintun_cffi.conformance.double.build import double_available
from wintun_cffi.constants import (
    ERROR_HANDLE_EOF,
    ERROR_INVALID_DATA,
)
from wintun_cffi.errors import (
    PacketReleasedError,
    RingCorruptError,
    SessionEndedError,
    WintunError,
)

from .traffic import HEADER_SIZE, NO_DOUBLE, DoubleBuilds, Rig, make_packet, wait_until

# -- corrupt rings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "size_field",
    [0x10000, 0x80000000 | HEADER_SIZE, 0xFFFFFFFF, 200],
    ids=["too-big", "release-flag", "all-ones", "past-tail"],
)
def test_corrupt_send_record_is_refused_every_time(rig: Rig, size_field: int) -> None:
    assert rig.host.deliver(make_packet(1, 0, HEADER_SIZE))
    rig.host.corrupt_record("send", 0, size_field)
    for _ in range(3):  # the reader does not move past a corrupt record
        with pytest.raises(RingCorruptError) as caught:
            rig.session.receive_packet()
        assert caught.value.winerror == ERROR_INVALID_DATA


@pytest.mark.parametrize(
    "tail, expected",
    [
        (0x20000, SessionEndedError),
        (0x20004, SessionEndedError),
        (0xFFFFFFFF, SessionEndedError),
        (0x7FFFFFFF, SessionEndedError),
        (2, RingCorruptError),
        (16, RingCorruptError),
        (31, RingCorruptError),
    ],
)
def test_corrupt_send_tail(rig: Rig, tail: int, expected: type[WintunError]) -> None:
    assert rig.host.deliver(make_packet(1, 0, HEADER_SIZE))  # a 32-byte record at 0
    rig.host.corrupt_index("send", "tail", tail)
    with pytest.raises(expected) as caught:
        rig.session.receive(timeout=1)
    assert type(caught.value) is expected


def test_corrupt_receive_record_ends_the_ring(rig: Rig) -> None:
    buffer = rig.session.allocate_send_packet(HEADER_SIZE)  # its record is at offset 0
    buffer.data[:] = make_packet(0, 0, HEADER_SIZE)
    rig.host.corrupt_record("receive", 0, 0x7FFFFFFF | 0x80000000)
    buffer.send()  # publishes a Tail computed from the corrupt size
    receive_ring = rig.host.driver.receive_ring if rig.host.driver else None
    assert receive_ring is not None
    assert wait_until(lambda: receive_ring.head == 0xFFFFFFFF)  # the driver killed the ring
    assert rig.host.statistics.in_errors == 0  # and counted nothing, as wintun.sys
    with pytest.raises(SessionEndedError) as caught:
        rig.session.allocate_send_packet(HEADER_SIZE)
    assert caught.value.winerror == ERROR_HANDLE_EOF
    assert rig.host.collect() == []


@pytest.mark.parametrize("head", [0xFFFFFFFF, 0x20000, 0x123456])
def test_corrupt_receive_head_ends_sending(rig: Rig, head: int) -> None:
    rig.host.corrupt_index("receive", "head", head)
    with pytest.raises(SessionEndedError):
        rig.session.send(make_packet(0, 0, 100))
    with pytest.raises(SessionEndedError):
        rig.session.send(make_packet(0, 0, 100), on_full="wait", timeout=1)


# -- raising callbacks -------------------------------------------------------------------


class Boom(Exception):
    """What the misbehaving callbacks raise."""


def _raising_logger(*args: object) -> None:
    raise Boom("logger failed")


def test_raising_logger_on_native_never_crosses_into_c(
    builds: DoubleBuilds, caplog: pytest.LogCaptureFixture
) -> None:
    if not double_available():
        pytest.skip(NO_DOUBLE)
    kernel, wintun = builds.get("0.14")
    try:
        wintun.backend.set_logger(_raising_logger)  # straight into the C library
        with caplog.at_level(logging.ERROR, logger="wintun_cffi.native"):
            kernel.lib.WintunDoubleLog(2, "a line the logger chokes on")
        assert any(
            "logger raised" in r.getMessage() and r.exc_info and r.exc_info[0] is Boom
            for r in caplog.records
        )
        caplog.clear()
        wintun.backend.set_logger(wintun._log)  # the Wintun's own bridge again
        wintun.set_logger(_raising_logger)  # the bridge catches it before cffi does
        with caplog.at_level(logging.ERROR):
            kernel.lib.WintunDoubleLog(2, "another line")
        assert any(
            "raised" in r.getMessage() and r.exc_info and r.exc_info[0] is Boom
            for r in caplog.records
        )
        with wintun.create_adapter("AfterLogger", tunnel_type="Reliability") as adapter:
            adapter.start_session(0x20000).close()  # the library still works
    finally:
        wintun.backend.set_logger(wintun._log)
        wintun.set_logger(None)


def test_raising_logger_on_emulator(caplog: pytest.LogCaptureFixture) -> None:
    wintun = wintun_cffi.emulated("0.14")
    wintun.set_logger(_raising_logger)
    with caplog.at_level(logging.ERROR):
        adapter = wintun.create_adapter("Logged", tunnel_type="Reliability")  # logs lines
    assert any(r.exc_info and r.exc_info[0] is Boom for r in caplog.records)
    adapter.close()


def _pool_wintuns(builds: DoubleBuilds) -> Iterator[Wintun]:
    yield wintun_cffi.emulated("pool")
    if double_available():
        yield builds.get("pool")[1]


def test_raising_enum_callback(builds: DoubleBuilds) -> None:
    for wintun in _pool_wintuns(builds):
        adapters = [wintun.create_adapter(f"Enum {i}", pool="Faults") for i in range(3)]
        try:
            calls: list[object] = []

            def callback(handle: object, calls: list[object] = calls) -> bool:
                calls.append(handle)
                raise Boom("enumeration callback failed")

            with pytest.raises(Boom):
                wintun.backend.enum_adapters("Faults", callback)
            assert len(calls) == 1  # the enumeration stopped at the failure
            found = wintun.adapters("Faults")  # and the library still enumerates
            assert sorted(a.name for a in found) == ["Enum 0", "Enum 1", "Enum 2"]
            for each in found:
                each.close()
        finally:
            for adapter in adapters:
                adapter.delete(force_close_sessions=True)
                adapter.close()


# -- a session ending with packets outstanding ------------------------------------------


def test_close_with_packets_outstanding(rig: Rig) -> None:
    assert rig.host.deliver(make_packet(1, 0, 64))
    received = rig.session.receive(timeout=5)
    allocated = rig.session.allocate_send_packet(64)
    received_view, allocated_view = received.data, allocated.data
    assert received_view[0] == 0x45
    rig.session.close()
    with pytest.raises(PacketReleasedError):
        _ = received.data
    with pytest.raises(PacketReleasedError):
        _ = allocated.data
    with pytest.raises(PacketReleasedError):
        received.release()
    with pytest.raises(PacketReleasedError):
        allocated.send()
    with pytest.raises(ValueError):  # the views themselves were released
        received_view[0]
    with pytest.raises(ValueError):
        allocated_view[0] = 1
    assert received.released and allocated.sent


# -- garbage collection without close -----------------------------------------------------


def test_gc_of_emulated_session_and_adapter() -> None:
    wintun = wintun_cffi.emulated("0.14")
    adapter = wintun.create_adapter("Forgotten", tunnel_type="Reliability")
    session = adapter.start_session(0x20000)
    host = adapter.host
    backend: Any = wintun.backend  # the Emulator, with its adapter_names()
    # Two blocks: a recorded warning keeps its source (the session, which holds the adapter).
    with pytest.warns(ResourceWarning, match="unclosed <Session"):
        del session
        gc.collect()
    with pytest.warns(ResourceWarning, match="unclosed <Adapter"):
        del adapter
        gc.collect()
    assert "Forgotten" not in backend.adapter_names()  # 0.14: the adapter went
    assert host.driver is None  # the session's driver stopped


def test_gc_of_native_session_and_adapter(builds: DoubleBuilds) -> None:
    if not double_available():
        pytest.skip(NO_DOUBLE)
    kernel, wintun = builds.get("0.14")
    counts = kernel.lib.WintunDoubleSessionCount, kernel.lib.WintunDoubleAdapterCount
    assert (counts[0](), counts[1]()) == (0, 0)
    adapter = wintun.create_adapter("Forgotten", tunnel_type="Reliability")
    session = adapter.start_session(0x20000)
    assert (counts[0](), counts[1]()) == (1, 1)
    with pytest.warns(ResourceWarning, match="unclosed <Session"):
        del session
        gc.collect()
    assert counts[0]() == 0  # the session really ended: a new one may start
    adapter.start_session(0x20000).close()
    with pytest.warns(ResourceWarning, match="unclosed <Adapter"):
        del adapter
        gc.collect()
    assert (counts[0](), counts[1]()) == (0, 0)
