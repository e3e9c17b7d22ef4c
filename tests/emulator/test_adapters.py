"""Adapters, sessions and the API generations of emulator.backend.Emulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from emulator import Emulator
from wintun_cffi.backend import Backend
from wintun_cffi.constants import (
    API_GENERATIONS,
    ERROR_ALREADY_EXISTS,
    ERROR_ALREADY_INITIALIZED,
    ERROR_FILE_NOT_FOUND,
    ERROR_HANDLE_EOF,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_FOUND,
    ApiGeneration,
)
from wintun_cffi.errors import (
    AdapterNotFoundError,
    AlreadyExistsError,
    DriverNotLoadedError,
    HandleClosedError,
    InvalidParameterError,
    NotSupportedError,
    SessionActiveError,
    SessionEndedError,
    WintunError,
)

from .conftest import CAP, DEAD

APIS: list[ApiGeneration] = list(API_GENERATIONS)
POOL_ERA: list[ApiGeneration] = ["pool", "seed"]


def create(w: Emulator, name: str, guid: uuid.UUID | None = None, pool: str = "Pool") -> object:
    if w.api == "0.14":
        handle, reboot = w.create_adapter(name, tunnel_type="Test", requested_guid=guid)
    else:
        handle, reboot = w.create_adapter(name, pool=pool, requested_guid=guid)
    assert reboot is False
    return handle


def open_(w: Emulator, name: str, pool: str = "Pool") -> object:
    return w.open_adapter(name) if w.api == "0.14" else w.open_adapter(name, pool=pool)


def close(w: Emulator, handle: object) -> None:
    if w.api == "0.14":
        w.close_adapter(handle)
    else:
        w.free_adapter(handle)


def names(w: Emulator, handle: object) -> str:
    return w.get_adapter_name(handle)


@pytest.fixture(params=APIS)
def wintun(request: pytest.FixtureRequest) -> Emulator:
    api: ApiGeneration = request.param
    return Emulator(api)


def test_emulator_implements_the_backend_protocol(wintun: Emulator) -> None:
    assert isinstance(wintun, Backend)
    assert repr(wintun).startswith(f"Emulator(api={wintun.api!r}")


def test_unknown_generation_is_refused() -> None:
    with pytest.raises(ValueError):
        Emulator("0.13")  # type: ignore[arg-type]


# -- LUID, GUID, driver version ---------------------------------------------------------------


def test_luids_have_the_wintun_layout_and_are_unique(wintun: Emulator) -> None:
    handles = [create(wintun, f"A{i}") for i in range(5)]
    luids = [wintun.get_adapter_luid(h) for h in handles]
    assert len(set(luids)) == 5
    indexes = set()
    for luid in luids:
        assert luid >> 48 == 53
        assert luid & 0xFFFFFF == 0
        indexes.add((luid >> 24) & 0xFFFFFF)
    assert len(indexes) == 5 and 0 not in indexes
    assert wintun.get_adapter_luid(open_(wintun, "A3")) == luids[3]


def test_requested_guid_in_use_is_refused(wintun: Emulator) -> None:
    guid = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    create(wintun, "First", guid)
    with pytest.raises(AlreadyExistsError) as exc:
        create(wintun, "Second", guid)
    assert exc.value.winerror == ERROR_ALREADY_EXISTS
    assert wintun.adapter_names() == ["First"]
    create(wintun, "Third", uuid.UUID(int=guid.int + 1))


def test_bad_guid_type_is_refused(wintun: Emulator) -> None:
    with pytest.raises(TypeError):
        create(wintun, "G", "not-a-uuid")  # type: ignore[arg-type]
    assert wintun.adapter_names() == []


@pytest.mark.parametrize(
    ("api", "release", "version"),
    [
        ("0.14", None, 14),
        ("0.14", "0.14", 14),
        ("pool", None, 13),
        ("pool", "0.9.2", 9),
        ("pool", "0.10.3", 10),
        ("seed", None, 8),
    ],
)
def test_running_driver_version(api: ApiGeneration, release: str | None, version: int) -> None:
    wintun = Emulator(api, release=release)
    with pytest.raises(DriverNotLoadedError) as exc:
        wintun.get_running_driver_version()
    assert exc.value.winerror == ERROR_FILE_NOT_FOUND
    create(wintun, "V")
    assert wintun.get_running_driver_version() == (0 << 16) | version


@pytest.mark.parametrize(
    ("api", "release"), [("pool", "0.14.1"), ("0.14", "0.13"), ("seed", "0.9"), ("pool", "0.9.9")]
)
def test_a_release_of_another_generation_is_refused(api: ApiGeneration, release: str) -> None:
    with pytest.raises(ValueError, match="release must be one of"):
        Emulator(api, release=release)


def test_the_default_release_is_the_newest_of_the_generation() -> None:
    assert [Emulator(api).release.name for api in ("0.14", "pool", "seed")] == [
        "0.14.1",
        "0.13",
        "2020-11",
    ]


def test_delete_driver_0_14() -> None:
    wintun = Emulator("0.14")
    handle = create(wintun, "D")
    with pytest.raises(WintunError):
        wintun.delete_driver()
    assert wintun.adapter_names() == ["D"]
    wintun.close_adapter(handle)
    wintun.delete_driver()
    with pytest.raises(DriverNotLoadedError):
        wintun.get_running_driver_version()


@pytest.mark.parametrize("api", POOL_ERA)
def test_delete_pool_driver(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    create(wintun, "a1", pool="A")
    create(wintun, "a2", pool="a")
    other = create(wintun, "b1", pool="B")
    with pytest.raises(WintunError):
        wintun.delete_pool_driver("A")  # B's adapter still uses the driver
    assert wintun.adapter_names() == ["b1"]  # but A's adapters are gone
    assert wintun.get_running_driver_version() > 0
    wintun.delete_adapter(other, True)
    assert wintun.delete_pool_driver("B") is False
    with pytest.raises(DriverNotLoadedError):
        wintun.get_running_driver_version()


# -- logger -------------------------------------------------------------------------------------


def test_logger_0_14_gets_a_filetime_timestamp() -> None:
    wintun = Emulator("0.14")
    lines: list[tuple[int, int | None, str]] = []
    wintun.set_logger(lambda level, ts, msg: lines.append((level, ts, msg)))
    now = time.time_ns() // 100 + 116444736000000000
    create(wintun, "L")
    assert lines and any("Creating adapter" == m for _, _, m in lines)
    for level, ts, _ in lines:
        assert level in (0, 1, 2)
        assert isinstance(ts, int) and abs(ts - now) < 60 * 10**7
    lines.clear()
    with pytest.raises(AdapterNotFoundError):
        wintun.open_adapter("missing")
    assert lines and lines[-1][0] == 2
    wintun.set_logger(None)
    lines.clear()
    create(wintun, "M")
    assert lines == []


@pytest.mark.parametrize("api", POOL_ERA)
def test_logger_pool_era_gets_no_timestamp(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    lines: list[tuple[int, int | None, str]] = []
    wintun.set_logger(lambda level, ts, msg: lines.append((level, ts, msg)))
    create(wintun, "L")
    assert lines and all(ts is None for _, ts, _ in lines)
    assert any(m.endswith("Creating adapter") for _, _, m in lines)


def test_raising_logger_does_not_break_the_call(wintun: Emulator) -> None:
    def bad(level: int, ts: int | None, msg: str) -> None:
        raise RuntimeError("logger broke")

    wintun.set_logger(bad)
    handle = create(wintun, "Fine")
    assert wintun.get_adapter_luid(handle) >> 48 == 53
    with pytest.raises(AdapterNotFoundError):
        open_(wintun, "missing")


def test_non_callable_logger_is_refused(wintun: Emulator) -> None:
    with pytest.raises(TypeError):
        wintun.set_logger(42)  # type: ignore[arg-type]


# -- names -------------------------------------------------------------------------------------


def test_open_is_case_insensitive(wintun: Emulator) -> None:
    handle = create(wintun, "MyTun")
    opened = open_(wintun, "mytun")
    assert wintun.get_adapter_luid(opened) == wintun.get_adapter_luid(handle)
    if wintun.api != "0.14":
        assert names(wintun, opened) == "MyTun"


def test_duplicate_create_renames_the_old_holder(wintun: Emulator) -> None:
    first = create(wintun, "Dup")
    second = create(wintun, "Dup")
    assert sorted(wintun.adapter_names()) == ["Dup", "Dup 1"]
    third = create(wintun, "dup")
    assert sorted(wintun.adapter_names()) == ["Dup 1", "dup", "dup 2"]
    luid_of = {wintun.get_adapter_luid(h): h for h in (first, second, third)}
    assert wintun.get_adapter_luid(open_(wintun, "Dup")) == wintun.get_adapter_luid(third)
    assert wintun.get_adapter_luid(open_(wintun, "Dup 1")) == wintun.get_adapter_luid(first)
    assert wintun.get_adapter_luid(open_(wintun, "dup 2")) == wintun.get_adapter_luid(second)
    assert len(luid_of) == 3
    if wintun.api != "0.14":
        assert [names(wintun, h) for h in (first, second, third)] == ["Dup 1", "dup 2", "dup"]


@pytest.mark.parametrize(
    ("api", "code"),
    [
        ("0.14", ERROR_NOT_FOUND),
        ("pool", ERROR_FILE_NOT_FOUND),
        ("seed", ERROR_FILE_NOT_FOUND),
    ],
)
def test_open_missing(api: ApiGeneration, code: int) -> None:
    wintun = Emulator(api)
    with pytest.raises(AdapterNotFoundError) as exc:
        open_(wintun, "Nope")
    assert exc.value.winerror == code


@pytest.mark.parametrize("api", POOL_ERA)
def test_open_in_another_pool_already_exists(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    create(wintun, "X", pool="Alpha")
    with pytest.raises(AlreadyExistsError) as exc:
        wintun.open_adapter("X", pool="Beta")
    assert exc.value.winerror == ERROR_ALREADY_EXISTS
    open_(wintun, "x", pool="ALPHA")  # pools compare case-insensitively too


@pytest.mark.parametrize("api", POOL_ERA)
def test_set_and_get_name(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    a = create(wintun, "A")
    b = create(wintun, "B")
    wintun.set_adapter_name(a, "Renamed")
    assert names(wintun, a) == "Renamed"
    wintun.set_adapter_name(b, "Renamed")  # takes it; the holder becomes "Renamed 1"
    assert (names(wintun, a), names(wintun, b)) == ("Renamed 1", "Renamed")
    wintun.set_adapter_name(b, "Renamed")  # its own name: nothing moves
    assert (names(wintun, a), names(wintun, b)) == ("Renamed 1", "Renamed")
    with pytest.raises(ValueError):
        wintun.set_adapter_name(a, "")
    assert names(wintun, a) == "Renamed 1"


@pytest.mark.parametrize(
    "bad", ["", "nul\x00inside", "x" * 128, "\U0001f600" * 64], ids=["empty", "nul", "128", "utf16"]
)
def test_bad_adapter_names_create_nothing(wintun: Emulator, bad: str) -> None:
    with pytest.raises(ValueError):
        create(wintun, bad)
    with pytest.raises(ValueError):
        open_(wintun, bad)
    assert wintun.adapter_names() == []
    create(wintun, "x" * 127)
    assert wintun.adapter_names() == ["x" * 127]


@pytest.mark.parametrize("api", POOL_ERA)
def test_pool_name_limits(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    for bad in ["", "p\x00", "p" * 256]:
        with pytest.raises(ValueError):
            wintun.create_adapter("A", pool=bad)
    assert wintun.adapter_names() == []
    wintun.create_adapter("A", pool="p" * 255)
    with pytest.raises(TypeError):
        wintun.create_adapter("B", pool=None)
    with pytest.raises(TypeError):
        wintun.create_adapter("B", pool="P", tunnel_type="T")
    assert wintun.adapter_names() == ["A"]


def test_tunnel_type_rules_0_14() -> None:
    wintun = Emulator("0.14")
    for bad in ["", "t\x00", "t" * 128]:
        with pytest.raises(ValueError):
            wintun.create_adapter("A", tunnel_type=bad)
    with pytest.raises(TypeError):
        wintun.create_adapter("A")
    with pytest.raises(TypeError):
        wintun.create_adapter("A", tunnel_type="T", pool="P")
    with pytest.raises(TypeError):
        wintun.open_adapter("A", pool="P")
    assert wintun.adapter_names() == []
    wintun.create_adapter("A", tunnel_type="t" * 127)


# -- generation capabilities --------------------------------------------------------------------


def _calls(w: Emulator, h: object) -> dict[str, Callable[[], object]]:
    return {
        "WintunCloseAdapter": lambda: w.close_adapter(h),
        "WintunDeleteDriver": lambda: w.delete_driver(),
        "WintunFreeAdapter": lambda: w.free_adapter(h),
        "WintunDeleteAdapter": lambda: w.delete_adapter(h, False),
        "WintunEnumAdapters": lambda: w.enum_adapters("Pool", lambda a: True),
        "WintunDeletePoolDriver": lambda: w.delete_pool_driver("Pool"),
        "WintunGetAdapterName": lambda: w.get_adapter_name(h),
        "WintunSetAdapterName": lambda: w.set_adapter_name(h, "N"),
        "WintunOpenAdapterDeviceObject": lambda: w.open_adapter_device_object(h),
    }


_LACKS: dict[str, set[str]] = {
    "0.14": {
        "WintunFreeAdapter",
        "WintunDeleteAdapter",
        "WintunEnumAdapters",
        "WintunDeletePoolDriver",
        "WintunGetAdapterName",
        "WintunSetAdapterName",
        "WintunOpenAdapterDeviceObject",
    },
    "pool": {"WintunCloseAdapter", "WintunDeleteDriver", "WintunOpenAdapterDeviceObject"},
    "seed": {"WintunCloseAdapter", "WintunDeleteDriver"},
}


def test_functions_of_another_generation_are_not_supported(wintun: Emulator) -> None:
    handle = create(wintun, "Cap")
    for function, call in _calls(wintun, handle).items():
        if function not in _LACKS[wintun.api]:
            continue
        with pytest.raises(NotSupportedError) as exc:
            call()
        assert function in str(exc.value) and repr(wintun.api) in str(exc.value)
    assert wintun.adapter_names() == ["Cap"]


def test_seed_device_object() -> None:
    wintun = Emulator("seed")
    handle = create(wintun, "Dev")
    first = wintun.open_adapter_device_object(handle)
    second = wintun.open_adapter_device_object(handle)
    assert isinstance(first, int) and first != second
    wintun.delete_adapter(handle, False)
    with pytest.raises(AdapterNotFoundError):
        wintun.open_adapter_device_object(handle)


# -- handles ------------------------------------------------------------------------------------


def test_closed_handle_is_refused(wintun: Emulator) -> None:
    create(wintun, "H")
    handle = open_(wintun, "H")
    close(wintun, handle)
    with pytest.raises(HandleClosedError):
        wintun.get_adapter_luid(handle)
    with pytest.raises(HandleClosedError):
        wintun.start_session(handle, CAP)
    with pytest.raises(HandleClosedError):
        close(wintun, handle)
    assert wintun.adapter_names() == ["H"]  # an opened handle removes nothing
    with pytest.raises(TypeError):
        wintun.get_adapter_luid(object())


def test_0_14_close_of_the_creating_handle_removes_the_adapter() -> None:
    wintun = Emulator("0.14")
    handle = create(wintun, "Mine")
    other = open_(wintun, "Mine")
    luid = wintun.get_adapter_luid(handle)
    session = wintun.start_session(other, CAP)
    wintun.close_adapter(handle)
    assert wintun.adapter_names() == []
    assert wintun.wait_read_event(session, 5.0)
    with pytest.raises(SessionEndedError) as exc:
        wintun.receive_packet(session)
    assert exc.value.winerror == ERROR_HANDLE_EOF
    with pytest.raises(SessionEndedError):
        wintun.allocate_send_packet(session, 20)
    assert wintun.get_adapter_luid(other) == luid  # stale handle keeps the cached LUID
    with pytest.raises(AdapterNotFoundError):
        wintun.start_session(other, CAP)
    with pytest.raises(AdapterNotFoundError):
        wintun.open_adapter("Mine")
    wintun.end_session(session)
    wintun.close_adapter(other)


@pytest.mark.parametrize("api", POOL_ERA)
def test_pool_era_free_keeps_and_delete_removes(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    handle = create(wintun, "Keep")
    session = wintun.start_session(handle, CAP)
    wintun.free_adapter(handle)
    assert wintun.adapter_names() == ["Keep"]
    again = open_(wintun, "Keep")
    with pytest.raises(SessionActiveError):
        wintun.start_session(again, CAP)
    assert wintun.delete_adapter(again, True) is False
    assert wintun.adapter_names() == []
    with pytest.raises(SessionEndedError):
        wintun.receive_packet(session)
    wintun.delete_adapter(again, False)  # already gone: still fine
    wintun.end_session(session)
    wintun.free_adapter(again)


@pytest.mark.parametrize("api", POOL_ERA)
def test_enum_adapters(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    for name, pool in [("a", "P"), ("b", "Q"), ("c", "p"), ("d", "P")]:
        create(wintun, name, pool=pool)
    seen: list[str] = []
    handles: list[object] = []

    def callback(handle: object) -> bool:
        seen.append(wintun.get_adapter_name(handle))
        handles.append(handle)
        return True

    wintun.enum_adapters("P", callback)
    assert seen == ["a", "c", "d"]
    with pytest.raises(HandleClosedError):  # valid during its callback only
        wintun.get_adapter_name(handles[0])
    seen.clear()

    def stop_at_first(handle: object) -> bool:
        seen.append(wintun.get_adapter_name(handle))
        return False

    wintun.enum_adapters("P", stop_at_first)
    assert seen == ["a"]  # a false return stops the enumeration
    seen.clear()
    wintun.enum_adapters("Empty", callback)
    assert seen == []


# -- sessions -----------------------------------------------------------------------------------


def test_one_session_per_adapter(wintun: Emulator) -> None:
    handle = create(wintun, "S")
    session = wintun.start_session(handle, CAP)
    with pytest.raises(SessionActiveError) as exc:
        wintun.start_session(open_(wintun, "S"), CAP)
    assert exc.value.winerror == ERROR_ALREADY_INITIALIZED
    wintun.end_session(session)
    wintun.end_session(wintun.start_session(handle, CAP * 2))


@pytest.mark.parametrize("capacity", [0, 0x10000, 0x30000, 0x8000000, -1, True, 2.0])
def test_bad_capacity(wintun: Emulator, capacity: object) -> None:
    handle = create(wintun, "C")
    with pytest.raises(InvalidParameterError) as exc:
        wintun.start_session(handle, capacity)  # type: ignore[arg-type]
    assert exc.value.winerror == ERROR_INVALID_PARAMETER
    wintun.end_session(wintun.start_session(handle, CAP))


def test_largest_capacity(wintun: Emulator) -> None:
    handle = create(wintun, "Big")
    session = wintun.start_session(handle, 0x4000000)
    assert session.client.capacity == 0x4000000  # type: ignore[attr-defined]
    wintun.end_session(session)


def test_ended_session_is_refused(wintun: Emulator) -> None:
    handle = create(wintun, "E")
    session = wintun.start_session(handle, CAP)
    assert wintun.host(handle).deliver(b"\x45x")
    _, token = wintun.receive_packet(session)
    wintun.end_session(session)
    calls: list[Callable[[], object]] = [
        lambda: wintun.receive_packet(session),
        lambda: wintun.release_receive_packet(session, token),
        lambda: wintun.allocate_send_packet(session, 4),
        lambda: wintun.send_packet(session, token),
        lambda: wintun.end_session(session),
        lambda: wintun.get_read_wait_event(session),
        lambda: wintun.wait_read_event(session, 0),
        lambda: wintun.read_wait_fd(session),
        lambda: wintun.interrupt_waits(session),
    ]
    for call in calls:
        with pytest.raises(HandleClosedError):
            call()
    with pytest.raises(TypeError):
        wintun.receive_packet(object())
    wintun.end_session(wintun.start_session(handle, CAP))  # the adapter is free again


def test_read_wait_event_and_interrupt(wintun: Emulator) -> None:
    from wintun_cffi.errors import SessionClosedError

    handle = create(wintun, "W")
    session = wintun.start_session(handle, CAP)
    fd = wintun.get_read_wait_event(session)
    assert fd == wintun.read_wait_fd(session) and fd >= 0
    assert wintun.wait_read_event(session, 0) is False
    assert wintun.host(handle).deliver(b"\x45")
    assert wintun.wait_read_event(session, 5.0) is True
    assert wintun.wait_read_event(session, 0) is False  # auto-reset
    wintun.interrupt_waits(session)
    with pytest.raises(SessionClosedError):
        wintun.wait_read_event(session, 5.0)
    wintun.end_session(session)


def test_packets_round_trip_through_the_emulator(wintun: Emulator) -> None:
    handle = create(wintun, "RT")
    host = wintun.host(handle)
    session = wintun.start_session(handle, CAP)
    packet = b"\x45" + bytes(range(1, 40))
    view, token = wintun.allocate_send_packet(session, len(packet))
    view[:] = packet
    wintun.send_packet(session, token)
    assert host.receive(timeout=5.0) == packet
    assert host.deliver(packet[::-1])
    assert wintun.wait_read_event(session, 5.0)
    view, token = wintun.receive_packet(session)
    assert bytes(view) == packet[::-1]
    wintun.release_receive_packet(session, token)
    ring = session.client.send_ring  # type: ignore[attr-defined]
    assert ring.head == ring.tail == 44
    wintun.end_session(session)
    assert ring.tail == DEAD


# -- details checked against the real DLL and driver ------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_second_session_is_refused_before_the_capacity_is_checked(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    handle = create(wintun, "Busy")
    _busy = wintun.start_session(handle, CAP)  # held: a handle nothing holds is ended
    with pytest.raises(WintunError) as caught:
        wintun.start_session(handle, 0x12345)  # bad capacity too: the driver says busy first
    assert caught.value.winerror == ERROR_ALREADY_INITIALIZED


@pytest.mark.parametrize("api", APIS)
def test_a_renamed_holder_must_still_fit_the_name_buffer(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    longest = "n" * 127
    create(wintun, longest)
    with pytest.raises(WintunError) as caught:
        create(wintun, longest)  # the holder would become "nnn... 1": 129 characters
    assert caught.value.winerror == (111 if api == "0.14" else 87)
    assert wintun.adapter_names() == [longest]  # nothing created, nothing renamed


@pytest.mark.parametrize("api", POOL_ERA)
def test_delete_without_force_leaves_the_open_session_working(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    handle = create(wintun, "Held")
    session = wintun.start_session(handle, CAP)
    assert wintun.delete_adapter(handle, False) is True  # a reboot is required
    assert "Held" not in wintun.adapter_names()
    view, token = wintun.allocate_send_packet(session, 20)  # the session still works
    view[:] = bytes([0x45]) + bytes(19)
    wintun.send_packet(session, token)
    assert wintun.host(handle).receive(timeout=5) == bytes([0x45]) + bytes(19)
    wintun.end_session(session)
    assert wintun.host(handle).driver is None


@pytest.mark.parametrize("api", POOL_ERA)
def test_delete_with_force_ends_the_session(api: ApiGeneration) -> None:
    wintun = Emulator(api)
    handle = create(wintun, "Forced")
    session = wintun.start_session(handle, CAP)
    assert wintun.delete_adapter(handle, True) is False
    with pytest.raises(WintunError) as caught:
        wintun.allocate_send_packet(session, 20)
    assert caught.value.winerror == ERROR_HANDLE_EOF


def test_names_compare_one_character_at_a_time() -> None:
    wintun = Emulator("0.14")
    create(wintun, "Straße")
    create(wintun, "STRASSE")  # Windows keeps these apart: no rename
    assert sorted(wintun.adapter_names()) == ["STRASSE", "Straße"]
    create(wintun, "strasse")  # but this one takes "STRASSE"'s name, renaming the holder
    assert sorted(wintun.adapter_names()) == ["Straße", "strasse", "strasse 1"]
