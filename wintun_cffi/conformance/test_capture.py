"""Session.capture(): every packet the application takes and gives, recorded once, in order.

The capture is read back with :mod:`wintun_cffi.capture_read`; the tshark test reads one with
a reader nobody here wrote.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wintun_cffi import Session, SessionClosedError
from wintun_cffi.capture import GIVEN_UP_COMMENT, INBOUND, OUTBOUND
from wintun_cffi.capture_read import CaptureRecord, iter_capture, read_capture

from .backends import BackendCase
from .farside import FarSide, RawFarSide, datagram_for_app, parse_udp, udp_to_far

TIMEOUT = 5.0


def _far_payloads(records: list[CaptureRecord]) -> list[bytes]:
    """The far side's datagrams among the inbound records (a real system adds its own)."""
    found = [datagram_for_app(record.data) for record in records if record.direction == INBOUND]
    return [datagram.payload for datagram in found if datagram is not None]


def _receive_one(session: Session, path: str) -> bytes:
    """One packet through the receive path named ``path``, as bytes."""
    if path == "receive":
        with session.receive(TIMEOUT) as packet:
            return bytes(packet.data)
    if path == "receive_many":
        (packet,) = session.receive_many(1, TIMEOUT)
        with packet:
            return bytes(packet.data)
    if path == "receive_batch":
        with session.receive_batch(1, TIMEOUT) as batch:
            return bytes(batch[0])
    if path == "iteration":
        for packet in session:
            with packet:
                return bytes(packet.data)
    if path == "read":
        return session.read(TIMEOUT)
    if path == "read_many":
        (data,) = session.read_many(1, TIMEOUT)
        return data
    if path == "read_into":
        buffer = bytearray(0xFFFF)
        return bytes(buffer[: session.read_into(buffer, TIMEOUT)])
    assert path == "receive_async"

    async def receive() -> bytes:
        with await asyncio.wait_for(session.receive_async(), TIMEOUT) as packet:
            return bytes(packet.data)

    return asyncio.run(receive())


RECEIVE_PATHS = (
    "receive",
    "receive_many",
    "receive_batch",
    "iteration",
    "read",
    "read_many",
    "read_into",
    "receive_async",
)


def _until_far(session: Session, path: str) -> bytes:
    """The next of the far side's datagrams through ``path`` (skipping the system's own)."""
    while True:
        datagram = datagram_for_app(_receive_one(session, path))
        if datagram is not None:
            return datagram.payload


def test_every_receive_path_is_recorded_inbound_in_order(
    session: Session, far: FarSide, tmp_path: Path
) -> None:
    capture = session.capture(tmp_path / "received.pcapng")
    payloads = []
    for path in RECEIVE_PATHS:
        payload = f"through {path}".encode()
        far.send_udp(payload)
        assert _until_far(session, path) == payload
        payloads.append(payload)
    capture.close()
    records = read_capture(tmp_path / "received.pcapng")
    assert _far_payloads(records) == payloads
    stamps = [record.timestamp_ns for record in records]
    assert stamps == sorted(stamps)


def _sent_payloads(records: list[CaptureRecord]) -> list[bytes]:
    found = [parse_udp(record.data) for record in records if record.direction == OUTBOUND]
    return [parsed[2].payload for parsed in found if parsed is not None]


def test_every_send_path_is_recorded_outbound_in_order(
    session: Session, far: FarSide, tmp_path: Path
) -> None:
    capture = session.capture(tmp_path / "sent.pcapng")
    packets = [udp_to_far(b"send"), udp_to_far(b"many-1"), udp_to_far(b"many-2")]
    assert session.send(packets[0])
    assert session.send_many(packets[1:]) == 2
    filled = udp_to_far(b"allocated")
    buffer = session.allocate_send_packet(len(filled))
    buffer.data[:] = filled
    buffer.send()
    for _ in range(4):  # each arrived whole on the far side
        far.receive_udp(TIMEOUT)
    capture.close()
    records = read_capture(tmp_path / "sent.pcapng")
    assert _sent_payloads(records) == [b"send", b"many-1", b"many-2", b"allocated"]
    assert [record.data for record in records if record.direction == OUTBOUND] == [
        *packets,
        filled,
    ]
    assert all(record.comment is None for record in records)


def test_a_given_up_packet_is_recorded_as_the_driver_got_it_flagged(
    backend: BackendCase, session: Session, raw: RawFarSide, tmp_path: Path
) -> None:
    capture = session.capture(tmp_path / "given-up.pcapng")
    session.allocate_send_packet(60).abandon()
    assert session.send(udp_to_far(b"after"))
    system_got = [raw.receive(TIMEOUT)]
    while parse_udp(system_got[-1]) is None:
        system_got.append(raw.receive(TIMEOUT))
    capture.close()
    with iter_capture(tmp_path / "given-up.pcapng") as reader:
        records = list(reader)
    if len(system_got) == 2:  # made a harmless IP packet: the system took it too
        assert [record.data for record in records] == system_got
        assert [record.comment for record in records] == [GIVEN_UP_COMMENT, None]
    else:  # made not IP (Wintun 0.14): recorded, and a reader of IP packets skips it
        assert reader.skipped == 1
        assert [record.data for record in records] == system_got
    assert {record.direction for record in records} == {OUTBOUND}


def test_the_session_closes_its_capture_with_every_record(
    session: Session, far: FarSide, tmp_path: Path
) -> None:
    capture = session.capture(tmp_path / "closed.pcapng")
    far.send_udp(b"before close")
    assert _until_far(session, "read") == b"before close"
    assert not capture.closed
    session.close()
    assert capture.closed
    assert _far_payloads(read_capture(tmp_path / "closed.pcapng")) == [b"before close"]


def test_one_capture_at_a_time(session: Session, far: FarSide, tmp_path: Path) -> None:
    first = session.capture(tmp_path / "first.pcapng")
    with pytest.raises(RuntimeError, match="already capturing"):
        session.capture(tmp_path / "second.pcapng")
    assert not (tmp_path / "second.pcapng").exists()
    far.send_udp(b"one")
    assert _until_far(session, "read") == b"one"
    first.close()
    second = session.capture(tmp_path / "second.pcapng")
    far.send_udp(b"two")
    assert _until_far(session, "read") == b"two"
    second.close()
    assert _far_payloads(read_capture(tmp_path / "first.pcapng")) == [b"one"]
    assert _far_payloads(read_capture(tmp_path / "second.pcapng")) == [b"two"]
    assert session.statistics.capture_dropped == 0


def test_the_snap_length_cuts_records_not_packets(
    session: Session, far: FarSide, tmp_path: Path
) -> None:
    capture = session.capture(tmp_path / "snapped.pcapng", snaplen=40)
    far.send_udp(b"x" * 200)
    assert _until_far(session, "read") == b"x" * 200
    capture.close()
    records = read_capture(tmp_path / "snapped.pcapng")
    assert records and all(len(record.data) <= 40 for record in records)
    assert max(record.original_length for record in records) >= 200


def test_capture_after_close_is_refused(session: Session, tmp_path: Path) -> None:
    session.close()
    with pytest.raises(SessionClosedError):
        session.capture(tmp_path / "late.pcapng")
    assert not (tmp_path / "late.pcapng").exists()
