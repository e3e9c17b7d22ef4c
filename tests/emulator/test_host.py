"""The emulated operating system: traffic, echo responder, statistics, faults, termination."""

from __future__ import annotations

import ipaddress
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulator import Emulator, Host
from emulator.client import SessionClient
from emulator.driver import RegistrationRefused
from emulator.releases import RELEASES
from emulator.ring import Ring
from tests.support import ClientCalls, wait_until
from wintun_cffi import ip
from wintun_cffi.constants import (
    ERROR_HANDLE_EOF,
    ERROR_INVALID_DATA,
)
from wintun_cffi.errors import (
    AdapterNotFoundError,
    NoMoreItemsError,
    RingCorruptError,
    SessionEndedError,
)
from wintun_cffi.fdevent import FdEvent

from .conftest import CAP, DEAD, ipv4, rec


@dataclass
class Rig:
    host: Host
    client: ClientCalls
    send: Ring
    receive: Ring
    read_wait: FdEvent
    tail_moved: FdEvent

    def send_packet(self, payload: bytes) -> None:
        view, token = self.client.allocate_send_packet(len(payload))
        view[:] = payload
        self.client.send_packet(token)

    def next_packet(self, timeout: float = 5.0) -> bytes:
        """Wait for and take one packet the host delivered."""
        while True:
            try:
                view, token = self.client.receive_packet()
            except NoMoreItemsError:
                if not self.read_wait.wait(timeout):
                    raise TimeoutError("nothing delivered") from None
                continue
            data = bytes(view)
            self.client.release_receive_packet(token)
            return data


def make_rig(capture_limit: int = 1000) -> Rig:
    host = Host("test", capture_limit=capture_limit)
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    host.attach(send, receive, read_wait, tail_moved)
    return Rig(
        host,
        ClientCalls(SessionClient(send, receive, tail_moved)),
        send,
        receive,
        read_wait,
        tail_moved,
    )


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = make_rig()
    yield r
    r.host.detach()
    r.read_wait.close()
    r.tail_moved.close()


def icmp_checksum_ok(message: bytes) -> bool:
    total = 0
    data = message + b"\x00" * (len(message) % 2)
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def test_deliver_and_receive_by_the_application(rig: Rig) -> None:
    assert rig.host.deliver(b"\x45single")
    assert rig.host.deliver_many([b"\x45one", b"\x45two"])
    assert [rig.next_packet() for _ in range(3)] == [b"\x45single", b"\x45one", b"\x45two"]
    stats = rig.host.statistics
    assert (stats.out_packets, stats.out_octets) == (3, 7 + 4 + 4)


def test_receive_and_collect_what_the_application_sent(rig: Rig) -> None:
    with pytest.raises(TimeoutError):
        rig.host.receive(timeout=0)
    with pytest.raises(TimeoutError):
        rig.host.receive(timeout=0.01)
    packets = [ipv4(bytes([i]), 20 + i) for i in range(4)]
    for packet in packets:
        rig.send_packet(packet)
    assert rig.host.receive(timeout=5.0) == packets[0]
    assert wait_until(lambda: rig.host.statistics.in_packets == 4)
    assert rig.host.collect() == packets[1:]
    assert rig.host.collect() == []
    assert rig.host.statistics.in_octets == sum(len(p) for p in packets)


def test_receive_without_timeout_waits_for_a_packet(rig: Rig) -> None:
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(rig.host.receive()))
    thread.start()
    rig.send_packet(ipv4(b"w", 20))
    thread.join(10.0)
    assert got == [ipv4(b"w", 20)]


def test_capture_limit_drops_the_oldest() -> None:
    r = make_rig(capture_limit=3)
    packets = [ipv4(bytes([i]), 20) for i in range(5)]
    for packet in packets:
        r.send_packet(packet)
    assert wait_until(lambda: r.host.statistics.in_packets == 5)
    assert r.host.capture_overflow == 2
    assert r.host.collect() == packets[2:]
    r.host.detach()


@pytest.mark.parametrize(
    ("local", "peer", "other"),
    [("10.6.7.7/24", "10.6.7.8", "10.6.7.9"), ("fd00::7/64", "fd00::8", "fd00::9")],
)
def test_echo_responder_answers_assigned_addresses_only(
    rig: Rig, local: str, peer: str, other: str
) -> None:
    address = str(ipaddress.ip_interface(local).ip)
    rig.host.add_address(local)
    rig.host.add_address(local)  # twice is once
    assert rig.host.interfaces == (ipaddress.ip_interface(local),)
    stray = ip.icmp_echo(peer, other, identifier=7, sequence=1, payload=b"nobody")
    request = ip.icmp_echo(peer, address, identifier=7, sequence=2, payload=b"hello")
    rig.send_packet(stray)
    rig.send_packet(request)
    reply = rig.next_packet()  # the stray one got no answer, so this is the second's
    assert ip.addresses(reply) is not None
    src, dst, proto = ip.addresses(reply)  # type: ignore[misc]
    assert (str(src), str(dst)) == (address, peer)
    if "." in address:
        assert proto == 1 and reply[0] == 0x45
        assert icmp_checksum_ok(reply[:20])  # IPv4 header checksum
        message = reply[20:]
        assert message[0] == 0 and icmp_checksum_ok(message)
    else:
        assert proto == 58 and reply[0] >> 4 == 6
        message = reply[40:]
        pseudo = (
            ipaddress.IPv6Address(address).packed
            + ipaddress.IPv6Address(peer).packed
            + struct.pack("!I", len(message))
            + b"\x00\x00\x00\x3a"
        )
        assert message[0] == 129 and icmp_checksum_ok(pseudo + message)
    assert struct.unpack("!HH", message[4:8]) == (7, 2) and message[8:] == b"hello"
    with pytest.raises(NoMoreItemsError):
        rig.client.receive_packet()
    assert rig.host.collect() == [stray, request]


