"""asyncio on Windows: awaiting many native sessions takes no thread of the loop's executor.

Over the Windows build of the 0.14 C double (its read-wait events are Win32 events), under
the proactor loop asyncio uses on Windows. The loop's default executor is given two threads:
an await that held one of them until its packet came would leave ``asyncio.to_thread`` (and
``getaddrinfo``) waiting for the whole program.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from emulator.host import Host
from wintun_cffi import Session, Wintun, aio
from wintun_cffi.aio import handle_waits
from wintun_cffi.errors import SessionClosedError
from wintun_cffi.platform import _win32
from wintun_cffi.platform._win32 import HANDLES_PER_THREAD

from ..reliability.traffic import make_packet
from .conftest import Double, DoubleLibraries

pytestmark = pytest.mark.skipif(
    sys.platform != "win32", reason="needs Windows (or Wine): Win32 read-wait events"
)

SESSIONS = 64
#: A safety net against a hang, never a measured duration.
TIMEOUT = 60.0


class _CheckedKernel32:
    """kernel32 whose WaitForMultipleObjects records an array holding one handle twice,
    which Windows refuses (ERROR_INVALID_PARAMETER) and Wine lets through."""

    def __init__(self, lib: Any, ffi: Any) -> None:
        self._lib, self._ffi = lib, ffi
        self.duplicates: list[list[int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def WaitForMultipleObjects(self, count: int, array: Any, every: int, ms: int) -> int:  # noqa: N802
        handles = [int(self._ffi.cast("uintptr_t", array[i])) for i in range(count)]
        if len(set(handles)) != len(handles):
            self.duplicates.append(handles)
        return int(self._lib.WaitForMultipleObjects(count, array, every, ms))


@pytest.fixture(autouse=True)
def checked_waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[_CheckedKernel32]:
    """A HandleWaits of this test's own, on a kernel32 that checks each wait's array."""
    lib, ffi = _win32.kernel32()
    checked = _CheckedKernel32(lib, ffi)
    monkeypatch.setattr(_win32, "kernel32", lambda: (checked, ffi))
    monkeypatch.setattr(aio, "_handle_waits", _win32.HandleWaits())
    yield checked
    assert checked.duplicates == [], "WaitForMultipleObjects was given a handle twice"


@pytest.fixture
def sessions(libraries: DoubleLibraries) -> Iterator[list[tuple[Session, Host]]]:
    state = Double(libraries.get("0.14"))
    state.reset()
    wintun = Wintun(state.backend)
    adapters = [
        wintun.create_adapter(f"Async {index}", tunnel_type="Tests") for index in range(SESSIONS)
    ]
    opened = [adapter.start_session() for adapter in adapters]
    hosts = [state.kernel.host_for(getattr(session._handle, "pointer")) for session in opened]  # noqa: B009
    yield list(zip(opened, hosts, strict=True))
    for session in opened:
        session.close()
    for adapter in adapters:
        adapter.close()
    state.reset()


async def all_registered(count: int) -> None:
    """Until ``count`` awaits are registered with the handle waits."""
    while handle_waits().registered() < count:
        await asyncio.sleep(0.01)


def run(main: object) -> object:
    async def with_two_executor_threads() -> object:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        assert asyncio.iscoroutine(main)
        return await asyncio.wait_for(main, TIMEOUT)

    return asyncio.run(with_two_executor_threads())


def test_64_sessions_await_at_once_and_each_receives_its_packet(
    sessions: list[tuple[Session, Host]],
) -> None:
    async def main() -> list[bytes]:
        tasks = [asyncio.ensure_future(session.receive_async()) for session, _ in sessions]
        await all_registered(SESSIONS)
        assert handle_waits().threads() <= -(-SESSIONS // HANDLES_PER_THREAD) + 1
        # Every session waits, and the executor still runs other work.
        assert await asyncio.to_thread(lambda: "still running") == "still running"
        await asyncio.get_running_loop().getaddrinfo("127.0.0.1", 80)
        for index, (_, host) in enumerate(sessions):
            assert host.deliver(make_packet(index, 1, 60))
        received = []
        for task in tasks:
            packet = await task
            with packet:
                received.append(bytes(packet.data))
        return received

    received = run(main())
    assert received == [make_packet(index, 1, 60) for index in range(SESSIONS)]
    assert handle_waits().registered() == 0


def test_cancelled_awaits_lose_nothing_and_leave_nothing_registered(
    sessions: list[tuple[Session, Host]],
) -> None:
    async def main() -> list[bytes]:
        tasks = [asyncio.ensure_future(session.receive_async()) for session, _ in sessions]
        await all_registered(SESSIONS)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with pytest.raises(asyncio.CancelledError):
                await task
        assert handle_waits().registered() == 0
        for index, (_, host) in enumerate(sessions):
            assert host.deliver(make_packet(index, 2, 60))
        received = []
        for session, _ in sessions:
            packet = await session.receive_async()
            with packet:
                received.append(bytes(packet.data))
        return received

    assert run(main()) == [make_packet(index, 2, 60) for index in range(SESSIONS)]
    assert handle_waits().registered() == 0


def test_a_cancellation_racing_the_packet_loses_nothing(
    sessions: list[tuple[Session, Host]],
) -> None:
    """The packet arrives as the await is cancelled: whoever took the signal, the next await
    receives the packet."""
    session, host = sessions[0]

    async def main() -> list[bytes]:
        got = []
        for sequence in range(20):
            task = asyncio.ensure_future(session.receive_async())
            await all_registered(1)
            assert host.deliver(make_packet(0, sequence, 60))
            task.cancel()
            try:
                packet = await task
            except asyncio.CancelledError:
                packet = await session.receive_async()
            with packet:
                got.append(bytes(packet.data))
        return got

    assert run(main()) == [make_packet(0, sequence, 60) for sequence in range(20)]
    assert handle_waits().registered() == 0


def test_close_wakes_every_awaiter(sessions: list[tuple[Session, Host]]) -> None:
    async def main() -> None:
        tasks = [
            asyncio.ensure_future(session.receive_async())
            for session, _ in sessions
            for _ in range(2)  # two awaits of each session: 128 registrations
        ]
        await all_registered(2 * SESSIONS)
        for session, _ in sessions:
            session.close()
        for task in tasks:
            with pytest.raises(SessionClosedError):
                await task

    run(main())
    assert handle_waits().registered() == 0
    assert all(session.closed for session, _ in sessions)
