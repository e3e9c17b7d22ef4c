"""The pcapng capture writer (wintun_cffi.capture), read back byte by byte with a small parser
written here from the pcapng specification: the blocks and their fields, directions,
timestamps, snaplen, the limits, rotation and the ring of files, stream targets (a pipe, a
file object), the writer falling behind or failing, and several threads adding at once."""

from __future__ import annotations

import array
import io
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from wintun_cffi import capture, ip, ledger
from wintun_cffi.capture import (
    GIVEN_UP_COMMENT,
    INBOUND,
    MIN_ROTATE_BYTES,
    OUTBOUND,
    Capture,
    CaptureError,
    rotated_name,
)
from wintun_cffi.commands.capture_bench import capture_rows
from wintun_cffi.conformance.support import wait_until

from .test_docs_examples import ROOT, python_blocks, run

REQUEST = ip.icmp_echo("10.6.7.8", "10.6.7.7", identifier=7, sequence=1, payload=b"ping")
REPLY = ip.icmp_echo("10.6.7.7", "10.6.7.8", identifier=7, sequence=1, payload=b"ping", reply=True)


def numbered(index: int, size: int = 100) -> bytes:
    """A UDP packet of ``size`` bytes that carries ``index`` (tells packets apart)."""
    return ip.udp_packet(
        "10.6.7.8", "10.6.7.7", 5353, 53, index.to_bytes(4, "big") + bytes(size - 32)
    )


def index_of(packet: bytes) -> int:
    return int.from_bytes(packet[28:32], "big")


# -- a pcapng reader for the tests ----------------------------------------------------------


@dataclass
class Packet:
    timestamp: int  # in units of the interface's resolution
    captured: int
    original: int
    data: bytes
    padding: bytes
    options: dict[int, list[bytes]] = field(default_factory=dict)

    @property
    def flags(self) -> int | None:
        found = self.options.get(2)
        return None if found is None else int(struct.unpack("<I", found[0])[0])

    @property
    def comment(self) -> str | None:
        found = self.options.get(1)
        return None if found is None else found[0].decode()


@dataclass
class Parsed:
    section: dict[str, Any]
    interface: dict[str, Any]
    packets: list[Packet]


def parse_options(data: bytes) -> tuple[dict[int, list[bytes]], bytes]:
    """Options until opt_endofopt: ``{code: [value, ...]}`` and the bytes after the end."""
    options: dict[int, list[bytes]] = {}
    at = 0
    while True:
        code, length = struct.unpack_from("<HH", data, at)
        at += 4
        if code == 0:
            assert length == 0
            return options, data[at:]
        value = data[at : at + length]
        padded = (length + 3) & ~3
        assert data[at + length : at + padded] == bytes(padded - length), "option padding"
        options.setdefault(code, []).append(value)
        at += padded


def parse(data: bytes) -> Parsed:
    """The one section, one interface and the packets of a pcapng capture (little-endian)."""
    blocks = []
    at = 0
    while at < len(data):
        kind, total = struct.unpack_from("<II", data, at)
        assert total % 4 == 0 and total >= 12, total
        assert struct.unpack_from("<I", data, at + total - 4)[0] == total, "trailing length"
        blocks.append((kind, data[at + 8 : at + total - 4]))
        at += total
    assert at == len(data)
    (kind, body), (kind2, body2), *rest = blocks
    assert kind == 0x0A0D0D0A and kind2 == 1
    magic, major, minor, length = struct.unpack_from("<IHHq", body)
    options, tail = parse_options(body[16:])
    assert tail == b""
    section = {"magic": magic, "version": (major, minor), "length": length, "options": options}
    linktype, reserved, snaplen = struct.unpack_from("<HHI", body2)
    options, tail = parse_options(body2[8:])
    assert tail == b""
    interface = {
        "linktype": linktype,
        "reserved": reserved,
        "snaplen": snaplen,
        "options": options,
    }
    packets = []
    for kind, body in rest:
        assert kind == 6, f"an Enhanced Packet Block, not {kind:#x}"
        interface_id, high, low, captured, original = struct.unpack_from("<IIIII", body)
        assert interface_id == 0
        padded = (captured + 3) & ~3
        options, tail = parse_options(body[20 + padded :])
        assert tail == b""
        packets.append(
            Packet(
                (high << 32) | low,
                captured,
                original,
                body[20 : 20 + captured],
                body[20 + captured : 20 + padded],
                options,
            )
        )
    return Parsed(section, interface, packets)