def test_removed_address_is_no_longer_answered(rig: Rig) -> None:
    rig.host.add_address("10.0.0.1/24")
    rig.host.add_address("10.0.0.2/24")
    rig.host.remove_address("10.0.0.1/24")
    with pytest.raises(KeyError):
        rig.host.remove_address("10.0.0.1/24")
    with pytest.raises(KeyError):
        rig.host.remove_address("192.168.0.1/24")
    rig.send_packet(ip.icmp_echo("10.0.0.9", "10.0.0.1", sequence=1))
    rig.send_packet(ip.icmp_echo("10.0.0.9", "10.0.0.2", sequence=2))
    reply = rig.next_packet()
    assert ip.addresses(reply) is not None and struct.unpack("!H", reply[26:28]) == (2,)


def test_echo_responder_can_be_switched_off(rig: Rig) -> None:
    rig.host.add_address("10.0.0.1/24")
    rig.host.echo_responder = False
    rig.send_packet(ip.icmp_echo("10.0.0.9", "10.0.0.1"))
    assert wait_until(lambda: rig.host.statistics.in_packets == 1)
    rig.host.echo_responder = True
    rig.send_packet(ip.icmp_echo("10.0.0.9", "10.0.0.1", sequence=5))
    assert struct.unpack("!H", rig.next_packet()[26:28]) == (5,)
    with pytest.raises(NoMoreItemsError):
        rig.client.receive_packet()


def test_deliver_without_a_session_is_dropped() -> None:
    host = Host("idle")
    assert host.driver is None
    assert not host.deliver_many(iter([b"a", b"b"]))
    assert not host.deliver(b"c")
    assert host.statistics.out_discards == 3
    with pytest.raises(RuntimeError):
        host.corrupt_index("send", "tail")


def test_second_attach_is_refused(rig: Rig) -> None:
    with pytest.raises(RuntimeError):
        rig.host.attach(rig.send, rig.receive, rig.read_wait, rig.tail_moved)


# -- faults -----------------------------------------------------------------------------------


def test_corrupt_record_in_the_send_ring(rig: Rig) -> None:
    assert rig.host.deliver(b"\x45abc")
    rig.host.corrupt_record("send", 0, 0x10000)
    for _ in range(2):
        with pytest.raises(RingCorruptError) as exc:
            rig.client.receive_packet()
        assert exc.value.winerror == ERROR_INVALID_DATA
    rig.host.corrupt_record("send", 0, 4)
    view, _ = rig.client.receive_packet()
    assert bytes(view) == b"\x45abc"


def test_corrupt_send_tail_ends_the_session_for_the_reader(rig: Rig) -> None:
    rig.host.corrupt_index("send", "tail")
    assert rig.read_wait.wait(5.0)  # a blocked reader is woken to see it
    with pytest.raises(SessionEndedError) as exc:
        rig.client.receive_packet()
    assert exc.value.winerror == ERROR_HANDLE_EOF


def test_corrupt_receive_head_ends_sending(rig: Rig) -> None:
    rig.host.corrupt_index("receive", "head", CAP)
    with pytest.raises(SessionEndedError) as exc:
        rig.client.allocate_send_packet(20)
    assert exc.value.winerror == ERROR_HANDLE_EOF


def test_corrupt_record_in_the_receive_ring_kills_the_consumer(rig: Rig) -> None:
    view, token = rig.client.allocate_send_packet(20)
    view[:] = ipv4(b"z", 20)
    rig.host.corrupt_record("receive", 0, 0x10000 | 0x80000000)
    rig.client.send_packet(token)  # clears the flag: Size 0x10000 reaches the driver
    assert wait_until(lambda: rig.receive.head == DEAD)
    assert rig.host.statistics.in_errors == 0  # the ring dies uncounted, as in wintun.sys
    with pytest.raises(SessionEndedError):
        rig.client.allocate_send_packet(20)


# -- termination through the emulator -------------------------------------------------------------


