"""Fuzzing the ring reader: random Send-ring bytes, Head and Tail against ``receive_packet``.

The reader (``WintunReceivePacket``) trusts nothing the driver wrote: whatever the ring holds,
it must return a packet inside the ring or fail with one of the defined errors. Two readers are
fuzzed the same way: the emulator's :class:`~emulator.client.SessionClient` and the C double
through the native backend (loaded *without* the DoubleKernel hooks, so no emulated driver
touches the ring while it is poked).

``python -m tests.reliability.ringfuzz LIBRARY EXAMPLES`` runs the native fuzz alone; the tests
run it so under AddressSanitizer, which turns any out-of-bounds access into a crash
(``python -m tests.reliability.ringfuzz LIBRARY read-past-ring`` proves the sanitizer is on).
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cffi
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import wintun_cffi
from emulator.client import SessionClient
from emulator.ring import Ring
from tests.support import ClientCalls
from wintun_cffi.constants import RING_DEAD_MARKER, RING_HEADER_SIZE, RING_TRAILER_SIZE
from wintun_cffi.errors import NoMoreItemsError, RingCorruptError, SessionEndedError
from wintun_cffi.fdevent import FdEvent

CAPACITY = 0x20000
#: What receive_packet may raise on any ring content (NoMoreItemsError only below the
#: high-level API, which turns it into None).
ALLOWED = (NoMoreItemsError, RingCorruptError, SessionEndedError)
CORPUS = Path(__file__).with_name("corpus")
_HEADER = struct.Struct("<IIi")


@dataclass(frozen=True)
class RingCase:
    """One fuzz input: where the reader stands, the ring's fields, and bytes at the reader."""

    head: int  # the reader's own position (aligned, below the capacity, as a reader keeps it)
    head_field: int  # the Send ring's shared Head field (the reader writes it, never trusts it)
    tail: int  # the Send ring's Tail field, as the driver (or an attacker) left it
    content: bytes  # written at the reader's position (running into the trailer if need be)

    @classmethod
    def from_image(cls, image: bytes) -> RingCase:
        """A corpus ring image: ``u32 Head, u32 Tail, i32 reader position`` then the bytes."""
        head_field, tail, head = _HEADER.unpack_from(image)
        return cls(head, head_field, tail, image[_HEADER.size :])

    def image(self) -> bytes:
        return _HEADER.pack(self.head_field, self.tail, self.head) + self.content


def corpus_cases() -> list[RingCase]:
    """The seed ring images in ``corpus/rings``, sorted by file name."""
    return [
        RingCase.from_image(path.read_bytes()) for path in sorted((CORPUS / "rings").glob("*.ring"))
    ]


_INTERESTING_SIZES = [
    0,
    1,
    20,
    28,
    0xFFFB,
    0xFFFC,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0x8000001C,
    RING_DEAD_MARKER,
]


