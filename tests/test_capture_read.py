"""The capture reader: every container format and link type, built byte by byte; malformed
and truncated files; files written by Wireshark's own tools when they are installed."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests import capture_files as cf
from wintun_cffi.capture_read import (
    INBOUND,
    OUTBOUND,
    CaptureFormatError,
    CaptureReader,
    CaptureRecord,
    iter_capture,
    read_capture,
)

V4 = cf.ipv4_packet(1, b"hello")
V6 = cf.ipv6_packet(2, b"world!")
ARP = bytes(28)


def read(data: bytes) -> list[CaptureRecord]:
    return read_capture(io.BytesIO(data))


def payloads(data: bytes) -> list[bytes]:
    return [record.data for record in read(data)]


def format_error(data: bytes) -> CaptureFormatError:
    with pytest.raises(CaptureFormatError) as caught:
        read(data)
    return caught.value


# -- classic pcap --------------------------------------------------------------------------


class TestPcap:
    @pytest.mark.parametrize("order", ["<", ">"])
    def test_microseconds_both_byte_orders(self, order: str) -> None:
        data = cf.pcap(
            101, [(1_700_000_000, 123_456, V4), (1_700_000_001, 999_999, V6)], order=order
        )
        first, second = read(data)
        assert first == CaptureRecord(1_700_000_000_123_456_000, V4, None, None, 0, len(V4))
        assert second.timestamp_ns == 1_700_000_001_999_999_000
        assert second.data == V6

    @pytest.mark.parametrize("order", ["<", ">"])
    def test_nanoseconds_both_byte_orders(self, order: str) -> None:
        data = cf.pcap(101, [(5, 123_456_789, V4)], order=order, magic=cf.PCAP_NANO)
        [record] = read(data)
        assert record.timestamp_ns == 5_123_456_789

    def test_original_length_is_kept(self) -> None:
        data = cf.pcap(101, [(0, 0, V4)], original_extra=100)
        assert read(data)[0].original_length == len(V4) + 100

    def test_empty_capture(self) -> None:
        reader = iter_capture(io.BytesIO(cf.pcap(101, [])))
        assert list(reader) == []
        assert reader.format == "pcap"
        assert reader.skipped == 0


# -- link types ----------------------------------------------------------------------------


class TestLinkTypes:
    def test_raw_keeps_both_versions_and_skips_the_rest(self) -> None:
        reader = iter_capture(io.BytesIO(cf.pcap(101, [(0, 0, V4), (0, 1, ARP), (0, 2, V6)])))
        assert [record.data for record in reader] == [V4, V6]
        assert reader.skipped == 1

    def test_raw_ipv4_and_ipv6_link_types_take_their_version_only(self) -> None:
        reader = iter_capture(io.BytesIO(cf.pcap(228, [(0, 0, V4), (0, 1, V6)])))
        assert [record.data for record in reader] == [V4]
        assert reader.skipped == 1
        reader = iter_capture(io.BytesIO(cf.pcap(229, [(0, 0, V4), (0, 1, V6)])))
        assert [record.data for record in reader] == [V6]
        assert reader.skipped == 1

    def test_ethernet_strips_the_header_and_the_padding(self) -> None:
        short = cf.ipv4_packet(7)  # 20 bytes: padded to a 60-byte frame
        frames = [cf.ethernet(V4), cf.ethernet(V6), cf.ethernet(short)]
        assert len(frames[2]) == 60
        assert payloads(cf.pcap(1, [(0, i, f) for i, f in enumerate(frames)])) == [V4, V6, short]

    @pytest.mark.parametrize("vlans", [(0x8100,), (0x88A8, 0x8100), (0x9100, 0x8100)])
    def test_ethernet_vlan_tags(self, vlans: tuple[int, ...]) -> None:
        data = cf.pcap(
            1, [(0, 0, cf.ethernet(V4, vlans=vlans)), (0, 1, cf.ethernet(V6, vlans=vlans))]
        )
        assert payloads(data) == [V4, V6]

    def test_ethernet_keeps_ip_ethertypes_only(self) -> None:
        frames = [
            cf.ethernet(ARP, ethertype=0x0806),
            cf.ethernet(V4, ethertype=0x0800),
            cf.ethernet(ARP, ethertype=0x0806, vlans=(0x8100,)),
            cf.ethernet(V4, ethertype=0x002E),  # an 802.3 length, not a type
            bytes(13),  # too short for a header
        ]
        reader = iter_capture(io.BytesIO(cf.pcap(1, [(0, i, f) for i, f in enumerate(frames)])))
        assert [record.data for record in reader] == [V4]
        assert reader.skipped == 4

    @pytest.mark.parametrize("order", ["<", ">"])
    @pytest.mark.parametrize("family6", [24, 28, 30])
    def test_null_in_the_capturing_hosts_byte_order(self, order: str, family6: int) -> None:
        frames = [
            cf.null_header(2, order) + V4,
            cf.null_header(family6, order) + V6,
            cf.null_header(7, order) + ARP,
        ]
        # The file's byte order need not be the capturing host's: try the other one too.
        for file_order in ("<", ">"):
            reader = iter_capture(
                io.BytesIO(cf.pcap(0, [(0, i, f) for i, f in enumerate(frames)], order=file_order))
            )
            assert [record.data for record in reader] == [V4, V6]
            assert reader.skipped == 1

    def test_loop_in_network_byte_order(self) -> None:
        frames = [
            cf.null_header(2, ">") + V4,
            cf.null_header(30, ">") + V6,
            cf.null_header(2, "<") + V4,
        ]
        reader = iter_capture(io.BytesIO(cf.pcap(108, [(0, i, f) for i, f in enumerate(frames)])))
        assert [record.data for record in reader] == [V4, V6]
        assert reader.skipped == 1  # little-endian 2 is not AF_INET in network byte order

    @pytest.mark.parametrize(("link_type", "build"), [(113, cf.sll), (276, cf.sll2)])
    def test_linux_cooked_direction_from_the_packet_type(
        self, link_type: int, build: object
    ) -> None:
        assert callable(build)
        frames = [
            build(V4, 0),  # to us
            build(V6, 4),  # outgoing
            build(V4, 1),  # broadcast
            build(V4, 3),  # to another host
            build(ARP, 0, 0x0806),
        ]
        reader = iter_capture(
            io.BytesIO(cf.pcap(link_type, [(0, i, f) for i, f in enumerate(frames)]))
        )
        records = list(reader)
        assert [r.data for r in records] == [V4, V6, V4, V4]
        assert [r.direction for r in records] == [INBOUND, OUTBOUND, None, None]
        assert reader.skipped == 1

    def test_linux_cooked_padding_is_cut(self) -> None:
        short, empty = cf.ipv6_packet(3, b"xy"), cf.ipv6_packet(4)
        frames = [cf.sll(short, 0) + bytes(6), cf.sll(empty, 0) + bytes(6)]
        assert payloads(cf.pcap(113, [(0, i, f) for i, f in enumerate(frames)])) == [short, empty]


# -- pcapng ----------------------------------------------------------------------------------


class TestPcapng:
    @pytest.mark.parametrize("order", ["<", ">"])
    def test_enhanced_packets_with_flags_and_comments(self, order: str) -> None:
        data = (
            cf.shb(order)
            + cf.idb(101, order)
            + cf.epb(
                0,
                1_700_000_000_000_001,
                V4,
                order,
                [cf.flags(1, order), cf.comment("first", order)],
            )
            + cf.epb(0, 1_700_000_000_000_002, V6, order, [cf.flags(2, order)], original=1000)
            + cf.epb(
                0,
                1_700_000_000_000_003,
                V4,
                order,
                [cf.comment("a", order), cf.comment("b", order)],
            )
        )
        reader = iter_capture(io.BytesIO(data))
        first, second, third = reader
        assert reader.format == "pcapng"
        assert first == CaptureRecord(1_700_000_000_000_001_000, V4, INBOUND, "first", 0, len(V4))
        assert (second.data, second.direction, second.comment) == (V6, OUTBOUND, None)
        assert second.original_length == 1000
        assert (third.direction, third.comment) == (None, "a\nb")

    def test_flags_override_the_cooked_header_direction(self) -> None:
        data = (
            cf.shb()
            + cf.idb(113)
            + cf.epb(0, 0, cf.sll(V4, 0), opts=[cf.flags(2)])
            + cf.epb(0, 0, cf.sll(V4, 4))
            + cf.epb(0, 0, cf.sll(V4, 4), opts=[cf.flags(0x100)])  # reception type bits only
        )
        assert [r.direction for r in read(data)] == [OUTBOUND, OUTBOUND, OUTBOUND]

    @pytest.mark.parametrize(
        ("resolution", "ticks", "expected_ns"),
        [
            (None, 1_500_000, 1_500_000_000),  # default: microseconds
            (6, 1_500_000, 1_500_000_000),
            (9, 1_500_000_123, 1_500_000_123),
            (3, 1_500, 1_500_000_000),
            (0, 2, 2_000_000_000),
            (0x80 | 20, 3 << 19, 1_500_000_000),  # 2^-20 s: half a second per 2^19 ticks
            (0x80 | 10, 1, 976_562),  # 1/1024 s, rounded down to whole nanoseconds
        ],
    )
    def test_timestamp_resolutions(
        self, resolution: int | None, ticks: int, expected_ns: int
    ) -> None:
        opts = [] if resolution is None else [cf.tsresol(resolution)]
        data = cf.shb() + cf.idb(101, opts=opts) + cf.epb(0, ticks, V4)
        assert read(data)[0].timestamp_ns == expected_ns

    def test_timestamp_offset_in_seconds(self) -> None:
        data = cf.shb() + cf.idb(101, opts=[cf.tsresol(9), cf.tsoffset(1_000)]) + cf.epb(0, 5, V4)
        assert read(data)[0].timestamp_ns == 1_000_000_000_005

    def test_several_interfaces_and_sections(self) -> None:
        data = (
            cf.shb("<")
            + cf.idb(101, "<")
            + cf.idb(1, "<", [cf.tsresol(9, "<")])
            + cf.epb(1, 7, cf.ethernet(V4), "<")
            + cf.epb(0, 8, V6, "<")
            + cf.shb(">")  # a new section, the other byte order: interface IDs start again
            + cf.idb(108, ">")
            + cf.epb(0, 9, cf.null_header(2, ">") + V4, ">")
        )
        records = read(data)
        assert [(r.interface, r.data, r.timestamp_ns) for r in records] == [
            (1, V4, 7),
            (0, V6, 8_000),
            (2, V4, 9_000),
        ]

    def test_simple_packet_block_takes_the_time_before_it(self) -> None:
        data = (
            cf.shb()
            + cf.idb(1)
            + cf.spb(cf.ethernet(V4))
            + cf.epb(0, 42, cf.ethernet(V6))
            + cf.spb(cf.ethernet(V4))
        )
        records = read(data)
        assert [(r.data, r.timestamp_ns, r.interface) for r in records] == [
            (V4, 0, 0),
            (V6, 42_000, 0),
            (V4, 42_000, 0),
        ]
        assert records[0].original_length == 60

    def test_obsolete_packet_block(self) -> None:
        data = (
            cf.shb() + cf.idb(101) + cf.packet_block(0, 3, V4, flags=1) + cf.packet_block(0, 4, V6)
        )
        records = read(data)
        assert [(r.data, r.timestamp_ns, r.direction) for r in records] == [
            (V4, 3_000, INBOUND),
            (V6, 4_000, None),
        ]

    def test_unknown_blocks_are_skipped(self) -> None:
        data = (
            cf.shb(opts=cf.options([cf.comment("section")]))
            + cf.block(4, bytes(8))  # name resolution
            + cf.idb(101)
            + cf.block(5, bytes(12))  # interface statistics
            + cf.block(0x40000BAD, b"custom data")
            + cf.epb(0, 1, V4)
        )
        assert payloads(data) == [V4]


# -- sources --------------------------------------------------------------------------------


class TestSources:
    def test_paths_are_opened_and_closed(self, tmp_path: Path) -> None:
        path = tmp_path / "a.pcap"
        data = cf.pcap(101, [(0, 0, V4)])
        path.write_bytes(data)
        before = os.stat(path)
        assert [r.data for r in read_capture(path)] == [V4]
        assert [r.data for r in read_capture(str(path))] == [V4]
        assert path.read_bytes() == data
        assert os.stat(path).st_mtime_ns == before.st_mtime_ns

    def test_a_file_object_is_read_from_where_it_is_and_left_open(self) -> None:
        prefix = b"junk before"
        stream = io.BytesIO(prefix + cf.pcap(101, [(0, 0, V4)])[:-3])
        stream.seek(len(prefix))
        with pytest.raises(CaptureFormatError) as caught:
            read_capture(stream)
        assert not stream.closed
        # Offsets count from where reading started: the record is at 24 + 16.
        assert caught.value.offset == 24 + 16 + len(V4) - 3

    def test_text_mode_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "a.pcap"
        path.write_bytes(cf.pcap(101, []))
        with open(path, encoding="latin-1") as text, pytest.raises(TypeError, match="binary"):
            read_capture(text)  # type: ignore[arg-type]

    def test_reader_as_context_manager_closes_its_file_early(self, tmp_path: Path) -> None:
        path = tmp_path / "a.pcap"
        path.write_bytes(cf.pcap(101, [(0, 0, V4), (0, 1, V6)]))
        with CaptureReader(path) as reader:
            assert next(reader).data == V4
        assert list(reader) == []


# -- malformed files --------------------------------------------------------------------------


class TestMalformed:
    def test_empty_file(self) -> None:
        error = format_error(b"")
        assert error.offset == 0
        assert "empty" in str(error)

    def test_bad_magic(self) -> None:
        error = format_error(b"GIF89a" + bytes(30))
        assert error.offset == 0
        assert "bad magic 47494638" in str(error)
        assert str(error).startswith("at byte 0: ")

    def test_pcap_header_cut(self) -> None:
        error = format_error(cf.pcap(101, [])[:10])
        assert error.offset == 10
        assert "truncated pcap file header" in str(error)

    def test_pcap_unknown_link_type(self) -> None:
        error = format_error(cf.pcap(147, [(0, 0, V4)]))
        assert error.offset == 20
        assert "unknown link type 147" in str(error)

    def test_pcap_version(self) -> None:
        data = bytearray(cf.pcap(101, []))
        data[4] = 3
        assert format_error(bytes(data)).offset == 4

    def test_pcap_record_header_cut(self) -> None:
        data = cf.pcap(101, [(0, 0, V4), (0, 1, V6)])
        second = 24 + 16 + len(V4)
        error = format_error(data[: second + 5])
        assert error.offset == second + 5
        assert f"truncated pcap record header at byte {second}: 5 of 16" in str(error)

    def test_pcap_record_data_cut(self) -> None:
        data = cf.pcap(101, [(0, 0, V4)])
        error = format_error(data[:-1])
        assert error.offset == len(data) - 1
        assert "truncated pcap record at byte 24" in str(error)

    def test_pcap_record_length_beyond_the_file(self) -> None:
        data = bytearray(cf.pcap(101, [(0, 0, V4)]))
        struct.pack_into("<I", data, 24 + 8, 0xFFFFFFF0)  # no 4 GiB read is attempted
        error = format_error(bytes(data))
        assert error.offset == len(data)

    def test_block_length_mismatch(self) -> None:
        good = cf.shb() + cf.idb(101)
        bad = bytearray(cf.epb(0, 1, V4))
        struct.pack_into("<I", bad, len(bad) - 4, len(bad) + 4)
        error = format_error(good + bytes(bad))
        assert error.offset == len(good) + len(bad) - 4
        assert f"block length mismatch: the block at byte {len(good)}" in str(error)

    @pytest.mark.parametrize("length", [8, 30])
    def test_block_length_invalid(self, length: int) -> None:
        good = cf.shb()
        bad = bytearray(cf.idb(101))
        struct.pack_into("<I", bad, 4, length)
        error = format_error(good + bytes(bad))
        assert error.offset == len(good) + 4
        assert f"bad block length {length}" in str(error)

    def test_truncated_block(self) -> None:
        data = cf.shb() + cf.idb(101) + cf.epb(0, 1, V4)
        error = format_error(data[:-6])
        assert error.offset == len(data) - 6
        assert "truncated" in str(error)

    def test_truncated_block_header(self) -> None:
        data = cf.shb() + cf.idb(101)
        error = format_error(data + b"\x06\x00")
        assert error.offset == len(data) + 2
        assert f"truncated block header at byte {len(data)}: 2 of 4" in str(error)

    def test_record_larger_than_its_block(self) -> None:
        good = cf.shb() + cf.idb(101)
        bad = bytearray(cf.epb(0, 1, V4))
        struct.pack_into("<I", bad, 20, 200)  # captured length
        error = format_error(good + bytes(bad))
        assert error.offset == len(good) + 20
        assert "record of 200 bytes is larger than its block" in str(error)

    def test_packet_of_an_undescribed_interface(self) -> None:
        good = cf.shb() + cf.idb(101)
        error = format_error(good + cf.epb(1, 1, V4))
        assert error.offset == len(good) + 8
        assert "packet of interface 1, but its section describes 1" in str(error)

    def test_interfaces_end_with_their_section(self) -> None:
        good = cf.shb() + cf.idb(101) + cf.shb()
        error = format_error(good + cf.epb(0, 1, V4))
        assert "describes 0" in str(error)

    def test_unknown_link_type_of_an_interface(self) -> None:
        good = cf.shb() + cf.idb(101) + cf.idb(189)
        error = format_error(good + cf.epb(0, 1, V4) + cf.epb(1, 1, V4))
        epb_size = len(cf.epb(0, 1, V4))
        assert error.offset == len(good) + epb_size
        assert "unknown link type 189 (interface 1)" in str(error)

    def test_bad_byte_order_magic(self) -> None:
        data = bytearray(cf.shb())
        data[8:12] = b"\x00\x11\x22\x33"
        error = format_error(bytes(data))
        assert error.offset == 8
        assert "bad byte-order magic 00112233" in str(error)

    def test_pcapng_version(self) -> None:
        data = bytearray(cf.shb())
        struct.pack_into("<H", data, 12, 2)
        assert format_error(bytes(data)).offset == 12

    def test_option_past_its_block(self) -> None:
        good = cf.shb()
        body = struct.pack("<HHI", 101, 0, 0) + struct.pack("<HH", 9, 40) + bytes(4)
        error = format_error(good + cf.block(1, body))
        assert error.offset == len(good) + 8 + 8
        assert "option 9 of 40 bytes runs past the end of its block" in str(error)

    def test_reading_after_an_error_gives_nothing_more(self) -> None:
        reader = iter_capture(io.BytesIO(cf.pcap(101, [(0, 0, V4)])[:-1]))
        with pytest.raises(CaptureFormatError):
            next(reader)
        assert list(reader) == []


# -- files written by Wireshark's tools ------------------------------------------------------

TOOLS = ("text2pcap", "editcap")


def wireshark_tools() -> None:
    """Skip unless text2pcap and editcap are installed; under CI their absence fails."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install tshark)"
        if os.environ.get("CI") and sys.platform != "win32":  # CI installs them on Linux
            pytest.fail(reason)
        pytest.skip(reason)


