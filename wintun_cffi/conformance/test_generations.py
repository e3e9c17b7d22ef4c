"""The rules in which Wintun's generations and releases differ, each checked per generation
(and, where it changed inside one, per release: the ``wintun_release`` argument).

1. A record that is not IP: 0.14 discards and counts it; earlier drivers stop reading the
   Receive ring there. A pre-0.14 session therefore refuses such a packet before the ring is
   touched, and gives a buffer up as an IPv4 packet the system drops.
2. ``WintunSendPacket`` signals an alertable driver even when Tail did not move (the 2020-11
   snapshot, 0.9, 0.9.1), or only when it moved (0.9.2 on).
3. The driver refuses rings whose Send Tail is out of range, and stops the Receive ring at
   once if its Head is out of range when the session starts.
4. The driver gives each packet's space back (moves Head) as the system returns it.
5. Errors name the generation's own export (the snapshot's ``WintunReceiveRelease``).

Rules 1, 2 and 4 need to look at the rings and hold the system (only the emulator's far side
can); rule 3 needs to prepare the rings the driver registers (only an emulated kernel can).
"""

from __future__ import annotations

import gc
import struct
from pathlib import Path

import pytest

from wintun_cffi import (
    Adapter,
    HandleClosedError,
    InvalidParameterError,
    NotIPPacketError,
    Session,
    SessionEndedError,
    ip,
)
from wintun_cffi.constants import (
    ERROR_INVALID_PARAMETER,
    MIN_RING_CAPACITY,
    RING_DEAD_MARKER,
    record_size,
)

from .backends import BackendCase, Unavailable
from .farside import FarSide, RawFarSide, app_receive_udp, udp_to_far
from .support import wait_until

TIMEOUT = 5.0


def send_unchecked(backend: BackendCase, session: Session, payload: bytes) -> None:
    """Send ``payload`` through the C API as it is, without the session's refusals."""
    api = backend.wintun.backend
    view, token = api.allocate_send_packet(session._handle, len(payload))
    view[:] = payload
    api.send_packet(session._handle, token)


def is_harmless(record: bytes, secret: bytes) -> bool:
    """True if ``record`` is the IPv4 packet a pre-0.14 session gives a buffer up as: a
    header the system must drop (wrong checksum, destination 0.0.0.0, TTL 0), nothing else."""
    total = struct.unpack_from("!H", record, 2)[0]
    return (
        record[0] == 0x45
        and total == len(record)
        and ip.checksum(record[:20]) != 0
        and record[16:20] == bytes(4)
        and record[8] == 0
        and secret not in record
        and record[20:] == bytes(len(record) - 20)
    )


def kernel_ip_header_errors() -> int:
    """Linux's count of IPv4 packets it dropped for a bad header (this network namespace)."""
    lines = [
        line.split()
        for line in Path("/proc/net/snmp").read_text().splitlines()
        if line.startswith("Ip:")
    ]
    names, values = lines[0], lines[1]
    return int(values[names.index("InHdrErrors")])


# -- 1. records that are not IP ---------------------------------------------------------------


def test_driver_meets_a_record_that_is_not_ip(
    backend: BackendCase, session: Session, raw: RawFarSide
) -> None:
    before = udp_to_far(b"before")
    send_unchecked(backend, session, before)
    send_unchecked(backend, session, bytes(30))  # IP version 0
    if backend.api == "0.14":  # discarded and counted; the driver reads on
        send_unchecked(backend, session, b"\x45" + bytes(10))  # IPv4 but too short
        send_unchecked(backend, session, udp_to_far(b"after"))
        assert [raw.receive(TIMEOUT), raw.receive(TIMEOUT)] == [before, udp_to_far(b"after")]
        assert raw.statistics.in_discards == 2
    else:  # the driver stops reading the ring there, counting nothing
        assert raw.receive(TIMEOUT) == before  # what came first still reached the system
        assert wait_until(lambda: raw.ring_field("receive", "head") == RING_DEAD_MARKER)
        assert raw.statistics.in_discards == 0
        with pytest.raises(SessionEndedError):
            session.send(udp_to_far(b"after"))
        far_packet = udp_to_far(b"the other way still works")
        assert raw.deliver(far_packet)
        with session.receive(TIMEOUT) as packet:
            assert bytes(packet.data) == far_packet
    assert raw.collect() == []