def test_terminate_removes_the_adapter_and_wakes_a_blocked_reader() -> None:
    wintun = Emulator("0.14")
    adapter, _ = wintun.create_adapter("Gone", tunnel_type="T")
    host = wintun.host(adapter)
    session = wintun.start_session(adapter, CAP)
    client = session.client  # type: ignore[attr-defined]
    started = threading.Event()
    woke: list[bool] = []

    def reader() -> None:
        started.set()
        woke.append(wintun.wait_read_event(session, 10.0))

    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(5.0)
    host.terminate()
    thread.join(10.0)
    assert woke == [True] and host.terminated
    assert wintun.adapter_names() == []
    assert client.send_ring.tail == DEAD and client.receive_ring.head == DEAD
    with pytest.raises(SessionEndedError) as exc:
        wintun.receive_packet(session)
    assert exc.value.winerror == ERROR_HANDLE_EOF
    with pytest.raises(SessionEndedError):
        wintun.allocate_send_packet(session, 20)
    with pytest.raises(AdapterNotFoundError):
        wintun.open_adapter("Gone")
    assert not host.deliver(b"\x45late")
    wintun.end_session(session)
    wintun.close_adapter(adapter)


def test_statistics_count_both_directions_through_the_emulator() -> None:
    wintun = Emulator("pool")
    adapter, _ = wintun.create_adapter("S", pool="P")
    host = wintun.host(adapter)
    session = wintun.start_session(adapter, CAP)
    packet = ipv4(b"s", 40)
    view, token = wintun.allocate_send_packet(session, len(packet))
    view[:] = packet
    wintun.send_packet(session, token)
    assert host.receive(timeout=5.0) == packet
    assert host.deliver_many([b"\x45" * 30, b"\x60" * 50])
    assert host.statistics.as_dict() == {
        "out_octets": 80,
        "out_packets": 2,
        "out_discards": 0,
        "out_errors": 0,
        "in_octets": 40,
        "in_packets": 1,
        "in_discards": 0,
        "in_errors": 0,
    }
    assert rec(30) + rec(50) == session.client.send_ring.tail  # type: ignore[attr-defined]
    wintun.end_session(session)
    wintun.delete_adapter(adapter, False)
    wintun.free_adapter(adapter)


# -- the release, registration faults and pausing ----------------------------------------------


def test_the_host_runs_its_release_s_driver() -> None:
    for release, stops in (("0.14.1", False), ("0.9.1", True), ("2020-11", True)):
        host = Host("r", release=RELEASES[release])
        send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
        read_wait, tail_moved = FdEvent(), FdEvent()
        host.attach(send, receive, read_wait, tail_moved)
        client = ClientCalls(SessionClient(send, receive, tail_moved, RELEASES[release]))
        view, token = client.allocate_send_packet(30)
        client.send_packet(token)  # all zeros: not IP
        assert wait_until(lambda: receive.head in (DEAD, rec(30)))  # noqa: B023 (called here)
        assert (receive.head == DEAD) is stops
        host.detach()
        read_wait.close()
        tail_moved.close()


def test_registration_faults_apply_to_the_next_session_only() -> None:
    host = Host("faults")
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    read_wait, tail_moved = FdEvent(), FdEvent()
    host.corrupt_at_registration("send", "tail", CAP)
    with pytest.raises(RegistrationRefused):
        host.attach(send, receive, read_wait, tail_moved)
    assert host.driver is None
    send.tail = 0
    host.corrupt_at_registration("receive", "head", DEAD)
    host.attach(send, receive, read_wait, tail_moved)
    assert wait_until(lambda: host.ring_field("receive", "head") == DEAD)
    host.detach()
    receive.head = send.tail = 0  # the dead markers the stop wrote
    host.attach(send, receive, read_wait, tail_moved)  # nothing pending any more
    assert host.ring_field("receive", "head") == 0
    with pytest.raises(ValueError, match="field"):
        host.corrupt_at_registration("send", "size", 0)  # type: ignore[arg-type]
    host.detach()
    read_wait.close()
    tail_moved.close()


def test_ring_fields_read_and_write(rig: Rig) -> None:
    rig.host.set_ring_field("receive", "alertable", 1)
    assert rig.receive.alertable == 1 and rig.host.ring_field("receive", "alertable") == 1
    rig.host.set_ring_field("send", "head", 8)
    assert rig.send.head == 8 == rig.host.ring_field("send", "head")
    assert rig.host.ring_field("send", "tail") == 0


def test_pause_holds_the_application_s_packets(rig: Rig) -> None:
    rig.host.pause()
    packet = ipv4(b"p", 20)
    rig.send_packet(packet)
    assert wait_until(lambda: rig.host.held_packet == packet)
    assert rig.host.collect() == [] and rig.receive.head == 0
    rig.host.consume_tail_moved()  # the driver may not have needed this signal: take it
    assert not rig.host.consume_tail_moved()
    rig.host.set_ring_field("receive", "alertable", 1)  # as if it slept; nobody reads the event
    rig.send_packet(packet)
    assert rig.host.consume_tail_moved()
    rig.host.set_ring_field("receive", "alertable", 0)
    rig.host.resume()
    assert [rig.host.receive(5.0), rig.host.receive(5.0)] == [packet, packet]
    assert rig.host.held_packet is None


def test_pausing_needs_a_session() -> None:
    host = Host("idle")
    with pytest.raises(RuntimeError, match="no running session"):
        host.pause()
    assert host.held_packet is None
