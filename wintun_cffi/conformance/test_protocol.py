"""Each method of the Backend protocol (:class:`wintun_cffi.backend.Backend`), called directly.

The other files check behaviour through the high-level API, which reaches some methods only
through others (packets go through the ledgers) and tolerates some methods doing nothing. Here
every method has a test of its own: a backend whose method does nothing, or returns a wrong
value, fails it with a message that names the method, its Wintun function and the rule it
broke (see :func:`rule`). The repository checks that with mutants of the emulator, one per
method (``tests/test_conformance_mutants.py``).

Handles made here with the protocol's own calls are given back at the end of each test.
"""

from __future__ import annotations

import contextlib
import select
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from wintun_cffi import Adapter, Session
from wintun_cffi.backend import AdapterHandle, Backend, SessionHandle
from wintun_cffi.constants import API_GENERATIONS, ERROR_INF_IN_USE_BY_DEVICES, MIN_RING_CAPACITY
from wintun_cffi.errors import (
    AdapterNotFoundError,
    HandleClosedError,
    NotSupportedError,
    SessionClosedError,
    WintunError,
)
from wintun_cffi.ledger import Ledger

from .backends import POOL, BackendCase
from .farside import FarSide, RawFarSide, datagram_for_app, udp_to_far

TIMEOUT = 5.0


def rule(method: str, function: str, broken: str) -> str:
    """The message of a failed protocol check: ``Backend.method (WintunFunction): rule``."""
    return f"Backend.{method} ({function}): {broken}"


def protocol(backend: BackendCase) -> Backend:
    return backend.wintun.backend


def generation_arguments(api: str, pool: str = POOL) -> dict[str, Any]:
    """The keyword arguments of create_adapter in generation ``api``."""
    return {"tunnel_type": "WintunCffi"} if api == "0.14" else {"pool": pool}


def open_arguments(api: str) -> dict[str, Any]:
    return {} if api == "0.14" else {"pool": POOL}


#: Per generation-bound Wintun function: the protocol method and a call of it on a handle.
ABSENT_CALLS: dict[str, tuple[str, Any]] = {
    "WintunCloseAdapter": ("close_adapter", lambda api, handle: api.close_adapter(handle)),
    "WintunFreeAdapter": ("free_adapter", lambda api, handle: api.free_adapter(handle)),
    "WintunDeleteAdapter": (
        "delete_adapter",
        lambda api, handle: api.delete_adapter(handle, False),
    ),
    "WintunEnumAdapters": (
        "enum_adapters",
        lambda api, handle: api.enum_adapters(POOL, lambda found: True),
    ),
    "WintunDeleteDriver": ("delete_driver", lambda api, handle: api.delete_driver()),
    "WintunDeletePoolDriver": (
        "delete_pool_driver",
        lambda api, handle: api.delete_pool_driver(POOL),
    ),
    "WintunOpenAdapterDeviceObject": (
        "open_adapter_device_object",
        lambda api, handle: api.open_adapter_device_object(handle),
    ),
    "WintunGetAdapterName": ("get_adapter_name", lambda api, handle: api.get_adapter_name(handle)),
    "WintunSetAdapterName": (
        "set_adapter_name",
        lambda api, handle: api.set_adapter_name(handle, "Absent"),
    ),
}


def present(backend: BackendCase, function: str, *apis: str) -> bool:
    """True if ``function`` is in the backend's generation (one of ``apis``); otherwise
    checks that calling it raises NotSupportedError before anything happens, and is False."""
    if backend.api in apis:
        return True
    method, call = ABSENT_CALLS[function]
    handle = backend.create_adapter("Absent").handle
    try:
        call(protocol(backend), handle)
    except NotSupportedError:
        return False
    pytest.fail(
        rule(
            method,
            function,
            f"generation {backend.api} lacks it: the call must raise NotSupportedError",
        )
    )


