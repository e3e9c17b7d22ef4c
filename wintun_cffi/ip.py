"""Just enough IPv4, IPv6 and ICMP to build, answer and describe echo traffic.

Two kinds of helper live here:

* **The fast path**, for code that handles many packets: :func:`echo_reply_in_place` turns a
  received echo request into its reply inside the packet's own buffer (no parsing of addresses,
  no new packet, checksums adjusted rather than recomputed), and a :class:`PacketBuilder` builds
  packets between two addresses parsed once.
* **Convenience and test helpers** (:func:`icmp_echo`, :func:`udp_packet`, :func:`ipv4_packet`,
  :func:`ipv6_packet`, :func:`echo_reply_for`, :func:`addresses`, :func:`describe`): one call,
  strings or :mod:`ipaddress` objects in, a new packet out. Each parses its addresses on every
  call, which costs several microseconds: fine for examples and tests, not for a loop per
  packet.

Used by the example program, by the emulator's echo responder (which answers echo requests as
an operating system would) and by tests. Checksums are real.
"""

from __future__ import annotations

import ipaddress
import struct

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
#: The TTL (IPv4) or hop limit (IPv6) of the packets built here, unless told otherwise.
DEFAULT_TTL = 64

_IPV4_HEADER = struct.Struct("!BBHHHBBH")  # without the addresses
_IPV6_HEADER = struct.Struct("!IHBB")  # without the addresses
_ICMP_HEADER = struct.Struct("!BBHHH")
_UDP_HEADER = struct.Struct("!HHHH")
_U16 = struct.Struct("!H")


# -- checksums ---------------------------------------------------------------------------------
#
# The Internet checksum adds 16-bit words with end-around carry. Since 0x10000 is 1 modulo
# 0xFFFF, that sum is the value of the bytes as one big-endian integer, modulo 0xFFFF (0xFFFF
# standing for a multiple of it): one int.from_bytes and one remainder instead of a loop over
# words. Sums of separate pieces (a pseudo-header, a header, a payload) just add up, as long as
# each piece starts on an even offset.


def _word_sum(data: bytes | bytearray | memoryview) -> int:
    """``data`` as one integer whose remainder modulo 0xFFFF is its sum of 16-bit words."""
    value = int.from_bytes(data, "big")
    return value << 8 if len(data) % 2 else value  # an odd byte is padded with a zero


def _complement(total: int) -> int:
    """The checksum field for words that add up to ``total`` (see :func:`_word_sum`)."""
    folded = total % 0xFFFF
    if not folded and total:
        folded = 0xFFFF  # a sum of words that are not all zero never folds to zero
    return 0xFFFF - folded


