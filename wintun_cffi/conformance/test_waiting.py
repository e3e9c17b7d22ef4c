"""Waiting for packets: timeouts, other threads, close waking receivers, iteration, asyncio.

Every blocking call has a timeout and every thread is joined with one, so nothing can hang.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from wintun_cffi import ReceivedPacket, Session, SessionClosedError

from .farside import Datagram, FarSide, app_receive_udp, datagram_for_app

TIMEOUT = 5.0
#: Long enough for a thread to reach its blocking call (not a timing assertion).
SETTLE = 0.05


class Worker(threading.Thread):
    """Runs ``target`` and keeps its result or exception."""

    def __init__(self, target: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._target_function = target
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_function()
        except BaseException as error:
            self.error = error

    def finish(self) -> None:
        self.join(TIMEOUT)
        assert not self.is_alive(), "the thread is still blocked"


def test_receive_times_out(session: Session) -> None:
    with pytest.raises(TimeoutError):
        for _ in range(100):  # a real system may send packets of its own first
            session.receive(timeout=0.02).release()
    with pytest.raises(ValueError):
        session.receive(timeout=-1)


def test_receive_returns_when_a_packet_arrives(session: Session, far: FarSide) -> None:
    worker = Worker(lambda: app_receive_udp(session, TIMEOUT))
    worker.start()
    time.sleep(SETTLE)
    far.send_udp(b"wake up")
    worker.finish()
    assert worker.error is None
    assert isinstance(worker.result, Datagram) and worker.result.payload == b"wake up"


def test_close_wakes_every_receiver(session: Session) -> None:
    def receive_until_error() -> None:
        while True:  # a real system's own packets are taken and released
            session.receive(timeout=TIMEOUT * 2).release()

    workers = [Worker(receive_until_error) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(SETTLE)
    session.close()
    for worker in workers:
        worker.finish()
        assert isinstance(worker.error, SessionClosedError), worker.error


def test_iteration_ends_when_closed(session: Session, far: FarSide) -> None:
    seen: list[bytes] = []
    two = threading.Event()

    def iterate() -> None:
        for packet in session:
            with packet:
                datagram = datagram_for_app(packet.data)
            if datagram is not None:
                seen.append(datagram.payload)
                if len(seen) == 2:
                    two.set()

    worker = Worker(iterate)
    worker.start()
    far.send_udp(b"one")
    far.send_udp(b"two")
    assert two.wait(TIMEOUT)
    session.close()
    worker.finish()
    assert worker.error is None
    assert seen == [b"one", b"two"]


async def _receive_far_async(session: Session) -> Datagram:
    while True:
        packet = await session.receive_async()
        with packet:
            datagram = datagram_for_app(packet.data)
        if datagram is not None:
            return datagram


def test_receive_async(session: Session, far: FarSide) -> None:
    async def main() -> Datagram:
        task = asyncio.ensure_future(_receive_far_async(session))
        await asyncio.sleep(SETTLE)
        far.send_udp(b"async")
        return await asyncio.wait_for(task, TIMEOUT)

    assert asyncio.run(main()).payload == b"async"


def test_cancelled_receive_async_loses_no_packet(session: Session, far: FarSide) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(session.receive_async())
        await asyncio.sleep(SETTLE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    far.send_udp(b"kept")
    assert app_receive_udp(session, TIMEOUT).payload == b"kept"


def test_async_for(session: Session, far: FarSide) -> None:
    async def main() -> list[bytes]:
        got: list[bytes] = []

        async def consume() -> None:
            packet: ReceivedPacket
            async for packet in session:
                with packet:
                    datagram = datagram_for_app(packet.data)
                if datagram is not None:
                    got.append(datagram.payload)
                    if len(got) == 3:
                        return

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(SETTLE)
        for payload in (b"a", b"b", b"c"):
            far.send_udp(payload)
        await asyncio.wait_for(task, TIMEOUT)
        return got

    assert asyncio.run(main()) == [b"a", b"b", b"c"]


def test_async_for_ends_when_closed(session: Session) -> None:
    async def main() -> int:
        count = 0

        async def consume() -> None:
            nonlocal count
            async for packet in session:
                packet.release()
                count += 1

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(SETTLE)
        session.close()
        await asyncio.wait_for(task, TIMEOUT)
        return count

    asyncio.run(main())
    assert session.closed


def test_read_wait_event_is_available(session: Session) -> None:
    assert isinstance(session.read_wait_event, int)