def test_pre_014_sessions_refuse_what_would_end_their_sending(
    backend: BackendCase, session: Session, far: FarSide
) -> None:
    refused = [bytes(30), b"\x45" + bytes(10), b"\x60" + bytes(30), b""]
    if backend.api == "0.14":  # the driver copes: nothing is refused
        for packet in refused:
            assert session.send(packet)
        session.allocate_send_packet(0).send()
    else:
        tail = far.raw.ring_field("receive", "tail") if far.raw is not None else None
        for packet in refused:
            with pytest.raises(NotIPPacketError):
                session.send(packet)
        with pytest.raises(NotIPPacketError):
            session.send_many([udp_to_far(b"fine"), bytes(30)])  # none of them is sent
        for size in (0, 19):
            with pytest.raises(NotIPPacketError):
                session.allocate_send_packet(size)
        if far.raw is not None:  # nothing reached the ring
            assert far.raw.ring_field("receive", "tail") == tail
        fixed = udp_to_far(b"fixed")
        buffer = session.allocate_send_packet(len(fixed))
        with pytest.raises(NotIPPacketError):
            buffer.send()  # still all zeros: refused, and still ours to fill
        assert not buffer.sent
        buffer.data[:] = fixed
        buffer.send()
        with pytest.raises(NotIPPacketError):
            with session.allocate_send_packet(40):
                pass  # left unfilled: refused at the end of the block, and given up
        assert far.receive_udp(TIMEOUT).payload == b"fixed"
    session.send(udp_to_far(b"still sending"))
    assert far.receive_udp(TIMEOUT).payload == b"still sending"
    if far.raw is not None:
        discarded = len(refused) + 1 if backend.api == "0.14" else 0
        assert far.raw.statistics.in_discards == discarded


@pytest.mark.parametrize("how", ["exception", "abandon", "garbage"])
def test_a_buffer_given_up_is_harmless(
    backend: BackendCase, session: Session, far: FarSide, how: str
) -> None:
    """0.14: a non-IP record the driver discards; before: an IPv4 packet the system drops."""
    secret = udp_to_far(b"never sent")
    header_errors = kernel_ip_header_errors() if backend.kind == "linux-tun" else 0
    if how == "exception":
        with pytest.raises(RuntimeError), session.allocate_send_packet(len(secret)) as view:
            view[:] = secret
            raise RuntimeError("the application failed while filling")
    else:
        buffer = session.allocate_send_packet(len(secret))
        buffer.data[:] = secret
        if how == "abandon":
            buffer.abandon()
            assert buffer.sent
        else:
            del buffer
            gc.collect()
    session.send(udp_to_far(b"after"))  # a buffer dropped unsent goes out at this call
    raw = far.raw
    if raw is None:
        assert far.receive_udp(TIMEOUT).payload == b"after"
        if backend.kind == "linux-tun" and backend.api != "0.14":
            # A real kernel got the record, dropped it for its header, and counted it.
            assert wait_until(lambda: kernel_ip_header_errors() == header_errors + 1)
        return
    if backend.api != "0.14":
        assert is_harmless(raw.receive(TIMEOUT), b"never sent")
    assert raw.receive(TIMEOUT) == udp_to_far(b"after")
    assert raw.statistics.in_discards == (1 if backend.api == "0.14" else 0)
    assert raw.collect() == []


# -- 2. when WintunSendPacket signals the driver ----------------------------------------------


def test_send_signal_when_tail_did_not_move(
    backend: BackendCase, wintun_release: str | None, session: Session, raw: RawFarSide
) -> None:
    release = backend.release or getattr(raw, "release", None)  # a user's emulator host
    if release is None:
        pytest.skip(
            "the send signal changed in 0.9.2: needs to know which release the backend "
            "reproduces (its far side's raw access has no release attribute)"
        )
    raw.pause()  # the driver's consumer holds the first packet: it reads no event meanwhile
    held = udp_to_far(b"held")
    session.send(held)
    assert wait_until(lambda: raw.held_packet == held)
    raw.consume_tail_moved()  # a signal the driver did not need to wait for
    raw.set_ring_field("receive", "alertable", 1)  # as if the driver slept
    first, second = udp_to_far(b"first"), udp_to_far(b"second")
    a = session.allocate_send_packet(len(first))
    b = session.allocate_send_packet(len(second))
    a.data[:], b.data[:] = first, second
    tail = raw.ring_field("receive", "tail")
    b.send()  # behind a: Tail does not move
    assert raw.ring_field("receive", "tail") == tail
    assert raw.consume_tail_moved() is release.signals_unmoved_tail
    a.send()  # Tail moves past both: every release signals
    assert raw.ring_field("receive", "tail") == tail + record_size(len(first)) + record_size(
        len(second)
    )
    assert raw.consume_tail_moved() is True
    raw.set_ring_field("receive", "alertable", 0)
    raw.resume()
    assert [raw.receive(TIMEOUT) for _ in range(3)] == [held, first, second]


