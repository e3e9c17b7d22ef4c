"""The byte layout of one Wintun ring, over any writable buffer.

A ring is ``u32 Head``, ``u32 Tail``, ``i32 Alertable`` (little-endian, offsets 0, 4 and 8),
then ``capacity`` bytes of data and a trailer of ``0x10000`` bytes into which a record that
starts just below ``capacity`` may run instead of wrapping. A record at data offset ``o`` is a
``u32`` Size then Size payload bytes; the next record starts at ``wrap(o + record_size(Size))``.

The buffer may be a ``bytearray``, an ``mmap`` or memory another library owns (cffi's
``ffi.buffer``): that is how the emulator's driver plays the kernel for the C test double.
"""

from __future__ import annotations

import struct
import sys
from typing import Final

from wintun_cffi.constants import (
    MAX_IP_PACKET_SIZE,
    PACKET_HEADER_SIZE,
    PACKET_RELEASE_FLAG,
    RING_DEAD_MARKER,
    RING_HEADER_SIZE,
    is_valid_capacity,
    record_size,
    ring_size,
)
from wintun_cffi.errors import RingCorruptError

HEAD_OFFSET: Final = 0
TAIL_OFFSET: Final = 4
ALERTABLE_OFFSET: Final = 8
DATA_OFFSET: Final = RING_HEADER_SIZE

#: Little-endian ``u32``: Head, Tail and record sizes.
U32: Final = struct.Struct("<I")
#: Little-endian ``i32``: Alertable.
I32: Final = struct.Struct("<i")

__all__ = [
    "ALERTABLE_OFFSET",
    "ALERTABLE_WORD",
    "DATA_OFFSET",
    "DATA_WORD",
    "HEAD_OFFSET",
    "HEAD_WORD",
    "I32",
    "MAX_IP_PACKET_SIZE",
    "PACKET_HEADER_SIZE",
    "PACKET_RELEASE_FLAG",
    "RING_DEAD_MARKER",
    "Ring",
    "TAIL_OFFSET",
    "TAIL_WORD",
    "U32",
    "Words",
    "record_size",
]


#: The word index of Head, Tail and Alertable, and of the first data word, in :attr:`Ring.words`.
HEAD_WORD: Final = HEAD_OFFSET // 4
TAIL_WORD: Final = TAIL_OFFSET // 4
ALERTABLE_WORD: Final = ALERTABLE_OFFSET // 4
DATA_WORD: Final = DATA_OFFSET // 4


class _LittleEndianWords:
    """A buffer's little-endian ``u32`` words on a big-endian host (struct, slower)."""

    __slots__ = ("_memory",)

    def __init__(self, memory: memoryview) -> None:
        self._memory = memory

    def __getitem__(self, index: int) -> int:
        return int(U32.unpack_from(self._memory, index * 4)[0])

    def __setitem__(self, index: int, value: int) -> None:
        U32.pack_into(self._memory, index * 4, value)


#: ``u32`` words by index: a ``memoryview`` cast where the host is little-endian.
Words = memoryview | _LittleEndianWords


def words(memory: memoryview) -> Words:
    """``memory`` (a multiple of 4 bytes) as indexable little-endian ``u32`` words."""
    if sys.byteorder == "little":
        return memory.cast("I")
    return _LittleEndianWords(memory)


class Ring:
    """One ring over ``buffer``; reads and writes its fields at their exact offsets."""

    __slots__ = ("memory", "capacity", "mask", "data", "words")

    def __init__(self, buffer: bytearray | memoryview, capacity: int) -> None:
        if not is_valid_capacity(capacity):
            raise ValueError(
                f"ring capacity {capacity:#x} is not a power of two in [0x20000, 0x4000000]"
            )
        memory = memoryview(buffer).cast("B")
        if memory.readonly:
            raise ValueError("a ring needs a writable buffer")
        if len(memory) < ring_size(capacity):
            raise ValueError(
                f"a ring of capacity {capacity:#x} needs {ring_size(capacity)} bytes, "
                f"the buffer has {len(memory)}"
            )
        #: The whole ring: header, data and trailer.
        self.memory = memory[: ring_size(capacity)]
        self.capacity = capacity
        self.mask = capacity - 1
        #: The data region (offsets in Head and Tail are relative to it), trailer included.
        self.data = self.memory[DATA_OFFSET:]
        #: The whole ring as ``u32`` words: Head, Tail, Alertable at :data:`HEAD_WORD` ...; the
        #: Size of the record at data offset ``o`` at ``DATA_WORD + o // 4``.
        self.words = words(self.memory)

    @classmethod
    def allocate(cls, capacity: int) -> Ring:
        """A zeroed ring in fresh memory."""
        return cls(bytearray(ring_size(capacity)), capacity)

    @property
    def head(self) -> int:
        """The ring's Head field (the consumer's position)."""
        return int(U32.unpack_from(self.memory, HEAD_OFFSET)[0])

    @head.setter
    def head(self, value: int) -> None:
        U32.pack_into(self.memory, HEAD_OFFSET, value)

    @property
    def tail(self) -> int:
        """The ring's Tail field (the producer's position)."""
        return int(U32.unpack_from(self.memory, TAIL_OFFSET)[0])

    @tail.setter
    def tail(self, value: int) -> None:
        U32.pack_into(self.memory, TAIL_OFFSET, value)

    @property
    def alertable(self) -> int:
        """The ring's Alertable field: non-zero while the consumer sleeps on TailMoved."""
        return int(I32.unpack_from(self.memory, ALERTABLE_OFFSET)[0])

    @alertable.setter
    def alertable(self, value: int) -> None:
        I32.pack_into(self.memory, ALERTABLE_OFFSET, value)

    def wrap(self, offset: int) -> int:
        """``offset`` modulo the capacity."""
        return offset & self.mask

    def used(self, head: int, tail: int) -> int:
        """Bytes of records between ``head`` and ``tail``."""
        return (tail - head) & self.mask

    def free(self, head: int, tail: int) -> int:
        """Bytes a producer at ``tail`` may still write (one 4-byte slot always stays free)."""
        return (head - tail - PACKET_HEADER_SIZE) & self.mask

    def record_size_field(self, offset: int) -> int:
        """The raw Size field of the record at data ``offset`` (release flag included)."""
        return int(U32.unpack_from(self.data, offset)[0])

    def set_record_size_field(self, offset: int, value: int) -> None:
        """Write the raw Size field of the record at data ``offset``."""
        U32.pack_into(self.data, offset, value)

    def payload(self, offset: int, size: int) -> memoryview:
        """A view of the ``size`` payload bytes of the record at data ``offset``."""
        start = offset + PACKET_HEADER_SIZE
        return self.data[start : start + size]

    def check_record(self, head: int, tail: int) -> int:
        """Validate the record at ``head`` of a producer at ``tail``; return its payload size.

        Raises :class:`RingCorruptError` as Wintun's reader does (:doc:`/protocol`): fewer than 4 bytes of
        content, a Size above ``0xFFFF`` (a record still flagged as owned included), or a
        record longer than the content.
        """
        content = (tail - head) & self.mask
        if content < PACKET_HEADER_SIZE:
            raise RingCorruptError(f"ring content of {content} bytes cannot hold a record")
        size = int(U32.unpack_from(self.data, head)[0])
        if size > MAX_IP_PACKET_SIZE:
            raise RingCorruptError(f"record at {head:#x} has size {size:#x}")
        if record_size(size) > content:
            raise RingCorruptError(
                f"record at {head:#x} of size {size} runs past the producer at {tail:#x}"
            )
        return size