@st.composite
def ring_cases(draw: st.DrawFn) -> RingCase:
    """Reader positions, Tails (in range, near the reader, past the capacity, unaligned, the
    dead marker) and bytes (random, or a Size field of an interesting value first)."""
    head = draw(
        st.one_of(
            st.sampled_from([0, 4, CAPACITY - 4, CAPACITY - 8, CAPACITY - 0x100]),
            st.integers(0, CAPACITY // 4 - 1).map(lambda x: x * 4),
        )
    )
    tail = draw(
        st.one_of(
            st.integers(0, 0xFFFFFFFF),
            st.integers(-8, 0x200).map(lambda d: (head + d) % CAPACITY),
            st.integers(0, 0x11000).map(lambda d: (head + d) & 0xFFFFFFFF),
            st.sampled_from([RING_DEAD_MARKER, CAPACITY, CAPACITY - 1, CAPACITY + 4, 0x80000000]),
        )
    )
    content = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        content = struct.pack("<I", draw(st.sampled_from(_INTERESTING_SIZES))) + content
    head_field = draw(st.one_of(st.just(head), st.integers(0, 0xFFFFFFFF)))
    return RingCase(head, head_field, tail, content)


def _write(ring_data: memoryview, head: int, content: bytes) -> None:
    room = min(len(content), len(ring_data) - head)
    ring_data[head : head + room] = content[:room]


def _outcome(receive: Callable[[], object], release: Callable[[object], None], seed: int) -> None:
    """Read up to four packets, releasing them in a shuffled order; only ALLOWED may fail."""
    taken: list[object] = []
    for _ in range(4):
        try:
            packet = receive()
        except ALLOWED:
            break
        if packet is None:
            break
        taken.append(packet)
    random.Random(seed).shuffle(taken)
    for packet in taken:
        release(packet)


# -- the emulator's reader -------------------------------------------------------------------


def check_emulator_reader(case: RingCase) -> None:
    """Poke ``case`` into a fresh emulator client's Send ring and read it."""
    send, receive = Ring.allocate(CAPACITY), Ring.allocate(CAPACITY)
    client = ClientCalls(SessionClient(send, receive, FdEvent()))
    client.raw._head = client.raw._head_release = case.head  # where an earlier read left the reader
    _write(send.data, case.head, case.content)
    send.head, send.tail = case.head_field, case.tail
    views: dict[int, memoryview] = {}

    def take() -> object:
        view, token = client.receive_packet()
        assert len(view) <= 0xFFFF
        # The view lies inside the ring's data and trailer.
        assert view.obj is send.data.obj
        views[token] = view
        return token

    _outcome(take, client.release_receive_packet, case.tail)
    client.end()


# -- the native reader (the C double) ---------------------------------------------------------

_HELPERS = """
    int WintunDoubleGetSessionRings(void *Session, void **SendRing, void **ReceiveRing,
                                    uint32_t *RingSize, uint32_t *Capacity,
                                    int *ReadWaitFd, int *ReceiveTailMovedFd);
    uint32_t WintunDoubleSessionCount(void);
"""


class NativeReader:
    """The double loaded from ``path`` without kernel hooks: rings poked from Python."""

    def __init__(self, path: str) -> None:
        self.wintun = wintun_cffi.load(path)
        self.ffi = cffi.FFI()
        self.ffi.cdef(_HELPERS)
        self.helpers: Any = self.ffi.dlopen(path)
        self.adapter = self.wintun.create_adapter("Fuzz", tunnel_type="Reliability")

    def close(self) -> None:
        self.adapter.close()

    def send_ring(self, pointer: Any) -> Ring:
        ffi = self.ffi
        send, size, capacity = ffi.new("void **"), ffi.new("uint32_t *"), ffi.new("uint32_t *")
        assert self.helpers.WintunDoubleGetSessionRings(
            ffi.cast("void *", pointer), send, ffi.NULL, size, capacity, ffi.NULL, ffi.NULL
        )
        assert size[0] == RING_HEADER_SIZE + capacity[0] + RING_TRAILER_SIZE
        return Ring(memoryview(ffi.buffer(send[0], size[0])), capacity[0])

    def check(self, case: RingCase) -> None:
        session = self.adapter.start_session(CAPACITY)
        try:
            handle: Any = session._handle
            ring = self.send_ring(handle.pointer)
            self._advance(session, ring, case.head)
            _write(ring.data, case.head, case.content)
            ring.head, ring.tail = case.head_field, case.tail

            def take() -> object:
                packet = session.receive_packet()
                if packet is not None:
                    assert len(packet.data) <= 0xFFFF
                return packet

            _outcome(take, lambda packet: packet.release(), case.tail)  # type: ignore[attr-defined]
        finally:
            session.close()

    @staticmethod
    def _advance(session: wintun_cffi.Session, ring: Ring, head: int) -> None:
        """Move the reader to ``head`` the honest way: valid records up to it, read and
        released."""
        position = 0
        while position < head:
            step = min(head - position, 0x10000)
            ring.set_record_size_field(position, step - 4)
            position += step
        ring.tail = head
        while True:
            packet = session.receive_packet()
            if packet is None:
                break
            packet.release()
        assert ring.head == head


def fuzz_native(path: str, examples: int) -> int:
    """Run the native reader fuzz on the library at ``path``; returns the examples tried."""
    reader = NativeReader(path)
    tried = [0]
    cases = corpus_cases()

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(ring_cases())
    def run(case: RingCase) -> None:
        tried[0] += 1
        reader.check(case)

    for seed in cases:
        run = example(seed)(run)
    try:
        run()
    finally:
        reader.close()
    return tried[0]


def read_past_ring(path: str) -> None:
    """Read 16 bytes just past a session's Send ring: under AddressSanitizer this must crash
    (proof that the sanitizer watches the double's ring memory)."""
    reader = NativeReader(path)
    session = reader.adapter.start_session(CAPACITY)
    ffi = reader.ffi
    send, size = ffi.new("void **"), ffi.new("uint32_t *")
    handle: Any = session._handle
    pointer = ffi.cast("void *", handle.pointer)
    assert reader.helpers.WintunDoubleGetSessionRings(
        pointer, send, ffi.NULL, size, ffi.NULL, ffi.NULL, ffi.NULL
    )
    # The Receive ring follows the Send ring in one allocation: read past both.
    target = ffi.new("char[16]")
    ffi.memmove(target, ffi.cast("char *", send[0]) + 2 * size[0], 16)
    print("read past the ring without a report")


if __name__ == "__main__":
    if sys.argv[2] == "read-past-ring":
        read_past_ring(sys.argv[1])
    else:
        count = fuzz_native(sys.argv[1], int(sys.argv[2]))
        print(f"native ring reader: {count} examples, no out-of-bounds access")