# -- 3. registering the rings -----------------------------------------------------------------


def test_rings_with_the_send_tail_out_of_range_are_refused(
    backend: BackendCase, adapter: Adapter
) -> None:
    try:
        backend.corrupt_at_registration(adapter, "send", "tail", MIN_RING_CAPACITY)
    except Unavailable as reason:
        pytest.skip(str(reason))
    with pytest.raises(InvalidParameterError) as caught:
        adapter.start_session(MIN_RING_CAPACITY)
    assert caught.value.winerror == ERROR_INVALID_PARAMETER
    with adapter.start_session(MIN_RING_CAPACITY) as session:  # nothing was left behind
        far = backend.far_side(session)
        session.send(udp_to_far(b"registered"))
        assert far.receive_udp(TIMEOUT).payload == b"registered"


def test_receive_head_out_of_range_at_the_start_stops_that_ring(
    backend: BackendCase, adapter: Adapter
) -> None:
    try:
        backend.corrupt_at_registration(adapter, "receive", "head", MIN_RING_CAPACITY + 4)
    except Unavailable as reason:
        pytest.skip(str(reason))
    with adapter.start_session(MIN_RING_CAPACITY) as session:
        far = backend.far_side(session)
        if far.raw is not None:  # the driver wrote its dead marker, and read nothing
            assert wait_until(
                lambda: (
                    far.raw is not None
                    and far.raw.ring_field("receive", "head") == RING_DEAD_MARKER
                )
            )
        with pytest.raises(SessionEndedError):
            session.send(udp_to_far(b"nowhere"))
        far.send_udp(b"the other ring works")  # only the Receive ring stopped
        assert app_receive_udp(session, TIMEOUT).payload == b"the other ring works"


# -- 4. when the driver gives space back ------------------------------------------------------


def test_head_moves_as_each_packet_comes_back(
    backend: BackendCase, session: Session, raw: RawFarSide
) -> None:
    one, two, three = (udp_to_far(b"one"), udp_to_far(b"two!"), udp_to_far(b"three"))
    junk = bytes(24)  # 0.14 only: discarded, so its space comes back without the system
    sequence = [one, junk, two, three] if backend.api == "0.14" else [one, two, three]
    raw.pause()
    assert session.send_many(sequence) == len(sequence)
    assert wait_until(lambda: raw.held_packet == one)
    assert raw.ring_field("receive", "head") == 0  # the system has packet one
    raw.resume(1)
    assert wait_until(lambda: raw.held_packet == two)
    passed = record_size(len(one)) + (record_size(len(junk)) if backend.api == "0.14" else 0)
    assert raw.ring_field("receive", "head") == passed
    raw.resume(1)
    assert wait_until(lambda: raw.held_packet == three)
    assert raw.ring_field("receive", "head") == passed + record_size(len(two))
    raw.resume()
    end = raw.ring_field("receive", "tail")
    assert wait_until(lambda: raw.ring_field("receive", "head") == end)
    assert [raw.receive(TIMEOUT) for _ in range(3)] == [one, two, three]


# -- 5. names in errors -----------------------------------------------------------------------


def test_errors_name_the_generations_own_export(backend: BackendCase, adapter: Adapter) -> None:
    api = backend.wintun.backend
    handle = api.start_session(adapter.handle, MIN_RING_CAPACITY)
    api.end_session(handle)
    name = "WintunReceiveRelease" if backend.api == "seed" else "WintunReleaseReceivePacket"
    with pytest.raises(HandleClosedError, match=name):
        api.release_receive_packet(handle, object())