def give_back(api: Backend, handle: object, *, delete: bool = False) -> None:
    """Close (0.14) or delete and free (pool era) an adapter handle; errors ignored (the
    test has already failed, or the handle is already gone)."""
    with contextlib.suppress(Exception):
        if api.api == "0.14":
            api.close_adapter(handle)
            return
        if delete:
            with contextlib.suppress(Exception):
                api.delete_adapter(handle, True)
        api.free_adapter(handle)


@contextlib.contextmanager
def low_level_adapter(backend: BackendCase, base: str) -> Iterator[tuple[object, str]]:
    """An adapter made with ``create_adapter`` itself: (handle, name); removed afterwards."""
    api = protocol(backend)
    name = backend.adapter_name(base)
    result = api.create_adapter(name, **generation_arguments(backend.api))
    handle = result[0] if isinstance(result, tuple) and result else result
    try:
        yield handle, name
    finally:
        give_back(api, handle, delete=True)


@contextlib.contextmanager
def low_level_session(backend: BackendCase, adapter: Adapter) -> Iterator[object]:
    """A session made with ``start_session`` itself; ended afterwards."""
    api = protocol(backend)
    handle = api.start_session(adapter.handle, MIN_RING_CAPACITY)
    try:
        yield handle
    finally:
        with contextlib.suppress(Exception):
            api.end_session(handle)


def drain_read_event(api: Backend, handle: object) -> None:
    """Consume a signal already pending (bounded: a broken wait cannot loop forever)."""
    for _ in range(4):
        if not api.wait_read_event(handle, 0):
            return


def receive_from_far(api: Backend, session: Session, far: FarSide, payload: bytes) -> Any:
    """Have the far side send ``payload``; the (view, token) of the packet carrying it,
    taken with receive_packet itself (other packets released)."""
    far.send_udp(payload)
    handle = session._handle  # noqa: SLF001 - the protocol's own handle
    for _ in range(64):
        if not api.wait_read_event(handle, TIMEOUT):
            break
        while True:
            try:
                taken = api.receive_packet(handle)
            except WintunError:
                break
            assert isinstance(taken, tuple) and len(taken) == 2, rule(
                "receive_packet",
                "WintunReceivePacket",
                f"a waiting packet must be returned as (view, token), not {taken!r:.60}",
            )
            view, token = taken
            datagram = datagram_for_app(view)
            if datagram is not None and datagram.payload == payload:
                return view, token
            api.release_receive_packet(handle, token)
    pytest.fail(
        rule(
            "receive_packet",
            "WintunReceivePacket",
            "a packet the far side sent must be received: it never came",
        )
    )


# -- the generation ----------------------------------------------------------------------------


def test_api_is_the_generation_the_backend_speaks(backend: BackendCase) -> None:
    api = protocol(backend)
    claimed = api.api
    assert claimed in API_GENERATIONS, rule(
        "api", "the export set", f"must be one of {API_GENERATIONS}, not {claimed!r}"
    )
    name = backend.adapter_name("Generation")
    try:
        result = api.create_adapter(name, **generation_arguments(claimed))
    except TypeError as error:
        pytest.fail(
            rule(
                "api",
                "the export set",
                f"the generation reported ({claimed}) must be the one spoken: "
                f"WintunCreateAdapter refused its arguments ({error})",
            )
        )
    give_back(api, result[0] if isinstance(result, tuple) else result, delete=True)


# -- adapters ----------------------------------------------------------------------------------


def test_create_adapter_returns_a_handle_and_the_reboot_flag(backend: BackendCase) -> None:
    api = protocol(backend)
    name = backend.adapter_name("Created")
    result = api.create_adapter(name, **generation_arguments(backend.api))
    handle = result[0] if isinstance(result, tuple) and result else result
    try:
        assert (
            isinstance(result, tuple)
            and len(result) == 2
            and isinstance(result[0], AdapterHandle)
            and isinstance(result[1], bool)
        ), rule(
            "create_adapter",
            "WintunCreateAdapter",
            f"must return (adapter handle, reboot required), not {result!r:.80}",
        )
        opened = api.open_adapter(name, **open_arguments(backend.api))
        give_back(api, opened)
    except AdapterNotFoundError:
        pytest.fail(
            rule(
                "create_adapter",
                "WintunCreateAdapter",
                "a created adapter must exist: opening it by name found nothing",
            )
        )
    finally:
        give_back(api, handle, delete=True)


