"""Adapters: creating, opening, closing, naming, pools, the driver, the logger, validation.

Where the generations differ, one test states what each does (0.14 versus the pool era).
"""

from __future__ import annotations

import datetime
import uuid

import pytest

from wintun_cffi import (
    AdapterNotFoundError,
    AlreadyExistsError,
    DriverNotLoadedError,
    HandleClosedError,
    NotSupportedError,
    WintunError,
)
from wintun_cffi.constants import (
    ERROR_FILE_NOT_FOUND,
    ERROR_INF_IN_USE_BY_DEVICES,
    ERROR_NOT_FOUND,
    IF_TYPE_PROP_VIRTUAL,
    LOG_ERR,
    LOG_INFO,
    LOG_WARN,
    MIN_RING_CAPACITY,
)

from .backends import OTHER_POOL, POOL, BackendCase


def not_found_code(api: str) -> int:
    return ERROR_NOT_FOUND if api == "0.14" else ERROR_FILE_NOT_FOUND


def test_create_then_open_gives_the_same_adapter(backend: BackendCase) -> None:
    created = backend.create_adapter("Alpha")
    opened = backend.open_adapter(backend.adapter_name("Alpha"))
    assert opened.luid == created.luid
    assert created.luid >> 48 == IF_TYPE_PROP_VIRTUAL
    assert created.created and not opened.created
    other = backend.create_adapter("Beta")
    assert other.luid != created.luid


def test_open_is_case_insensitive(backend: BackendCase) -> None:
    created = backend.create_adapter("MixedCase")
    name = backend.adapter_name("MixedCase")
    assert backend.open_adapter(name.upper()).luid == created.luid
    assert backend.open_adapter(name.lower()).luid == created.luid


def test_open_missing_adapter(backend: BackendCase) -> None:
    with pytest.raises(AdapterNotFoundError) as caught:
        backend.open_adapter(backend.adapter_name("Missing"))
    assert caught.value.winerror == not_found_code(backend.api)


def test_closing_the_creating_handle(backend: BackendCase) -> None:
    """0.14: the adapter goes with the handle that created it; the pool era keeps it."""
    created = backend.create_adapter("Owner")
    name = backend.adapter_name("Owner")
    backend.open_adapter(name).close()  # closing another handle never removes it
    assert backend.open_adapter(name).luid == created.luid
    created.close()
    if backend.api == "0.14":
        with pytest.raises(AdapterNotFoundError):
            backend.open_adapter(name)
    else:
        assert backend.open_adapter(name).luid == created.luid


def test_close_is_idempotent_and_refuses_later_use(backend: BackendCase) -> None:
    adapter = backend.create_adapter()
    adapter.close()
    adapter.close()
    assert adapter.closed
    with pytest.raises(HandleClosedError):
        adapter.handle
    with pytest.raises(HandleClosedError):
        adapter.start_session(MIN_RING_CAPACITY)


def test_closing_the_adapter_closes_its_session(backend: BackendCase) -> None:
    adapter = backend.create_adapter()
    session = adapter.start_session(MIN_RING_CAPACITY)
    adapter.close()
    assert session.closed


def test_duplicate_name_renames_the_holder(backend: BackendCase) -> None:
    if backend.kind == "linux-tun":
        pytest.skip("a Linux interface name cannot be held twice: the TUN host refuses it")
    first = backend.create_adapter("Dup")
    second = backend.create_adapter("Dup")
    name = backend.adapter_name("Dup")
    assert backend.open_adapter(name).luid == second.luid
    assert backend.open_adapter(name + " 1").luid == first.luid
    if backend.api != "0.14":
        assert first.name == name + " 1"
        assert second.name == name


def test_requested_guid(backend: BackendCase) -> None:
    guid = uuid.uuid4()
    adapter = backend.create_adapter("Guided", guid=guid)
    assert adapter.guid == guid
    with pytest.raises(AlreadyExistsError):
        backend.create_adapter("Guided2", guid=guid)


