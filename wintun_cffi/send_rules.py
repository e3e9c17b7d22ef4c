"""What a session may write into the Receive ring, by API generation, and how it gives a
buffer up.

Every Wintun driver hands the system only records that look like IP: IPv4 (version 4) of at
least 20 bytes, or IPv6 (version 6) of at least 40 (:func:`is_deliverable_ip`). What it does
with any other record depends on the generation:

* Wintun 0.14 discards the record, counts it (``in_discards``) and reads on;
* every driver before it (the ``"pool"`` and ``"seed"`` generations) stops reading the ring
  for good: the session can send nothing more (:func:`driver_stops_at_non_ip`).

The C API cannot cancel an allocation, so a buffer the application gives up (an exception in
its ``with`` block, Ctrl+C while copying, garbage collection) must still be sent. The
functions here decide what it becomes, and what a pre-0.14 session refuses before it touches
the ring. A session binds them once (:func:`rules_for`), so 0.14's hot path pays nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .constants import ApiGeneration
from .errors import NotIPPacketError
from .validate import check_packet_size

#: The smallest record a driver takes for IPv4, and for IPv6.
MIN_IPV4_PACKET: Final = 20
MIN_IPV6_PACKET: Final = 40

Packet = bytes | bytearray | memoryview

#: The header written into a buffer given up on a pre-0.14 driver (see
#: :func:`make_harmless_ipv4`): version 4 with a 20-byte header; total length (filled in);
#: no fragmenting; TTL 0; protocol 255 (reserved by IANA); source and destination 0.0.0.0.
_HARMLESS = struct.Struct("!BBHHHBBH4s4s")
_RESERVED_PROTOCOL: Final = 255


def driver_stops_at_non_ip(api: ApiGeneration) -> bool:
    """True if the drivers of ``api`` stop reading the Receive ring at a record that is not
    IP (every generation before 0.14); False if they discard it and read on (0.14)."""
    return api != "0.14"


def is_deliverable_ip(packet: Packet) -> bool:
    """True if a driver hands ``packet`` to the system: IPv4 of 20+ or IPv6 of 40+ bytes."""
    if not packet:
        return False
    version = packet[0] >> 4
    return (version == 4 and len(packet) >= MIN_IPV4_PACKET) or (
        version == 6 and len(packet) >= MIN_IPV6_PACKET
    )


def make_non_ip(view: memoryview) -> None:
    """Give up a record on Wintun 0.14: IP version 0, which the driver discards and counts."""
    if len(view):
        view[0] = 0


def make_harmless_ipv4(view: memoryview) -> None:
    """Give up a record on a pre-0.14 driver: an IPv4 packet the system is certain to drop.

    The driver takes it (it is IPv4 of at least 20 bytes), so the session goes on. The
    system drops it on three independent grounds: its header checksum is wrong (RFC 1122
    3.2.1.2: a host *must* discard such a datagram; Windows counts it in the IP statistics'
    ``dwInHdrErrors``), its destination is 0.0.0.0 (never a valid destination, RFC 1122
    3.2.1.3) and its TTL is 0 (never forwarded). The rest of the buffer is zeroed, so what
    the application had written does not travel. ``view`` must hold at least 20 bytes, which
    a pre-0.14 session ensures when it allocates (:func:`check_allocation`).
    """
    size = len(view)
    if size < MIN_IPV4_PACKET:
        raise ValueError(f"an IPv4 header needs {MIN_IPV4_PACKET} bytes, the record has {size}")
    zero = b"\x00\x00\x00\x00"
    header = bytearray(_HARMLESS.pack(0x45, 0, size, 0, 0, 0, _RESERVED_PROTOCOL, 0, zero, zero))
    # The correct checksum with its lowest bit flipped: one off in ones' complement, never
    # the other spelling of the right value (0x0000 and 0xFFFF are both zero there).
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", header, 10, (~total & 0xFFFF) ^ 1)
    view[:MIN_IPV4_PACKET] = header
    view[MIN_IPV4_PACKET:] = bytes(size - MIN_IPV4_PACKET)


def check_allocation(size: int) -> None:
    """Refuse a buffer that could never be given up safely on a pre-0.14 driver (too short
    for an IPv4 header), before the ring is touched."""
    check_packet_size(size)
    if size < MIN_IPV4_PACKET:
        raise NotIPPacketError(
            f"a {size}-byte buffer cannot hold an IP packet (IPv4 needs {MIN_IPV4_PACKET} "
            "bytes), and a driver before Wintun 0.14 ends the session's sending at a record "
            "that is not IP"
        )


def check_packet(packet: Packet) -> None:
    """Refuse a packet a pre-0.14 driver would not take, before the ring is touched."""
    if not is_deliverable_ip(packet):
        first = f"starts with {packet[0]:#04x}" if len(packet) else "is empty"
        raise NotIPPacketError(
            f"not an IP packet ({len(packet)} bytes, {first}; IPv4 needs version 4 and "
            f"{MIN_IPV4_PACKET}+ bytes, IPv6 version 6 and {MIN_IPV6_PACKET}+): a driver "
            "before Wintun 0.14 would end the session's sending at it"
        )


@dataclass(frozen=True)
class SendRules:
    """What one session applies when it sends, bound once for its generation."""

    #: Makes a buffer the session gives up safe to send.
    give_up: Callable[[memoryview], None]
    #: Refuses an allocation size before the ring is touched; None: every size is fine.
    check_allocation: Callable[[int], None] | None
    #: Refuses a packet before it is sent; None: the driver copes with anything.
    check_packet: Callable[[Packet], None] | None


_DISCARDING = SendRules(make_non_ip, None, None)
_STOPPING = SendRules(make_harmless_ipv4, check_allocation, check_packet)


def rules_for(api: ApiGeneration) -> SendRules:
    """The send rules of a session of generation ``api``."""
    return _STOPPING if driver_stops_at_non_ip(api) else _DISCARDING


__all__ = [
    "MIN_IPV4_PACKET",
    "MIN_IPV6_PACKET",
    "SendRules",
    "check_allocation",
    "check_packet",
    "driver_stops_at_non_ip",
    "is_deliverable_ip",
    "make_harmless_ipv4",
    "make_non_ip",
    "rules_for",
]