def test_open_adapter_gives_a_handle_of_the_same_adapter(
    backend: BackendCase, adapter: Adapter
) -> None:
    api = protocol(backend)
    function = "WintunGetAdapter" if backend.api == "seed" else "WintunOpenAdapter"
    handle = api.open_adapter(adapter.name, **open_arguments(backend.api))
    try:
        assert isinstance(handle, AdapterHandle), rule(
            "open_adapter", function, f"must return an adapter handle, not {handle!r:.60}"
        )
        assert api.get_adapter_luid(handle) == adapter.luid, rule(
            "open_adapter", function, "must open the adapter of that name (another LUID)"
        )
    finally:
        give_back(api, handle)


def test_close_adapter_removes_the_adapter_it_created(backend: BackendCase) -> None:
    if not present(backend, "WintunCloseAdapter", "0.14"):
        return
    api = protocol(backend)
    with low_level_adapter(backend, "Closed") as (handle, name):
        api.close_adapter(handle)
        try:
            again = api.open_adapter(name)
        except AdapterNotFoundError:
            return
        give_back(api, again)
        pytest.fail(
            rule(
                "close_adapter",
                "WintunCloseAdapter",
                "closing the handle that created an adapter must remove the adapter: it "
                "could still be opened",
            )
        )


def test_free_adapter_releases_the_handle(backend: BackendCase, adapter: Adapter) -> None:
    if not present(backend, "WintunFreeAdapter", "pool", "seed"):
        return
    api = protocol(backend)
    handle = api.open_adapter(adapter.name, pool=POOL)
    api.free_adapter(handle)
    try:
        api.get_adapter_luid(handle)
    except HandleClosedError:
        return
    give_back(api, handle)
    pytest.fail(
        rule(
            "free_adapter",
            "WintunFreeAdapter",
            "a freed handle must be released (refused afterwards): it still worked",
        )
    )


def test_delete_adapter_removes_the_adapter(backend: BackendCase) -> None:
    if not present(backend, "WintunDeleteAdapter", "pool", "seed"):
        return
    api = protocol(backend)
    with low_level_adapter(backend, "Deleted") as (handle, name):
        reboot = api.delete_adapter(handle, True)
        assert isinstance(reboot, bool), rule(
            "delete_adapter",
            "WintunDeleteAdapter",
            f"must return whether a reboot is required, not {reboot!r:.40}",
        )
        try:
            again = api.open_adapter(name, pool=POOL)
        except AdapterNotFoundError:
            return
        give_back(api, again)
        pytest.fail(
            rule(
                "delete_adapter",
                "WintunDeleteAdapter",
                "a deleted adapter must be gone: it could still be opened",
            )
        )


def test_enum_adapters_calls_back_once_per_adapter_of_the_pool(backend: BackendCase) -> None:
    if not present(backend, "WintunEnumAdapters", "pool", "seed"):
        return
    api = protocol(backend)
    first, second = backend.create_adapter("EnumA"), backend.create_adapter("EnumB")
    seen: list[int] = []

    def found(handle: object) -> bool:
        seen.append(api.get_adapter_luid(handle))
        return True

    api.enum_adapters(POOL, found)
    assert sorted(seen) == sorted([first.luid, second.luid]), rule(
        "enum_adapters",
        "WintunEnumAdapters",
        f"must call back once per adapter of the pool: called for {len(seen)} of 2",
    )


def test_delete_driver_is_refused_while_adapters_exist(
    backend: BackendCase, adapter: Adapter
) -> None:
    if not present(backend, "WintunDeleteDriver", "0.14"):
        return
    if not backend.emulated_kernel:
        pytest.skip("would uninstall the system's Wintun driver")
    try:
        protocol(backend).delete_driver()
    except WintunError as error:
        assert error.winerror == ERROR_INF_IN_USE_BY_DEVICES, error
        return
    pytest.fail(
        rule(
            "delete_driver",
            "WintunDeleteDriver",
            "the driver cannot be removed while adapters use it: the call succeeded",
        )
    )


