"""wintun_cffi.ip: packets built with real checksums, echo replies, descriptions."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from wintun_cffi import ip


def ones_sum(data: bytes) -> int:
    """The 16-bit one's complement sum, written independently of the module."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def verifies(data: bytes) -> bool:
    """A block carrying its own Internet checksum sums to 0xFFFF."""
    return ones_sum(data) == 0xFFFF


def v6_pseudo(src: str, dst: str, length: int, proto: int) -> bytes:
    return (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!I", length)
        + bytes(3)
        + bytes([proto])
    )


def test_checksum_known_values() -> None:
    # RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert ip.checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert ip.checksum(b"") == 0xFFFF
    assert ip.checksum(b"\x01") == 0xFFFF - 0x0100  # odd length pads with a zero byte
    data = bytes(range(1, 200))
    assert ip.checksum(data) == 0xFFFF - ones_sum(data)


def test_ipv4_packet_layout_and_header_checksum() -> None:
    packet = ip.ipv4_packet("10.0.0.1", "10.0.0.2", 17, b"payload", ttl=9, identification=0x1234)
    assert len(packet) == 27
    version_ihl, tos, total, ident, frag, ttl, proto, _, src, dst = struct.unpack(
        "!BBHHHBBH4s4s", packet[:20]
    )
    assert (version_ihl, tos, total, ident, frag, ttl, proto) == (0x45, 0, 27, 0x1234, 0, 9, 17)
    assert src == bytes([10, 0, 0, 1]) and dst == bytes([10, 0, 0, 2])
    assert verifies(packet[:20]) and packet[20:] == b"payload"


def test_ipv6_packet_layout() -> None:
    packet = ip.ipv6_packet("fd00::1", "fd00::2", 58, b"abc", hop_limit=3)
    assert len(packet) == 43
    assert struct.unpack("!IHBB", packet[:8]) == (6 << 28, 3, 58, 3)
    assert packet[8:24] == ipaddress.IPv6Address("fd00::1").packed
    assert packet[24:40] == ipaddress.IPv6Address("fd00::2").packed


def test_icmp_echo_v4_and_its_reply() -> None:
    request = ip.icmp_echo(
        "192.0.2.1", "192.0.2.2", identifier=0xBEEF, sequence=3, payload=b"ping!"
    )
    assert request[9] == 1 and verifies(request[:20])
    message = request[20:]
    assert message[0] == 8 and message[1] == 0 and verifies(message)
    assert struct.unpack("!HH", message[4:8]) == (0xBEEF, 3) and message[8:] == b"ping!"
    reply = ip.echo_reply_for(request)
    assert reply is not None
    assert reply[12:16] == request[16:20] and reply[16:20] == request[12:16]
    assert verifies(reply[:20])
    answer = reply[20:]
    assert answer[0] == 0 and verifies(answer)
    assert answer[4:] == message[4:]
    assert reply == ip.icmp_echo(
        "192.0.2.2", "192.0.2.1", identifier=0xBEEF, sequence=3, payload=b"ping!", reply=True
    )


def test_icmp_echo_v6_and_its_reply() -> None:
    request = ip.icmp_echo(
        "2001:db8::1", "2001:db8::2", identifier=7, sequence=9, payload=b"\x00\xff" * 5
    )
    message = request[40:]
    assert request[6] == 58 and message[0] == 128
    assert verifies(v6_pseudo("2001:db8::1", "2001:db8::2", len(message), 58) + message)
    reply = ip.echo_reply_for(request)
    assert reply is not None
    answer = reply[40:]
    assert answer[0] == 129 and answer[4:] == message[4:]
    assert verifies(v6_pseudo("2001:db8::2", "2001:db8::1", len(answer), 58) + answer)


def test_no_reply_for_non_requests_or_bad_checksums() -> None:
    request = ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"x")
    broken = bytearray(request)
    broken[-1] ^= 0xFF
    assert ip.echo_reply_for(bytes(broken)) is None
    v6 = bytearray(ip.icmp_echo("fd00::1", "fd00::2", payload=b"x"))
    v6[-1] ^= 0xFF
    assert ip.echo_reply_for(bytes(v6)) is None
    assert ip.echo_reply_for(ip.icmp_echo("10.0.0.1", "10.0.0.2", reply=True)) is None
    assert ip.echo_reply_for(ip.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, b"")) is None
    assert ip.echo_reply_for(b"\x45" + bytes(19)) is None  # too short for ICMP
    assert ip.echo_reply_for(b"junk") is None


def test_udp_checksums() -> None:
    v4 = ip.udp_packet("10.0.0.1", "10.0.0.2", 1234, 53, b"query")
    datagram = v4[20:]
    assert struct.unpack("!HHH", datagram[:6]) == (1234, 53, 13)
    pseudo = bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 17]) + struct.pack("!H", 13)
    assert verifies(pseudo + datagram)
    v6 = ip.udp_packet("fd00::1", "fd00::2", 5, 6, b"data!")
    datagram6 = v6[40:]
    assert verifies(v6_pseudo("fd00::1", "fd00::2", len(datagram6), 17) + datagram6)
    assert datagram6[6:8] != b"\x00\x00"


def test_mixed_versions_are_refused() -> None:
    with pytest.raises(ValueError):
        ip.icmp_echo("10.0.0.1", "fd00::1")


def test_addresses() -> None:
    v4 = ip.icmp_echo("10.0.0.1", "10.0.0.2")
    assert ip.addresses(v4) == (
        ipaddress.IPv4Address("10.0.0.1"),
        ipaddress.IPv4Address("10.0.0.2"),
        1,
    )
    v6 = ip.udp_packet("fd00::1", "fd00::2", 1, 2, b"")
    assert ip.addresses(memoryview(v6)) == (
        ipaddress.IPv6Address("fd00::1"),
        ipaddress.IPv6Address("fd00::2"),
        17,
    )
    assert ip.addresses(v4[:19]) is None and ip.addresses(v6[:39]) is None
    assert ip.addresses(b"\x50" + bytes(40)) is None


def test_describe() -> None:
    assert ip.describe(ip.icmp_echo("10.6.7.8", "10.6.7.7")) == (
        "IPv4 ICMP echo request from 10.6.7.8 to 10.6.7.7"
    )
    assert ip.describe(ip.icmp_echo("10.6.7.7", "10.6.7.8", reply=True)) == (
        "IPv4 ICMP echo reply from 10.6.7.7 to 10.6.7.8"
    )
    assert ip.describe(ip.icmp_echo("fd00::1", "fd00::2")) == (
        "IPv6 ICMP echo request from fd00::1 to fd00::2"
    )
    assert ip.describe(ip.icmp_echo("fd00::2", "fd00::1", reply=True)) == (
        "IPv6 ICMP echo reply from fd00::2 to fd00::1"
    )
    assert ip.describe(ip.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, b"")) == (
        "IPv4 proto 0x11 packet from 10.0.0.1 to 10.0.0.2"
    )
    assert ip.describe(b"hello") == "packet that was not IP"
