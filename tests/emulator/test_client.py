"""The client side of a session (docs/protocol.rst, "Receiving" and "Sending"), the test
playing the driver by hand."""

from __future__ import annotations

import struct

import pytest

from emulator.client import SessionClient
from emulator.releases import RELEASES
from emulator.ring import Ring
from tests.support import ClientCalls
from wintun_cffi.constants import (
    ERROR_BUFFER_OVERFLOW,
    ERROR_HANDLE_EOF,
    ERROR_INVALID_DATA,
    ERROR_NO_MORE_ITEMS,
)
from wintun_cffi.errors import (
    HandleClosedError,
    NoMoreItemsError,
    RingCorruptError,
    RingFullError,
    SessionEndedError,
    WintunError,
)
from wintun_cffi.fdevent import FdEvent

from .conftest import CAP, DEAD, FLAG, MASK, ClientRings, header, rec, u32, write_record


def expect_code(exc: pytest.ExceptionInfo[WintunError], code: int) -> None:
    assert exc.value.winerror == code


def deliver(ring: Ring, payloads: list[bytes]) -> None:
    """Append records at the ring's Tail and publish them (the driver's job)."""
    tail = ring.tail
    for payload in payloads:
        tail = write_record(ring, tail, payload)
    ring.tail = tail


def move_reader_to(r: ClientRings, target: int) -> None:
    """Deliver, receive and release filler records until the client's head is ``target``."""
    pos = r.send.tail
    while pos != target:
        chunk = min((target - pos) & MASK, 0x10004)
        deliver(r.send, [bytes(min(chunk - 4, 0xFFFF))])
        _, token = r.client.receive_packet()
        r.client.release_receive_packet(token)
        pos = (pos + chunk) & MASK
    assert header(r.send)[:2] == (target, target)


def move_writer_to(r: ClientRings, target: int) -> None:
    """Allocate, send and consume filler records until the client's tail is ``target``."""
    pos = r.receive.tail
    while pos != target:
        chunk = min((target - pos) & MASK, 0x10004)
        _, token = r.client.allocate_send_packet(min(chunk - 4, 0xFFFF))
        r.client.send_packet(token)
        pos = (pos + chunk) & MASK
        assert r.receive.tail == pos
        r.receive.head = pos  # the driver consumed it
    assert header(r.receive)[:2] == (target, target)


# -- ReceivePacket ---------------------------------------------------------------------------


def test_empty_ring_gives_no_more_items(rings: ClientRings) -> None:
    with pytest.raises(NoMoreItemsError) as exc:
        rings.client.receive_packet()
    expect_code(exc, ERROR_NO_MORE_ITEMS)


def test_receive_returns_each_payload_in_order_and_in_place(rings: ClientRings) -> None:
    payloads = [b"\x45first", b"", b"x" * 13, bytes(range(256))]
    deliver(rings.send, payloads)
    got = []
    for _ in payloads:
        view, _ = rings.client.receive_packet()
        got.append(bytes(view))
    assert got == payloads
    with pytest.raises(NoMoreItemsError):
        rings.client.receive_packet()
    # The view is the ring memory itself: writing into it changes the ring.
    deliver(rings.send, [b"abcd"])
    view, _ = rings.client.receive_packet()
    off = sum(rec(len(p)) for p in payloads)
    view[0:1] = b"Z"
    assert bytes(rings.send.memory[12 + off + 4 : 12 + off + 8]) == b"Zbcd"


def test_client_head_at_capacity_gives_eof(rings: ClientRings) -> None:
    deliver(rings.send, [b"ok"])
    rings.client.raw._head = CAP  # the DLL's first check, unreachable through the API
    with pytest.raises(SessionEndedError) as exc:
        rings.client.receive_packet()
    expect_code(exc, ERROR_HANDLE_EOF)


@pytest.mark.parametrize("tail", [CAP, CAP + 4, DEAD])
def test_ring_tail_out_of_range_gives_eof(rings: ClientRings, tail: int) -> None:
    write_record(rings.send, 0, b"fine")
    rings.send.tail = tail
    with pytest.raises(SessionEndedError) as exc:
        rings.client.receive_packet()
    expect_code(exc, ERROR_HANDLE_EOF)


def test_empty_check_comes_before_the_content_checks(rings: ClientRings) -> None:
    struct.pack_into("<I", rings.send.memory, 12, 0xFFFFFFFF)  # garbage at head, Tail == head
    with pytest.raises(NoMoreItemsError):
        rings.client.receive_packet()