def test_delete_pool_driver_removes_the_pools_adapters(
    backend: BackendCase, adapter: Adapter
) -> None:
    if not present(backend, "WintunDeletePoolDriver", "pool", "seed"):
        return
    if not backend.emulated_kernel:
        pytest.skip("would uninstall the system's Wintun driver")
    api = protocol(backend)
    reboot = api.delete_pool_driver(POOL)
    assert isinstance(reboot, bool), rule(
        "delete_pool_driver",
        "WintunDeletePoolDriver",
        f"must return whether a reboot is required, not {reboot!r:.40}",
    )
    try:
        again = api.open_adapter(adapter.name, pool=POOL)
    except AdapterNotFoundError:
        return
    give_back(api, again)
    pytest.fail(
        rule(
            "delete_pool_driver",
            "WintunDeletePoolDriver",
            "the pool's adapters must be removed with its driver: one could still be opened",
        )
    )


def test_open_adapter_device_object_gives_a_handle(backend: BackendCase, adapter: Adapter) -> None:
    if not present(backend, "WintunOpenAdapterDeviceObject", "seed"):
        return
    value = protocol(backend).open_adapter_device_object(adapter.handle)
    assert isinstance(value, int) and value not in (0, -1), rule(
        "open_adapter_device_object",
        "WintunOpenAdapterDeviceObject",
        f"must return the device's handle, not {value!r:.40}",
    )
    if backend.kind == "double":  # a real descriptor or HANDLE (the emulator's is a number)
        if sys.platform == "win32":
            from wintun_cffi.platform import _win32

            lib, ffi = _win32.kernel32()
            lib.CloseHandle(ffi.cast("HANDLE", value))
        else:
            import os

            os.close(value)


def test_get_adapter_luid_tells_adapters_apart(backend: BackendCase, adapter: Adapter) -> None:
    api = protocol(backend)
    other = backend.create_adapter("OtherLuid")
    luids = [api.get_adapter_luid(adapter.handle), api.get_adapter_luid(other.handle)]
    assert all(isinstance(luid, int) and luid > 0 for luid in luids), rule(
        "get_adapter_luid", "WintunGetAdapterLUID", f"must return a NET_LUID, not {luids!r:.60}"
    )
    assert luids[0] != luids[1] and luids[0] == adapter.luid, rule(
        "get_adapter_luid",
        "WintunGetAdapterLUID",
        "each adapter has its own LUID, the same for every handle of it",
    )


def test_get_adapter_name_is_the_name_given(backend: BackendCase) -> None:
    if not present(backend, "WintunGetAdapterName", "pool", "seed"):
        return
    given = backend.adapter_name("Named")
    name = protocol(backend).get_adapter_name(backend.create_adapter("Named").handle)
    assert name == given, rule(
        "get_adapter_name",
        "WintunGetAdapterName",
        f"must return the adapter's name {given!r}, not {name!r:.60}",
    )


def test_set_adapter_name_renames(backend: BackendCase, adapter: Adapter) -> None:
    if not present(backend, "WintunSetAdapterName", "pool", "seed"):
        return
    api = protocol(backend)
    wanted = backend.adapter_name(f"Renamed {uuid.uuid4().hex[:6]}")
    api.set_adapter_name(adapter.handle, wanted)
    assert api.get_adapter_name(adapter.handle) == wanted, rule(
        "set_adapter_name",
        "WintunSetAdapterName",
        "the adapter must take the new name: its name did not change",
    )


def test_get_running_driver_version_with_an_adapter(backend: BackendCase, adapter: Adapter) -> None:
    version = protocol(backend).get_running_driver_version()
    assert isinstance(version, int) and 0 < version <= 0xFFFFFFFF, rule(
        "get_running_driver_version",
        "WintunGetRunningDriverVersion",
        f"must return (major << 16) | minor of the loaded driver, not {version!r:.40}",
    )