def _add_delta(checksum: int, delta: int) -> int:
    """``checksum`` after words it covers changed by ``delta``: the sum of ``~old + new``
    over the changed words (RFC 1624, equation 3: ``~(~checksum + ~old + new)``)."""
    total = (~checksum & 0xFFFF) + delta
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071) of ``data``; 0 over data that carries a correct one."""
    return _complement(_word_sum(data))


# -- the fast path: building ----------------------------------------------------------------


class PacketBuilder:
    """Builds packets from ``source`` to ``destination``, addresses parsed once.

    The fast way to build many packets between the same two addresses: each call packs the
    headers and computes the checksums, nothing else. Both addresses must be of the same IP
    version (:class:`ValueError` otherwise).

    >>> to_app = PacketBuilder("10.6.7.7", "10.6.7.8")
    >>> packet = to_app.udp(53, 5353, b"hello")
    >>> describe(packet)
    'IPv4 proto 0x11 packet from 10.6.7.7 to 10.6.7.8'
    """

    __slots__ = ("source", "destination", "version", "ttl", "_addresses", "_address_sum")

    def __init__(
        self,
        source: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
        destination: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
        *,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        src = ipaddress.ip_address(source)
        dst = ipaddress.ip_address(destination)
        if src.version != dst.version:
            raise ValueError(f"{src} and {dst} are not of the same IP version")
        if not 0 <= ttl <= 255:
            raise ValueError(f"ttl must be 0 to 255, not {ttl!r}")
        self.source: ipaddress.IPv4Address | ipaddress.IPv6Address = src
        self.destination: ipaddress.IPv4Address | ipaddress.IPv6Address = dst
        #: 4 or 6.
        self.version: int = src.version
        #: The TTL (IPv4) or hop limit (IPv6) of every packet built.
        self.ttl = ttl
        self._addresses = src.packed + dst.packed
        self._address_sum = int.from_bytes(self._addresses, "big")

    def reversed(self) -> PacketBuilder:
        """A builder for the way back (``destination`` to ``source``)."""
        return PacketBuilder(self.destination, self.source, ttl=self.ttl)

    def packet(self, protocol: int, payload: bytes, *, identification: int = 0) -> bytes:
        """An IP packet carrying ``payload`` of ``protocol`` (the IPv6 next header), without
        options or extension headers; ``identification`` is IPv4's (ignored for IPv6)."""
        if self.version == 6:
            return (
                _IPV6_HEADER.pack(6 << 28, len(payload), protocol, self.ttl)
                + self._addresses
                + payload
            )
        total_length = 20 + len(payload)
        protocol_word = self.ttl << 8 | protocol
        header_sum = 0x4500 + total_length + identification + protocol_word + self._address_sum
        return (
            _IPV4_HEADER.pack(
                0x45,
                0,
                total_length,
                identification,
                0,
                self.ttl,
                protocol,
                _complement(header_sum),
            )
            + self._addresses
            + payload
        )

    def _pseudo_header_sum(self, protocol: int, length: int) -> int:
        # IPv4: addresses, zero, protocol, length; IPv6: addresses, 32-bit length, zeros, next
        # header. Modulo 0xFFFF both come to the same sum.
        return self._address_sum + protocol + length

    def icmp_echo(
        self,
        *,
        identifier: int = 0,
        sequence: int = 0,
        payload: bytes = b"",
        reply: bool = False,
    ) -> bytes:
        """An ICMP (IPv4) or ICMPv6 (IPv6) echo request, or reply, as a whole IP packet."""
        if self.version == 4:
            kind = ICMP_ECHO_REPLY if reply else ICMP_ECHO_REQUEST
            protocol, total = PROTO_ICMP, 0
        else:
            kind = ICMPV6_ECHO_REPLY if reply else ICMPV6_ECHO_REQUEST
            protocol = PROTO_ICMPV6
            total = self._pseudo_header_sum(PROTO_ICMPV6, 8 + len(payload))
        total += (kind << 8) + identifier + sequence + _word_sum(payload)
        message = _ICMP_HEADER.pack(kind, 0, _complement(total), identifier, sequence)
        return self.packet(protocol, message + payload)

    def udp(self, source_port: int, destination_port: int, payload: bytes) -> bytes:
        """A UDP datagram as a whole IP packet, with a correct checksum."""
        length = 8 + len(payload)
        total = (
            self._pseudo_header_sum(PROTO_UDP, length)
            + source_port
            + destination_port
            + length
            + _word_sum(payload)
        )
        value = _complement(total) or 0xFFFF  # zero would mean "no checksum"
        datagram = _UDP_HEADER.pack(source_port, destination_port, length, value)
        return self.packet(PROTO_UDP, datagram + payload)

    def __repr__(self) -> str:
        return f"PacketBuilder({str(self.source)!r}, {str(self.destination)!r}, ttl={self.ttl})"


# -- the fast path: answering in place ------------------------------------------------------

# The headers an echo reply rewrites, read and written with one struct call each (no padding:
# packing would zero what the pad bytes skip).
_IPV4_ECHO = struct.Struct("!BBHHHBBH4s4s")
_IPV6_ECHO = struct.Struct("!IHBB16s16s")
_ICMP_TYPE = struct.Struct("!BBH")  # type, code, checksum
# The checksum change (RFC 1624: ~old + new) when the type turns from request into reply.
_ICMP_REPLY_DELTA = (~(ICMP_ECHO_REQUEST << 8) & 0xFFFF) + (ICMP_ECHO_REPLY << 8)
_ICMPV6_REPLY_DELTA = (~(ICMPV6_ECHO_REQUEST << 8) & 0xFFFF) + (ICMPV6_ECHO_REPLY << 8)