@pytest.mark.parametrize(
    ("size_field", "tail"),
    [
        (0, 2),  # content 2 < 4
        (8, 1),  # content 1 < 4
        (0x10000, 0x10004 + 4),  # Size > 0xFFFF
        (0x80000004, 16),  # a flagged Size is huge
        (8, 8),  # ALIGN(4 + 8) = 12 > content 8
        (0xFFFF, 0x10000),  # 0x10004 > content 0x10000
    ],
)
def test_corrupt_record_gives_invalid_data_and_changes_nothing(
    rings: ClientRings, size_field: int, tail: int
) -> None:
    struct.pack_into("<I", rings.send.memory, 12, size_field)
    rings.send.tail = tail
    before = bytes(rings.send.memory)
    for _ in range(3):  # a corrupt ring keeps failing
        with pytest.raises(RingCorruptError) as exc:
            rings.client.receive_packet()
        expect_code(exc, ERROR_INVALID_DATA)
    assert bytes(rings.send.memory) == before
    # Nothing moved: once the record is repaired it is read from offset 0.
    write_record(rings.send, 0, b"repaired")
    rings.send.tail = rec(8)
    view, _ = rings.client.receive_packet()
    assert bytes(view) == b"repaired"


def test_a_record_that_exactly_fills_the_content_is_accepted(rings: ClientRings) -> None:
    write_record(rings.send, 0, b"\x01\x02\x03")  # record of 8 bytes
    rings.send.tail = 8
    view, _ = rings.client.receive_packet()
    assert bytes(view) == b"\x01\x02\x03"
    assert header(rings.send) == (0, 8, 0)


# -- ReleaseReceivePacket ----------------------------------------------------------------------


def test_release_sets_the_flag_and_moves_head(rings: ClientRings) -> None:
    deliver(rings.send, [b"a" * 5, b"b" * 6])
    _, ta = rings.client.receive_packet()
    _, tb = rings.client.receive_packet()
    assert u32(rings.send, 0) == 5  # no flag while the client holds it
    rings.client.release_receive_packet(ta)
    assert u32(rings.send, 0) == 5 | FLAG
    assert bytes(rings.send.memory[0:4]) == struct.pack("<I", 12)
    rings.client.release_receive_packet(tb)
    assert u32(rings.send, 12) == 6 | FLAG
    assert bytes(rings.send.memory[0:4]) == struct.pack("<I", 24)


def test_out_of_order_release_moves_head_only_past_a_released_prefix(rings: ClientRings) -> None:
    sizes = [10, 20, 30, 40]
    deliver(rings.send, [bytes(s) for s in sizes])
    tokens = [rings.client.receive_packet()[1] for _ in sizes]
    offsets = [0, rec(10), rec(10) + rec(20), rec(10) + rec(20) + rec(30)]
    rings.client.release_receive_packet(tokens[1])
    rings.client.release_receive_packet(tokens[3])
    assert bytes(rings.send.memory[0:4]) == b"\x00\x00\x00\x00"
    assert u32(rings.send, offsets[1]) == 20 | FLAG and u32(rings.send, offsets[3]) == 40 | FLAG
    rings.client.release_receive_packet(tokens[0])
    assert rings.send.head == offsets[2]  # 0 and 1 given back; 2 still held
    rings.client.release_receive_packet(tokens[2])
    assert rings.send.head == sum(rec(s) for s in sizes)


def test_release_stops_at_records_not_yet_received(rings: ClientRings) -> None:
    deliver(rings.send, [b"one", b"two"])
    _, t1 = rings.client.receive_packet()
    rings.client.release_receive_packet(t1)
    assert rings.send.head == 8  # not past "two", which is not received


def test_release_ignores_a_stale_flag_beyond_the_received_packets(rings: ClientRings) -> None:
    deliver(rings.send, [b"0123456789"])
    # Left-over bytes after Tail that look like a released record must not be skipped.
    struct.pack_into("<I", rings.send.memory, 12 + rec(10), 4 | FLAG)
    _, token = rings.client.receive_packet()
    rings.client.release_receive_packet(token)
    assert rings.send.head == rec(10)


# -- AllocateSendPacket / SendPacket -------------------------------------------------------------