def read(path: str | Path) -> Parsed:
    return parse(Path(path).read_bytes())


# -- the blocks -----------------------------------------------------------------------------


def test_the_headers_byte_by_byte(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    with Capture(path, interface_name="Demo", snaplen=1500):
        pass
    data = path.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a"
    assert data[8:12] == b"\x4d\x3c\x2b\x1a", "the byte-order magic, little-endian"
    parsed = parse(data)
    assert parsed.section["version"] == (1, 0)
    assert parsed.section["length"] == -1
    assert parsed.section["options"] == {4: [b"wintun-cffi"]}
    assert parsed.interface == {
        "linktype": 101,
        "reserved": 0,
        "snaplen": 1500,
        "options": {2: [b"Demo"], 9: [b"\x09"]},
    }
    assert parsed.packets == []
    assert data == capture.file_header("Demo", 1500)


def test_packets_directions_and_content(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    before = time.time_ns()
    with Capture(path) as cap:
        cap.add_one(OUTBOUND, REQUEST)
        cap.add(INBOUND, [memoryview(REPLY), bytearray(numbered(1, 41))])
        cap.add_one(INBOUND, numbered(2, 43))
    after = time.time_ns()
    assert cap.written == 4 and cap.dropped == 0
    assert cap.bytes_written == path.stat().st_size
    packets = read(path).packets
    assert [p.data for p in packets] == [REQUEST, REPLY, numbered(1, 41), numbered(2, 43)]
    assert [p.flags for p in packets] == [OUTBOUND, INBOUND, INBOUND, INBOUND]
    assert [(p.captured, p.original) for p in packets] == [
        (len(p.data), len(p.data)) for p in packets
    ]
    assert [p.padding for p in packets] == [bytes(-p.captured & 3) for p in packets]
    assert all(p.comment is None for p in packets)
    stamps = [p.timestamp for p in packets]
    assert before <= stamps[0] <= stamps[1] <= stamps[3] <= after
    assert stamps[1] == stamps[2], "one timestamp per pass"


def test_timestamps_are_nanoseconds_and_increase(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    with Capture(path) as cap:
        for index in range(50):
            cap.add_one(INBOUND, numbered(index))
        time.sleep(0.01)
        cap.add_one(INBOUND, numbered(50))
    stamps = [p.timestamp for p in read(path).packets]
    assert stamps == sorted(stamps)
    # 10 ms apart at least: ten million units of a nanosecond resolution.
    assert stamps[-1] - stamps[-2] >= 10_000_000


def test_the_constants_are_the_ledgers_and_pcapngs() -> None:
    assert (INBOUND, OUTBOUND) == (ledger._INBOUND, ledger._OUTBOUND) == (0b01, 0b10)


def test_given_up_sends_carry_the_comment(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    with Capture(path) as cap:
        cap.add_given_up(memoryview(REQUEST))
        cap.add_given_up(None)
        cap.add_one(OUTBOUND, REQUEST)
    first, unknown, plain = read(path).packets
    assert (first.data, first.flags, first.comment) == (REQUEST, OUTBOUND, GIVEN_UP_COMMENT)
    assert (unknown.captured, unknown.original, unknown.flags) == (0, 0, OUTBOUND)
    assert unknown.comment == GIVEN_UP_COMMENT
    assert plain.comment is None
    assert cap.written == 3


def test_copies_are_taken_before_add_returns(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    ring = bytearray(REQUEST + REPLY)
    with Capture(path) as cap:
        one = memoryview(ring)[: len(REQUEST)]
        cap.add_one(OUTBOUND, one)
        one.release()  # nothing of the capture holds it
        views = [memoryview(ring)[len(REQUEST) :]]
        cap.add(INBOUND, views)
        views[0].release()
        ring[:] = bytes(len(ring))  # the ring's memory is reused
    assert [p.data for p in read(path).packets] == [REQUEST, REPLY]


def test_snaplen_cuts_the_copy_and_keeps_the_length(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    wide = array.array("H", numbered(3, 200))  # 100 items of 2 bytes
    with Capture(path, snaplen=60) as cap:
        cap.add_one(INBOUND, numbered(1, 200))
        cap.add(OUTBOUND, [numbered(2, 61), numbered(4, 60)])
        cap.add_one(INBOUND, memoryview(wide))
        cap.add_one(INBOUND, memoryview(numbered(5, 200))[::2])  # not contiguous
    packets = read(path).packets
    assert [(p.captured, p.original) for p in packets] == [
        (60, 200),
        (60, 61),
        (60, 60),
        (60, 200),
        (60, 100),
    ]
    assert packets[0].data == numbered(1, 200)[:60]
    assert packets[3].data == wide.tobytes()[:60]
    assert packets[4].data == numbered(5, 200)[::2][:60]
    assert read(path).interface["snaplen"] == 60


def test_wide_items_under_snaplen_count_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    wide = array.array("I", bytes(range(48)))  # 12 items, 48 bytes
    with Capture(path, snaplen=40) as cap:
        cap.add_one(INBOUND, memoryview(wide))
        cap.add(INBOUND, [memoryview(wide)])
    assert [(p.captured, p.original) for p in read(path).packets] == [(40, 48), (40, 48)]


# -- limits ---------------------------------------------------------------------------------


def test_max_packets_stops_recording(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    with Capture(path, max_packets=3) as cap:
        for index in range(10):
            cap.add_one(INBOUND, numbered(index))
        assert wait_until(lambda: cap.stopped)
        cap.add_one(INBOUND, numbered(99))
        cap.add(INBOUND, [numbered(98)])
    assert cap.limit_reached and cap.stopped
    assert (cap.written, cap.dropped) == (3, 0)
    assert [index_of(p.data) for p in read(path).packets] == [0, 1, 2]


def test_max_bytes_stops_before_the_file_would_pass_it(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    header = len(capture.file_header("wintun", capture.MAX_SNAPLEN))
    record = 32 + 100 + 12  # EPB fields, data, epb_flags and end of options
    with Capture(path, max_bytes=header + 4 * record + record - 1) as cap:
        for index in range(10):
            cap.add_one(INBOUND, numbered(index))
    assert cap.limit_reached
    assert cap.written == 4
    assert path.stat().st_size == cap.bytes_written == header + 4 * record
    assert len(read(path).packets) == 4


# -- rotation and the ring of files ---------------------------------------------------------


def test_rotated_names() -> None:
    join = os.path.join
    assert rotated_name(join("d", "cap.pcapng"), 0) == join("d", "cap.pcapng")
    assert rotated_name(join("d", "cap.pcapng"), 1) == join("d", "cap.1.pcapng")
    assert rotated_name(join("d", "cap.x.pcapng"), 12) == join("d", "cap.x.12.pcapng")
    assert rotated_name(join("d", "cap"), 2) == join("d", "cap.2")
    assert rotated_name(".pcapng", 3) == ".pcapng.3"


def test_rotation_makes_complete_files_in_order(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    with Capture(path, rotate_bytes=MIN_ROTATE_BYTES) as cap:
        for index in range(20):
            cap.add_one(INBOUND, numbered(index, 1000))
    names = [rotated_name(str(path), index) for index in range(len(cap.files))]
    assert cap.files == names and len(names) > 4
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(n) for n in names)
    found = []
    for name in names:
        assert os.path.getsize(name) <= MIN_ROTATE_BYTES
        parsed = read(name)  # each a whole pcapng: section, interface, packets
        assert parsed.packets, name
        found += [index_of(p.data) for p in parsed.packets]
    assert found == list(range(20))
    assert cap.bytes_written == sum(os.path.getsize(name) for name in names)


def test_a_packet_larger_than_rotate_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    with Capture(path, rotate_bytes=MIN_ROTATE_BYTES) as cap:
        cap.add_one(INBOUND, numbered(0, 100))
        cap.add_one(INBOUND, numbered(1, 5000))
        cap.add_one(INBOUND, numbered(2, 100))
    assert [[index_of(p.data) for p in read(name).packets] for name in cap.files] == [
        [0],
        [1],
        [2],
    ]


def has_written(cap: Capture, count: int) -> bool:
    return cap.written == count


def test_keep_bytes_deletes_the_oldest_files(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    keep = 3 * MIN_ROTATE_BYTES
    with Capture(path, rotate_bytes=MIN_ROTATE_BYTES, keep_bytes=keep) as cap:
        for index in range(60):
            cap.add_one(INBOUND, numbered(index, 1000))
            if index % 8 == 7:  # let the writer rotate on the way, not only at the end
                assert wait_until(partial(has_written, cap, index + 1))
                on_disk = sum(os.path.getsize(tmp_path / n) for n in os.listdir(tmp_path))
                assert on_disk <= keep
    kept = cap.files
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(n) for n in kept)
    assert 2 <= len(kept) <= 3
    assert sum(os.path.getsize(name) for name in kept) <= keep
    assert not path.exists(), "the first file was deleted"
    first = int(os.path.basename(kept[0]).split(".")[1])  # cap.N.pcapng
    assert kept == [rotated_name(str(path), first + n) for n in range(len(kept))]
    found = [index_of(p.data) for name in kept for p in read(name).packets]
    assert found == list(range(60 - len(found), 60)), "the newest, in order"
    assert cap.bytes_written > keep, "more was written than kept"


def test_keep_bytes_alone_rotates_at_an_eighth(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    keep = 16 * MIN_ROTATE_BYTES
    with Capture(path, keep_bytes=keep) as cap:
        for index in range(200):
            cap.add_one(INBOUND, numbered(index, 1000))
    sizes = [os.path.getsize(name) for name in cap.files]
    assert all(size <= keep // 8 for size in sizes)
    assert max(sizes) > keep // 8 - 1100
    assert sum(sizes) <= keep


# -- bad options ----------------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"snaplen": 0}, ValueError, "snaplen"),
    ({"snaplen": capture.MAX_SNAPLEN + 1}, ValueError, "snaplen"),
    ({"snaplen": 1.5}, TypeError, "snaplen"),
    ({"snaplen": True}, TypeError, "snaplen"),
    ({"max_packets": 0}, ValueError, "max_packets"),
    ({"max_bytes": -1}, ValueError, "max_bytes"),
    ({"rotate_bytes": MIN_ROTATE_BYTES - 1}, ValueError, "rotate_bytes"),
    ({"rotate_bytes": 0}, ValueError, "rotate_bytes"),
    ({"keep_bytes": 100}, ValueError, "keep_bytes"),
    ({"rotate_bytes": 8192, "keep_bytes": 4096}, ValueError, "keep_bytes"),
    ({"queue_limit": 0}, ValueError, "queue_limit"),
    ({"queue_limit": "10"}, TypeError, "queue_limit"),
    ({"interface_name": 5}, TypeError, "interface_name"),
    ({"interface_name": "x" * 257}, ValueError, "interface_name"),
    ({"interface_name": "a\0b"}, ValueError, "interface_name"),
    ({"interface_name": "\udc80"}, ValueError, "interface_name"),
]


@pytest.mark.parametrize(("options", "error", "name"), BAD)
def test_bad_options_are_refused_and_create_nothing(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        Capture(tmp_path / "cap.pcapng", **options)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("options", [{"rotate_bytes": 8192}, {"keep_bytes": 65536}])
def test_rotation_needs_a_path(options: dict[str, Any]) -> None:
    stream = io.BytesIO()
    with pytest.raises(ValueError, match="need a path target"):
        Capture(stream, **options)
    assert stream.getvalue() == b""


@pytest.mark.parametrize("target", [42, None, b"cap.pcapng", object()])
def test_bad_targets_are_refused(target: Any) -> None:
    with pytest.raises(TypeError, match="target|path"):
        Capture(target)


# -- stream targets -------------------------------------------------------------------------


def test_a_file_object_is_written_and_not_closed() -> None:
    stream = io.BytesIO()
    with Capture(stream, interface_name="tun0") as cap:
        cap.add_one(OUTBOUND, REQUEST)
    assert not stream.closed
    parsed = parse(stream.getvalue())
    assert parsed.interface["options"][2] == [b"tun0"]
    assert [p.data for p in parsed.packets] == [REQUEST]
    assert cap.files == []


def test_a_pipe_sees_packets_before_close_and_stays_open() -> None:
    reading, writing = os.pipe()
    received = bytearray()
    seen = threading.Event()
    header = len(capture.file_header("wintun", capture.MAX_SNAPLEN))

    def reader() -> None:
        with os.fdopen(reading, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                received.extend(chunk)
                if len(received) > header:
                    seen.set()

    thread = threading.Thread(target=reader)
    thread.start()
    stream = os.fdopen(writing, "wb")
    try:
        cap = Capture(stream)
        cap.add_one(OUTBOUND, REQUEST)
        # Flushed after each batch: the reader gets the packet while the capture is open.
        assert seen.wait(10)
        cap.add(INBOUND, [REPLY])
        cap.close()
        assert not stream.closed
    finally:
        stream.close()
        thread.join(10)
    assert [(p.data, p.flags) for p in parse(bytes(received)).packets] == [
        (REQUEST, OUTBOUND),
        (REPLY, INBOUND),
    ]


class PartialWrites(io.RawIOBase):
    """A raw stream that takes at most 7 bytes a call."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.flushes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        taken = bytes(data[:7])
        self.data += taken
        return len(taken)

    def flush(self) -> None:
        self.flushes += 1


def test_partial_writes_are_completed_and_each_batch_flushed() -> None:
    stream = PartialWrites()
    with Capture(stream) as cap:
        cap.add(INBOUND, [REQUEST, REPLY])
    assert [p.data for p in parse(bytes(stream.data)).packets] == [REQUEST, REPLY]
    assert stream.flushes >= 2  # the headers, then the packets


class Blocking:
    """A stream whose write() waits for ``go`` (a reader that does not read)."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.entered = threading.Event()
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.entered.set()
        self.go.wait()
        self.data += data


def test_a_writer_behind_drops_and_counts_never_blocks() -> None:
    stream = Blocking()
    cap = Capture(stream, queue_limit=8)
    assert stream.entered.wait(10)  # the writer is stuck on the headers
    calls = 0
    for index in range(100):
        cap.add_one(INBOUND, numbered(index))
        calls += 1
    cap.add(INBOUND, [numbered(index) for index in range(100, 150)])
    calls += 50
    assert calls == 150  # every add returned while the writer could not write
    assert cap.dropped == 150 - 8
    stream.go.set()
    cap.close()
    assert cap.written == 8 and cap.written + cap.dropped == 150
    assert [index_of(p.data) for p in parse(bytes(stream.data)).packets] == list(range(8))


def test_close_gives_up_on_a_writer_that_never_returns() -> None:
    stream = Blocking()
    cap = Capture(stream)
    assert stream.entered.wait(10)
    for index in range(20):
        cap.add_one(INBOUND, numbered(index))
    cap.close(timeout=0.05)
    assert cap.closed and cap.stopped
    assert (cap.written, cap.dropped) == (0, 20)
    cap.add_one(INBOUND, REQUEST)  # ignored
    assert cap.dropped == 20
    stream.go.set()  # let the thread end
    cap._thread.join(10)
    assert not cap._thread.is_alive()
    assert (cap.written, cap.dropped) == (0, 20)


class Failing:
    def __init__(self, after: int) -> None:
        self.after = after
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        if self.after <= 0:
            raise OSError(28, "No space left on device")
        self.after -= 1
        self.data += data
        return len(data)


def test_a_writer_error_stops_the_capture_and_close_reports_it() -> None:
    stream = Failing(after=1)  # the headers, then nothing
    cap = Capture(stream)
    cap.add_one(INBOUND, REQUEST)
    assert wait_until(lambda: cap.error is not None)
    assert isinstance(cap.error, OSError) and cap.error.errno == 28
    assert cap.stopped and not cap.closed
    assert cap.dropped == 1 and cap.written == 0
    for _ in range(5):  # the packet path goes on
        cap.add_one(INBOUND, REQUEST)
        cap.add(INBOUND, [REPLY])
        cap.add_given_up(None)
    with pytest.raises(CaptureError) as raised:
        cap.close()
    assert raised.value.__cause__ is cap.error
    cap.close()  # reported once
    assert cap.closed


def test_a_file_that_cannot_be_created_raises_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Capture(tmp_path / "no such directory" / "cap.pcapng")


# -- the end and threads --------------------------------------------------------------------


def test_after_close_adding_is_ignored_and_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    cap = Capture(path)
    cap.add_one(INBOUND, REQUEST)
    cap.close()
    size = path.stat().st_size
    cap.add_one(INBOUND, REQUEST)
    cap.add(INBOUND, [REQUEST])
    cap.add_given_up(REQUEST)
    cap.close()
    assert cap.closed and cap.stopped and not cap.limit_reached
    assert (cap.written, cap.dropped) == (1, 0)
    assert path.stat().st_size == size
    assert not cap._thread.is_alive()
    assert cap._stream.closed, "the file it opened is closed"


def test_the_writer_is_a_named_daemon_thread(tmp_path: Path) -> None:
    with Capture(tmp_path / "cap.pcapng", interface_name="Demo") as cap:
        assert cap._thread.daemon
        assert cap._thread.name == "wintun-cffi capture writer (Demo)"
        assert "recording" in repr(cap)
    assert "closed" in repr(cap)


def test_threads_adding_at_once_lose_nothing_and_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    threads, each = 4, 2000
    start = threading.Barrier(threads)

    def adder(number: int) -> None:
        start.wait()
        for index in range(each):
            tag = number * each + index
            if index % 2:
                cap.add_one(INBOUND, numbered(tag))
            else:
                cap.add(OUTBOUND, [numbered(tag)])

    with Capture(path, queue_limit=threads * each) as cap:
        workers = [threading.Thread(target=adder, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert (cap.written, cap.dropped) == (threads * each, 0)
    packets = read(path).packets
    tags = [index_of(p.data) for p in packets]
    assert sorted(tags) == list(range(threads * each))
    for number in range(threads):
        mine = [tag for tag in tags if tag // each == number]
        assert mine == sorted(mine), f"thread {number}'s order"
    assert all(p.flags == (INBOUND if index_of(p.data) % 2 else OUTBOUND) for p in packets)


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="Wine's pipes do not report a reader that went away as Linux does; checked on Linux",
)
def test_a_pipe_whose_reader_went_away_stops_the_capture() -> None:
    reading, writing = os.pipe()
    os.close(reading)  # Wireshark was closed
    with os.fdopen(writing, "wb", buffering=0) as stream:
        cap = Capture(stream)
        assert wait_until(lambda: cap.error is not None)
        assert isinstance(cap.error, BrokenPipeError)
        cap.add_one(OUTBOUND, REQUEST)  # the tunnel goes on
        with pytest.raises(CaptureError):
            cap.close()
        assert not stream.closed


# -- the guide and the benchmark ------------------------------------------------------------


def test_the_guides_program_runs_as_pasted(tmp_path: Path) -> None:
    [program] = python_blocks(ROOT / "docs" / "capture.rst")
    assert run(program, tmp_path) == "2 written, 0 dropped\n"
    packets = read(tmp_path / "demo.pcapng").packets
    assert [(p.data[9], p.data[20], p.flags) for p in packets] == [
        (ip.PROTO_ICMP, ip.ICMP_ECHO_REQUEST, OUTBOUND),
        (ip.PROTO_ICMP, ip.ICMP_ECHO_REPLY, INBOUND),
    ]


def test_the_benchmark_measures_every_row() -> None:
    rows = capture_rows(200, repeats=2, packets=128)
    assert [row.name for row in rows] == [
        "capture add_one",
        "capture add, passes of 64",
        "capture add_one, fresh memory",
        "capture writer",
        "capture add_one, writer running",
    ]
    assert all(len(row.samples) == 2 and row.best > 0 for row in rows)
