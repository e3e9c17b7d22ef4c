"""The ring's byte layout: exact bytes at exact offsets."""

from __future__ import annotations

import struct

import pytest

from emulator.ring import Ring
from wintun_cffi.constants import MIN_RING_CAPACITY, RING_TRAILER_SIZE, ring_size
from wintun_cffi.errors import RingCorruptError

CAP = MIN_RING_CAPACITY


def test_header_fields_are_little_endian_at_0_4_8() -> None:
    ring = Ring.allocate(CAP)
    ring.head = 0x11223344
    ring.tail = 0x00000008
    ring.alertable = -1
    assert bytes(ring.memory[:12]) == bytes.fromhex("4433221108000000ffffffff")
    assert (ring.head, ring.tail, ring.alertable) == (0x11223344, 8, -1)


def test_ring_size_includes_the_trailer() -> None:
    assert ring_size(CAP) == 12 + CAP + 0x10000
    assert RING_TRAILER_SIZE == 0x10000
    assert len(Ring.allocate(CAP).data) == CAP + 0x10000


@pytest.mark.parametrize("capacity", [0, 0x1FFFF, 0x30000, 0x8000000, -4])
def test_bad_capacity_is_refused(capacity: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Ring(bytearray(16), capacity)


def test_short_or_readonly_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="needs"):
        Ring(bytearray(ring_size(CAP) - 1), CAP)
    with pytest.raises(ValueError, match="writable"):
        Ring(memoryview(bytes(ring_size(CAP))), CAP)


def test_record_below_capacity_runs_into_the_trailer() -> None:
    ring = Ring.allocate(CAP)
    offset = CAP - 4
    ring.set_record_size_field(offset, 100)
    ring.payload(offset, 100)[:] = bytes(range(100))
    assert struct.unpack_from("<I", ring.memory, 12 + CAP - 4)[0] == 100
    assert bytes(ring.memory[12 + CAP : 12 + CAP + 100]) == bytes(range(100))
    assert ring.check_record(offset, (offset + 104) & ring.mask) == 100


def test_free_space_keeps_one_slot() -> None:
    ring = Ring.allocate(CAP)
    assert ring.free(0, 0) == CAP - 4
    assert ring.free(8, 4) == 0
    assert ring.used(CAP - 8, 8) == 16


def test_check_record_reports_corruption() -> None:
    ring = Ring.allocate(CAP)
    with pytest.raises(RingCorruptError):
        ring.check_record(0, 2)  # fewer than 4 bytes of content
    ring.set_record_size_field(0, 0x10000)
    with pytest.raises(RingCorruptError):
        ring.check_record(0, 0x10004)
    ring.set_record_size_field(0, 20)
    with pytest.raises(RingCorruptError):
        ring.check_record(0, 20)  # the record needs 24 bytes