def hex_dump(frames: list[bytes]) -> str:
    """text2pcap's input: an offset and hex bytes per line, a timestamp before each frame."""
    lines = []
    for index, frame in enumerate(frames):
        lines.append(f"2024-01-02 03:04:{5 + 2 * index:02d}")
        for at in range(0, len(frame), 16):
            lines.append(f"{at:06x} " + " ".join(f"{b:02x}" for b in frame[at : at + 16]))
    return "\n".join(lines) + "\n"


def text2pcap(tmp_path: Path, frames: list[bytes], *arguments: str) -> Path:
    source = tmp_path / "frames.txt"
    source.write_text(hex_dump(frames))
    target = tmp_path / "out.cap"
    subprocess.run(
        ["text2pcap", "-q", "-t", "%Y-%m-%d %H:%M:%S", *arguments, str(source), str(target)],
        check=True,
        capture_output=True,
    )
    return target


class TestWrittenByWireshark:
    EXPECTED_SECONDS = 1_704_164_645  # 2024-01-02 03:04:05 UTC

    @pytest.fixture(autouse=True)
    def _tools(self) -> None:
        wireshark_tools()

    def test_ethernet_pcapng(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "UTC")
        frames = [
            cf.ethernet(V4),
            cf.ethernet(ARP, ethertype=0x0806),
            cf.ethernet(V6, vlans=(0x8100,)),
        ]
        path = text2pcap(tmp_path, frames, "-l", "1")
        assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
        reader = iter_capture(path)
        records = list(reader)
        assert [r.data for r in records] == [V4, V6]
        assert reader.skipped == 1
        assert records[0].timestamp_ns == self.EXPECTED_SECONDS * 10**9
        assert (
            records[1].timestamp_ns - records[0].timestamp_ns == 4 * 10**9
        )  # frames 0 and 2, two seconds apart each

    @pytest.mark.parametrize(
        ("file_type", "link_type", "wrap"),
        [
            ("pcap", "101", lambda p: p),
            ("pcap", "228", lambda p: p),
            ("pcapng", "276", lambda p: cf.sll2(p, 4)),
            ("pcap", "113", lambda p: cf.sll(p, 0)),
            ("pcap", "0", lambda p: cf.null_header(2, "<") + p),
        ],
    )
    def test_other_link_types(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        file_type: str,
        link_type: str,
        wrap: object,
    ) -> None:
        monkeypatch.setenv("TZ", "UTC")
        assert callable(wrap)
        path = text2pcap(tmp_path, [wrap(V4)], "-F", file_type, "-l", link_type)
        [record] = read_capture(path)
        assert record.data == V4

    def test_editcap_conversions(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "UTC")
        frames = [cf.ethernet(V4), cf.ethernet(V6)]
        pcapng = text2pcap(tmp_path, frames, "-l", "1")
        for file_type, magic in [("pcap", "d4c3b2a1"), ("nsecpcap", "4d3cb2a1")]:
            converted = tmp_path / f"converted.{file_type}"
            subprocess.run(
                ["editcap", "-F", file_type, str(pcapng), str(converted)],
                check=True,
                capture_output=True,
            )
            assert converted.read_bytes()[:4].hex() == magic
            records = read_capture(converted)
            assert [r.data for r in records] == [V4, V6]
            assert records[0].timestamp_ns == self.EXPECTED_SECONDS * 10**9