def test_set_logger_installs_the_logger(backend: BackendCase) -> None:
    api = protocol(backend)
    lines: list[Any] = []
    api.set_logger(lambda *line: lines.append(line))
    try:
        backend.create_adapter("Logged")
    finally:
        api.set_logger(None)
    assert lines, rule(
        "set_logger",
        "WintunSetLogger",
        "the logger installed must receive the driver's lines: creating an adapter logged nothing",
    )


# -- sessions ----------------------------------------------------------------------------------


def test_start_session_returns_a_session_handle(backend: BackendCase, adapter: Adapter) -> None:
    with low_level_session(backend, adapter) as handle:
        assert isinstance(handle, SessionHandle), rule(
            "start_session", "WintunStartSession", f"must return a session, not {handle!r:.60}"
        )


def test_end_session_frees_the_adapter_for_another(backend: BackendCase, adapter: Adapter) -> None:
    api = protocol(backend)
    first = api.start_session(adapter.handle, MIN_RING_CAPACITY)
    api.end_session(first)
    try:
        second = api.start_session(adapter.handle, MIN_RING_CAPACITY)
    except WintunError as error:
        with contextlib.suppress(Exception):
            api.end_session(first)
        pytest.fail(
            rule(
                "end_session",
                "WintunEndSession",
                f"an ended session must let the adapter start another: {error}",
            )
        )
    api.end_session(second)
    try:
        api.get_read_wait_event(first)
    except HandleClosedError:
        return
    pytest.fail(
        rule(
            "end_session",
            "WintunEndSession",
            "an ended session's handle must be refused afterwards: it still worked",
        )
    )


def test_get_read_wait_event_returns_the_event(backend: BackendCase, adapter: Adapter) -> None:
    api = protocol(backend)
    with low_level_session(backend, adapter) as handle:
        event = api.get_read_wait_event(handle)
        assert isinstance(event, int) and event not in (0, -1), rule(
            "get_read_wait_event",
            "WintunGetReadWaitEvent",
            f"must return the session's event, not {event!r:.40}",
        )
        assert api.get_read_wait_event(handle) == event, rule(
            "get_read_wait_event", "WintunGetReadWaitEvent", "must return the same event each time"
        )


def test_ledgers_are_the_two_directions(backend: BackendCase, adapter: Adapter) -> None:
    api = protocol(backend)
    with low_level_session(backend, adapter) as handle:
        ledgers = api.ledgers(handle)
        assert (
            isinstance(ledgers, tuple)
            and len(ledgers) == 2
            and all(isinstance(ledger, Ledger) for ledger in ledgers)
            and ledgers[0] is not ledgers[1]
        ), rule(
            "ledgers",
            "the packet ledgers",
            f"must return the session's (reading, writing) ledgers, not {ledgers!r:.60}",
        )


# -- packets -----------------------------------------------------------------------------------


def test_receive_packet_returns_what_the_far_side_sent(
    backend: BackendCase, session: Session, far: FarSide
) -> None:
    api = protocol(backend)
    view, token = receive_from_far(api, session, far, b"received by the protocol")
    assert isinstance(view, memoryview), rule(
        "receive_packet", "WintunReceivePacket", "must return a view of the packet in the ring"
    )
    api.release_receive_packet(session._handle, token)  # noqa: SLF001


def test_release_receive_packet_frees_the_ring_space(
    backend: BackendCase, session: Session, far: FarSide, raw: RawFarSide
) -> None:
    api = protocol(backend)
    _, token = receive_from_far(api, session, far, b"to release")
    head = raw.ring_field("send", "head")
    api.release_receive_packet(session._handle, token)  # noqa: SLF001
    assert raw.ring_field("send", "head") != head, rule(
        "release_receive_packet",
        "WintunReleaseReceivePacket" if backend.api != "seed" else "WintunReceiveRelease",
        "a released packet must free its ring space: Head did not move after the release",
    )


