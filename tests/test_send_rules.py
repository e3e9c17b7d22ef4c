"""wintun_cffi.send_rules: what a session of each generation sends, refuses and gives up."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from wintun_cffi import NotIPPacketError, ip
from wintun_cffi.constants import ApiGeneration
from wintun_cffi.send_rules import (
    MIN_IPV4_PACKET,
    check_allocation,
    check_packet,
    driver_stops_at_non_ip,
    is_deliverable_ip,
    make_harmless_ipv4,
    make_non_ip,
    rules_for,
)


def test_only_0_14_drivers_read_on_past_a_record_that_is_not_ip() -> None:
    assert [driver_stops_at_non_ip(api) for api in ("0.14", "pool", "seed")] == [False, True, True]


def test_is_deliverable_ip_boundaries() -> None:
    assert is_deliverable_ip(b"\x4f" + bytes(19))
    assert not is_deliverable_ip(b"\x4f" + bytes(18))
    assert is_deliverable_ip(b"\x6f" + bytes(39))
    assert not is_deliverable_ip(b"\x6f" + bytes(38))
    assert not is_deliverable_ip(b"\x55" + bytes(60))
    assert not is_deliverable_ip(b"")
    assert is_deliverable_ip(memoryview(bytearray(b"\x45" + bytes(19))))


def test_make_non_ip_sets_version_0_and_leaves_an_empty_record_alone() -> None:
    record = bytearray(b"\x45" + bytes(30))
    make_non_ip(memoryview(record))
    assert record[0] == 0 and not is_deliverable_ip(record)
    make_non_ip(memoryview(bytearray()))  # nothing to write


def harmless(size: int, fill: int = 0xAB) -> bytes:
    record = bytearray([fill]) * size
    make_harmless_ipv4(memoryview(record))
    return bytes(record)


def fields(record: bytes) -> tuple[Any, ...]:
    return struct.unpack_from("!BBHHHBBH4s4s", record)


def test_a_harmless_record_is_ip_for_the_driver_and_junk_for_the_system() -> None:
    record = harmless(60)
    assert is_deliverable_ip(record)  # the driver hands it over: the session goes on
    version_ihl, tos, total, ident, fragment, ttl, protocol, _, source, destination = fields(record)
    assert (version_ihl, tos, total, ident, fragment) == (0x45, 0, 60, 0, 0)
    assert (ttl, protocol) == (0, 255)
    assert source == destination == bytes(4)
    assert ip.checksum(record[:20]) != 0  # a receiver's check fails: the header is dropped
    assert record[20:] == bytes(40)  # what the application had written is gone
    assert ip.addresses(record) is not None and ip.describe(record).startswith("IPv4")


@pytest.mark.parametrize("size", [20, 21, 0xB9FF, 0xBA00, 0xBA01, 0xFFFF])
def test_the_checksum_is_wrong_at_every_size(size: int) -> None:
    """0xBA00 is the size whose correct checksum is 0x0000: storing its ones' complement
    twin 0xFFFF would be just as correct, so the wrong value must differ in value."""
    record = harmless(size)
    assert struct.unpack_from("!H", record, 2)[0] == size
    assert ip.checksum(record[:20]) != 0
    header = bytearray(record[:20])
    header[10:12] = b"\0\0"
    right = ip.checksum(header)
    stored = struct.unpack_from("!H", record, 10)[0]
    assert stored != right and {stored, right} != {0, 0xFFFF}


def test_the_checksum_is_wrong_at_random_sizes() -> None:
    rng = random.Random(12)
    for size in rng.sample(range(20, 0x10000), 200):
        assert ip.checksum(harmless(size)[:20]) != 0


def test_a_record_too_short_for_a_header_cannot_be_made_harmless() -> None:
    record = bytearray(b"\x99" * 19)
    with pytest.raises(ValueError, match="20 bytes"):
        make_harmless_ipv4(memoryview(record))
    assert record == b"\x99" * 19


@pytest.mark.parametrize("size", [0, 1, 19])
def test_pre_014_allocations_too_short_for_ip_are_refused(size: int) -> None:
    with pytest.raises(NotIPPacketError, match=f"a {size}-byte buffer"):
        check_allocation(size)


@pytest.mark.parametrize(
    ("size", "error"), [(-1, ValueError), (0x10000, ValueError), (1.5, TypeError)]
)
def test_allocation_sizes_are_checked_before_the_ip_rule(
    size: object, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        check_allocation(size)  # type: ignore[arg-type]
    assert not isinstance(caught.value, NotIPPacketError)


def test_sizes_that_can_hold_ip_are_allowed() -> None:
    for size in (MIN_IPV4_PACKET, 40, 0xFFFF):
        check_allocation(size)


@pytest.mark.parametrize(
    "packet", [b"", bytes(30), b"\x45" + bytes(18), b"\x60" + bytes(38), b"\x70" + bytes(60)]
)
def test_pre_014_packets_that_are_not_ip_are_refused(packet: bytes) -> None:
    with pytest.raises(NotIPPacketError, match="not an IP packet"):
        check_packet(packet)


def test_ip_packets_pass() -> None:
    check_packet(ip.udp_packet("10.0.0.1", "10.0.0.2", 1, 2, b"x"))
    check_packet(ip.udp_packet("fd00::1", "fd00::2", 1, 2, b""))
    check_packet(memoryview(b"\x45" + bytes(19)))


def test_rules_for_each_generation() -> None:
    modern = rules_for("0.14")
    assert modern.give_up is make_non_ip
    assert modern.check_allocation is None and modern.check_packet is None  # nothing per packet
    generations: tuple[ApiGeneration, ...] = ("pool", "seed")
    for api in generations:
        rules = rules_for(api)
        assert rules.give_up is make_harmless_ipv4
        assert rules.check_allocation is check_allocation
        assert rules.check_packet is check_packet
