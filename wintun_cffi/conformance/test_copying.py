"""The copying path: read(), read_many(), read_into(), and how it mixes with zero-copy receives."""

from __future__ import annotations

import array
from collections.abc import Callable

import pytest

from wintun_cffi import PacketReleasedError, Session, SessionClosedError
from wintun_cffi.packets import CopiedPacket

from .backends import BackendCase
from .farside import FarSide, datagram_for_app, udp_to_far

TIMEOUT = 5.0


def _payloads(data: list[bytes]) -> list[bytes]:
    """The far side's datagrams among ``data`` (a real system adds packets of its own)."""
    found = [datagram_for_app(packet) for packet in data]
    return [datagram.payload for datagram in found if datagram is not None]


def _send(far: FarSide, count: int, tag: bytes = b"copy") -> list[bytes]:
    payloads = [b"%s-%d" % (tag, index) for index in range(count)]
    for payload in payloads:
        far.send_udp(payload)
    return payloads


def _until(count: int, receive: Callable[[], list[bytes]]) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < count:
        got += _payloads(receive())
    return got


def test_read_hands_out_every_packet_once_in_order(session: Session, far: FarSide) -> None:
    payloads = _send(far, 6)
    got = _until(len(payloads), lambda: [session.read(TIMEOUT)])
    assert got == payloads
    assert all(isinstance(payload, bytes) for payload in got)


def test_read_many(backend: BackendCase, session: Session, far: FarSide) -> None:
    payloads = _send(far, 7)
    got = _until(len(payloads), lambda: session.read_many(3, TIMEOUT))
    assert got == payloads
    if backend.emulated_kernel:
        assert session.read_many(4, timeout=0.01) == []
    with pytest.raises(ValueError):
        session.read_many(0)


def test_read_into(session: Session, far: FarSide) -> None:
    payloads = _send(far, 3)
    buffer = bytearray(0xFFFF)

    def one() -> list[bytes]:
        size = session.read_into(buffer, TIMEOUT)
        return [bytes(buffer[:size])]

    assert _until(len(payloads), one) == payloads


def test_read_into_a_small_buffer_keeps_the_packet(session: Session, far: FarSide) -> None:
    (payload,) = _send(far, 1, b"kept")
    while True:
        small = bytearray(8)
        with pytest.raises(ValueError, match="buffer holds 8"):
            session.read_into(small, TIMEOUT)
        assert small == bytearray(8)  # nothing written
        data = session.read(TIMEOUT)  # the same packet, still the next one
        if _payloads([data]) == [payload]:
            break


@pytest.mark.parametrize("buffer", [b"read-only", memoryview(bytearray(64))[::2]])
def test_read_into_refuses_a_buffer_it_cannot_fill(session: Session, buffer: object) -> None:
    with pytest.raises(TypeError, match="writable, contiguous"):
        session.read_into(buffer, timeout=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1"])
def test_reads_refuse_a_bad_timeout(session: Session, timeout: object) -> None:
    for call in (
        lambda: session.read(timeout),  # type: ignore[arg-type]
        lambda: session.read_many(4, timeout),  # type: ignore[arg-type]
        lambda: session.read_into(bytearray(64), timeout),  # type: ignore[arg-type]
    ):
        with pytest.raises((TypeError, ValueError), match="timeout"):
            call()


def test_reads_time_out(backend: BackendCase, session: Session) -> None:
    if not backend.emulated_kernel:
        pytest.skip("a real system sends its own packets through the adapter at any time")
    with pytest.raises(TimeoutError):
        session.read(timeout=0.01)
    with pytest.raises(TimeoutError):
        session.read_into(bytearray(64), timeout=0.01)


def test_zero_copy_receives_after_read_get_the_copies_first(session: Session, far: FarSide) -> None:
    """read() copies packets ahead; a zero-copy receive then hands those out first, in ring
    order, as packets that own their bytes; nothing is handed out twice or skipped."""
    payloads = _send(far, 9)
    got = _until(1, lambda: [session.read(TIMEOUT)])
    copied: list[CopiedPacket] = []
    while len(got) < len(payloads):
        packet = session.receive(TIMEOUT)
        if isinstance(packet, CopiedPacket):
            copied.append(packet)
        got += _payloads([bytes(packet.data)])
        if len(got) % 2:
            packet.release()
        else:
            session.release_many([packet])
    assert got == payloads
    for packet in copied:
        assert packet.released
        with pytest.raises(PacketReleasedError):
            packet.release()


def test_a_batch_after_read_holds_the_copies(session: Session, far: FarSide) -> None:
    payloads = _send(far, 6)
    got = _until(1, lambda: [session.read(TIMEOUT)])
    while len(got) < len(payloads):
        with session.receive_batch(4, timeout=TIMEOUT) as batch:
            got += _payloads([bytes(data) for data in batch])
        assert batch.released
        with pytest.raises(PacketReleasedError):
            batch.release()
    assert got == payloads


def test_release_many_mixing_copies_and_ring_packets(session: Session, far: FarSide) -> None:
    payloads = _send(far, 4)
    got = _until(1, lambda: [session.read(TIMEOUT)])
    held = []
    while len(got) < len(payloads):
        packet = session.receive(TIMEOUT)
        got += _payloads([bytes(packet.data)])
        held.append(packet)
    assert got == payloads
    held[0].release()
    with pytest.raises(PacketReleasedError):  # all or none: nothing else released
        session.release_many(held)
    assert not any(packet.released for packet in held[1:])
    session.release_many(held[1:])
    assert all(packet.released for packet in held)


def test_read_after_close(session: Session) -> None:
    session.close()
    with pytest.raises(SessionClosedError):
        session.read(timeout=0)
    with pytest.raises(SessionClosedError):
        session.read_many(4, timeout=0)
    with pytest.raises(SessionClosedError):
        session.read_into(bytearray(64), timeout=0)


def test_send_takes_any_contiguous_bytes_like(session: Session, far: FarSide) -> None:
    """bytes, bytearray, a byte memoryview (also a slice of one), and other formats by their
    bytes: each arrives whole."""
    packet = udp_to_far(b"shapes!!")  # an even size: it also fits an array of shorts
    shapes: list[object] = [
        packet,
        bytearray(packet),
        memoryview(packet),
        memoryview(b"\0" + packet + b"\0")[1:-1],
        array.array("H", packet),
    ]
    for shape in shapes:
        assert session.send(shape)  # type: ignore[arg-type]
        assert far.receive_udp(TIMEOUT).payload == b"shapes!!"
    with pytest.raises(TypeError):
        session.send(memoryview(packet)[::2])  # not contiguous: refused, nothing sent
