"""Replaying captures into an emulated session, and recording what the application sends."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import wintun_cffi
from emulator.replay import Recorder, ReplayError, ReplayTimeout, replay
from tests import capture_files as cf
from wintun_cffi.api import Adapter
from wintun_cffi.capture_read import INBOUND, OUTBOUND, CaptureRecord, iter_capture
from wintun_cffi.constants import MIN_RING_CAPACITY, record_size
from wintun_cffi.session import Session


@pytest.fixture
def adapter() -> Iterator[Adapter]:
    wintun = wintun_cffi.emulated()
    with wintun.create_adapter("Replay", tunnel_type="Test") as created:
        yield created


@pytest.fixture
def session(adapter: Adapter) -> Iterator[Session]:
    with adapter.start_session(MIN_RING_CAPACITY) as started:
        yield started


def numbered(count: int, size: int = 100, gap_ns: int = 1_000_000) -> list[CaptureRecord]:
    """Inbound records carrying their sequence number in the IPv4 identification."""
    return [
        CaptureRecord(i * gap_ns, cf.ipv4_packet(i, bytes(size - 20)), INBOUND, None, 0, size)
        for i in range(count)
    ]


def read_all(session: Session, count: int, pause: float = 0.0) -> list[bytes]:
    packets = []
    for _ in range(count):
        packets.append(session.read(timeout=10))
        if pause:
            time.sleep(pause)
    return packets


def sequence(packet: bytes) -> int:
    return int.from_bytes(packet[4:6], "big")


class TestReplay:
    def test_every_inbound_packet_arrives_once_in_order(
        self, adapter: Adapter, session: Session
    ) -> None:
        records = numbered(50)
        result = replay(adapter.host, records)
        assert result.delivered == 50
        assert [sequence(p) for p in read_all(session, 50)] == list(range(50))
        with pytest.raises(TimeoutError):
            session.read(timeout=0.05)  # nothing more
        assert adapter.host.statistics.out_discards == 0

    def test_a_file_with_both_directions_and_other_frames(
        self, adapter: Adapter, session: Session
    ) -> None:
        first, second, mine, third = (cf.ipv4_packet(i) for i in range(4))
        capture = (
            cf.shb()
            + cf.idb(1)
            + cf.epb(0, 1, cf.ethernet(first), opts=[cf.flags(INBOUND)])
            + cf.epb(0, 2, cf.ethernet(bytes(28), ethertype=0x0806))  # ARP
            + cf.epb(0, 3, cf.ethernet(second))  # no direction: the system's
            + cf.epb(0, 4, cf.ethernet(mine), opts=[cf.flags(OUTBOUND)])
            + cf.epb(0, 5, cf.ethernet(third), opts=[cf.flags(INBOUND)])
        )
        result = replay(adapter.host, io.BytesIO(capture))
        assert (result.delivered, result.skipped_direction, result.skipped_non_ip) == (3, 1, 1)
        assert read_all(session, 3) == [first, second, third]
        with pytest.raises(TimeoutError):
            session.read(timeout=0.05)

    def test_a_reader_of_the_caller(self, adapter: Adapter, session: Session) -> None:
        frames = [cf.ethernet(cf.ipv4_packet(1)), cf.ethernet(bytes(28), ethertype=0x0806)]
        capture = cf.pcap(1, [(0, i, f) for i, f in enumerate(frames)])
        with iter_capture(io.BytesIO(capture)) as reader:
            result = replay(adapter.host, reader)
        assert (result.delivered, result.skipped_non_ip) == (1, 1)
        assert read_all(session, 1) == [cf.ipv4_packet(1)]

    def test_directions_choose_the_records(self, adapter: Adapter, session: Session) -> None:
        records = [
            CaptureRecord(0, cf.ipv4_packet(0), INBOUND),
            CaptureRecord(0, cf.ipv4_packet(1), OUTBOUND),
            CaptureRecord(0, cf.ipv4_packet(2), None),
        ]
        result = replay(adapter.host, records, directions={OUTBOUND})
        assert (result.delivered, result.skipped_direction) == (1, 2)
        assert read_all(session, 1) == [cf.ipv4_packet(1)]

    def test_a_path(self, adapter: Adapter, session: Session, tmp_path: Path) -> None:
        path = tmp_path / "a.pcap"
        packets = [cf.ipv4_packet(i) for i in range(3)]
        path.write_bytes(cf.pcap(101, [(0, i, p) for i, p in enumerate(packets)]))
        assert replay(adapter.host, path).delivered == 3
        assert read_all(session, 3) == packets

    def test_a_full_ring_loses_nothing(self, adapter: Adapter, session: Session) -> None:
        count = 1000  # 1000 records of 1 KiB: eight times the 128 KiB ring
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.extend(read_all(session, count, 0.0005)))
        reader.start()
        result = replay(adapter.host, numbered(count, size=1024))
        reader.join(30)
        assert not reader.is_alive()
        assert result.delivered == count
        assert result.ring_full > 0  # the ring was full at least once
        assert [sequence(p) for p in received] == list(range(count))
        assert adapter.host.statistics.out_discards == 0

    def test_recorded_pace_keeps_the_gaps(self, adapter: Adapter, session: Session) -> None:
        # 0, 100, 300, 600 ms at twice the speed: 0, 50, 150, 300 ms after the first.
        stamps = [0, 100, 300, 600]
        records = [CaptureRecord(ms * 1_000_000, cf.ipv4_packet(ms), INBOUND) for ms in stamps]
        arrivals: list[float] = []
        reader = threading.Thread(
            target=lambda: arrivals.extend(
                time.monotonic() for _ in range(4) if session.read(timeout=10)
            )
        )
        reader.start()
        started = time.monotonic()
        result = replay(adapter.host, records, pace="recorded", speed=2.0)
        finished = time.monotonic()
        reader.join(10)
        assert result.delivered == 4
        assert result.seconds >= 0.3  # the last went 300 ms after the first, not before
        assert finished - started >= 0.3
        # Each packet can only arrive after its time (lower bounds only: no tight timing).
        for arrival, ms in zip(arrivals, stamps, strict=True):
            assert arrival - started >= ms / 2 / 1000 - 0.001

    def test_fast_pace_ignores_the_gaps(self, adapter: Adapter, session: Session) -> None:
        records = numbered(3, gap_ns=60 * 10**9)  # a minute apart
        result = replay(adapter.host, records)
        assert result.delivered == 3
        assert result.seconds < 30  # not the two minutes the capture spans
        assert len(read_all(session, 3)) == 3

    def test_the_application_not_reading_times_out(
        self, adapter: Adapter, session: Session
    ) -> None:
        with pytest.raises(ReplayTimeout) as caught:
            replay(adapter.host, numbered(300, size=1024), timeout=0.2)
        result = caught.value.result
        assert 100 < result.delivered < 130  # what the 128 KiB ring holds
        assert result.ring_full == 1
        assert adapter.host.statistics.out_discards == 0
        assert len(read_all(session, result.delivered)) == result.delivered

    def test_without_a_session(self, adapter: Adapter) -> None:
        with pytest.raises(ReplayError, match="no running session") as caught:
            replay(adapter.host, numbered(2))
        assert caught.value.result.delivered == 0

    def test_oversized_packets_are_left_out_and_counted(
        self, adapter: Adapter, session: Session
    ) -> None:
        records = [CaptureRecord(0, b"\x45" + bytes(70_000), INBOUND), *numbered(1)]
        result = replay(adapter.host, records)
        assert (result.delivered, result.too_large) == (1, 1)

    @pytest.mark.parametrize(
        ("pace", "speed"),
        [("slow", 1.0), ("fast", 0.0), ("fast", -1.0), ("recorded", float("nan"))],
    )
    def test_bad_settings(self, adapter: Adapter, pace: str, speed: float) -> None:
        with pytest.raises(ValueError):
            replay(adapter.host, [], pace=pace, speed=speed)  # type: ignore[arg-type]


class TestRecorder:
    def test_records_what_the_application_sends(self, adapter: Adapter, session: Session) -> None:
        host = adapter.host
        with Recorder(host) as recorder:
            before = time.time_ns()
            for i in range(3):
                session.send(cf.ipv4_packet(i))
            records = recorder.wait_for(3)
        assert [r.data for r in records] == [cf.ipv4_packet(i) for i in range(3)]
        assert {r.direction for r in records} == {OUTBOUND}
        assert all(r.timestamp_ns >= before for r in records)
        assert [r.original_length for r in records] == [20, 20, 20]
        # The host's own queue still gets them.
        assert [host.receive(timeout=5) for _ in range(3)] == [r.data for r in records]

    def test_stops_at_close(self, adapter: Adapter, session: Session) -> None:
        recorder = Recorder(adapter.host)
        session.send(cf.ipv4_packet(1))
        recorder.wait_for(1)
        recorder.close()
        recorder.close()  # again: nothing
        session.send(cf.ipv4_packet(2))
        adapter.host.receive(timeout=5)
        adapter.host.receive(timeout=5)
        assert len(recorder) == 1
        recorder.clear()
        assert recorder.records == []

    def test_wait_for_says_how_many_came(self, adapter: Adapter, session: Session) -> None:
        with Recorder(adapter.host) as recorder:
            session.send(cf.ipv4_packet(1))
            with pytest.raises(TimeoutError, match="1 of 2 packets"):
                recorder.wait_for(2, timeout=0.3)

    def test_replayed_requests_recorded_answers(self, adapter: Adapter, session: Session) -> None:
        """A replayed capture drives an application; the recorder sees its answers."""
        with Recorder(adapter.host) as recorder:
            echo = threading.Thread(
                target=lambda: [session.send(session.read(timeout=10)) for _ in range(20)]
            )
            echo.start()
            replay(adapter.host, numbered(20))
            echo.join(10)
            answers = recorder.wait_for(20)
        assert [sequence(r.data) for r in answers] == list(range(20))


class TestHostHooks:
    """What replay and the recorder use on the host: the Send ring's room, observers."""

    def test_send_room(self, adapter: Adapter) -> None:
        host = adapter.host
        assert host.send_room() is None
        with adapter.start_session(MIN_RING_CAPACITY) as session:
            empty = host.send_room()
            assert empty == MIN_RING_CAPACITY - 4  # one slot always stays free
            assert host.deliver(cf.ipv4_packet(1, bytes(100)))
            assert host.send_room() == empty - record_size(120)
            session.read(timeout=5)
            assert host.send_room() == empty
        assert host.send_room() is None

    def test_observers(self, adapter: Adapter, session: Session) -> None:
        host = adapter.host
        seen: list[bytes] = []
        host.add_observer(seen.append)
        session.send(cf.ipv4_packet(1))
        assert host.receive(timeout=5) == cf.ipv4_packet(1)
        host.remove_observer(seen.append)
        session.send(cf.ipv4_packet(2))
        assert host.receive(timeout=5) == cf.ipv4_packet(2)
        assert seen == [cf.ipv4_packet(1)]
        with pytest.raises(ValueError):
            host.remove_observer(seen.append)
