"""Impairments over a session of any backend (wintun_cffi.impaired.ImpairedSession): the traffic
each way goes through them, deterministically for a seed where the far side is the emulator's
host, and the wrapper's threads end with it."""

from __future__ import annotations

import threading

import pytest

from wintun_cffi import Session, SessionClosedError, ip
from wintun_cffi.impair import Impairer, Impairment
from wintun_cffi.impaired import ImpairedSession

from .farside import (
    APP_ADDRESS,
    APP_PORT,
    FAR_ADDRESS,
    FAR_PORT,
    Datagram,
    FarSide,
    RawFarSide,
    datagram_for_app,
    udp_to_far,
)
from .support import wait_until

TIMEOUT = 5.0
#: A short wait in which nothing must arrive (a negative check, not a timing assertion).
QUIET = 0.05


def wrapper_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(("wintun-impair-", "wintun-impaired-"))
    ]


def ip_udp(payload: bytes) -> bytes:
    """A datagram from the far side to the application."""
    return ip.udp_packet(FAR_ADDRESS, APP_ADDRESS, FAR_PORT, APP_PORT, payload)


def app_receive(impaired: ImpairedSession, timeout: float = TIMEOUT) -> Datagram:
    """The next datagram from the far side (the system's own packets are skipped)."""
    while True:
        datagram = datagram_for_app(impaired.read(timeout))
        if datagram is not None:
            return datagram


def test_traffic_passes_both_ways(session: Session, far: FarSide) -> None:
    with ImpairedSession(session) as impaired:
        assert impaired.adapter is session.adapter and not impaired.closed
        impaired.send(udp_to_far(b"out"))
        assert far.receive_udp(TIMEOUT).payload == b"out"
        far.send_udp(b"in")
        assert app_receive(impaired).payload == b"in"
    assert session.closed and impaired.closed
    assert wrapper_threads() == []


def test_duplicates_each_way(session: Session, far: FarSide) -> None:
    twice = Impairment(duplicate=1.0)
    with ImpairedSession(session, inbound=twice, outbound=twice, seed=1) as impaired:
        impaired.send(udp_to_far(b"out"))
        assert [far.receive_udp(TIMEOUT).payload for _ in range(2)] == [b"out", b"out"]
        far.send_udp(b"in")
        assert [app_receive(impaired).payload for _ in range(2)] == [b"in", b"in"]
        assert impaired.statistics.outbound.duplicated == 1


def test_outbound_loss(session: Session, far: FarSide) -> None:
    with ImpairedSession(session, outbound=Impairment(loss=1.0)) as impaired:
        impaired.send_many([udp_to_far(b"lost"), udp_to_far(b"lost too")])
        with pytest.raises(TimeoutError):
            far.receive_udp(QUIET)
        assert impaired.statistics.outbound.lost == 2
        impaired.outbound.settings = Impairment()  # changed while running
        impaired.send(udp_to_far(b"kept"))
        assert far.receive_udp(TIMEOUT).payload == b"kept"


def test_corruption_with_fixed_checksums_reaches_the_application(
    session: Session, far: FarSide
) -> None:
    """The packet keeps valid checksums: it arrives, with a payload that differs."""
    corrupt = Impairment(corrupt=1.0, fix_checksums=True)
    with ImpairedSession(session, inbound=corrupt, seed=2) as impaired:
        far.send_udp(b"\x00" * 64)
        datagram = app_receive(impaired)
        assert datagram.payload != b"\x00" * 64
        assert impaired.statistics.inbound.corrupted >= 1


def test_inbound_sequence_follows_the_seed(session: Session, raw: RawFarSide) -> None:
    settings = Impairment(loss=0.2, duplicate=0.1, corrupt=0.1)
    packets = [ip_udp(index.to_bytes(4, "big") + bytes(60)) for index in range(300)]
    expected = [p for _, p in Impairer(settings, seed="9/inbound").run((0.0, p) for p in packets)]
    with ImpairedSession(session, inbound=settings, seed=9) as impaired:
        for packet in packets:
            assert raw.deliver(packet)
        got = [impaired.read(TIMEOUT) for _ in expected]
        assert impaired.read_many(10, timeout=QUIET) == []
    assert got == expected


def test_held_packets_do_not_keep_ring_memory(session: Session, raw: RawFarSide) -> None:
    """Delayed packets are copies: the ring's packets are released at once, and closing
    discards the copies, ends the threads and does not wait for their release time."""
    impaired = ImpairedSession(session, inbound=Impairment(delay=3600))
    for index in range(3):
        assert raw.deliver(ip_udp(bytes([index])))
    assert wait_until(lambda: impaired.inbound.statistics.pending == 3)
    assert raw.ring_field("send", "head") == raw.ring_field("send", "tail")  # all released
    impaired.close()
    assert impaired.inbound.statistics.discarded == 3
    assert wrapper_threads() == []


def test_a_blocked_read_wakes_on_close(session: Session) -> None:
    impaired = ImpairedSession(session)
    woke: list[BaseException] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        try:
            impaired.read()
        except BaseException as error:
            woke.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    assert started.wait(TIMEOUT)
    impaired.close()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert len(woke) == 1 and isinstance(woke[0], SessionClosedError)
    with pytest.raises(SessionClosedError):
        impaired.send(udp_to_far(b"late"))
    assert wrapper_threads() == []