def test_allocate_writes_flagged_size_and_send_publishes(rings: ClientRings) -> None:
    view, token = rings.client.allocate_send_packet(6)
    assert len(view) == 6
    assert bytes(rings.receive.memory[12:16]) == struct.pack("<I", 6 | FLAG)
    view[:] = b"packet"
    assert bytes(rings.receive.memory[16:22]) == b"packet"
    assert header(rings.receive) == (0, 0, 0)  # not published before it is sent
    rings.client.send_packet(token)
    assert bytes(rings.receive.memory[12:16]) == struct.pack("<I", 6)
    assert header(rings.receive) == (0, rec(6), 0)


def test_send_publishes_in_allocation_order(rings: ClientRings) -> None:
    _, ta = rings.client.allocate_send_packet(10)
    _, tb = rings.client.allocate_send_packet(20)
    _, tc = rings.client.allocate_send_packet(30)
    rings.client.send_packet(tb)
    assert u32(rings.receive, rec(10)) == 20 and u32(rings.receive, 0) == 10 | FLAG
    assert rings.receive.tail == 0  # B waits for A
    rings.client.send_packet(ta)
    assert rings.receive.tail == rec(10) + rec(20)  # past A and B, not C
    rings.client.send_packet(tc)
    assert rings.receive.tail == rec(10) + rec(20) + rec(30)


@pytest.mark.parametrize("alertable", [1, -1, 0])
def test_send_signals_tail_moved_only_while_alertable(rings: ClientRings, alertable: int) -> None:
    rings.receive.alertable = alertable
    _, ta = rings.client.allocate_send_packet(4)
    _, tb = rings.client.allocate_send_packet(4)
    rings.client.send_packet(tb)  # Tail does not move: no signal
    assert not rings.tail_moved.consume()
    rings.client.send_packet(ta)
    assert rings.tail_moved.consume() is (alertable != 0)


@pytest.mark.parametrize(
    ("release", "signals"),
    [
        ("2020-11", True),
        ("0.9", True),
        ("0.9.1", True),
        ("0.9.2", False),
        ("0.13", False),
        ("0.14.1", False),
    ],
)
def test_which_releases_signal_when_tail_did_not_move(release: str, signals: bool) -> None:
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    event = FdEvent()
    client = ClientCalls(SessionClient(send, receive, event, RELEASES[release]))
    receive.alertable = 1
    _, ta = client.allocate_send_packet(20)
    _, tb = client.allocate_send_packet(20)
    client.send_packet(tb)  # behind A: Tail stays
    assert receive.tail == 0
    assert event.consume() is signals
    client.send_packet(ta)
    assert receive.tail == 2 * rec(20) and event.consume()
    receive.alertable = 0
    _, tc = client.allocate_send_packet(20)
    client.send_packet(tc)
    assert not event.consume()  # never while the driver is awake
    event.close()


@pytest.mark.parametrize("release", ["2020-11", "0.9.1", "0.9.2", "0.10.5", "0.13", "0.14.1"])
def test_send_judges_the_rings_tail_field_whoever_wrote_it(release: str) -> None:
    """0.9.2 on, WintunSendPacket compares the new Tail with the ring's Tail field, not with
    the last Tail it wrote itself: after something else wrote Tail (a fault), it publishes
    and signals when the field differs, and does neither when the field already holds it.
    Earlier releases write Tail and signal every time."""
    always = RELEASES[release].signals_unmoved_tail
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    event = FdEvent()
    client = ClientCalls(SessionClient(send, receive, event, RELEASES[release]))
    receive.alertable = 1
    _, ta = client.allocate_send_packet(20)
    client.send_packet(ta)
    assert receive.tail == rec(20) and event.consume()
    receive.tail = 0  # something else wrote Tail
    _, tb = client.allocate_send_packet(20)
    _, tc = client.allocate_send_packet(20)
    client.send_packet(tc)  # behind B: the new Tail is still rec(20), the field says 0
    assert receive.tail == rec(20)
    assert event.consume(), "the Tail field differed: the DLL publishes and signals"
    receive.tail = 3 * rec(20)  # something else wrote the very Tail the DLL will publish
    client.send_packet(tb)
    assert receive.tail == 3 * rec(20)
    assert event.consume() is always, "the Tail field already held the new Tail"
    event.close()


