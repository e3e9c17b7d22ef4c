"""Read the IP packets of a capture file: classic pcap and pcapng.

:func:`read_capture` returns a file's packets as :class:`CaptureRecord` objects;
:class:`CaptureReader` (also returned by :func:`iter_capture`) yields them one at a time and
counts the frames it skipped (:attr:`CaptureReader.skipped`). Each record holds the IP packet
alone: the layer 2 header of the link type is stripped.

Formats
   Classic pcap in both byte orders, with microsecond (``0xA1B2C3D4``) or nanosecond
   (``0xA1B23C4D``) timestamps. pcapng: Section Header Blocks in both byte orders, several
   sections in one file, Interface Description Blocks with ``if_tsresol`` (a power of 10 or
   of 2) and ``if_tsoffset``, Enhanced, Simple and (obsolete) Packet Blocks; other blocks
   are skipped.
Link types
   RAW (101), IPV4 (228), IPV6 (229); ETHERNET (1), 802.1Q and 802.1ad VLAN tags included;
   the BSD loopback NULL (0, address family in the capturing host's byte order) and LOOP
   (108, network byte order); Linux cooked capture SLL (113) and SLL2 (276). Frames that do
   not carry IPv4 or IPv6 are skipped and counted. Where a layer 2 frame is longer than the
   IP packet says it is (Ethernet pads short frames), the padding is cut off.
Errors
   A malformed or truncated file raises :class:`CaptureFormatError` (a :class:`ValueError`)
   whose :attr:`~CaptureFormatError.offset` is where the problem is, counted from where
   reading started. Reading changes nothing: a file object given is read from its current
   position and left open.

Why a reader of our own: what is needed is small (two container formats, eight link types,
no dissection beyond layer 2), and none of the pure-Python libraries on PyPI fits better.
Scapy reads both formats but is a whole packet-manipulation toolkit under the GPL;
python-pcapng (Apache-2.0) reads pcapng only, and its last release is from 2022; dpkt
(BSD) reads both with no dependencies, but its last release is from 2022 too, it has no type
annotations (this package is checked with ``mypy --strict``) and it leaves link layers,
directions and timestamp resolutions to the caller, which is most of this module.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Literal

__all__ = [
    "INBOUND",
    "OUTBOUND",
    "LINK_TYPES",
    "CaptureFormatError",
    "CaptureReader",
    "CaptureRecord",
    "CaptureSource",
    "iter_capture",
    "read_capture",
]

#: A packet the system sent to the application (the pcapng ``epb_flags`` value 1).
INBOUND = 1
#: A packet the application sent to the system (the pcapng ``epb_flags`` value 2).
OUTBOUND = 2

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

#: The link types this reader understands, by number.
LINK_TYPES: dict[int, str] = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "ETHERNET",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}

_PCAP_MICRO = 0xA1B2C3D4
_PCAP_NANO = 0xA1B23C4D
_SHB_BYTES = bytes((0x0A, 0x0D, 0x0D, 0x0A))  # the block type of a Section Header Block
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_IDB, _PB, _SPB, _EPB = 1, 2, 3, 6
_OPT_END, _OPT_COMMENT = 0, 1
_OPT_FLAGS = 2  # epb_flags and pack_flags: the direction in bits 0-1
_IF_TSRESOL, _IF_TSOFFSET = 9, 14

_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = 0x0800, 0x86DD
_IP_ETHERTYPES = (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6)
_VLAN_ETHERTYPES = (0x8100, 0x88A8, 0x9100)
#: BSD address families: AF_INET, and AF_INET6 as NetBSD/OpenBSD, FreeBSD and Darwin number it.
_AF_IP = (2, 24, 28, 30)
_SLL_HOST, _SLL_OUTGOING = 0, 4

_EPB_FIELDS = {order: struct.Struct(order + "IIIII") for order in "<>"}
_PB_FIELDS = {order: struct.Struct(order + "HHIIII") for order in "<>"}
_CHUNK = 1 << 20  # the most one read asks for: a bogus length never allocates gigabytes


class CaptureFormatError(ValueError):
    """The capture file is malformed or truncated at :attr:`offset`."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"at byte {offset}: {problem}")
        #: Where the problem is, in bytes from where reading started.
        self.offset = offset
        #: What is wrong, without the offset.
        self.problem = problem


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One IP packet of a capture."""

    #: When it was captured, in nanoseconds since the UNIX epoch.
    timestamp_ns: int
    #: The IP packet, its layer 2 header stripped (as much as was captured).
    data: bytes
    #: :data:`INBOUND`, :data:`OUTBOUND` or None (unknown).
    direction: int | None = None
    #: The packet's comment (pcapng ``opt_comment``; several are joined by newlines).
    comment: str | None = None
    #: The interface it was captured on: the Interface Description Block's number in the
    #: file, counting from 0 over all sections (0 for classic pcap).
    interface: int = 0
    #: Its length on the wire, layer 2 header included, as the capture states it.
    original_length: int = 0


#: What the readers take: a path, or a binary file object open for reading.
CaptureSource = str | os.PathLike[str] | IO[bytes]


@dataclass(slots=True)
class _Interface:
    number: int  # file-wide
    link_type: int
    units_per_second: int
    offset_ns: int
    snap_length: int


class CaptureReader:
    """Yields the :class:`CaptureRecord` objects of one capture, in file order.

    Iterate it once (or use it as a context manager to close a file it opened early). A path
    is opened at the first record and closed at the end; a file object is left open.
    """

    def __init__(self, source: CaptureSource) -> None:
        self._source = source
        #: Frames skipped because they carry no IPv4 or IPv6 packet (ARP, other ethertypes,
        #: frames too short for their layer 2 header).
        self.skipped = 0
        #: ``"pcap"`` or ``"pcapng"``, once the first bytes are read (None before).
        self.format: Literal["pcap", "pcapng"] | None = None
        self._file: IO[bytes] | None = None
        self._opened: IO[bytes] | None = None  # a file the reader opened (and closes)
        self._offset = 0
        self._records = self._generate()

    def __iter__(self) -> CaptureReader:
        return self

    def __next__(self) -> CaptureRecord:
        return next(self._records)

    def close(self) -> None:
        """Stop reading; a file the reader opened is closed."""
        self._records.close()
        self._close_file()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _close_file(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.close()

    # -- reading bytes --------------------------------------------------------------------

    def _read(self, size: int, what: str) -> bytes:
        """Exactly ``size`` bytes, or :class:`CaptureFormatError` naming ``what`` was cut."""
        data = self._read_or_end(size, what)
        if data is None:
            raise CaptureFormatError(self._offset, f"truncated {what}: 0 of {size} bytes present")
        return data

    def _read_or_end(self, size: int, what: str) -> bytes | None:
        """Exactly ``size`` bytes; None at the end of the file; :class:`CaptureFormatError`
        if the file ends within them."""
        assert self._file is not None
        pieces = []
        wanted = size
        while wanted:
            piece = self._file.read(min(wanted, _CHUNK))
            if not isinstance(piece, bytes):
                raise TypeError("capture files are read in binary mode ('rb')")
            if not piece:
                got = size - wanted
                if not got:
                    return None
                raise CaptureFormatError(
                    self._offset + got, f"truncated {what}: {got} of {size} bytes present"
                )
            pieces.append(piece)
            wanted -= len(piece)
        self._offset += size
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    # -- the two formats ------------------------------------------------------------------

    def _generate(self) -> Generator[CaptureRecord, None, None]:
        source = self._source
        if isinstance(source, (str, os.PathLike)):
            self._opened = self._file = open(source, "rb")  # noqa: SIM115 (closed below)
        else:
            self._file = source
        try:
            magic = self._read_or_end(4, "file header")
            if magic is None:
                raise CaptureFormatError(0, "empty file: no capture file header")
            if magic == _SHB_BYTES:
                self.format = "pcapng"
                yield from self._pcapng()
                return
            for order in ("<", ">"):
                (value,) = struct.unpack(order + "I", magic)
                if value in (_PCAP_MICRO, _PCAP_NANO):
                    self.format = "pcap"
                    yield from self._pcap(order, 1000 if value == _PCAP_MICRO else 1)
                    return
            raise CaptureFormatError(
                0, f"bad magic {magic.hex()}: neither a pcap nor a pcapng file"
            )
        finally:
            self._close_file()

    def _pcap(self, order: str, ns_per_fraction: int) -> Iterator[CaptureRecord]:
        header = self._read(20, "pcap file header")
        major, _minor, _zone, _sigfigs, _snap, network = struct.unpack(order + "HHiIII", header)
        if major != 2:
            raise CaptureFormatError(4, f"unsupported pcap version {major} (expected 2)")
        link_type = network & 0xFFFF  # the upper bits say whether frames end in an FCS
        if link_type not in LINK_TYPES:
            raise CaptureFormatError(20, f"unknown link type {link_type}")
        record_header = struct.Struct(order + "IIII")
        while True:
            start = self._offset
            fields = self._read_or_end(16, f"pcap record header at byte {start}")
            if fields is None:
                return
            seconds, fraction, captured, original = record_header.unpack(fields)
            frame = self._read(captured, f"pcap record at byte {start}")
            timestamp = seconds * 1_000_000_000 + fraction * ns_per_fraction
            record = self._record(frame, link_type, timestamp, None, None, 0, original)
            if record is not None:
                yield record

    def _pcapng(self) -> Iterator[CaptureRecord]:
        order = "<"
        interfaces: list[_Interface] = []
        counted = 0  # interfaces of the earlier sections
        last_timestamp = 0
        start, head = 0, _SHB_BYTES
        while True:
            if head == _SHB_BYTES:  # a new section; the type reads the same either way
                length_bytes = self._read(4, "section header block")
                magic = self._read(4, "section header block")
                if magic == _BYTE_ORDER_MAGIC.to_bytes(4, "little"):
                    order = "<"
                elif magic == _BYTE_ORDER_MAGIC.to_bytes(4, "big"):
                    order = ">"
                else:
                    raise CaptureFormatError(start + 8, f"bad byte-order magic {magic.hex()}")
                (length,) = struct.unpack(order + "I", length_bytes)
                self._check_length(start, length, 28)
                body = magic + self._read(length - 16, f"section header block at byte {start}")
                major = struct.unpack_from(order + "H", body, 4)[0]
                if major != 1:
                    raise CaptureFormatError(
                        start + 12, f"unsupported pcapng version {major} (expected 1)"
                    )
                self._check_trailer(start, length, order)
                counted += len(interfaces)
                interfaces = []
            else:
                (kind,) = struct.unpack(order + "I", head)
                (length,) = struct.unpack(order + "I", self._read(4, "block header"))
                self._check_length(start, length, 12)
                body = self._read(length - 12, f"block of type {kind:#x} at byte {start}")
                self._check_trailer(start, length, order)
                if kind == _IDB:
                    number = counted + len(interfaces)
                    interfaces.append(self._interface(body, order, start, number))
                elif kind in (_EPB, _PB, _SPB):
                    record = self._packet(kind, body, order, start, interfaces, last_timestamp)
                    if record is not None:
                        last_timestamp = record.timestamp_ns
                        yield record
            start = self._offset
            next_head = self._read_or_end(4, f"block header at byte {start}")
            if next_head is None:
                return
            head = next_head

    def _check_length(self, start: int, length: int, least: int) -> None:
        if length < least or length % 4:
            raise CaptureFormatError(
                start + 4,
                f"bad block length {length} (a multiple of 4, at least {least})",
            )

    def _check_trailer(self, start: int, length: int, order: str) -> None:
        (trailer,) = struct.unpack(order + "I", self._read(4, "block trailer"))
        if trailer != length:
            raise CaptureFormatError(
                start + length - 4,
                f"block length mismatch: the block at byte {start} starts with {length} "
                f"and ends with {trailer}",
            )

    # -- pcapng blocks --------------------------------------------------------------------

    def _options(
        self, body: bytes, at: int, order: str, block_start: int
    ) -> Iterator[tuple[int, bytes]]:
        """The options of a block body from ``at`` (``block_start + 8`` is body offset 0)."""
        while at + 4 <= len(body):
            code, size = struct.unpack_from(order + "HH", body, at)
            if code == _OPT_END:
                return
            end = at + 4 + size
            if end > len(body):
                raise CaptureFormatError(
                    block_start + 8 + at,
                    f"option {code} of {size} bytes runs past the end of its block",
                )
            yield code, body[at + 4 : end]
            at = end + (-size % 4)

    def _interface(self, body: bytes, order: str, start: int, number: int) -> _Interface:
        if len(body) < 8:
            raise CaptureFormatError(start + 8, "interface description block too short")
        link_type, _reserved, snap_length = struct.unpack_from(order + "HHI", body)
        units, offset_ns = 1_000_000, 0
        for code, value in self._options(body, 8, order, start):
            if code == _IF_TSRESOL and len(value) == 1:
                exponent = value[0] & 0x7F
                units = 2**exponent if value[0] & 0x80 else 10**exponent
            elif code == _IF_TSOFFSET and len(value) == 8:
                offset_ns = struct.unpack(order + "q", value)[0] * 1_000_000_000
        return _Interface(number, link_type, units, offset_ns, snap_length)

    def _packet(
        self,
        kind: int,
        body: bytes,
        order: str,
        start: int,
        interfaces: list[_Interface],
        last_timestamp: int,
    ) -> CaptureRecord | None:
        if kind == _SPB:
            if len(body) < 4:
                raise CaptureFormatError(start + 8, "simple packet block too short")
            (original,) = struct.unpack_from(order + "I", body)
            index, timestamp = 0, last_timestamp  # an SPB has no time: it follows the last
            captured = min(original, len(body) - 4)
            data_at, options_at = 4, len(body)
        else:
            # The obsolete Packet Block has a 16-bit interface ID and a drops count.
            fields = (_EPB_FIELDS if kind == _EPB else _PB_FIELDS)[order]
            if len(body) < fields.size:
                raise CaptureFormatError(start + 8, "packet block too short")
            if kind == _EPB:
                index, high, low, captured, original = fields.unpack_from(body)
            else:
                index, _drops, high, low, captured, original = fields.unpack_from(body)
            data_at = fields.size
            if data_at + captured > len(body):
                raise CaptureFormatError(
                    start + 20,  # the captured length field
                    f"record of {captured} bytes is larger than its block "
                    f"({len(body) - data_at} bytes of data)",
                )
            options_at = data_at + captured + (-captured % 4)
            timestamp = 0
        if index >= len(interfaces):
            raise CaptureFormatError(
                start + 8,
                f"packet of interface {index}, but its section describes {len(interfaces)}",
            )
        interface = interfaces[index]
        if kind == _SPB:
            if interface.snap_length:
                captured = min(captured, interface.snap_length)
        else:
            ticks = high << 32 | low
            timestamp = ticks * 1_000_000_000 // interface.units_per_second + interface.offset_ns
        if interface.link_type not in LINK_TYPES:
            raise CaptureFormatError(
                start,
                f"unknown link type {interface.link_type} (interface {interface.number})",
            )
        direction = None
        comments = []
        for code, value in self._options(body, options_at, order, start):
            if code == _OPT_COMMENT:
                comments.append(value.decode("utf-8", "replace"))
            elif code == _OPT_FLAGS and len(value) == 4:
                flags = struct.unpack(order + "I", value)[0] & 3
                direction = flags if flags in (INBOUND, OUTBOUND) else None
        frame = body[data_at : data_at + captured]
        comment = "\n".join(comments) if comments else None
        return self._record(
            frame, interface.link_type, timestamp, direction, comment, interface.number, original
        )

    # -- link layers ----------------------------------------------------------------------

    def _record(
        self,
        frame: bytes,
        link_type: int,
        timestamp: int,
        direction: int | None,
        comment: str | None,
        interface: int,
        original: int,
    ) -> CaptureRecord | None:
        stripped = _strip(frame, link_type)
        if stripped is None:
            self.skipped += 1
            return None
        packet, link_direction = stripped
        return CaptureRecord(
            timestamp,
            packet,
            direction if direction is not None else link_direction,
            comment,
            interface,
            original,
        )


def _strip(frame: bytes, link_type: int) -> tuple[bytes, int | None] | None:
    """The IP packet of ``frame`` and the direction its link layer states, or None if the
    frame carries no IPv4 or IPv6 packet."""
    if link_type in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None
        version = frame[0] >> 4
        wanted = {LINKTYPE_IPV4: (4,), LINKTYPE_IPV6: (6,)}.get(link_type, (4, 6))
        return (frame, None) if version in wanted else None
    if link_type == LINKTYPE_ETHERNET:
        at = 12
        while len(frame) >= at + 2:
            ethertype = int.from_bytes(frame[at : at + 2], "big")
            if ethertype in _VLAN_ETHERTYPES:
                at += 4
                continue
            if ethertype not in _IP_ETHERTYPES:
                return None
            return _trimmed(frame[at + 2 :]), None
        return None
    if link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        family = int.from_bytes(frame[:4], "big")
        if link_type == LINKTYPE_NULL and not family & 0xFFFF:
            family = int.from_bytes(frame[:4], "little")  # written by the other byte order
        return (frame[4:], None) if family in _AF_IP else None
    if link_type == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        packet_type = int.from_bytes(frame[0:2], "big")
        protocol = int.from_bytes(frame[14:16], "big")
        return _cooked(frame[16:], protocol, packet_type)
    if link_type == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        protocol = int.from_bytes(frame[0:2], "big")
        return _cooked(frame[20:], protocol, frame[10])
    raise AssertionError(f"link type {link_type} is checked before")


def _cooked(packet: bytes, protocol: int, packet_type: int) -> tuple[bytes, int | None] | None:
    if protocol not in _IP_ETHERTYPES:
        return None
    direction = {_SLL_HOST: INBOUND, _SLL_OUTGOING: OUTBOUND}.get(packet_type)
    return _trimmed(packet), direction


def _trimmed(packet: bytes) -> bytes:
    """``packet`` without what follows the IP packet (Ethernet padding, an FCS), when its
    header says how long it is."""
    if len(packet) >= 4 and packet[0] >> 4 == 4:
        length = int.from_bytes(packet[2:4], "big")
    elif len(packet) >= 7 and packet[0] >> 4 == 6:
        payload = int.from_bytes(packet[4:6], "big")
        jumbogram = not payload and packet[6] == 0  # its length is in a hop-by-hop option
        length = 0 if jumbogram else 40 + payload
    else:
        return packet
    return packet[:length] if 0 < length < len(packet) else packet


def iter_capture(source: CaptureSource) -> CaptureReader:
    """The records of ``source`` one at a time (a path, or a binary file object); the
    reader's :attr:`~CaptureReader.skipped` counts the frames that carried no IP packet."""
    return CaptureReader(source)


def read_capture(source: CaptureSource) -> list[CaptureRecord]:
    """Every IP packet of ``source`` (a path, or a binary file object), in file order.

    Raises :class:`CaptureFormatError` for a malformed or truncated file.
    """
    with CaptureReader(source) as reader:
        return list(reader)
