"""The kernel side (docs/protocol.rst): SessionDriver over two rings."""

from __future__ import annotations

import select
import struct
import threading
from collections.abc import Iterator
from functools import partial

import pytest

from emulator.client import SessionClient
from emulator.driver import AdapterStatistics, RegistrationRefused, SessionDriver
from emulator.ring import Ring
from tests.support import ClientCalls, wait_until
from wintun_cffi.constants import (
    ERROR_HANDLE_EOF,
)
from wintun_cffi.errors import NoMoreItemsError, SessionEndedError
from wintun_cffi.fdevent import FdEvent
from wintun_cffi.send_rules import is_deliverable_ip

from .conftest import (
    CAP,
    DEAD,
    FLAG,
    MASK,
    DriverRig,
    header,
    ipv4,
    rec,
    u32,
    write_record,
)

# -- delivering into the Send ring -------------------------------------------------------------


def test_deliver_writes_exact_records_and_signals(rig: DriverRig) -> None:
    assert not rig.read_wait.consume()
    assert rig.driver.deliver([b"\x45abc", b"", bytes(range(9))])
    assert rig.read_wait.consume()
    mem = bytes(rig.send.memory)
    assert mem[0:12] == struct.pack("<IIi", 0, 8 + 4 + 16, 0)
    assert mem[12:16] == struct.pack("<I", 4) and mem[16:20] == b"\x45abc"
    assert mem[20:24] == struct.pack("<I", 0)
    assert mem[24:28] == struct.pack("<I", 9) and mem[28:37] == bytes(range(9))
    assert mem[37:40] == b"\x00\x00\x00"  # alignment padding untouched
    assert rig.stats.out_packets == 3 and rig.stats.out_octets == 13


def test_batch_that_exactly_fits_is_written(rig: DriverRig) -> None:
    # 0x10004 + 65528 == 0x20000 - 4: exactly the free space of an empty ring.
    assert rec(0xFFFF) + rec(65524) == CAP - 4
    assert rig.driver.deliver([b"\x01" * 0xFFFF, b"\x02" * 65524])
    assert rig.send.tail == CAP - 4
    assert u32(rig.send, 0) == 0xFFFF and u32(rig.send, 0x10004) == 65524
    assert rig.stats.out_discards == 0


def test_batch_one_slot_too_big_writes_nothing(rig: DriverRig) -> None:
    before = bytes(rig.send.memory)
    assert not rig.driver.deliver([b"\x01" * 0xFFFF, b"\x02" * 65525, b"\x03"])
    assert bytes(rig.send.memory) == before
    assert rig.stats.out_discards == 3 and rig.stats.out_packets == 0
    assert not rig.read_wait.consume()


def test_a_dropped_batch_counts_every_packet_as_discarded(rig: DriverRig) -> None:
    # Two near-maximum packets do not fit a 0x20000 ring; the oversized one is not an error
    # then: the real driver drops the whole batch, counting all of it as discards.
    assert not rig.driver.deliver([b"\x01" * 0xFFFF, b"\x02" * 0xFFFF, b"\x03" * 0x10001])
    assert rig.stats.out_discards == 3 and rig.stats.out_errors == 0


def test_a_batch_of_only_oversized_packets_still_signals(rig: DriverRig) -> None:
    assert rig.driver.deliver([b"\x00" * 0x10000])
    assert rig.stats.out_errors == 1 and rig.stats.out_packets == 0
    assert rig.read_wait.consume()  # Tail is published (unchanged) and the event set


def test_batch_fits_again_after_the_client_releases(rig: DriverRig) -> None:
    assert rig.driver.deliver([bytes(1000)] * 100)
    used = 100 * rec(1000)
    left = (0 - used - 4) & MASK
    assert not rig.driver.deliver([bytes(left - 3)])  # needs left + 4 bytes
    assert rig.driver.deliver([bytes(left - 4)])
    assert rig.stats.out_discards == 1
    assert not rig.driver.deliver([b""])
    _, token = rig.client.receive_packet()
    rig.client.release_receive_packet(token)
    assert rig.driver.deliver([bytes(rec(1000) - 4)])
    assert rig.send.tail == rec(1000) - 4  # wrapped to just below the released record


def test_oversized_packets_are_skipped_and_counted(rig: DriverRig) -> None:
    assert rig.driver.deliver([b"\x00" * 0x10000, b"\x45ok", b"\x00" * 0x20000])
    assert rig.stats.out_errors == 2 and rig.stats.out_packets == 1
    assert header(rig.send)[1] == rec(3)
    view, _ = rig.client.receive_packet()
    assert bytes(view) == b"\x45ok"
    with pytest.raises(NoMoreItemsError):
        rig.client.receive_packet()