def test_enumerate_pool(backend: BackendCase) -> None:
    """Pool era: adapters(pool) opens the pool's adapters only; 0.14 has no enumeration."""
    if backend.api == "0.14":
        with pytest.raises(NotSupportedError):
            backend.wintun.adapters(POOL)
        return
    a = backend.create_adapter("PoolA")
    b = backend.create_adapter("PoolB")
    backend.create_adapter("Elsewhere", pool=OTHER_POOL)
    found = backend.wintun.adapters(POOL)
    try:
        names = sorted(adapter.name for adapter in found)
        assert names == sorted([a.name, b.name])
        assert sorted(adapter.luid for adapter in found) == sorted([a.luid, b.luid])
    finally:
        for adapter in found:
            adapter.close()


def test_delete_adapter(backend: BackendCase) -> None:
    """Pool era: delete() removes the adapter, the handle stays to be freed; 0.14 refuses."""
    adapter = backend.create_adapter("Doomed")
    if backend.api == "0.14":
        with pytest.raises(NotSupportedError):
            adapter.delete()
        return
    session = adapter.start_session(MIN_RING_CAPACITY)
    adapter.delete(force_close_sessions=True)
    assert session.closed
    with pytest.raises(AdapterNotFoundError) as caught:
        backend.open_adapter(backend.adapter_name("Doomed"))
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND
    adapter.close()


def test_adapter_name(backend: BackendCase) -> None:
    """Pool era: the name is read from and written to Wintun; 0.14 cannot rename."""
    adapter = backend.create_adapter("Named")
    old = backend.adapter_name("Named")
    assert adapter.name == old
    if backend.api == "0.14":
        with pytest.raises(NotSupportedError):
            adapter.name = "Other"
        assert adapter.name == old
        return
    new = backend.adapter_name("Renamed")
    adapter.name = new
    assert adapter.name == new
    assert backend.open_adapter(new).luid == adapter.luid
    with pytest.raises(AdapterNotFoundError):
        backend.open_adapter(old)
    with pytest.raises(ValueError):
        adapter.name = ""
    assert adapter.name == new


def test_open_in_another_pool(backend: BackendCase) -> None:
    """Pool era: the name exists but not in that pool; 0.14 takes no pool at all."""
    backend.create_adapter("Pooled")
    name = backend.adapter_name("Pooled")
    if backend.api == "0.14":
        with pytest.raises(TypeError):
            backend.wintun.open_adapter(name, pool=POOL)
        return
    with pytest.raises(AlreadyExistsError):
        backend.open_adapter(name, pool=OTHER_POOL)


def test_running_driver_version(backend: BackendCase, wintun_release: str | None) -> None:
    """Each release reports its own driver's version (emulated: the release's table entry)."""
    backend.create_adapter()
    version = backend.wintun.running_driver_version
    assert isinstance(version, tuple) and len(version) == 2
    major, minor = version
    assert isinstance(major, int) and isinstance(minor, int)
    assert 0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF
    if backend.release is not None:
        assert version == backend.release.driver_version


def test_running_driver_version_without_a_driver(backend: BackendCase) -> None:
    if not backend.emulated_kernel:
        pytest.skip("a real system may have the driver loaded by others")
    with pytest.raises(DriverNotLoadedError) as caught:
        backend.wintun.running_driver_version
    assert caught.value.winerror == ERROR_FILE_NOT_FOUND


def test_delete_driver(backend: BackendCase) -> None:
    """0.14: refused while adapters exist, no pool argument. Pool era: takes a pool, removes
    its adapters, and fails while adapters of other pools keep the driver in use."""
    if not backend.emulated_kernel:
        pytest.skip("would uninstall the system's Wintun driver")
    wintun = backend.wintun
    if backend.api == "0.14":
        adapter = backend.create_adapter()
        with pytest.raises(TypeError):
            wintun.delete_driver(pool=POOL)
        with pytest.raises(WintunError) as caught:
            wintun.delete_driver()
        assert caught.value.winerror == ERROR_INF_IN_USE_BY_DEVICES
        assert backend.open_adapter(backend.adapter_name("Conformance")).luid == adapter.luid
        adapter.close()
        assert wintun.delete_driver() is False
        return
    with pytest.raises(TypeError):
        wintun.delete_driver()
    backend.create_adapter("Mine")
    other = backend.create_adapter("Theirs", pool=OTHER_POOL)
    with pytest.raises(WintunError) as caught:
        wintun.delete_driver(POOL)
    assert caught.value.winerror == ERROR_INF_IN_USE_BY_DEVICES
    with pytest.raises(AdapterNotFoundError):
        backend.open_adapter(backend.adapter_name("Mine"))
    theirs = backend.open_adapter(backend.adapter_name("Theirs"), pool=OTHER_POOL)
    assert theirs.luid == other.luid
    assert wintun.delete_driver(OTHER_POOL) is False


