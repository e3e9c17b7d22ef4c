"""Just enough IPv4, IPv6 and ICMP to build, answer and describe echo traffic.

Used by the example program (which sends echo requests), by the emulator's echo responder
(which answers them as an operating system would) and by tests. Checksums are real.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

PROTO_ICMP = 1
PROTO_UDP = 17
PROTO_ICMPV6 = 58
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_packet(
    source: str | IPAddress, destination: str | IPAddress, protocol: int, payload: bytes,
    *, ttl: int = 64, identification: int = 0,
) -> bytes:
    """An IPv4 packet (no options) carrying ``payload``, with a correct header checksum."""
    src = ipaddress.IPv4Address(source).packed
    dst = ipaddress.IPv4Address(destination).packed
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), identification, 0, ttl, protocol, 0, src, dst
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6_packet(
    source: str | IPAddress, destination: str | IPAddress, next_header: int, payload: bytes,
    *, hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet (no extension headers) carrying ``payload``."""
    src = ipaddress.IPv6Address(source).packed
    dst = ipaddress.IPv6Address(destination).packed
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit, src, dst) + payload


def _icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    pseudo = src + dst + struct.pack("!I3xB", len(message), PROTO_ICMPV6)
    return checksum(pseudo + message)


def icmp_echo(
    source: str | IPAddress, destination: str | IPAddress, *, identifier: int = 0,
    sequence: int = 0, payload: bytes = b"", reply: bool = False,
) -> bytes:
    """An ICMP (IPv4) or ICMPv6 (IPv6) echo request, or reply, as a whole IP packet."""
    src = ipaddress.ip_address(source)
    dst = ipaddress.ip_address(destination)
    if src.version != dst.version:
        raise ValueError(f"{src} and {dst} are not of the same IP version")
    if src.version == 4:
        kind = ICMP_ECHO_REPLY if reply else ICMP_ECHO_REQUEST
        message = struct.pack("!BBHHH", kind, 0, 0, identifier, sequence) + payload
        message = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
        return ipv4_packet(src, dst, PROTO_ICMP, message)
    kind = ICMPV6_ECHO_REPLY if reply else ICMPV6_ECHO_REQUEST
    message = struct.pack("!BBHHH", kind, 0, 0, identifier, sequence) + payload
    value = _icmpv6_checksum(src.packed, dst.packed, message)
    message = message[:2] + struct.pack("!H", value) + message[4:]
    return ipv6_packet(src, dst, PROTO_ICMPV6, message)


def udp_packet(
    source: str | IPAddress, destination: str | IPAddress, source_port: int,
    destination_port: int, payload: bytes,
) -> bytes:
    """A UDP datagram as a whole IPv4 or IPv6 packet, with a correct checksum."""
    src = ipaddress.ip_address(source)
    dst = ipaddress.ip_address(destination)
    length = 8 + len(payload)
    datagram = struct.pack("!HHHH", source_port, destination_port, length, 0) + payload
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, PROTO_UDP, length)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", length, PROTO_UDP)
    value = checksum(pseudo + datagram) or 0xFFFF
    datagram = datagram[:6] + struct.pack("!H", value) + datagram[8:]
    if src.version == 4:
        return ipv4_packet(src, dst, PROTO_UDP, datagram)
    return ipv6_packet(src, dst, PROTO_UDP, datagram)


def addresses(packet: bytes | memoryview) -> tuple[IPAddress, IPAddress, int] | None:
    """``(source, destination, protocol)`` of an IPv4 or IPv6 packet, or None if not IP."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return (
            ipaddress.IPv4Address(bytes(packet[12:16])),
            ipaddress.IPv4Address(bytes(packet[16:20])),
            packet[9],
        )
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return (
            ipaddress.IPv6Address(bytes(packet[8:24])),
            ipaddress.IPv6Address(bytes(packet[24:40])),
            packet[6],
        )
    return None


def _transport(packet: bytes | memoryview) -> memoryview:
    """The bytes after the IP header (IPv4 options skipped)."""
    view = memoryview(packet)
    if view[0] >> 4 == 4:
        return view[(view[0] & 0x0F) * 4 :]
    return view[40:]


def echo_reply_for(packet: bytes | memoryview) -> bytes | None:
    """The echo reply an OS would send for ``packet``, if it is a valid echo request."""
    found = addresses(packet)
    if found is None:
        return None
    source, destination, protocol = found
    message = _transport(packet)
    if len(message) < 8:
        return None
    if protocol == PROTO_ICMP and message[0] == ICMP_ECHO_REQUEST and checksum(message) == 0:
        pass
    elif protocol == PROTO_ICMPV6 and message[0] == ICMPV6_ECHO_REQUEST:
        if _icmpv6_checksum(source.packed, destination.packed, bytes(message)) != 0:
            return None
    else:
        return None
    identifier, sequence = struct.unpack_from("!HH", message, 4)
    return icmp_echo(
        destination, source, identifier=identifier, sequence=sequence,
        payload=bytes(message[8:]), reply=True,
    )


def describe(packet: bytes | memoryview) -> str:
    """A one-line description, in the words of Wintun's example program."""
    found = addresses(packet)
    if found is None:
        return "packet that was not IP"
    source, destination, protocol = found
    message = _transport(packet)
    if protocol == PROTO_ICMP and len(message) >= 1 and message[0] in (0, 8):
        kind = "reply" if message[0] == ICMP_ECHO_REPLY else "request"
        return f"IPv4 ICMP echo {kind} from {source} to {destination}"
    if protocol == PROTO_ICMPV6 and len(message) >= 1 and message[0] in (128, 129):
        kind = "reply" if message[0] == ICMPV6_ECHO_REPLY else "request"
        return f"IPv6 ICMP echo {kind} from {source} to {destination}"
    return f"IPv{source.version} proto {protocol:#04x} packet from {source} to {destination}"