def test_deliver_refused_when_ring_head_is_out_of_range(rig: DriverRig) -> None:
    rig.send.head = CAP
    assert not rig.driver.deliver([b"a", b"b"])
    assert rig.stats.out_discards == 2 and rig.send.tail == 0


def test_driver_keeps_its_own_tail(rig: DriverRig) -> None:
    assert rig.driver.deliver([b"abc"])
    rig.send.tail = 0x100  # someone scribbles on the shared field
    assert rig.driver.deliver([b"def"])
    assert rig.send.tail == 16 and u32(rig.send, 8) == 3


# -- consuming the Receive ring ----------------------------------------------------------------


def send(rig: DriverRig, payload: bytes) -> None:
    view, token = rig.client.allocate_send_packet(len(payload))
    view[:] = payload
    rig.client.send_packet(token)


def test_consumer_accepts_ip_and_discards_the_rest(rig: DriverRig) -> None:
    v6 = bytes([0x60]) + bytes(39)
    packets = [
        ipv4(b"a", 20),
        ipv4(b"b", 19),
        b"",
        b"\x45",
        v6,
        v6[:39],
        b"\x50" + bytes(30),
        ipv4(b"c", 100),
    ]
    for packet in packets:
        send(rig, packet)
    end = sum(rec(len(p)) for p in packets)
    assert wait_until(lambda: rig.receive.head == end)
    assert rig.packets() == [packets[0], packets[4], packets[7]]
    assert rig.stats.in_packets == 3 and rig.stats.in_discards == 5
    assert rig.stats.in_octets == 20 + 40 + 100 and rig.stats.in_errors == 0


def test_is_deliverable_ip_boundaries() -> None:
    assert is_deliverable_ip(b"\x4f" + bytes(19))
    assert not is_deliverable_ip(b"\x4f" + bytes(18))
    assert is_deliverable_ip(b"\x6f" + bytes(39))
    assert not is_deliverable_ip(b"\x6f" + bytes(38))
    assert not is_deliverable_ip(b"\x55" + bytes(60))
    assert not is_deliverable_ip(b"")


def test_head_advances_in_order_and_alertable_handshake(rig: DriverRig) -> None:
    # The idle consumer goes to sleep announcing it with Alertable = 1.
    assert wait_until(lambda: rig.receive.alertable == 1)
    first = ipv4(b"1", 60)
    send(rig, first)
    assert wait_until(lambda: rig.receive.head == rec(60))
    assert rig.packets() == [first]
    assert wait_until(lambda: rig.receive.alertable == 1)  # idle again
    more = [ipv4(bytes([i]), 20 + i) for i in range(5)]
    for packet in more:
        send(rig, packet)
    end = rec(60) + sum(rec(len(p)) for p in more)
    assert wait_until(lambda: rig.receive.head == end)
    assert rig.packets() == [first, *more]


def test_head_stays_behind_an_unsent_allocation(rig: DriverRig) -> None:
    held_view, held = rig.client.allocate_send_packet(20)
    send(rig, ipv4(b"later", 20))
    ready = ipv4(b"after", 20)
    send(rig, ready)
    assert rig.receive.tail == 0  # nothing published while the first is only allocated
    assert wait_until(lambda: rig.receive.alertable == 1)
    assert rig.receive.head == 0 and rig.packets() == []
    first = ipv4(b"first", 20)
    held_view[:] = first
    rig.client.send_packet(held)
    assert wait_until(lambda: rig.receive.head == 3 * rec(20))
    assert rig.packets() == [first, ipv4(b"later", 20), ready]


@pytest.mark.parametrize(
    "corrupt",
    ["size_too_big", "flagged", "runs_past_tail", "content_short", "tail_out_of_range"],
)
def test_corrupt_receive_ring_kills_it(rig: DriverRig, corrupt: str) -> None:
    assert wait_until(lambda: rig.receive.alertable == 1)
    ring = rig.receive
    if corrupt == "size_too_big":
        write_record(ring, 0, b"", size_field=0x10000)
        ring.tail = 8
    elif corrupt == "flagged":
        write_record(ring, 0, ipv4(b"x", 20), size_field=20 | FLAG)
        ring.tail = 24
    elif corrupt == "runs_past_tail":
        write_record(ring, 0, ipv4(b"x", 20))
        ring.tail = 20
    elif corrupt == "content_short":
        ring.tail = 2
    else:
        ring.tail = CAP
    rig.tail_moved.set()
    assert wait_until(lambda: ring.head == DEAD)
    assert rig.stats.in_errors == 0 and rig.stats.in_packets == 0  # uncounted, as wintun.sys
    with pytest.raises(SessionEndedError) as exc:
        rig.client.allocate_send_packet(20)
    assert exc.value.winerror == ERROR_HANDLE_EOF