def test_logger_receives_lines(backend: BackendCase) -> None:
    lines: list[tuple[int, datetime.datetime | None, str]] = []
    backend.wintun.set_logger(lambda level, when, message: lines.append((level, when, message)))
    backend.create_adapter()
    assert lines, "creating an adapter logs"
    for level, when, message in lines:
        assert level in (LOG_INFO, LOG_WARN, LOG_ERR)
        assert isinstance(message, str) and message
        if backend.api == "0.14":
            assert isinstance(when, datetime.datetime) and when.tzinfo is not None
        else:
            assert when is None
    lines.clear()
    backend.wintun.set_logger(None)
    backend.create_adapter("Quiet")
    assert lines == []
    with pytest.raises(TypeError):
        backend.wintun.set_logger("not callable")  # type: ignore[arg-type]


def test_error_carries_the_log(backend: BackendCase) -> None:
    """A failing open carries the lines Wintun logged. 0.14 logs a missing name; the pool era
    logs a name of another pool (it does not log a plain miss)."""
    seen: list[str] = []
    backend.wintun.set_logger(lambda level, when, message: seen.append(message))
    caught: pytest.ExceptionInfo[WintunError]
    if backend.api == "0.14":
        with pytest.raises(AdapterNotFoundError) as caught:
            backend.open_adapter(backend.adapter_name("Nowhere"))
    else:
        backend.create_adapter("Elsewhere", pool=OTHER_POOL)
        with pytest.raises(AlreadyExistsError) as caught:
            backend.open_adapter(backend.adapter_name("Elsewhere"))
    assert caught.value.log, "a failing open logs why"
    assert all(isinstance(line, str) for line in caught.value.log)
    assert set(caught.value.log) <= set(seen)
    assert caught.value.log[-1] in str(caught.value)


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 128])
def test_bad_adapter_names(backend: BackendCase, name: str) -> None:
    with pytest.raises(ValueError):
        backend.create_adapter(name, exact=True)
    with pytest.raises(ValueError):
        backend.open_adapter(name)
    # Nothing was created: neither the name nor what a C string would make of it exists.
    leftover = name.split("\x00")[0][:127]
    if leftover:
        with pytest.raises(AdapterNotFoundError):
            backend.open_adapter(leftover)
    if backend.api != "0.14":
        assert backend.wintun.adapters(POOL) == []


@pytest.mark.parametrize("text", ["", "a\x00b", "x" * 128])
def test_bad_tunnel_type_or_pool(backend: BackendCase, text: str) -> None:
    name = backend.adapter_name("Valid")
    if backend.api == "0.14":
        with pytest.raises(ValueError):
            backend.wintun.create_adapter(name, tunnel_type=text)
    elif len(text) < 128:  # pools may be up to 255 characters
        with pytest.raises(ValueError):
            backend.wintun.create_adapter(name, pool=text)
        with pytest.raises(ValueError):
            backend.wintun.adapters(text)
    else:
        with pytest.raises(ValueError):
            backend.wintun.create_adapter(name, pool="p" * 256)
    with pytest.raises(AdapterNotFoundError):
        backend.open_adapter(name)


def test_tunnel_type_and_pool_belong_to_their_generation(backend: BackendCase) -> None:
    wintun = backend.wintun
    name = backend.adapter_name("Mixed")
    if backend.api == "0.14":
        with pytest.raises(TypeError):
            wintun.create_adapter(name, pool=POOL)
        with pytest.raises(TypeError):
            wintun.create_adapter(name)  # a tunnel type is required
        with pytest.raises(TypeError):
            wintun.create_adapter(name, tunnel_type="T", pool=POOL)
    else:
        with pytest.raises(TypeError):
            wintun.create_adapter(name, tunnel_type="T")
        with pytest.raises(TypeError):
            wintun.create_adapter(name)  # a pool is required
        with pytest.raises(TypeError):
            wintun.open_adapter(name)
    with pytest.raises(AdapterNotFoundError):
        backend.open_adapter(name)