@pytest.mark.parametrize("release", ["2020-11", "0.9", "0.10.4", "0.10.5", "0.13", "0.14.1"])
def test_end_session_signals_the_read_wait_event_up_to_0_10_4(release: str) -> None:
    """The snapshot to 0.10.4: WintunEndSession signals the read-wait event before closing it
    (a reader still waiting wakes); 0.10.5 on it does not."""
    from emulator import Emulator
    from emulator.backend import EmulatedSession

    chosen = RELEASES[release]
    emulator = Emulator(chosen.api, release=release)
    if chosen.api == "0.14":
        adapter, _ = emulator.create_adapter("Demo", tunnel_type="Test")
    else:
        adapter, _ = emulator.create_adapter("Demo", pool="Test")
    session = emulator.start_session(adapter, CAP)
    assert isinstance(session, EmulatedSession)

    class Recording(FdEvent):
        sets = 0

        def set(self) -> None:
            self.sets += 1
            super().set()

    # The client's own reference to the event (the driver signals its own at its stop).
    original, session.read_wait_event = session.read_wait_event, Recording()
    emulator.end_session(session)
    original.close()
    assert session.read_wait_event.sets == int(chosen.end_session_signals)
    (emulator.close_adapter if chosen.api == "0.14" else emulator.free_adapter)(adapter)
    emulator.close()


@pytest.mark.parametrize(
    ("release", "name"),
    [("2020-11", "WintunReceiveRelease"), ("0.9", "WintunReleaseReceivePacket")],
)
def test_errors_name_the_release_function_of_the_generation(release: str, name: str) -> None:
    send, receive = Ring.allocate(CAP), Ring.allocate(CAP)
    event = FdEvent()
    client = ClientCalls(SessionClient(send, receive, event, RELEASES[release]))
    client.end()
    with pytest.raises(HandleClosedError, match=name):
        client.release_receive_packet(1)
    event.close()


@pytest.mark.parametrize("size", [0, 1, 3, 100, 1500, 0xFFFF])
def test_ring_full_exactly_where_the_free_space_ends(rings: ClientRings, size: int) -> None:
    fit = (CAP - 4) // rec(size)  # one 4-byte slot always stays free
    tokens = [rings.client.allocate_send_packet(size)[1] for _ in range(fit)]
    with pytest.raises(RingFullError) as exc:
        rings.client.allocate_send_packet(size)
    expect_code(exc, ERROR_BUFFER_OVERFLOW)
    for token in tokens:
        rings.client.send_packet(token)
    tail = (fit * rec(size)) & MASK
    assert rings.receive.tail == tail
    # What is left is exactly (0 - tail - 4) mod CAP bytes; a record of that size fits.
    left = (0 - tail - 4) & MASK
    if left >= 4:
        _, token = rings.client.allocate_send_packet(left - 4)
        rings.client.send_packet(token)
        with pytest.raises(RingFullError):
            rings.client.allocate_send_packet(0)
    # The driver consumes the first record: exactly that much room comes back.
    rings.receive.head = rec(size)
    _, token = rings.client.allocate_send_packet(size)
    with pytest.raises(RingFullError):
        rings.client.allocate_send_packet(0)


def test_overflow_count_for_100_byte_packets(rings: ClientRings) -> None:
    for _ in range(1260):  # 1260 * 104 = 131040 <= 0x20000 - 4 < 1261 * 104
        rings.client.send_packet(rings.client.allocate_send_packet(100)[1])
    with pytest.raises(RingFullError):
        rings.client.allocate_send_packet(100)
    assert rings.receive.tail == 131040
    rings.receive.head = 104
    rings.client.send_packet(rings.client.allocate_send_packet(100)[1])
    assert rings.receive.tail == 72  # 131040 + 104 wraps to 131144 - 0x20000
    with pytest.raises(RingFullError):
        rings.client.allocate_send_packet(100)


@pytest.mark.parametrize("head", [CAP, CAP + 8, DEAD])
def test_ring_head_out_of_range_gives_eof_before_overflow(rings: ClientRings, head: int) -> None:
    rings.receive.head = head
    before = bytes(rings.receive.memory)
    with pytest.raises(SessionEndedError) as exc:
        rings.client.allocate_send_packet(0xFFFF)
    expect_code(exc, ERROR_HANDLE_EOF)
    assert bytes(rings.receive.memory) == before


def test_client_tail_at_capacity_gives_eof(rings: ClientRings) -> None:
    rings.client.raw._tail = CAP  # the DLL's first check, unreachable through the API
    with pytest.raises(SessionEndedError) as exc:
        rings.client.allocate_send_packet(1)
    expect_code(exc, ERROR_HANDLE_EOF)