def test_stop_marks_both_rings_dead_and_wakes_the_reader(rig: DriverRig) -> None:
    assert rig.driver.deliver([b"pending"])
    assert rig.read_wait.consume()
    woke = threading.Event()

    def reader() -> None:
        if rig.read_wait.wait(10.0):
            woke.set()

    thread = threading.Thread(target=reader)
    thread.start()
    rig.driver.stop()
    thread.join(10.0)
    assert woke.is_set() and not thread.is_alive()
    assert rig.driver.stopped
    assert rig.receive.head == DEAD and rig.send.tail == DEAD
    rig.driver.stop()  # idempotent
    assert not rig.driver.deliver([b"late"])
    assert rig.stats.out_discards == 1
    with pytest.raises(SessionEndedError):
        rig.client.receive_packet()
    with pytest.raises(SessionEndedError):
        rig.client.allocate_send_packet(20)


def test_stop_while_the_consumer_is_busy_does_not_hang() -> None:
    send_ring, receive_ring = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    entered, release = threading.Event(), threading.Event()

    def slow_system(packet: bytes) -> None:
        entered.set()
        release.wait(10.0)

    driver = SessionDriver(
        send_ring, receive_ring, read_wait, tail_moved, slow_system, AdapterStatistics()
    )
    write_record(receive_ring, 0, ipv4(b"x", 20))
    receive_ring.tail = 24
    tail_moved.set()
    assert entered.wait(10.0)
    stopper = threading.Thread(target=driver.stop)
    stopper.start()
    release.set()
    stopper.join(10.0)
    assert not stopper.is_alive()
    assert receive_ring.head == DEAD and send_ring.tail == DEAD
    read_wait.close()
    tail_moved.close()


def test_a_failing_system_does_not_kill_the_consumer() -> None:
    send_ring, receive_ring = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    calls: list[bytes] = []

    def flaky(packet: bytes) -> None:
        calls.append(packet)
        if len(calls) == 1:
            raise RuntimeError("the system hiccups")

    driver = SessionDriver(
        send_ring, receive_ring, read_wait, tail_moved, flaky, AdapterStatistics()
    )
    end = write_record(receive_ring, 0, ipv4(b"1", 20))
    receive_ring.tail = end
    tail_moved.set()
    assert wait_until(lambda: receive_ring.head == end)
    end2 = write_record(receive_ring, end, ipv4(b"2", 20))
    receive_ring.tail = end2
    tail_moved.set()
    assert wait_until(lambda: receive_ring.head == end2)
    assert len(calls) == 2
    driver.stop()
    read_wait.close()
    tail_moved.close()


def test_statistics_as_dict() -> None:
    stats = AdapterStatistics(out_packets=2, in_errors=1)
    assert stats.as_dict() == {
        "out_octets": 0,
        "out_packets": 2,
        "out_discards": 0,
        "out_errors": 0,
        "in_octets": 0,
        "in_packets": 0,
        "in_discards": 0,
        "in_errors": 1,
    }


def test_packets_before_a_corrupt_record_still_reach_the_system(rig: DriverRig) -> None:
    assert wait_until(lambda: rig.receive.alertable == 1)
    good = ipv4(b"good", 20)
    nxt = write_record(rig.receive, 0, good)
    write_record(rig.receive, nxt, b"", size_field=0x12345)
    rig.receive.tail = nxt + 8
    rig.tail_moved.set()
    assert wait_until(lambda: rig.receive.head == DEAD)
    assert rig.packets() == [good]
    assert rig.stats.in_packets == 1 and rig.stats.in_errors == 0


def test_stop_from_the_consumer_thread_keeps_the_dead_marker() -> None:
    send_ring, receive_ring = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    holder: list[SessionDriver] = []
    done = threading.Event()

    def system(packet: bytes) -> None:  # e.g. the host terminates on a packet
        holder[0].stop()
        done.set()

    holder.append(
        SessionDriver(send_ring, receive_ring, read_wait, tail_moved, system, AdapterStatistics())
    )
    receive_ring.tail = write_record(receive_ring, 0, ipv4(b"bye", 20))
    tail_moved.set()
    assert done.wait(10.0)
    holder[0]._consumer.join(10.0)
    assert not holder[0]._consumer.is_alive()
    assert receive_ring.head == DEAD and send_ring.tail == DEAD
    read_wait.close()
    tail_moved.close()