def test_allocate_send_packet_gives_room_of_the_size_asked(
    backend: BackendCase, session: Session
) -> None:
    api = protocol(backend)
    taken = api.allocate_send_packet(session._handle, 28)  # noqa: SLF001
    assert isinstance(taken, tuple) and len(taken) == 2 and len(taken[0]) == 28, rule(
        "allocate_send_packet",
        "WintunAllocateSendPacket",
        f"must return (a writable view of 28 bytes, token), not {taken!r:.60}",
    )
    view, token = taken
    view[:] = udp_to_far(b"")  # 28 bytes: a valid empty datagram, sent to keep order
    api.send_packet(session._handle, token)  # noqa: SLF001


def test_send_packet_hands_the_packet_to_the_far_side(
    backend: BackendCase, session: Session, far: FarSide
) -> None:
    api = protocol(backend)
    packet = udp_to_far(b"sent by the protocol")
    view, token = api.allocate_send_packet(session._handle, len(packet))  # noqa: SLF001
    view[:] = packet
    api.send_packet(session._handle, token)  # noqa: SLF001
    try:
        datagram = far.receive_udp(TIMEOUT)
    except TimeoutError:
        pytest.fail(
            rule(
                "send_packet",
                "WintunSendPacket",
                "a sent packet must reach the system: the far side never received it",
            )
        )
    assert datagram.payload == b"sent by the protocol"


# -- waiting -----------------------------------------------------------------------------------


def test_wait_read_event_returns_true_once_a_packet_waits(
    backend: BackendCase, session: Session, far: FarSide
) -> None:
    api = protocol(backend)
    handle = session._handle  # noqa: SLF001
    drain_read_event(api, handle)
    far.send_udp(b"wake up")
    woke = api.wait_read_event(handle, TIMEOUT)
    assert woke is True, rule(
        "wait_read_event",
        "WaitForSingleObject on the read-wait event",
        f"must return True once the driver signalled a packet, not {woke!r:.40}",
    )
    if far.raw is None:
        return  # a real system may signal again at any time for packets of its own
    assert api.wait_read_event(handle, 0) is False, rule(
        "wait_read_event",
        "WaitForSingleObject on the read-wait event",
        "must consume the signal (an auto-reset event): it stayed signalled",
    )


def test_signal_read_event_wakes_a_wait(backend: BackendCase, session: Session) -> None:
    api = protocol(backend)
    handle = session._handle  # noqa: SLF001
    drain_read_event(api, handle)
    api.signal_read_event(handle)
    assert api.wait_read_event(handle, TIMEOUT) is True, rule(
        "signal_read_event",
        "SetEvent on the read-wait event",
        "a wait after the signal must return True: it timed out",
    )


def test_interrupt_waits_ends_every_wait(backend: BackendCase, session: Session) -> None:
    api = protocol(backend)
    handle = session._handle  # noqa: SLF001
    api.interrupt_waits(handle)
    try:
        api.wait_read_event(handle, 0)
    except SessionClosedError:
        return
    pytest.fail(
        rule(
            "interrupt_waits",
            "the session's closing",
            "a wait after interrupt_waits must raise SessionClosedError: it returned",
        )
    )


def test_read_wait_fd_is_readable_while_signalled(backend: BackendCase, session: Session) -> None:
    api = protocol(backend)
    handle = session._handle  # noqa: SLF001
    fd = api.read_wait_fd(handle)
    if fd is None:
        pytest.skip("the backend gives no descriptor for its read-wait event (None is allowed)")
    drain_read_event(api, handle)
    api.signal_read_event(handle)
    try:
        readable, _, _ = select.select([fd], [], [], TIMEOUT)
    except (OSError, ValueError) as error:
        readable = []
        reason = f"select failed: {error}"
    else:
        reason = "it did not become readable"
    assert readable == [fd], rule(
        "read_wait_fd",
        "the read-wait event's descriptor",
        f"must be readable while the event is signalled: {reason}",
    )
    drain_read_event(api, handle)
