"""wintun_cffi.errors (Win32 code -> exception) and wintun_cffi.validate."""

from __future__ import annotations

import errno
import pickle
import uuid

import pytest

from wintun_cffi import constants as c
from wintun_cffi import errors as e
from wintun_cffi import validate as v


@pytest.mark.parametrize(
    ("code", "cls", "posix"),
    [
        (c.ERROR_NO_MORE_ITEMS, e.NoMoreItemsError, errno.EAGAIN),
        (c.ERROR_BUFFER_OVERFLOW, e.RingFullError, errno.ENOBUFS),
        (c.ERROR_HANDLE_EOF, e.SessionEndedError, errno.EPIPE),
        (c.ERROR_INVALID_DATA, e.RingCorruptError, errno.EBADMSG),
        (c.ERROR_FILE_NOT_FOUND, e.AdapterNotFoundError, errno.ENOENT),
        (c.ERROR_NOT_FOUND, e.AdapterNotFoundError, errno.ENOENT),
        (c.ERROR_ALREADY_EXISTS, e.AlreadyExistsError, errno.EEXIST),
        (c.ERROR_OBJECT_ALREADY_EXISTS, e.AlreadyExistsError, errno.EEXIST),
        (c.ERROR_ACCESS_DENIED, e.AccessDeniedError, errno.EACCES),
        (c.ERROR_ALREADY_INITIALIZED, e.SessionActiveError, errno.EBUSY),
        (c.ERROR_INVALID_PARAMETER, e.InvalidParameterError, errno.EINVAL),
        (c.ERROR_INVALID_HANDLE, e.HandleClosedError, errno.EBADF),
        (c.ERROR_NOT_SUPPORTED, e.NotSupportedError, errno.EOPNOTSUPP),
    ],
)
def test_error_from_code_picks_the_class(code: int, cls: type[e.WintunError], posix: int) -> None:
    error = e.error_from_code(code, "WintunSomething")
    assert type(error) is cls and isinstance(error, OSError)
    assert error.winerror == code and error.errno == posix
    assert str(error).startswith(f"[WinError {code}] WintunSomething: ERROR_")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.winerror == code and copy.strerror == error.strerror


def test_a_call_can_give_a_code_its_own_meaning() -> None:
    """ERROR_FILE_NOT_FOUND is a missing adapter, except from WintunGetRunningDriverVersion,
    where it means the driver is not loaded."""
    missing = e.error_from_code(c.ERROR_FILE_NOT_FOUND, "WintunOpenAdapter")
    assert type(missing) is e.AdapterNotFoundError
    assert "driver" not in str(missing)
    unloaded = e.error_from_code(c.ERROR_FILE_NOT_FOUND, "WintunGetRunningDriverVersion")
    assert type(unloaded) is e.DriverNotLoadedError
    assert not isinstance(unloaded, e.AdapterNotFoundError)
    assert unloaded.winerror == c.ERROR_FILE_NOT_FOUND and unloaded.errno == errno.ENOENT
    assert "ERROR_FILE_NOT_FOUND: the Wintun driver is not loaded" in str(unloaded)
    other = e.error_from_code(c.ERROR_ACCESS_DENIED, "WintunGetRunningDriverVersion")
    assert type(other) is e.AccessDeniedError


def test_a_failure_without_an_error_code_says_so() -> None:
    """A call that fails and leaves last error 0 (the real wintun.dll under Wine does) is not
    reported as "ERROR_SUCCESS"."""
    error = e.error_from_code(0, "WintunCreateAdapter")
    assert type(error) is e.WintunError and error.winerror == 0
    assert str(error) == (
        "[WinError 0] WintunCreateAdapter: failed without an error code (last error 0)"
    )
    assert "SUCCESS" not in str(error)


def test_an_ended_session_handle_is_a_closed_handle() -> None:
    error = e.HandleClosedError.session_ended("WintunReceivePacket")
    assert not isinstance(error, e.SessionEndedError)  # that one is the driver's doing
    assert error.winerror == c.ERROR_INVALID_HANDLE
    assert str(error).startswith("[WinError 6] WintunReceivePacket: the session handle is closed")
    assert "WintunEndSession" in str(error)
    closed = e.HandleClosedError.adapter_closed("WintunStartSession")
    assert "WintunStartSession: the adapter handle is closed" in str(closed)


def test_unknown_code_is_the_generic_error() -> None:
    error = e.error_from_code(12345)
    assert type(error) is e.WintunError and error.winerror == 12345
    assert str(error).startswith("[WinError 12345] ")


def test_default_codes_and_log() -> None:
    assert e.SessionClosedError("closed").winerror == c.ERROR_HANDLE_EOF
    assert issubclass(e.SessionClosedError, e.SessionEndedError)
    error = e.RingFullError("full")
    assert error.winerror == c.ERROR_BUFFER_OVERFLOW
    error.log = ("line one", "line two")
    assert str(error) == "[WinError 111] full (Wintun log: line one | line two)"


def test_not_supported_names_the_generation() -> None:
    error = e.NotSupportedError.for_generation("WintunDeleteDriver", "pool")
    assert "WintunDeleteDriver" in str(error) and "'pool'" in str(error)
    assert error.winerror == c.ERROR_NOT_SUPPORTED


@pytest.mark.parametrize(
    ("check", "limit"),
    [(v.check_adapter_name, 127), (v.check_tunnel_type, 127), (v.check_pool, 255)],
)
def test_text_limits(check: object, limit: int) -> None:
    assert callable(check)
    assert check("a" * limit) == "a" * limit
    for bad in ["", "a\x00b", "a" * (limit + 1), "\U0001f600" * (limit // 2 + 1)]:
        with pytest.raises(ValueError):
            check(bad)
    for wrong in [None, b"bytes", 5]:
        with pytest.raises(TypeError):
            check(wrong)


def test_packet_size() -> None:
    assert v.check_packet_size(0) == 0 and v.check_packet_size(0xFFFF) == 0xFFFF
    for bad in [-1, 0x10000]:
        with pytest.raises(ValueError):
            v.check_packet_size(bad)
    for wrong in [True, 1.0, "1", None]:
        with pytest.raises(TypeError):
            v.check_packet_size(wrong)


def test_capacity() -> None:
    for good in [0x20000, 0x40000, 0x4000000]:
        assert v.check_capacity(good) == good
    for bad in [0, 0x1FFFF, 0x30000, 0x8000000, -0x20000]:
        with pytest.raises(ValueError):
            v.check_capacity(bad)
    for wrong in [True, 0x20000 * 1.0, "0x20000"]:
        with pytest.raises(TypeError):
            v.check_capacity(wrong)


def test_guid() -> None:
    guid = uuid.uuid4()
    assert v.check_guid(guid) is guid and v.check_guid(None) is None
    with pytest.raises(TypeError):
        v.check_guid(str(guid))