# -- what differs by generation ---------------------------------------------------------------


def make_driver(
    system: list[bytes], *, stops_at_non_ip: bool
) -> tuple[SessionDriver, Ring, FdEvent, FdEvent]:
    send_ring, receive_ring = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    driver = SessionDriver(
        send_ring,
        receive_ring,
        read_wait,
        tail_moved,
        system.append,
        AdapterStatistics(),
        stops_at_non_ip=stops_at_non_ip,
    )
    return driver, receive_ring, read_wait, tail_moved


@pytest.mark.parametrize("stops", [False, True])
def test_a_record_that_is_not_ip(stops: bool) -> None:
    """0.14 discards and counts it; drivers before 0.14 stop the ring there, counting
    nothing, after handing over what came before it."""
    system: list[bytes] = []
    driver, ring, read_wait, tail_moved = make_driver(system, stops_at_non_ip=stops)
    end = write_record(ring, 0, ipv4(b"a", 20))
    end = write_record(ring, end, bytes(24))  # IP version 0
    end = write_record(ring, end, ipv4(b"b", 20))
    ring.tail = end
    tail_moved.set()
    if stops:
        assert wait_until(lambda: ring.head == DEAD)
        assert system == [ipv4(b"a", 20)]
        assert driver.statistics.in_discards == 0 and driver.statistics.in_packets == 1
    else:
        assert wait_until(lambda: ring.head == end)
        assert system == [ipv4(b"a", 20), ipv4(b"b", 20)]
        assert driver.statistics.in_discards == 1 and driver.statistics.in_packets == 2
    driver.stop()
    read_wait.close()
    tail_moved.close()


def test_rings_whose_send_tail_is_out_of_range_are_refused() -> None:
    send_ring, receive_ring = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    for tail in (CAP, DEAD):
        send_ring.tail = tail
        with pytest.raises(RegistrationRefused, match="Tail"):
            SessionDriver(
                send_ring, receive_ring, read_wait, tail_moved, print, AdapterStatistics()
            )
    send_ring.head = send_ring.tail = CAP - 4  # in range: accepted, and the driver goes on
    driver = SessionDriver(
        send_ring, receive_ring, read_wait, tail_moved, print, AdapterStatistics()
    )
    assert driver.deliver([b"x"]) and send_ring.tail == (CAP - 4 + 8) & MASK
    driver.stop()
    read_wait.close()
    tail_moved.close()


@pytest.mark.parametrize("head", [CAP, CAP + 4, DEAD - 3])
def test_a_receive_head_out_of_range_at_the_start_stops_that_ring(head: int) -> None:
    """Head CAP + 4 would otherwise read the trailer as a zero-length record and come back
    into range: the real driver never reads such a ring."""
    system: list[bytes] = []
    send_ring, receive_ring = Ring.allocate(CAP), Ring.allocate(CAP)
    receive_ring.head = head
    read_wait, tail_moved = FdEvent(), FdEvent()
    driver = SessionDriver(
        send_ring, receive_ring, read_wait, tail_moved, system.append, AdapterStatistics()
    )
    assert wait_until(lambda: receive_ring.head == DEAD)
    assert driver.deliver([b"the Send ring still works"])
    assert system == [] and driver.statistics.in_discards == 0
    driver.stop()
    read_wait.close()
    tail_moved.close()


def test_head_moves_packet_by_packet_as_the_system_takes_them(rig: DriverRig) -> None:
    rig.driver.pause_system()
    packets = [ipv4(b"1", 20), ipv4(b"2", 40), ipv4(b"3", 60)]
    for packet in packets:
        view, token = rig.client.allocate_send_packet(len(packet))
        view[:] = packet
        rig.client.send_packet(token)
    assert wait_until(lambda: rig.driver.held_packet == packets[0])
    assert rig.receive.head == 0 and rig.packets() == []
    rig.driver.resume_system(1)
    assert wait_until(lambda: rig.driver.held_packet == packets[1])
    assert rig.receive.head == rec(20) and rig.packets() == packets[:1]
    rig.driver.resume_system(1)
    assert wait_until(lambda: rig.driver.held_packet == packets[2])
    assert rig.receive.head == rec(20) + rec(40)
    rig.driver.resume_system()
    assert wait_until(lambda: rig.receive.head == rec(20) + rec(40) + rec(60))
    assert rig.packets() == packets and rig.driver.held_packet is None
    with pytest.raises(ValueError):
        rig.driver.resume_system(-1)


