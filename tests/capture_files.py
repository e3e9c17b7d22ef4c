"""Capture files built byte by byte for the tests, from the format descriptions (pcap: the
IETF draft ``draft-ietf-opsawg-pcap``; pcapng: ``draft-ietf-opsawg-pcapng``), independently of
the reader: classic pcap records, pcapng blocks and options, and layer 2 headers."""

from __future__ import annotations

import struct

PCAP_MICRO = 0xA1B2C3D4
PCAP_NANO = 0xA1B23C4D

# -- IP packets -------------------------------------------------------------------------------


def ipv4_packet(tag: int, payload: bytes = b"") -> bytes:
    """A 20-byte IPv4 header (UDP, no checksum) with ``tag`` as its identification."""
    total = 20 + len(payload)
    header = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, total, tag, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
        bytes([10, 0, 0, 2]),
    )  # fmt: skip
    return header + payload


def ipv6_packet(tag: int, payload: bytes = b"") -> bytes:
    """A 40-byte IPv6 header (next header 59: none) with ``tag`` as its flow label."""
    source = bytes(15) + b"\x01"
    destination = bytes(15) + b"\x02"
    first = (6 << 28) | (tag & 0xFFFFF)
    return struct.pack(">IHBB", first, len(payload), 59, 64) + source + destination + payload


# -- layer 2 ---------------------------------------------------------------------------------


def ethernet(packet: bytes, ethertype: int | None = None, vlans: tuple[int, ...] = ()) -> bytes:
    """An Ethernet frame around ``packet``; ``vlans`` are the TPIDs of its tags, outermost
    first (0x8100, 0x88A8); short frames are padded to 60 bytes as on the wire."""
    if ethertype is None:
        ethertype = 0x0800 if packet[0] >> 4 == 4 else 0x86DD
    frame = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")
    for vid, tpid in enumerate(vlans, start=10):
        frame += struct.pack(">HH", tpid, vid)
    frame += struct.pack(">H", ethertype) + packet
    return frame + bytes(max(0, 60 - len(frame)))


def null_header(family: int, order: str) -> bytes:
    """The 4-byte address family of the NULL (``order`` of the capturing host) or LOOP
    (``">"``) link types."""
    return struct.pack(order + "I", family)


def sll(packet: bytes, packet_type: int, protocol: int | None = None) -> bytes:
    """A Linux cooked (v1) header: packet type, ARPHRD_ETHER, a 6-byte address, protocol."""
    if protocol is None:
        protocol = 0x0800 if packet[0] >> 4 == 4 else 0x86DD
    address = bytes.fromhex("020000000001") + bytes(2)
    return struct.pack(">HHH8sH", packet_type, 1, 6, address, protocol) + packet


def sll2(packet: bytes, packet_type: int, protocol: int | None = None) -> bytes:
    """A Linux cooked v2 header: protocol, reserved, ifindex, ARPHRD_ETHER, packet type,
    address length, address."""
    if protocol is None:
        protocol = 0x0800 if packet[0] >> 4 == 4 else 0x86DD
    address = bytes.fromhex("020000000001") + bytes(2)
    return struct.pack(">HHIHBB8s", protocol, 0, 3, 1, packet_type, 6, address) + packet


# -- classic pcap ----------------------------------------------------------------------------


def pcap(
    link_type: int,
    records: list[tuple[int, int, bytes]],
    *,
    order: str = "<",
    magic: int = PCAP_MICRO,
    original_extra: int = 0,
) -> bytes:
    """A pcap file: ``records`` of (seconds, fraction, frame)."""
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, link_type)
    for seconds, fraction, frame in records:
        out += struct.pack(
            order + "IIII", seconds, fraction, len(frame), len(frame) + original_extra
        )
        out += frame
    return out


# -- pcapng ----------------------------------------------------------------------------------


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def options(items: list[bytes], order: str = "<") -> bytes:
    """An options list ended by opt_endofopt (empty without options)."""
    return b"".join(items) + struct.pack(order + "HH", 0, 0) if items else b""


def block(kind: int, body: bytes, order: str = "<") -> bytes:
    body += bytes(-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def shb(order: str = "<", opts: bytes = b"") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts, order)


def idb(link_type: int, order: str = "<", opts: list[bytes] | None = None) -> bytes:
    body = struct.pack(order + "HHI", link_type, 0, 0) + options(opts or [], order)
    return block(1, body, order)


def epb(
    interface: int,
    ticks: int,
    frame: bytes,
    order: str = "<",
    opts: list[bytes] | None = None,
    original: int | None = None,
) -> bytes:
    original = len(frame) if original is None else original
    head = struct.pack(
        order + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), original
    )
    data = frame + bytes(-len(frame) % 4)
    return block(6, head + data + options(opts or [], order), order)


def spb(frame: bytes, order: str = "<") -> bytes:
    return block(3, struct.pack(order + "I", len(frame)) + frame, order)


def packet_block(
    interface: int, ticks: int, frame: bytes, order: str = "<", flags: int = 0
) -> bytes:
    """The obsolete Packet Block (type 2), with pack_flags when ``flags``."""
    head = struct.pack(
        order + "HHIIII", interface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)
    )
    opts = [option(2, struct.pack(order + "I", flags), order)] if flags else []
    return block(2, head + frame + bytes(-len(frame) % 4) + options(opts, order), order)


def flags(direction: int, order: str = "<") -> bytes:
    """An epb_flags option with ``direction`` in bits 0-1."""
    return option(2, struct.pack(order + "I", direction), order)


def comment(text: str, order: str = "<") -> bytes:
    return option(1, text.encode(), order)


def tsresol(value: int, order: str = "<") -> bytes:
    return option(9, bytes([value]), order)


def tsoffset(seconds: int, order: str = "<") -> bytes:
    return option(14, struct.pack(order + "q", seconds), order)
