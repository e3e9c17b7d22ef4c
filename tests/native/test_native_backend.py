"""NativeBackend on the C test double, for each API generation: every C function through cffi.

Each test runs once per generation (the ``double`` fixture); the emulator host attached by
:class:`DoubleKernel` plays the kernel side of the rings.
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
import stat
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import wait_until
from wintun_cffi.api import Wintun
from wintun_cffi.conformance.double.kernel import adopt_event
from wintun_cffi.constants import (
    ERROR_ALREADY_EXISTS,
    ERROR_ALREADY_INITIALIZED,
    ERROR_FILE_NOT_FOUND,
    ERROR_INF_IN_USE_BY_DEVICES,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER,
    ERROR_NO_MORE_ITEMS,
    ERROR_NOT_SUPPORTED,
    IF_TYPE_PROP_VIRTUAL,
)
from wintun_cffi.errors import (
    AdapterNotFoundError,
    AlreadyExistsError,
    DriverNotLoadedError,
    HandleClosedError,
    InvalidParameterError,
    NoMoreItemsError,
    NotSupportedError,
    SessionActiveError,
    SessionClosedError,
    SessionEndedError,
    WintunError,
)
from wintun_cffi.native import NativeAdapter, NativeBackend, NativeSession
from wintun_cffi.platform import _win32
from wintun_cffi.platform.loader import open_wintun

from .conftest import CAPACITY, POOL, Double, run_in_thread

#: Each double's default driver version, (major << 16) | minor
#: (wintun_cffi/conformance/double/wintun_double.c).
DRIVER_VERSION = {"0.14": 14, "pool": 13, "seed": 8}
IPV4 = bytes([0x45]) + bytes(range(1, 20))


def pool_era(double: Double) -> None:
    if double.api == "0.14":
        pytest.skip("pool-era function; Wintun 0.14 has no such export")


# -- generation, driver version -------------------------------------------------------------


def test_generation_detected(double: Double) -> None:
    assert double.backend.api == double.api
    assert double.kernel.api == double.api
    assert double.backend.path == double.path


def test_driver_version_needs_a_loaded_driver(double: Double) -> None:
    with pytest.raises(DriverNotLoadedError) as caught:
        double.backend.get_running_driver_version()
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND
    assert "WintunGetRunningDriverVersion" in str(caught.value)
    assert "driver is not loaded" in str(caught.value)


def test_driver_version_once_an_adapter_exists(double: Double) -> None:
    double.create()
    assert double.backend.get_running_driver_version() == DRIVER_VERSION[double.api]
    double.loaded.helpers.WintunDoubleSetDriverVersion((1 << 16) | 2)
    assert double.backend.get_running_driver_version() == 0x10002


# -- adapters -------------------------------------------------------------------------------


def test_create_gives_a_virtual_luid(double: Double) -> None:
    first, second = double.create("First"), double.create("Second")
    luids = [double.backend.get_adapter_luid(a) for a in (first, second)]
    for luid in luids:
        assert luid >> 48 == IF_TYPE_PROP_VIRTUAL
        assert (luid >> 24) & 0xFFFFFF != 0  # NetLuidIndex
        assert luid & 0xFFFFFF == 0  # reserved bits
    assert luids[0] != luids[1]
    assert double.adapter_count() == 2


def test_requested_guid_round_trip(double: Double) -> None:
    guid = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")  # every field distinct
    adapter = double.create("Guided", requested_guid=guid)
    name, stored, present = double.adapter_info(adapter)
    assert stored == guid  # so the bytes went down in bytes_le order
    assert (name, present) == ("Guided", True)


def test_requested_guid_in_use_is_already_exists(double: Double) -> None:
    guid = uuid.uuid4()
    double.create("One", requested_guid=guid)
    with pytest.raises(AlreadyExistsError) as caught:
        double.create("Two", requested_guid=guid)
    assert caught.value.winerror == ERROR_ALREADY_EXISTS
    assert double.adapter_count() == 1


def test_bad_arguments_refused_before_the_call(double: Double) -> None:
    backend = double.backend
    with pytest.raises(ValueError):
        double.create("")
    with pytest.raises(ValueError):
        double.create("x" * 128)
    with pytest.raises(ValueError):
        double.create("nul\0name")
    with pytest.raises(TypeError):
        double.create("Guid", requested_guid="not-a-uuid")
    if double.api == "0.14":
        with pytest.raises(TypeError):
            backend.create_adapter("Pooled", tunnel_type="T", pool="P")
        with pytest.raises(TypeError):
            backend.create_adapter("NoType")  # neither: that generation's signature is wrong
        with pytest.raises(TypeError):
            backend.create_adapter("BadType", tunnel_type=b"T")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            backend.open_adapter("Any", pool="P")
    else:
        with pytest.raises(TypeError):
            backend.create_adapter("Typed", tunnel_type="T", pool="P")
        with pytest.raises(TypeError):
            backend.create_adapter("NoPool")
        with pytest.raises(TypeError):
            backend.create_adapter("BadPool", pool=7)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            backend.create_adapter("LongPool", pool="p" * 256)
    assert double.adapter_count() == 0


def test_open_missing_adapter(double: Double) -> None:
    with pytest.raises(AdapterNotFoundError) as caught:
        double.open("Nowhere")
    # 0.14 reports ERROR_NOT_FOUND, the pool era ERROR_FILE_NOT_FOUND.
    assert caught.value.winerror == (1168 if double.api == "0.14" else 2)
    function = {"seed": "WintunGetAdapter"}.get(double.api, "WintunOpenAdapter")
    assert function in str(caught.value)


def test_open_existing_adapter_case_insensitively(double: Double) -> None:
    created = double.create("Opened")
    opened = double.open("OPENED")
    assert isinstance(opened, NativeAdapter) and opened is not created
    assert double.backend.get_adapter_luid(opened) == double.backend.get_adapter_luid(created)


def test_open_in_another_pool_is_already_exists(double: Double) -> None:
    pool_era(double)
    double.create("Pooled")
    with pytest.raises(AlreadyExistsError) as caught:
        double.open("Pooled", pool="OtherPool")
    assert caught.value.winerror == ERROR_ALREADY_EXISTS


def test_close_adapter_removes_what_it_created(double: Double) -> None:
    if double.api != "0.14":
        pytest.skip("WintunCloseAdapter is 0.14 only")
    adapter = double.create("Closing")
    reader = double.open("Closing")
    double.backend.close_adapter(reader)  # a handle that did not create it: adapter stays
    assert double.adapter_count() == 1
    double.backend.close_adapter(adapter)
    assert double.adapter_count() == 0
    with pytest.raises(AdapterNotFoundError):
        double.open("Closing")
    with pytest.raises(HandleClosedError) as caught:
        double.backend.close_adapter(adapter)
    assert caught.value.winerror == ERROR_INVALID_HANDLE


def test_delete_driver(double: Double) -> None:
    if double.api != "0.14":
        pytest.skip("WintunDeleteDriver is 0.14 only")
    adapter = double.create("InUse")
    with pytest.raises(WintunError) as caught:
        double.backend.delete_driver()
    assert type(caught.value) is WintunError
    assert caught.value.winerror == ERROR_INF_IN_USE_BY_DEVICES
    double.backend.close_adapter(adapter)
    double.backend.delete_driver()


def test_free_adapter_keeps_the_adapter(double: Double) -> None:
    pool_era(double)
    adapter = double.create("Kept")
    double.backend.free_adapter(adapter)
    assert double.adapter_count() == 1
    double.open("Kept")
    with pytest.raises(HandleClosedError):
        double.backend.get_adapter_luid(adapter)


def test_delete_adapter(double: Double) -> None:
    pool_era(double)
    adapter = double.create("Doomed")
    assert double.backend.delete_adapter(adapter, False) is False
    assert double.adapter_count() == 0
    with pytest.raises(AdapterNotFoundError) as caught:
        double.open("Doomed")
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND
    with pytest.raises(AdapterNotFoundError):
        double.backend.get_adapter_name(adapter)  # the handle lives on; the adapter is gone
    assert double.backend.delete_adapter(adapter, False) is False  # already gone: success


def test_delete_adapter_with_a_session_pending_reboot(double: Double) -> None:
    pool_era(double)
    adapter = double.create("Busy")
    session = double.backend.start_session(adapter, CAPACITY)
    host = double.kernel.host_for(session.pointer)  # type: ignore[attr-defined]
    assert double.backend.delete_adapter(adapter, False) is True
    assert host.deliver(IPV4)  # the session keeps working until the reboot
    view, token = double.backend.receive_packet(session)
    assert bytes(view) == IPV4
    double.backend.release_receive_packet(session, token)


def test_enum_adapters(double: Double) -> None:
    pool_era(double)
    backend = double.backend
    for name in ("Alpha", "Beta", "Gamma"):
        double.create(name)
    double.create("Elsewhere", pool="OtherPool")
    seen: list[str] = []
    handles: list[object] = []

    def each(handle: object) -> bool:
        handles.append(handle)
        seen.append(backend.get_adapter_name(handle))
        return True

    backend.enum_adapters(POOL, each)
    assert sorted(seen) == ["Alpha", "Beta", "Gamma"]
    with pytest.raises(HandleClosedError):  # valid during its callback only
        backend.get_adapter_luid(handles[0])

    stopped: list[object] = []

    def first_only(handle: object) -> bool:
        stopped.append(handle)
        return False

    backend.enum_adapters(POOL, first_only)
    assert len(stopped) == 1  # False stops the enumeration
    backend.enum_adapters("EmptyPool", lambda handle: pytest.fail("no adapter in this pool"))


def test_enum_adapters_reraises_the_callback_exception(double: Double) -> None:
    pool_era(double)
    double.create("One")
    double.create("Two")

    class Boom(Exception):
        pass

    calls: list[object] = []

    def each(handle: object) -> bool:
        calls.append(handle)
        raise Boom("from the callback")

    with pytest.raises(Boom, match="from the callback"):
        double.backend.enum_adapters(POOL, each)
    assert len(calls) == 1  # the failing callback stopped the enumeration


def test_delete_pool_driver(double: Double) -> None:
    pool_era(double)
    double.create("Mine1")
    double.create("Mine2")
    assert double.backend.delete_pool_driver(POOL) is False
    assert double.adapter_count() == 0
    double.create("Mine3")
    double.create("Theirs", pool="OtherPool")
    with pytest.raises(WintunError) as caught:
        double.backend.delete_pool_driver(POOL)  # the other pool still uses the driver
    assert caught.value.winerror == ERROR_INF_IN_USE_BY_DEVICES
    assert double.adapter_count() == 1
    with pytest.raises(AdapterNotFoundError):
        double.open("Mine3")


@pytest.mark.parametrize("name", ["Tünnel ☃", "Ελληνικά", "emoji \U0001f600 pair", "x" * 127])
def test_adapter_name_round_trip(double: Double, name: str) -> None:
    pool_era(double)
    adapter = double.create("Plain")
    assert double.backend.get_adapter_name(adapter) == "Plain"
    double.backend.set_adapter_name(adapter, name)
    assert double.backend.get_adapter_name(adapter) == name
    assert double.adapter_info(adapter)[0] == name  # stored as UTF-16 by the double
    created = double.create(name + "2" if len(name) < 127 else "Other")
    assert double.backend.get_adapter_name(created) != name


def test_non_ascii_name_at_creation(double: Double) -> None:
    adapter = double.create("Tünnel ☃")
    assert double.adapter_info(adapter)[0] == "Tünnel ☃"
    opened = double.open("Tünnel ☃")
    assert double.backend.get_adapter_luid(opened) == double.backend.get_adapter_luid(adapter)


def test_set_adapter_name_takes_over_a_held_name(double: Double) -> None:
    pool_era(double)
    holder, taker = double.create("Wanted"), double.create("Taker")
    double.backend.set_adapter_name(taker, "Wanted")
    assert double.backend.get_adapter_name(taker) == "Wanted"
    assert double.backend.get_adapter_name(holder) == "Wanted 1"


def test_set_adapter_name_refuses_bad_names_before_the_call(double: Double) -> None:
    pool_era(double)
    adapter = double.create("Stays")
    for bad in ("", "a" * 128, "a\0b"):
        with pytest.raises(ValueError):
            double.backend.set_adapter_name(adapter, bad)
    with pytest.raises(TypeError):
        double.backend.set_adapter_name(adapter, b"bytes")  # type: ignore[arg-type]
    assert double.backend.get_adapter_name(adapter) == "Stays"


def test_adapter_name_of_a_removed_adapter(double: Double) -> None:
    pool_era(double)
    adapter = double.create("Leaving")
    double.backend.delete_adapter(adapter, True)
    with pytest.raises(AdapterNotFoundError) as caught:
        double.backend.set_adapter_name(adapter, "Back")
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND


def test_open_adapter_device_object(double: Double) -> None:
    if double.api != "seed":
        pytest.skip("WintunOpenAdapterDeviceObject is seed only")
    adapter = double.create("Device")
    handle = double.backend.open_adapter_device_object(adapter)
    if sys.platform == "win32":
        kernel32, kffi = _win32.kernel32()
        assert kernel32.CloseHandle(kffi.cast("HANDLE", handle))  # a real handle (to NUL)
    else:
        try:
            assert stat.S_ISCHR(os.fstat(handle).st_mode)  # the double hands out /dev/null
        finally:
            os.close(handle)
    double.backend.delete_adapter(adapter, True)
    with pytest.raises(AdapterNotFoundError) as caught:
        double.backend.open_adapter_device_object(adapter)
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND


OTHER_GENERATIONS: dict[str, list[str]] = {
    "0.14": [
        "free_adapter",
        "delete_adapter",
        "enum_adapters",
        "delete_pool_driver",
        "open_adapter_device_object",
        "get_adapter_name",
        "set_adapter_name",
    ],
    "pool": ["close_adapter", "delete_driver", "open_adapter_device_object"],
    "seed": ["close_adapter", "delete_driver"],
}


def test_functions_of_other_generations_are_not_supported(double: Double) -> None:
    adapter = double.create("Generation")
    backend: Any = double.backend
    calls = {
        "free_adapter": lambda: backend.free_adapter(adapter),
        "close_adapter": lambda: backend.close_adapter(adapter),
        "delete_adapter": lambda: backend.delete_adapter(adapter, True),
        "enum_adapters": lambda: backend.enum_adapters(POOL, lambda h: True),
        "delete_pool_driver": lambda: backend.delete_pool_driver(POOL),
        "delete_driver": lambda: backend.delete_driver(),
        "open_adapter_device_object": lambda: backend.open_adapter_device_object(adapter),
        "get_adapter_name": lambda: backend.get_adapter_name(adapter),
        "set_adapter_name": lambda: backend.set_adapter_name(adapter, "New"),
    }
    for function in OTHER_GENERATIONS[double.api]:
        with pytest.raises(NotSupportedError) as caught:
            calls[function]()
        assert caught.value.winerror == ERROR_NOT_SUPPORTED
        assert repr(double.api) in str(caught.value), function
    assert double.adapter_count() == 1 and not adapter.closed


# -- handles ----------------------------------------------------------------------------------


def test_closed_adapter_handle(double: Double) -> None:
    adapter = double.create("Handle")
    reader = double.open("Handle")
    double.release(reader)
    calls: tuple[Callable[[], object], ...] = (
        lambda: double.backend.get_adapter_luid(reader),
        lambda: double.backend.start_session(reader, CAPACITY),
        lambda: double.release(reader),
    )
    for call in calls:
        with pytest.raises(HandleClosedError) as caught:
            call()
        assert caught.value.winerror == ERROR_INVALID_HANDLE
    assert double.backend.get_adapter_luid(adapter) >> 48 == IF_TYPE_PROP_VIRTUAL


def test_handles_of_another_backend_or_kind(double: Double) -> None:
    other = NativeBackend(open_wintun(double.path))
    adapter = double.create("Mine")
    session = double.backend.start_session(adapter, CAPACITY)
    with pytest.raises(HandleClosedError, match="of another backend"):
        other.get_adapter_luid(adapter)
    with pytest.raises(HandleClosedError, match="of another backend"):
        other.start_session(adapter, CAPACITY)
    with pytest.raises(TypeError):
        double.backend.get_adapter_luid(session)  # a session is not an adapter
    with pytest.raises(TypeError):
        double.backend.get_adapter_luid(object())
    with pytest.raises(TypeError):
        double.backend.receive_packet(adapter)
    calls: tuple[Callable[[], object], ...] = (
        lambda: other.receive_packet(session),
        lambda: other.allocate_send_packet(session, 20),
        lambda: other.end_session(session),
        lambda: other.wait_read_event(session, 0),
        lambda: other.get_read_wait_event(session),
    )
    for call in calls:
        with pytest.raises(HandleClosedError, match="of another backend"):
            call()
    assert double.session_count() == 1


def test_ended_session_handle(double: Double) -> None:
    session, host = double.session()
    assert host.deliver(IPV4)
    _, token = double.backend.receive_packet(session)
    _, send_token = double.backend.allocate_send_packet(session, 20)
    double.backend.end_session(session)
    backend = double.backend
    calls: tuple[Callable[[], object], ...] = (
        lambda: backend.receive_packet(session),
        lambda: backend.release_receive_packet(session, token),
        lambda: backend.allocate_send_packet(session, 20),
        lambda: backend.send_packet(session, send_token),
        lambda: backend.get_read_wait_event(session),
        lambda: backend.wait_read_event(session, 0),
        lambda: backend.interrupt_waits(session),
        lambda: backend.read_wait_fd(session),
        lambda: backend.end_session(session),
    )
    for call in calls:
        with pytest.raises(HandleClosedError) as caught:
            call()
        assert caught.value.winerror == ERROR_INVALID_HANDLE
    assert double.session_count() == 0


# -- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0x10000, 0x30000, 0x8000000, 0])
def test_start_session_bad_capacity(double: Double, capacity: int) -> None:
    adapter = double.create("Capacity")
    with pytest.raises(InvalidParameterError) as caught:
        double.backend.start_session(adapter, capacity)
    assert caught.value.winerror == ERROR_INVALID_PARAMETER
    assert double.session_count() == 0


@pytest.mark.parametrize("capacity", [-1, 1 << 32])
def test_start_session_capacity_not_a_dword(double: Double, capacity: int) -> None:
    adapter = double.create("Dword")
    with pytest.raises(ValueError):
        double.backend.start_session(adapter, capacity)


def test_second_session_is_session_active(double: Double) -> None:
    adapter = double.create("Once")
    first = double.backend.start_session(adapter, CAPACITY)
    with pytest.raises(SessionActiveError) as caught:
        double.backend.start_session(double.open("Once"), CAPACITY)
    assert caught.value.winerror == ERROR_ALREADY_INITIALIZED
    double.backend.end_session(first)
    double.backend.start_session(adapter, CAPACITY)  # free again


def test_start_session_on_a_removed_adapter(double: Double) -> None:
    pool_era(double)
    adapter = double.create("Removed")
    double.backend.delete_adapter(adapter, True)
    with pytest.raises(AdapterNotFoundError) as caught:
        double.backend.start_session(adapter, CAPACITY)
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND


def test_read_wait_event_is_the_sessions_event(double: Double) -> None:
    session, host = double.session()
    event = double.backend.get_read_wait_event(session)
    # A descriptor an event loop can poll; on Windows a HANDLE, which it cannot.
    assert double.backend.read_wait_fd(session) == (None if sys.platform == "win32" else event)
    assert event > 0
    assert not adopt_event(event).consume()
    assert host.deliver(IPV4)
    assert adopt_event(event).consume()  # the driver signalled exactly this event


# -- packet tokens ----------------------------------------------------------------------------


def test_release_token_checks_change_nothing(double: Double) -> None:
    session, host = double.session()
    other, other_host = double.session()
    send_ring, _ = double.rings(session)
    assert host.deliver_many([IPV4, IPV4 + b"2"])
    assert other_host.deliver(IPV4)
    _, first = double.backend.receive_packet(session)
    _, foreign = double.backend.receive_packet(other)
    _, allocated = double.backend.allocate_send_packet(session, 20)
    head = send_ring.head
    for bad in (foreign, allocated, None, object(), [1], 12345):
        with pytest.raises(ValueError):
            double.backend.release_receive_packet(session, bad)
        assert send_ring.head == head
    double.backend.release_receive_packet(session, first)
    moved = send_ring.head
    assert moved != head
    with pytest.raises(ValueError):
        double.backend.release_receive_packet(session, first)  # twice
    assert send_ring.head == moved
    view, second = double.backend.receive_packet(session)
    assert bytes(view) == IPV4 + b"2"
    double.backend.release_receive_packet(session, second)


def test_send_token_checks_change_nothing(double: Double) -> None:
    session, host = double.session()
    other, _ = double.session()
    _, receive_ring = double.rings(session)
    assert host.deliver(IPV4)
    _, received = double.backend.receive_packet(session)
    _, foreign = double.backend.allocate_send_packet(other, 20)
    view, token = double.backend.allocate_send_packet(session, len(IPV4))
    view[:] = IPV4
    tail = receive_ring.tail
    for bad in (foreign, received, None, object(), {}):
        with pytest.raises(ValueError):
            double.backend.send_packet(session, bad)
        assert receive_ring.tail == tail
    double.backend.send_packet(session, token)
    assert host.receive(timeout=5) == IPV4
    with pytest.raises(ValueError):
        double.backend.send_packet(session, token)  # twice
    assert host.collect() == []


def test_stale_tokens_of_an_ended_session(double: Double) -> None:
    adapter = double.create("Stale")
    session = double.backend.start_session(adapter, CAPACITY)
    assert double.kernel.host_for(session.pointer).deliver(IPV4)  # type: ignore[attr-defined]
    _, received = double.backend.receive_packet(session)
    _, allocated = double.backend.allocate_send_packet(session, 20)
    double.backend.end_session(session)
    again = double.backend.start_session(adapter, CAPACITY)
    with pytest.raises(ValueError):
        double.backend.release_receive_packet(again, received)
    with pytest.raises(ValueError):
        double.backend.send_packet(again, allocated)


@pytest.mark.parametrize(
    ("size", "error"),
    [
        (-1, ValueError),
        (0x10000, ValueError),
        (1 << 32, ValueError),
        (True, TypeError),
        (1.5, TypeError),
        ("20", TypeError),
        (None, TypeError),
    ],
)
def test_bad_sizes_refused_before_the_c_call(
    double: Double, monkeypatch: pytest.MonkeyPatch, size: Any, error: type[Exception]
) -> None:
    real = double.backend._c_allocate
    calls: list[object] = []

    def spy(*args: object) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(double.backend, "_c_allocate", spy)  # before the session binds it
    session, host = double.session()
    _, receive_ring = double.rings(session)
    with pytest.raises(error):
        double.backend.allocate_send_packet(session, size)
    assert calls == []
    assert bytes(receive_ring.data[0:4]) == bytes(4)  # no record was reserved
    view, token = double.backend.allocate_send_packet(session, len(IPV4))
    view[:] = IPV4
    double.backend.send_packet(session, token)
    assert len(calls) == 1
    assert host.receive(timeout=5) == IPV4
    assert receive_ring.tail == 4 + len(IPV4)  # it was the ring's first record


def test_sizes_at_the_limits(double: Double) -> None:
    session, host = double.session()
    view, token = double.backend.allocate_send_packet(session, 0xFFFF)
    assert len(view) == 0xFFFF and not view.readonly
    view[:20] = IPV4
    double.backend.send_packet(session, token)
    assert len(host.receive(timeout=5)) == 0xFFFF
    empty, token = double.backend.allocate_send_packet(session, 0)
    assert len(empty) == 0
    double.backend.send_packet(session, token)  # no IP packet: the generation decides
    if double.api == "0.14":
        assert wait_until(lambda: host.statistics.in_discards == 1)
        double.backend.send_packet(session, double.backend.allocate_send_packet(session, 20)[1])
    else:  # the driver stops reading the ring at it
        assert wait_until(lambda: host.ring_field("receive", "head") == 0xFFFFFFFF)
        with pytest.raises(SessionEndedError):
            double.backend.allocate_send_packet(session, 20)
        assert host.statistics.in_discards == 0


def test_receive_on_an_empty_ring(double: Double) -> None:
    session, _ = double.session()
    with pytest.raises(NoMoreItemsError) as caught:
        double.backend.receive_packet(session)
    assert caught.value.winerror == ERROR_NO_MORE_ITEMS


# -- waiting ----------------------------------------------------------------------------------


def test_wait_read_event(double: Double) -> None:
    session, host = double.session()
    assert double.backend.wait_read_event(session, 0.01) is False
    assert host.deliver(IPV4)
    assert double.backend.wait_read_event(session, 5) is True
    assert double.backend.wait_read_event(session, 0) is False  # consumed


def test_wait_read_event_wakes_on_delivery_from_another_thread(double: Double) -> None:
    session, host = double.session()
    thread, outcome = run_in_thread(lambda: double.backend.wait_read_event(session, 30))
    assert host.deliver(IPV4)
    thread.join(30)
    assert outcome == [True]


def test_interrupt_waits_wakes_a_blocked_waiter(double: Double) -> None:
    session, _ = double.session()
    started = run_in_thread(lambda: double.backend.wait_read_event(session, None))
    thread, outcome = started
    thread.join(0.05)  # give it a chance to block; correctness does not depend on it
    double.backend.interrupt_waits(session)
    thread.join(30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], SessionClosedError)
    with pytest.raises(SessionClosedError):  # and every later wait
        double.backend.wait_read_event(session, 0)
    double.backend.end_session(session)


# -- logger -----------------------------------------------------------------------------------

Line = tuple[int, "int | None", str]


def filetime_now() -> int:
    """Now in 100 ns units since 1601-01-01 UTC."""
    epoch = datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)
    delta = datetime.datetime.now(datetime.timezone.utc) - epoch
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def test_logger_receives_lines_with_the_generations_abi(double: Double) -> None:
    lines: list[Line] = []
    double.backend.set_logger(
        lambda level, timestamp, message: lines.append((level, timestamp, message))
    )
    before = filetime_now()
    double.kernel.lib.WintunDoubleLog(2, "Tünnel ☃ line")
    after = filetime_now()
    assert len(lines) == 1
    level, timestamp, message = lines[0]
    assert (level, message) == (2, "Tünnel ☃ line")
    if double.api == "0.14":
        assert isinstance(timestamp, int)
        assert before - 10_000_000 <= timestamp <= after + 10_000_000  # clocks may differ a bit
    else:
        assert timestamp is None
    # The installed callback has the generation's exact C type; seed's returns a BOOL.
    callback = double.backend._logger_callback
    kind = double.backend._ffi.typeof(callback)
    assert len(kind.args) == (3 if double.api == "0.14" else 2)
    if double.api == "seed":
        assert kind.result.cname == "int"  # BOOL
        assert callback(1, "direct") == 1  # TRUE: keep logging
        assert lines[-1] == (1, None, "direct")
    else:
        assert kind.result.cname == "void"


def test_logger_sees_failures_of_calls(double: Double) -> None:
    lines: list[Line] = []
    double.backend.set_logger(lambda *line: lines.append(line))
    adapter = double.create("Logged")
    with pytest.raises(InvalidParameterError):
        double.backend.start_session(adapter, 0x10000)
    assert any(level == 2 and "(Code 87)" in message for level, _, message in lines)
    if double.api != "0.14":  # the pool era prefixes the function name
        assert any(message.startswith("StartSession: ") for _, _, message in lines)


def test_logger_removed(double: Double) -> None:
    lines: list[Line] = []
    double.backend.set_logger(lambda *line: lines.append(line))
    double.backend.set_logger(None)
    double.kernel.lib.WintunDoubleLog(0, "unheard")
    assert lines == []
    with pytest.raises(TypeError):
        double.backend.set_logger("not callable")  # type: ignore[arg-type]


def test_raising_logger_is_reported_and_the_call_goes_on(
    double: Double, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def logger(level: int, timestamp: int | None, message: str) -> None:
        calls.append(message)
        raise RuntimeError("logger trouble")

    double.backend.set_logger(logger)
    with caplog.at_level(logging.ERROR, logger="wintun_cffi.native"):
        adapter = double.create("StillCreated")  # the double logs while creating
        double.kernel.lib.WintunDoubleLog(1, "one more")
    assert double.adapter_info(adapter)[2] is True
    assert "one more" in calls and len(calls) >= 2
    reports = [r for r in caplog.records if r.name == "wintun_cffi.native"]
    assert len(reports) == len(calls)
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in reports)


def test_logger_outlives_the_backend_that_installed_it(double: Double) -> None:
    # The library's logger is global and Wintun may call it at any time: dropping the backend
    # (or the Wintun object) that set it must not leave the library calling a freed callback.
    # The dropped backend's own logger is gone with it; the others still hear the library.
    lines: list[Line] = []
    dropped = NativeBackend(open_wintun(double.path))
    dropped.set_logger(lambda *line: lines.append(line))
    del dropped
    gc.collect()
    churn = [double.loaded.helpers_ffi.callback("void(int)", lambda n: None) for _ in range(200)]
    double.kernel.lib.WintunDoubleLog(0, "after the backend is gone")  # a freed one would crash
    assert lines == []
    kept: list[str] = []
    double.backend.set_logger(lambda level, timestamp, message: kept.append(message))
    double.kernel.lib.WintunDoubleLog(0, "still heard")
    assert kept == ["still heard"]
    del churn


def _failing_call_through(wintun: Wintun, double: Double) -> WintunError:
    """A call of ``wintun`` that the double refuses, logging (capacity below its minimum)."""
    if double.api == "0.14":
        adapter = wintun.create_adapter(f"Logged {uuid.uuid4().hex[:6]}", tunnel_type="Tests")
    else:
        adapter = wintun.create_adapter(f"Logged {uuid.uuid4().hex[:6]}", pool=POOL)
    with adapter, pytest.raises(WintunError) as caught:
        wintun.call(wintun.backend.start_session, adapter.handle, 0x10000)
    return caught.value


def test_two_loads_of_one_library_each_keep_their_log(double: Double) -> None:
    """WintunSetLogger is one per library: a second load() must not take the first one's
    log away. Each call's error carries its lines; each object's logger gets every line."""
    first = Wintun(NativeBackend(open_wintun(double.path)))
    second = Wintun(NativeBackend(open_wintun(double.path)))
    heard: dict[str, list[str]] = {"first": [], "second": []}
    first.set_logger(lambda level, timestamp, message: heard["first"].append(message))
    second.set_logger(lambda level, timestamp, message: heard["second"].append(message))
    error = _failing_call_through(first, double)
    assert any("(Code 87)" in line for line in error.log), error.log
    assert set(error.log) <= set(heard["first"]) and set(error.log) <= set(heard["second"])
    error = _failing_call_through(second, double)
    assert any("(Code 87)" in line for line in error.log), error.log


def test_two_objects_logging_by_default_log_each_line_once(
    double: Double, caplog: pytest.LogCaptureFixture
) -> None:
    first = Wintun(NativeBackend(open_wintun(double.path)))
    second = Wintun(NativeBackend(open_wintun(double.path)))
    with caplog.at_level(logging.INFO, logger="wintun_cffi.driver"):
        double.kernel.lib.WintunDoubleLog(1, "once")
    assert [r.getMessage() for r in caplog.records if r.name == "wintun_cffi.driver"] == ["once"]
    del first, second


def test_logger_keeps_the_last_error(double: Double) -> None:
    double.backend.set_logger(lambda *line: None)
    with pytest.raises(AdapterNotFoundError) as caught:
        double.open("Missing")  # the double logs (0.14) before the error is read
    assert caught.value.winerror == (1168 if double.api == "0.14" else 2)


def test_sessions_tracked(double: Double) -> None:
    session, _ = double.session()
    assert isinstance(session, NativeSession)
    assert double.session_count() == 1
    assert repr(session).startswith("<NativeSession")
    double.backend.end_session(session)
    assert "ended" in repr(session)
    assert double.session_count() == 0