@pytest.mark.parametrize(
    ("size", "error"),
    [
        (-1, ValueError),
        (0x10000, ValueError),
        (1 << 32, ValueError),
        (1.5, TypeError),
        (True, TypeError),
        ("4", TypeError),
        (None, TypeError),
    ],
)
def test_bad_sizes_are_refused_before_anything(
    rings: ClientRings, size: object, error: type[Exception]
) -> None:
    before = bytes(rings.receive.memory)
    with pytest.raises(error):
        rings.client.allocate_send_packet(size)  # type: ignore[arg-type]
    assert bytes(rings.receive.memory) == before
    assert rings.client.outstanding() == 0
    _, token = rings.client.allocate_send_packet(8)
    assert u32(rings.receive, 0) == 8 | FLAG  # still at offset 0
    rings.client.send_packet(token)
    assert rings.receive.tail == 12


def test_zero_byte_packets_both_ways(rings: ClientRings) -> None:
    view, token = rings.client.allocate_send_packet(0)
    assert len(view) == 0 and u32(rings.receive, 0) == FLAG
    rings.client.send_packet(token)
    assert u32(rings.receive, 0) == 0 and rings.receive.tail == 4
    deliver(rings.send, [b"", b""])
    for expected_head in (4, 8):
        view, token = rings.client.receive_packet()
        assert bytes(view) == b""
        rings.client.release_receive_packet(token)
        assert rings.send.head == expected_head


# -- wraparound -------------------------------------------------------------------------------


@pytest.mark.parametrize("back", [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48])
def test_receive_wraps_a_record_running_into_the_trailer(rings: ClientRings, back: int) -> None:
    start = CAP - back
    move_reader_to(rings, start)
    first = bytes((i * 7 + back) & 0xFF for i in range(37))  # record of 44 bytes
    nxt = write_record(rings.send, start, first)
    assert nxt == (start + 44) & MASK
    second = b"second!"
    end = write_record(rings.send, nxt, second)
    rings.send.tail = end
    # The record's tail end lies in the trailer, past the data's capacity bytes.
    raw = bytes(rings.send.memory[12 + start + 4 : 12 + start + 4 + 37])
    assert raw == first
    if start + 44 > CAP:
        assert bytes(rings.send.memory[12 + CAP : 12 + start + 41]) == first[CAP - start - 4 :]
    v1, t1 = rings.client.receive_packet()
    v2, t2 = rings.client.receive_packet()
    assert (bytes(v1), bytes(v2)) == (first, second)
    rings.client.release_receive_packet(t1)
    assert rings.send.head == nxt
    rings.client.release_receive_packet(t2)
    assert header(rings.send)[:2] == (end, end)
    with pytest.raises(NoMoreItemsError):
        rings.client.receive_packet()


@pytest.mark.parametrize("back", [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48])
def test_allocate_wraps_a_record_running_into_the_trailer(rings: ClientRings, back: int) -> None:
    start = CAP - back
    move_writer_to(rings, start)
    view, ta = rings.client.allocate_send_packet(37)
    assert u32(rings.receive, start) == 37 | FLAG
    view[:] = bytes(range(37))
    assert bytes(rings.receive.memory[12 + start + 4 : 12 + start + 41]) == bytes(range(37))
    nxt = (start + 44) & MASK
    _, tb = rings.client.allocate_send_packet(5)
    assert u32(rings.receive, nxt) == 5 | FLAG
    rings.client.send_packet(ta)
    assert rings.receive.tail == nxt
    rings.client.send_packet(tb)
    assert rings.receive.tail == (nxt + 12) & MASK
    assert u32(rings.receive, start) == 37 and u32(rings.receive, nxt) == 5


# -- tokens and ending ----------------------------------------------------------------------