def echo_reply_in_place(
    packet: memoryview | bytearray,
    *,
    ttl: int = DEFAULT_TTL,
    verify: bool = False,
) -> None:
    """Turn the ICMP or ICMPv6 echo request in ``packet`` into its reply, in place.

    The fast path for an echo responder: ``packet`` is the writable buffer holding the request
    (a :class:`~wintun_cffi.packets.ReceivedPacket`'s ``data``, a
    :class:`~wintun_cffi.packets.SendBuffer`'s, a :class:`bytearray`). The addresses swap, the
    TTL or hop limit becomes ``ttl``, the type becomes echo reply, and the checksums are
    adjusted for what changed (RFC 1624) rather than recomputed; identifier, sequence, data and
    IPv4 options stay. Bytes after the IP packet's length are left alone.

    An adjusted checksum stays wrong if it was wrong, so the peer drops the reply to a
    corrupted request. ``verify=True`` refuses such a request instead, at the cost of a pass
    over the whole packet.

    Raises :class:`ValueError` naming the problem if ``packet`` is not an echo request (not
    IPv4 or IPv6, truncated, a fragment, another protocol or type, an IPv6 extension header,
    or with ``verify`` a wrong checksum), and :class:`TypeError` if it is read-only. Either
    way ``packet`` is unchanged.
    """
    view = packet if packet.__class__ is memoryview else memoryview(packet)
    if view.readonly:
        raise TypeError(
            "the packet is read-only: pass a writable buffer (a received "
            "packet's data, a send buffer, a bytearray)"
        )
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if ttl.__class__ is not int or not 0 <= ttl <= 255:
        raise ValueError(f"ttl must be an int from 0 to 255, not {ttl!r}")
    version = view[0] >> 4 if len(view) else 0
    if version == 4:
        _ipv4_echo_reply(view, ttl, verify)
    elif version == 6:
        _ipv6_echo_reply(view, ttl, verify)
    else:
        raise ValueError("not an echo request: the packet is not IPv4 or IPv6")


def _ipv4_echo_reply(view: memoryview, ttl: int, verify: bool) -> None:
    size = len(view)
    if size < 20:
        raise ValueError(f"not an echo request: an IPv4 packet of {size} bytes is truncated")
    (
        first,
        tos,
        length,
        identification,
        fragment,
        old_ttl,
        protocol,
        header_sum,
        source,
        destination,
    ) = _IPV4_ECHO.unpack_from(view)
    header = (first & 0x0F) * 4
    if header < 20 or not header + 8 <= length <= size:
        raise ValueError(
            f"not an echo request: the IPv4 packet says {length} bytes with a "
            f"{header}-byte header, holds {size}; an echo request needs "
            f"{max(header, 20) + 8} or more"
        )
    if protocol != PROTO_ICMP:
        raise ValueError(f"not an echo request: IPv4 protocol {protocol}, not ICMP")
    if fragment & 0x3FFF:
        raise ValueError("not an echo request: the IPv4 packet is a fragment")
    kind, code, message_sum = _ICMP_TYPE.unpack_from(view, header)
    if kind != ICMP_ECHO_REQUEST or code:
        raise ValueError(f"not an echo request: ICMP type {kind} code {code}")
    if verify and (checksum(view[:header]) or checksum(view[header:length])):
        raise ValueError("not an echo request: a checksum is wrong")
    # Checked; now change. Swapping the addresses leaves every sum as it was.
    if old_ttl != ttl:
        delta = (~(old_ttl << 8 | PROTO_ICMP) & 0xFFFF) + (ttl << 8 | PROTO_ICMP)
        header_sum = _add_delta(header_sum, delta)
    _IPV4_ECHO.pack_into(
        view,
        0,
        first,
        tos,
        length,
        identification,
        fragment,
        ttl,
        protocol,
        header_sum,
        destination,
        source,
    )
    message_sum = _add_delta(message_sum, _ICMP_REPLY_DELTA)
    if not message_sum:
        # RFC 1624's update cannot tell words that sum to 0xFFFF (checksum 0) from words
        # that are all zero (checksum 0xFFFF); only ICMP over IPv4 can be all zero.
        message_sum = checksum(view[header + 4 : length])
    _ICMP_TYPE.pack_into(view, header, ICMP_ECHO_REPLY, 0, message_sum)


