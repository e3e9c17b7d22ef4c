"""Handles: a backend takes only its own live handles (the Backend protocol's convention).

A handle already closed or ended, or one another backend made (even another instance of the
same kind over the same library), raises HandleClosedError; something that is not a handle
of the kind the call takes raises TypeError. Either way nothing changes: the handles involved
keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from wintun_cffi import (
    Adapter,
    HandleClosedError,
    NoMoreItemsError,
    Session,
    SessionEndedError,
)
from wintun_cffi.backend import Backend
from wintun_cffi.constants import MIN_RING_CAPACITY

from .backends import POOL, BackendCase


def adapter_calls(api: str) -> dict[str, Callable[[Backend, object], object]]:
    """The calls taking an adapter handle, closing it last (this generation's way)."""
    calls: dict[str, Callable[[Backend, object], object]] = {
        "start_session": lambda b, h: b.start_session(h, MIN_RING_CAPACITY),
        "get_adapter_luid": lambda b, h: b.get_adapter_luid(h),
    }
    if api == "0.14":
        calls["close_adapter"] = lambda b, h: b.close_adapter(h)
    else:
        calls["get_adapter_name"] = lambda b, h: b.get_adapter_name(h)
        calls["free_adapter"] = lambda b, h: b.free_adapter(h)
    return calls


SESSION_CALLS: dict[str, Callable[[Backend, object], object]] = {
    "receive_packet": lambda b, h: b.receive_packet(h),
    "allocate_send_packet": lambda b, h: b.allocate_send_packet(h, 20),
    "get_read_wait_event": lambda b, h: b.get_read_wait_event(h),
    "end_session": lambda b, h: b.end_session(h),
}


def assert_session_live(backend: Backend, handle: object) -> None:
    """The session still answers its own backend: its Send ring is empty, not ended."""
    with pytest.raises(NoMoreItemsError):
        backend.receive_packet(handle)


@pytest.fixture
def foreign(backend: BackendCase) -> Iterator[tuple[Backend, object, object]]:
    """Another backend of the same kind, with an adapter and a session it made:
    ``(other backend, adapter handle, session handle)``."""
    other = backend.another_backend()
    name = backend.adapter_name("Other")
    if backend.api == "0.14":
        adapter, _ = other.create_adapter(name, tunnel_type="WintunCffi")
    else:
        adapter, _ = other.create_adapter(name, pool=POOL)
    try:
        session = other.start_session(adapter, MIN_RING_CAPACITY)
        try:
            yield other, adapter, session
        finally:
            other.end_session(session)
    finally:
        if backend.api == "0.14":
            other.close_adapter(adapter)
        else:
            other.delete_adapter(adapter, True)
            other.free_adapter(adapter)
        close = getattr(other, "close", None)
        if close is not None:
            close()


def test_handles_of_another_backend_are_refused(
    backend: BackendCase,
    session: Session,
    foreign: tuple[Backend, object, object],
) -> None:
    ours = backend.wintun.backend
    other, adapter, other_session = foreign
    luid = other.get_adapter_luid(adapter)
    for name, call in adapter_calls(backend.api).items():
        with pytest.raises(HandleClosedError):
            call(ours, adapter)
        assert other.get_adapter_luid(adapter) == luid, name
    for call in SESSION_CALLS.values():
        with pytest.raises(HandleClosedError):
            call(ours, other_session)
        assert_session_live(other, other_session)
    assert_session_live(ours, session._handle)


def test_what_is_not_a_handle_of_the_kind_is_a_type_error(
    backend: BackendCase,
    adapter: Adapter,
    session: Session,
) -> None:
    ours = backend.wintun.backend
    not_adapters: list[object] = [None, "adapter", 12345, session._handle]
    not_sessions: list[object] = [None, "session", 12345, adapter.handle]
    for wrong in not_adapters:
        for call in adapter_calls(backend.api).values():
            with pytest.raises(TypeError):
                call(ours, wrong)
    for wrong in not_sessions:
        for call in SESSION_CALLS.values():
            with pytest.raises(TypeError):
                call(ours, wrong)
    assert not adapter.closed
    assert_session_live(ours, session._handle)
    assert ours.get_adapter_luid(adapter.handle) == adapter.luid


def test_an_ended_session_handle_is_a_closed_handle(backend: BackendCase, adapter: Adapter) -> None:
    """Not SessionEndedError, which says the driver or the adapter ended the session."""
    ours = backend.wintun.backend
    handle = ours.start_session(adapter.handle, MIN_RING_CAPACITY)
    ours.end_session(handle)
    for name, call in SESSION_CALLS.items():
        with pytest.raises(HandleClosedError) as caught:
            call(ours, handle)
        assert not isinstance(caught.value, SessionEndedError), name
    with adapter.start_session(MIN_RING_CAPACITY) as session:  # the adapter is free again
        assert_session_live(ours, session._handle)
