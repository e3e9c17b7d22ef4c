"""ImpairedSession on the emulator: what the conformance suite's tests (every backend) leave
out: the limit of released packets waiting, the session's own failure, refused sends, threads
reading at once, and the rate limit end to end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import wintun_cffi
from wintun_cffi import Adapter, SessionClosedError, SessionEndedError, ip
from wintun_cffi.conformance.support import wait_until
from wintun_cffi.impair import Impairment
from wintun_cffi.impaired import ImpairedSession

TIMEOUT = 10.0


def numbered(index: int, size: int = 64) -> bytes:
    tag = index.to_bytes(4, "big")
    return ip.udp_packet("10.6.7.7", "10.6.7.8", 53, 5353, tag + bytes(size - 32))


def wrapper_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("wintun-impair-", "wintun-impaired-"))
    ]


@pytest.fixture
def adapter() -> Iterator[Adapter]:
    wintun = wintun_cffi.emulated()
    with wintun.create_adapter("Wrapped", tunnel_type="Test") as adapter:
        yield adapter
    assert wrapper_threads() == []


def test_the_receiving_thread_stops_at_the_ready_limit(adapter: Adapter) -> None:
    host = adapter.host
    with ImpairedSession(adapter.start_session(), ready_limit=10) as impaired:
        for index in range(10):
            assert host.deliver(numbered(index))
        assert wait_until(lambda: impaired.inbound.statistics.delivered == 10)
        for index in range(10, 30):
            assert host.deliver(numbered(index))
        time.sleep(0.05)  # a negative check: with 10 waiting, it takes no more from the ring
        assert impaired.inbound.statistics.offered == 10
        got = impaired.read_many(100, timeout=TIMEOUT)
        while len(got) < 30:
            got += impaired.read_many(100, timeout=TIMEOUT)
        assert got == [numbered(index) for index in range(30)]


def test_the_sessions_failure_reaches_the_reader(adapter: Adapter) -> None:
    host = adapter.host
    with ImpairedSession(adapter.start_session()) as impaired:
        host.deliver(numbered(0))
        assert wait_until(lambda: impaired.inbound.statistics.delivered == 1)
        host.terminate()
        assert impaired.read(TIMEOUT) == numbered(0)  # what was released before comes first
        with pytest.raises(SessionEndedError) as caught:
            impaired.read(TIMEOUT)
        assert not isinstance(caught.value, SessionClosedError)  # the driver ended it


def test_held_sends_are_discarded_and_bad_sizes_refused(adapter: Adapter) -> None:
    impaired = ImpairedSession(adapter.start_session(), outbound=Impairment(delay=3600))
    impaired.send(numbered(0))
    impaired.close()
    with pytest.raises(ValueError):
        impaired.send(bytes(0x10000))  # too large: refused before anything
    stats = impaired.statistics
    assert stats.outbound.discarded == 1 and stats.send_failed == 0


def test_a_released_packet_the_closed_session_refuses_is_counted(adapter: Adapter) -> None:
    session = adapter.start_session()
    impaired = ImpairedSession(session)
    session.close()
    impaired.outbound.offer(numbered(0), 0.0)  # as if released after the session closed
    impaired._outbound.flush(0.0)
    assert impaired.statistics.send_failed == 1
    impaired.close()


def test_a_full_ring_drops_released_packets(adapter: Adapter) -> None:
    host = adapter.host
    with ImpairedSession(adapter.start_session(0x20000)) as impaired:
        host.pause()  # the system takes nothing: the Receive ring fills
        impaired.send_many(numbered(index, 1000) for index in range(200))
        stats = impaired.statistics
        assert stats.ring_full > 0 and stats.outbound.delivered == 200
        host.resume()


def test_readers_on_several_threads_share_the_packets(adapter: Adapter) -> None:
    host = adapter.host
    got: list[bytes] = []
    lock = threading.Lock()
    with ImpairedSession(adapter.start_session(), inbound=Impairment(delay=0.001)) as impaired:

        def reader() -> None:
            try:
                while True:
                    packet = impaired.read()
                    with lock:
                        got.append(packet)
            except SessionClosedError:
                pass

        readers = [threading.Thread(target=reader) for _ in range(3)]
        for thread in readers:
            thread.start()
        for index in range(300):
            host.deliver(numbered(index))
        assert wait_until(lambda: len(got) == 300, TIMEOUT)
    for thread in readers:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert sorted(got) == sorted(numbered(index) for index in range(300))


def test_rate_limit_end_to_end(adapter: Adapter) -> None:
    """20 packets of 1,000 bytes at 400 kbit/s cannot all arrive within 19 * 20 ms."""
    host = adapter.host
    with ImpairedSession(adapter.start_session(), inbound=Impairment(rate=400_000)) as impaired:
        start = time.monotonic()
        host.deliver_many(numbered(index, 1000) for index in range(20))
        got = [impaired.read(TIMEOUT) for _ in range(20)]
        elapsed = time.monotonic() - start
    assert got == [numbered(index, 1000) for index in range(20)]
    assert 0.38 <= elapsed < TIMEOUT


def test_read_many_and_the_timeout(adapter: Adapter) -> None:
    with ImpairedSession(adapter.start_session()) as impaired:
        assert impaired.read_many(5, timeout=0) == []
        with pytest.raises(TimeoutError):
            impaired.read(0)
        with pytest.raises(ValueError):
            impaired.read_many(0)
        with pytest.raises(ValueError):
            impaired.read(-1)
        assert "open" in repr(impaired)
    assert "closed" in repr(impaired)
    with pytest.raises(SessionClosedError):
        impaired.read_many(5)
    impaired.close()  # idempotent