def _ipv6_echo_reply(view: memoryview, ttl: int, verify: bool) -> None:
    size = len(view)
    if size < 48:
        raise ValueError(f"not an echo request: an IPv6 packet of {size} bytes is truncated")
    first, payload_length, next_header, _, source, destination = _IPV6_ECHO.unpack_from(view)
    end = 40 + payload_length
    if not 48 <= end <= size:
        raise ValueError(
            f"not an echo request: the IPv6 packet says {end} bytes, holds "
            f"{size}; an echo request needs 48 or more"
        )
    if next_header != PROTO_ICMPV6:
        raise ValueError(f"not an echo request: IPv6 next header {next_header}, not ICMPv6")
    kind, code, message_sum = _ICMP_TYPE.unpack_from(view, 40)
    if kind != ICMPV6_ECHO_REQUEST or code:
        raise ValueError(f"not an echo request: ICMPv6 type {kind} code {code}")
    if verify and _complement(
        _word_sum(view[8:40]) + PROTO_ICMPV6 + payload_length + _word_sum(view[40:end])
    ):
        raise ValueError("not an echo request: the ICMPv6 checksum is wrong")
    # The hop limit is covered by no checksum; swapping addresses leaves the sum as it was.
    _IPV6_ECHO.pack_into(view, 0, first, payload_length, next_header, ttl, destination, source)
    _ICMP_TYPE.pack_into(
        view, 40, ICMPV6_ECHO_REPLY, 0, _add_delta(message_sum, _ICMPV6_REPLY_DELTA)
    )


# -- convenience and test helpers -------------------------------------------------------------


def ipv4_packet(
    source: str | IPAddress,
    destination: str | IPAddress,
    protocol: int,
    payload: bytes,
    *,
    ttl: int = DEFAULT_TTL,
    identification: int = 0,
) -> bytes:
    """An IPv4 packet (no options) carrying ``payload``, with a correct header checksum.

    A convenience helper (it parses the addresses each call); :class:`PacketBuilder` is the
    fast path.
    """
    builder = PacketBuilder(
        ipaddress.IPv4Address(source), ipaddress.IPv4Address(destination), ttl=ttl
    )
    return builder.packet(protocol, payload, identification=identification)


def ipv6_packet(
    source: str | IPAddress,
    destination: str | IPAddress,
    next_header: int,
    payload: bytes,
    *,
    hop_limit: int = DEFAULT_TTL,
) -> bytes:
    """An IPv6 packet (no extension headers) carrying ``payload``.

    A convenience helper (it parses the addresses each call); :class:`PacketBuilder` is the
    fast path.
    """
    builder = PacketBuilder(
        ipaddress.IPv6Address(source), ipaddress.IPv6Address(destination), ttl=hop_limit
    )
    return builder.packet(next_header, payload)


def icmp_echo(
    source: str | IPAddress,
    destination: str | IPAddress,
    *,
    identifier: int = 0,
    sequence: int = 0,
    payload: bytes = b"",
    reply: bool = False,
) -> bytes:
    """An ICMP (IPv4) or ICMPv6 (IPv6) echo request, or reply, as a whole IP packet.

    A convenience helper (it parses the addresses each call);
    :meth:`PacketBuilder.icmp_echo` is the fast path.
    """
    return PacketBuilder(source, destination).icmp_echo(
        identifier=identifier, sequence=sequence, payload=payload, reply=reply
    )


def udp_packet(
    source: str | IPAddress,
    destination: str | IPAddress,
    source_port: int,
    destination_port: int,
    payload: bytes,
) -> bytes:
    """A UDP datagram as a whole IPv4 or IPv6 packet, with a correct checksum.

    A convenience helper (it parses the addresses each call); :meth:`PacketBuilder.udp` is
    the fast path.
    """
    return PacketBuilder(source, destination).udp(source_port, destination_port, payload)


