"""wintun_cffi.ip's fast path: echo replies made in place, packets from a PacketBuilder.

Checked against the convenience helpers and against checksums verified independently
(``ones_sum`` of test_ip), over packets hypothesis makes up; bad input must raise and leave the
buffer as it was.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import wintun_cffi
from wintun_cffi import ip
from wintun_cffi.commands import ip_bench

from .test_ip import ones_sum, v6_pseudo, verifies

ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6).map(str)
u16 = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=300)


def ipv4_header_fixed(packet: bytearray) -> None:
    """Recompute the IPv4 header checksum of ``packet`` independently of the module."""
    header = (packet[0] & 0x0F) * 4
    packet[10:12] = b"\0\0"
    packet[10:12] = struct.pack("!H", 0xFFFF - ones_sum(bytes(packet[:header])))


def ipv4_request(
    source: str,
    destination: str,
    identifier: int,
    sequence: int,
    payload: bytes,
    *,
    ttl: int = 64,
    tos: int = 0,
    identification: int = 0,
    dont_fragment: bool = False,
    options: bytes = b"",
) -> bytearray:
    """An ICMP echo request with header fields the helpers do not set (options too)."""
    request = ip.icmp_echo(
        source, destination, identifier=identifier, sequence=sequence, payload=payload
    )
    packet = bytearray(request[:20] + options + request[20:])
    packet[0] = 0x40 | (20 + len(options)) // 4
    packet[1] = tos
    struct.pack_into(
        "!HHHB", packet, 2, len(packet), identification, 0x4000 if dont_fragment else 0, ttl
    )
    ipv4_header_fixed(packet)
    return packet


# -- correct replies ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(ipv4s, ipv4s, u16, u16, payloads)
@example("10.0.0.1", "10.0.0.2", 0, 0, bytes(10))  # a reply of all-zero words: checksum 0xFFFF
@example("10.0.0.1", "10.0.0.2", 0xFFFF, 0, b"")  # words that sum to 0xFFFF: checksum 0
def test_ipv4_reply_equals_the_helpers(
    source: str, destination: str, identifier: int, sequence: int, payload: bytes
) -> None:
    request = ip.icmp_echo(
        source, destination, identifier=identifier, sequence=sequence, payload=payload
    )
    buffer = bytearray(request)
    ip.echo_reply_in_place(buffer)
    assert bytes(buffer) == ip.echo_reply_for(request)
    assert verifies(bytes(buffer[:20])) and verifies(bytes(buffer[20:]))


@settings(max_examples=300, deadline=None)
@given(ipv6s, ipv6s, u16, u16, payloads, st.integers(0, 255))
def test_ipv6_reply_equals_the_helpers_and_verifies(
    source: str, destination: str, identifier: int, sequence: int, payload: bytes, hops: int
) -> None:
    request = ip.icmp_echo(
        source, destination, identifier=identifier, sequence=sequence, payload=payload
    )
    buffer = bytearray(request)
    buffer[7] = hops  # the request's hop limit must not matter
    ip.echo_reply_in_place(memoryview(buffer))
    assert bytes(buffer) == ip.echo_reply_for(request)
    message = bytes(buffer[40:])
    assert message[0] == ip.ICMPV6_ECHO_REPLY
    assert verifies(v6_pseudo(destination, source, len(message), 58) + message)


@settings(max_examples=300, deadline=None)
@given(
    ipv4s,
    ipv4s,
    u16,
    u16,
    payloads,
    st.integers(0, 255),
    st.integers(0, 255),
    u16,
    st.booleans(),
    st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x01" * 8]),
    st.integers(1, 255),
)
def test_ipv4_reply_keeps_the_request_header_and_verifies(
    source: str,
    destination: str,
    identifier: int,
    sequence: int,
    payload: bytes,
    ttl: int,
    tos: int,
    identification: int,
    dont_fragment: bool,
    options: bytes,
    new_ttl: int,
) -> None:
    request = ipv4_request(
        source,
        destination,
        identifier,
        sequence,
        payload,
        ttl=ttl,
        tos=tos,
        identification=identification,
        dont_fragment=dont_fragment,
        options=options,
    )
    reply = bytearray(request)
    ip.echo_reply_in_place(reply, ttl=new_ttl, verify=True)
    header = 20 + len(options)
    assert reply[12:16] == request[16:20] and reply[16:20] == request[12:16]
    assert reply[8] == new_ttl
    unchanged = [0, 1, 2, 3, 4, 5, 6, 7, 9]  # version to fragment offset, protocol
    assert [reply[i] for i in unchanged] == [request[i] for i in unchanged]
    assert reply[20:header] == options
    assert verifies(bytes(reply[:header]))
    assert reply[header] == ip.ICMP_ECHO_REPLY and reply[header + 1] == 0
    assert reply[header + 4 :] == request[header + 4 :]
    assert verifies(bytes(reply[header:]))


def test_bytes_after_the_packet_are_left_alone() -> None:
    for request in (
        ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"abc"),
        ip.icmp_echo("fd00::1", "fd00::2", payload=b"abc"),
    ):
        buffer = bytearray(request + b"TRAILER")
        ip.echo_reply_in_place(buffer, verify=True)
        assert bytes(buffer) == bytes(ip.echo_reply_for(request) or b"") + b"TRAILER"


def test_a_received_packet_is_answered_in_ring_memory() -> None:
    wintun = wintun_cffi.emulated("0.14")
    with (
        wintun.create_adapter("Fast", tunnel_type="Fast") as adapter,
        adapter.start_session(0x20000) as session,
    ):
        host = adapter.host
        request = ip.icmp_echo("10.6.7.7", "10.6.7.8", identifier=5, sequence=6, payload=b"hi")
        host.deliver(request)
        with session.receive(timeout=5) as packet:
            ip.echo_reply_in_place(packet.data)  # in ring memory
            session.send(packet.data)
        assert host.receive(timeout=5) == ip.echo_reply_for(request)


# -- bad input --------------------------------------------------------------------------------


def _refused(packet: bytes, message: str, **options: object) -> None:
    buffer = bytearray(packet)
    with pytest.raises(ValueError, match=message):
        ip.echo_reply_in_place(buffer, **options)  # type: ignore[arg-type]
    assert buffer == packet  # nothing changed


def test_not_ip_is_refused() -> None:
    _refused(b"", "not IPv4 or IPv6")
    _refused(b"\x10junk", "not IPv4 or IPv6")
    _refused(b"\x50" + bytes(40), "not IPv4 or IPv6")


def test_truncated_packets_are_refused() -> None:
    v4 = ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"abcdef")
    _refused(v4[:19], "truncated")
    _refused(v4[:27], "holds 27")  # the IP length says more than there is
    _refused(b"\x4f" + v4[1:], "60-byte header")  # IHL beyond the packet
    _refused(b"\x44" + v4[1:], "16-byte header")  # IHL below the minimum
    short = bytearray(ip.ipv4_packet("10.0.0.1", "10.0.0.2", 1, b"\x08\x00\x00"))
    _refused(bytes(short), "needs 28")  # no room for an ICMP echo header
    v6 = ip.icmp_echo("fd00::1", "fd00::2", payload=b"abcdef")
    _refused(v6[:47], "truncated")
    _refused(v6[:50], "holds 50")


def test_other_traffic_is_refused() -> None:
    _refused(ip.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, b"12345678"), "protocol 17")
    _refused(ip.udp_packet("fd00::1", "fd00::2", 1, 2, b"12345678"), "next header 17")
    _refused(ip.icmp_echo("10.0.0.1", "10.0.0.2", reply=True), "ICMP type 0 code 0")
    _refused(ip.icmp_echo("fd00::1", "fd00::2", reply=True), "ICMPv6 type 129 code 0")
    coded = bytearray(ip.icmp_echo("10.0.0.1", "10.0.0.2"))
    coded[21] = 1
    _refused(bytes(coded), "type 8 code 1")
    # An extension header (hop-by-hop options) before the ICMPv6 message.
    v6 = bytearray(ip.icmp_echo("fd00::1", "fd00::2", payload=b"12345678"))
    v6[6] = 0
    _refused(bytes(v6), "next header 0")


def test_fragments_are_refused() -> None:
    for flags in (0x2000, 0x0001):  # more fragments; an offset
        packet = bytearray(ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"x" * 16))
        struct.pack_into("!H", packet, 6, flags)
        ipv4_header_fixed(packet)
        _refused(bytes(packet), "fragment")


def test_wrong_checksums_are_refused_when_verifying_and_stay_wrong_otherwise() -> None:
    for request in (
        ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"payload"),
        ip.icmp_echo("fd00::1", "fd00::2", payload=b"payload"),
    ):
        corrupt = bytearray(request)
        corrupt[-1] ^= 0x40
        _refused(bytes(corrupt), "checksum is wrong", verify=True)
        ip.echo_reply_in_place(corrupt)  # not verified: the reply carries the error on
        assert ip.echo_reply_for(bytes(corrupt)) is None or corrupt[0] >> 4 == 6
        if corrupt[0] >> 4 == 4:
            assert not verifies(bytes(corrupt[20:]))
        else:
            message = bytes(corrupt[40:])
            assert not verifies(v6_pseudo("fd00::2", "fd00::1", len(message), 58) + message)
    header = bytearray(ip.icmp_echo("10.0.0.1", "10.0.0.2"))
    header[1] = 0x10  # the header checksum no longer matches
    _refused(bytes(header), "checksum is wrong", verify=True)


def test_read_only_buffers_and_bad_ttls_are_refused() -> None:
    request = ip.icmp_echo("10.0.0.1", "10.0.0.2")
    with pytest.raises(TypeError, match="read-only"):
        ip.echo_reply_in_place(memoryview(request))
    buffer = bytearray(request)
    with pytest.raises(TypeError, match="read-only"):
        ip.echo_reply_in_place(memoryview(buffer).toreadonly())
    for ttl in (-1, 256):
        with pytest.raises(ValueError, match="ttl"):
            ip.echo_reply_in_place(buffer, ttl=ttl)
    assert buffer == request


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120), st.booleans())
@example(bytes(ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"z")), True)
def test_any_bytes_either_become_a_reply_or_stay_as_they_were(data: bytes, verify: bool) -> None:
    buffer = bytearray(data)
    try:
        ip.echo_reply_in_place(buffer, verify=verify)
    except ValueError:
        assert buffer == data
        return
    assert len(buffer) == len(data) and buffer != data
    assert ip.describe(bytes(buffer)).split(" from ")[0].endswith("echo reply")
    if verify and buffer[0] >> 4 == 4:
        header = (buffer[0] & 0x0F) * 4
        length = struct.unpack_from("!H", buffer, 2)[0]
        assert verifies(bytes(buffer[:header])) and verifies(bytes(buffer[header:length]))


def test_a_wide_memoryview_is_cast_to_bytes() -> None:
    request = ip.icmp_echo("10.0.0.1", "10.0.0.2", payload=b"abcd")
    buffer = bytearray(request)
    ip.echo_reply_in_place(memoryview(buffer).cast("H"))
    assert bytes(buffer) == ip.echo_reply_for(request)


# -- PacketBuilder ----------------------------------------------------------------------------


def reference_udp(source: str, destination: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP packet built without the module: struct and the independent ones' sum."""
    src = ipaddress.ip_address(source).packed
    dst = ipaddress.ip_address(destination).packed
    length = 8 + len(payload)
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    else:
        pseudo = src + dst + struct.pack("!I3xB", length, 17)
    value = 0xFFFF - ones_sum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload)
    datagram = struct.pack("!HHHH", sport, dport, length, value or 0xFFFF) + payload
    if len(src) == 16:
        return struct.pack("!IHBB", 6 << 28, length, 17, 64) + src + dst + datagram
    header = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + length, 0, 0, 64, 17, 0) + src + dst)
    ipv4_header_fixed(header)
    return bytes(header) + datagram


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(ipv4s, ipv4s), st.tuples(ipv6s, ipv6s)), u16, u16, payloads)
def test_builder_udp_matches_an_independent_build(
    pair: tuple[str, str], sport: int, dport: int, payload: bytes
) -> None:
    builder = ip.PacketBuilder(*pair)
    assert builder.udp(sport, dport, payload) == reference_udp(*pair, sport, dport, payload)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.tuples(ipv4s, ipv4s), st.tuples(ipv6s, ipv6s)),
    u16,
    u16,
    payloads,
    st.booleans(),
    st.integers(0, 255),
)
def test_builder_icmp_echo_verifies(
    pair: tuple[str, str],
    identifier: int,
    sequence: int,
    payload: bytes,
    reply: bool,
    ttl: int,
) -> None:
    source, destination = pair
    packet = ip.PacketBuilder(source, destination, ttl=ttl).icmp_echo(
        identifier=identifier, sequence=sequence, payload=payload, reply=reply
    )
    if ":" in source:
        assert packet[7] == ttl
        message = packet[40:]
        assert message[0] == (129 if reply else 128)
        assert verifies(v6_pseudo(source, destination, len(message), 58) + message)
    else:
        assert packet[8] == ttl and verifies(packet[:20]) and verifies(packet[20:])
        assert packet[20] == (0 if reply else 8)
    assert struct.unpack_from("!HH", packet, len(packet) - len(payload) - 4) == (
        identifier,
        sequence,
    )