def test_foreign_stale_and_wrong_direction_tokens_are_refused(rings: ClientRings) -> None:
    other_event = FdEvent()
    other = ClientCalls(SessionClient(Ring.allocate(CAP), Ring.allocate(CAP), other_event))
    deliver(other.send_ring, [b"theirs"])
    _, foreign_read = other.receive_packet()
    _, foreign_write = other.allocate_send_packet(4)

    deliver(rings.send, [b"mine", b"more"])
    _, read = rings.client.receive_packet()
    _, write = rings.client.allocate_send_packet(4)
    snapshot = (bytes(rings.send.memory), bytes(rings.receive.memory))

    bad_releases: list[object] = [foreign_read, write, "x", None, 1.5, [read], 0, read & 0xFFFFFFFF]
    for bad in bad_releases:
        with pytest.raises(ValueError):
            rings.client.release_receive_packet(bad)
    bad_sends: list[object] = [foreign_write, read, "x", None, {}, write & 0xFFFFFFFF]
    for bad in bad_sends:
        with pytest.raises(ValueError):
            rings.client.send_packet(bad)
    assert (bytes(rings.send.memory), bytes(rings.receive.memory)) == snapshot
    assert rings.client.outstanding() == 2

    rings.client.release_receive_packet(read)
    rings.client.send_packet(write)
    with pytest.raises(ValueError):
        rings.client.release_receive_packet(read)  # already released
    with pytest.raises(ValueError):
        rings.client.send_packet(write)  # already sent
    assert header(rings.send)[0] == 8 and header(rings.receive)[1] == 8
    assert rings.client.outstanding() == 0
    other_event.close()


def test_ended_client_refuses_everything(rings: ClientRings) -> None:
    deliver(rings.send, [b"x"])
    _, read = rings.client.receive_packet()
    _, write = rings.client.allocate_send_packet(1)
    rings.client.end()
    assert rings.client.outstanding() == 0
    with pytest.raises(HandleClosedError):
        rings.client.receive_packet()
    with pytest.raises(HandleClosedError):
        rings.client.allocate_send_packet(1)
    with pytest.raises(HandleClosedError):
        rings.client.release_receive_packet(read)
    with pytest.raises(HandleClosedError):
        rings.client.send_packet(write)
    assert rings.receive.tail == 0


def test_rings_of_different_capacity_are_refused() -> None:
    with pytest.raises(ValueError):
        SessionClient(Ring.allocate(CAP), Ring.allocate(CAP * 2), FdEvent())


# -- batch forms: the same protocol, one lock and one publication per batch ------------------


def test_receive_packets_takes_up_to_the_limit_and_raises_only_when_empty(
    rings: ClientRings,
) -> None:
    payloads = [b"p%d" % i for i in range(5)]
    deliver(rings.send, payloads)
    first = rings.client.receive_packets(3)
    rest = rings.client.receive_packets(10)
    assert [bytes(view) for view, _ in first + rest] == payloads
    with pytest.raises(NoMoreItemsError):
        rings.client.receive_packets(4)


def test_release_receive_packets_moves_head_once_past_all(rings: ClientRings) -> None:
    payloads = [b"a" * 10, b"b" * 20, b"c" * 30]
    deliver(rings.send, payloads)
    packets = rings.client.receive_packets(3)
    rings.client.release_receive_packets(token for _, token in reversed(packets))
    assert header(rings.send)[0] == sum(rec(len(p)) for p in payloads)
    assert rings.client.outstanding() == 0


def test_release_receive_packets_is_all_or_none(rings: ClientRings) -> None:
    deliver(rings.send, [b"one", b"two"])
    (_, first), (_, second) = rings.client.receive_packets(2)
    with pytest.raises(ValueError):
        rings.client.release_receive_packets([first, "not a token", second])
    assert header(rings.send)[0] == 0  # checked first: nothing released
    rings.client.release_receive_packets([first, second])
    assert header(rings.send)[0] == 2 * rec(3)


def test_allocate_send_packets_stops_where_the_ring_is_full(rings: ClientRings) -> None:
    fits = (CAP - 4) // rec(1000)
    allocated = rings.client.allocate_send_packets([1000] * (fits + 5))
    assert len(allocated) == fits
    with pytest.raises(RingFullError):
        rings.client.allocate_send_packets([1000])
    with pytest.raises(ValueError):
        rings.client.allocate_send_packets([10, 0x10000])  # checked before anything
    assert rings.client.outstanding() == fits


def test_send_packets_publishes_tail_once_in_allocation_order(rings: ClientRings) -> None:
    allocated = rings.client.allocate_send_packets([8, 16, 24])
    for index, (view, _) in enumerate(allocated):
        view[:] = bytes([index]) * len(view)
    rings.client.send_packets([allocated[2][1], allocated[1][1]])
    assert header(rings.receive)[1] == 0  # held back by the first allocation
    rings.client.send_packets([allocated[0][1]])
    assert header(rings.receive)[1] == rec(8) + rec(16) + rec(24)
    assert [u32(rings.receive, offset) for offset in (0, rec(8), rec(8) + rec(16))] == [8, 16, 24]