def addresses(packet: bytes | memoryview) -> tuple[IPAddress, IPAddress, int] | None:
    """``(source, destination, protocol)`` of an IPv4 or IPv6 packet, or None if not IP.

    A convenience helper: it makes two :mod:`ipaddress` objects per call.
    """
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
    """The echo reply an OS would send for ``packet`` (a new packet, without IPv4 options),
    if it is a valid echo request; None otherwise.

    A convenience helper (the emulator's echo responder uses it); for a responder that handles
    many packets, :func:`echo_reply_in_place` is the fast path.
    """
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
        pseudo = _word_sum(source.packed + destination.packed) + PROTO_ICMPV6 + len(message)
        if _complement(pseudo + _word_sum(message)) != 0:
            return None
    else:
        return None
    identifier, sequence = struct.unpack_from("!HH", message, 4)
    return PacketBuilder(destination, source).icmp_echo(
        identifier=identifier,
        sequence=sequence,
        payload=bytes(message[8:]),
        reply=True,
    )


#: Where each transport protocol keeps its checksum, from the start of its header.
_CHECKSUM_AT = {PROTO_ICMP: 2, PROTO_TCP: 16, PROTO_UDP: 6, PROTO_ICMPV6: 2}


def _layout(packet: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """``(IP header length, end of the IP payload, protocol)`` of an IPv4 or IPv6 packet
    (no IPv6 extension headers followed), or None if it is not one."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        header = (packet[0] & 0x0F) * 4
        end = min(len(packet), _U16.unpack_from(packet, 2)[0])
        return (header, end, packet[9]) if 20 <= header <= end else None
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return 40, min(len(packet), 40 + _U16.unpack_from(packet, 4)[0]), packet[6]
    return None


def checksum_offset(packet: bytes | bytearray | memoryview) -> int | None:
    """The offset in ``packet`` of its TCP, UDP, ICMP or ICMPv6 checksum, or None if it has
    none of those (or is too short to hold it)."""
    layout = _layout(packet)
    if layout is None or layout[2] not in _CHECKSUM_AT:
        return None
    header, end, protocol = layout
    offset = header + _CHECKSUM_AT[protocol]
    return offset if offset + 2 <= end else None


def _transport_sum(packet: bytes | bytearray | memoryview, header: int, end: int) -> int:
    """The word sum over the transport header and payload, plus the pseudo-header where the
    protocol has one (all but ICMP)."""
    view = memoryview(packet)
    total = _word_sum(view[header:end])
    protocol = packet[9] if packet[0] >> 4 == 4 else packet[6]
    if protocol != PROTO_ICMP:
        addresses = view[12:20] if packet[0] >> 4 == 4 else view[8:40]
        total += _word_sum(addresses) + protocol + (end - header)
    return total


def checksums_valid(packet: bytes | bytearray | memoryview) -> bool:
    """True if ``packet`` is IPv4 or IPv6 and its checksums are right: the IPv4 header's, and
    the TCP, UDP, ICMP or ICMPv6 checksum if it carries one of those (an IPv4 UDP checksum of
    0 means "none" and passes). False for anything that is not IP or is cut short."""
    layout = _layout(packet)
    if layout is None:
        return False
    header, end, protocol = layout
    if packet[0] >> 4 == 4 and checksum(memoryview(packet)[:header]) != 0:
        return False
    if protocol not in _CHECKSUM_AT:
        return True
    offset = header + _CHECKSUM_AT[protocol]
    if offset + 2 > end:
        return False
    if protocol == PROTO_UDP and packet[0] >> 4 == 4 and _U16.unpack_from(packet, offset)[0] == 0:
        return True
    return _complement(_transport_sum(packet, header, end)) == 0


def refresh_checksums(packet: bytearray) -> None:
    """Recompute, in place, the checksums :func:`checksums_valid` checks, so that they are
    right for the bytes ``packet`` now holds (anything that is not IP is left alone)."""
    layout = _layout(packet)
    if layout is None:
        return
    header, end, protocol = layout
    if packet[0] >> 4 == 4:
        _U16.pack_into(packet, 10, 0)
        _U16.pack_into(packet, 10, checksum(memoryview(packet)[:header]))
    offset = checksum_offset(packet)
    if offset is None:
        return
    if protocol == PROTO_UDP and packet[0] >> 4 == 4 and _U16.unpack_from(packet, offset)[0] == 0:
        return  # sent without a checksum: it stays so
    _U16.pack_into(packet, offset, 0)
    value = _complement(_transport_sum(packet, header, end))
    if protocol == PROTO_UDP and value == 0:
        value = 0xFFFF  # UDP sends a computed 0 as all ones (0 means "no checksum")
    _U16.pack_into(packet, offset, value)


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