def test_stop_releases_a_consumer_held_by_a_paused_system(rig: DriverRig) -> None:
    rig.driver.pause_system()
    view, token = rig.client.allocate_send_packet(20)
    view[:] = ipv4(b"h", 20)
    rig.client.send_packet(token)
    assert wait_until(lambda: rig.driver.held_packet is not None)
    stopper = threading.Thread(target=rig.driver.stop)
    stopper.start()
    stopper.join(10.0)
    assert not stopper.is_alive()
    assert rig.receive.head == DEAD


# -- a descriptor the consumer thread serves too (the Linux TUN host's device) -----------------


class Watched:
    """A driver whose consumer also serves an eventfd: each signal calls ``ready``, which
    counts it (and drains the eventfd) or, told to, reports the descriptor failed."""

    def __init__(self) -> None:
        self.send, self.receive = Ring.allocate(CAP), Ring.allocate(CAP)
        self.read_wait, self.tail_moved = FdEvent(), FdEvent()
        self.device = FdEvent()
        self.served = 0
        self.fail = False
        self.system: list[bytes] = []
        #: Events the system waits for, one per packet, before it takes each (while any).
        self.holds: list[threading.Event] = []
        self.driver = SessionDriver(
            self.send,
            self.receive,
            self.read_wait,
            self.tail_moved,
            self.to_system,
            AdapterStatistics(),
            "w",
            start=False,
        )
        self.driver.watch_while_idle(self.device.fileno(), self.ready)
        self.driver.start()
        self.client = ClientCalls(SessionClient(self.send, self.receive, self.tail_moved))

    def to_system(self, packet: bytes) -> None:
        self.system.append(packet)
        if self.holds:
            self.holds.pop(0).wait(5)

    def send_packet(self, packet: bytes) -> None:
        view, token = self.client.allocate_send_packet(len(packet))
        view[:] = packet
        self.client.send_packet(token)

    def ready(self) -> bool:
        self.device.consume()
        self.served += 1
        return not self.fail

    def close(self) -> None:
        self.driver.stop()
        for event in (self.read_wait, self.tail_moved, self.device):
            event.close()


@pytest.fixture
def watched() -> Iterator[Watched]:
    if not hasattr(select, "poll"):
        pytest.skip(
            "watch_while_idle() serves descriptors with select.poll, which Windows "
            "lacks (the Linux TUN host is its only user)"
        )
    rig = Watched()
    yield rig
    rig.close()


def _served(watched: Watched, count: int) -> bool:
    return watched.served == count


def test_the_watched_descriptor_is_served_while_the_ring_is_idle(watched: Watched) -> None:
    assert wait_until(lambda: watched.receive.alertable == 1)
    for count in (1, 2):
        watched.device.set()
        assert wait_until(partial(_served, watched, count))
    packet = ipv4(b"both", 20)  # the ring is still served as before
    watched.send_packet(packet)
    assert wait_until(lambda: watched.system == [packet])


def test_a_busy_ring_does_not_starve_the_descriptor(watched: Watched) -> None:
    first, second = threading.Event(), threading.Event()
    watched.holds = [first, second]
    watched.send_packet(ipv4(b"one", 20))
    assert wait_until(lambda: len(watched.system) == 1)  # the system holds the first
    watched.send_packet(ipv4(b"two", 20))  # the ring will not be empty in between
    watched.device.set()
    first.set()
    assert wait_until(lambda: len(watched.system) == 2)  # now it holds the second
    assert watched.served == 1  # served between the two, not once the ring was empty
    second.set()


def test_the_descriptor_outlives_a_dead_receive_ring(watched: Watched) -> None:
    assert wait_until(lambda: watched.receive.alertable == 1)
    watched.receive.tail = CAP  # out of range: the Receive ring dies
    watched.tail_moved.set()
    assert wait_until(lambda: watched.receive.head == DEAD)
    watched.device.set()
    assert wait_until(lambda: watched.served == 1)


def test_a_failed_descriptor_is_no_longer_watched(watched: Watched) -> None:
    watched.fail = True
    watched.device.set()
    assert wait_until(lambda: watched.served == 1)
    watched.device.set()  # left signalled: a watched descriptor would be served again at once
    packet = ipv4(b"still", 20)
    watched.send_packet(packet)
    assert wait_until(lambda: watched.system == [packet])
    assert watched.served == 1


def test_stop_ends_a_watching_consumer_and_watching_starts_before_it(
    watched: Watched,
) -> None:
    with pytest.raises(RuntimeError, match="before the consumer starts"):
        watched.driver.watch_while_idle(watched.device.fileno(), watched.ready)
    watched.driver.stop()
    assert watched.receive.head == DEAD and watched.send.tail == DEAD