def test_builder_parses_once_and_refuses_bad_arguments() -> None:
    builder = ip.PacketBuilder("10.6.7.8", ipaddress.IPv4Address("10.6.7.7"), ttl=3)
    assert (builder.source, builder.destination, builder.version, builder.ttl) == (
        ipaddress.IPv4Address("10.6.7.8"),
        ipaddress.IPv4Address("10.6.7.7"),
        4,
        3,
    )
    back = builder.reversed()
    assert (back.source, back.destination, back.ttl) == (builder.destination, builder.source, 3)
    assert repr(back) == "PacketBuilder('10.6.7.7', '10.6.7.8', ttl=3)"
    assert builder.packet(6, b"tcp!", identification=9) == ip.ipv4_packet(
        "10.6.7.8", "10.6.7.7", 6, b"tcp!", ttl=3, identification=9
    )
    with pytest.raises(ValueError, match="same IP version"):
        ip.PacketBuilder("10.0.0.1", "fd00::1")
    with pytest.raises(ValueError, match="ttl"):
        ip.PacketBuilder("10.0.0.1", "10.0.0.2", ttl=256)
    with pytest.raises(ValueError):
        ip.PacketBuilder("10.0.0.1", "not an address")


def test_ipv4_and_ipv6_helpers_still_refuse_the_other_family() -> None:
    with pytest.raises(ValueError):
        ip.ipv4_packet("fd00::1", "fd00::2", 17, b"")
    with pytest.raises(ValueError):
        ip.ipv6_packet("10.0.0.1", "10.0.0.2", 17, b"")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_checksum_matches_an_independent_sum(data: bytes) -> None:
    assert ip.checksum(data) == 0xFFFF - ones_sum(data)
    assert ip.checksum(memoryview(data)) == ip.checksum(bytearray(data))


def test_the_ip_benchmark_measures_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    rows = ip_bench.ip_rows(64, repeats=2, packets=10)
    assert len({row.name for row in rows}) == len(rows) == 8
    assert all(len(row.samples) == 2 and row.best > 0 for row in rows)
    with pytest.raises(ValueError, match="size"):
        ip_bench.ip_rows(47)
    assert ip_bench.main(["100"]) == 0
    assert "echo_reply_in_place" in capsys.readouterr().out
