"""What ``wintun.dll`` does in the application's process: the four packet operations.

The client reads the Send ring (packets the driver delivers) and writes the Receive ring
(packets the application sends), exactly as the spec's section 3 describes: the same check
order, error codes, release flag, out-of-order release and allocation-order publication. One
lock per direction makes every operation thread-safe, as in the real DLL.

Unlike the C API, a token (the handle of a received or allocated packet) is checked: one from
another session, or one already released or sent, raises :class:`ValueError` instead of
corrupting the ring.
"""

from __future__ import annotations

import threading
from itertools import count
from typing import Iterable, Sequence

from wintun_cffi.constants import (
    ERROR_BUFFER_OVERFLOW,
    ERROR_HANDLE_EOF,
    ERROR_NO_MORE_ITEMS,
    MAX_IP_PACKET_SIZE,
)
from wintun_cffi.backend import as_many_as_possible
from wintun_cffi.errors import HandleClosedError, error_from_code
from wintun_cffi.fdevent import FdEvent
from wintun_cffi.outstanding import Outstanding
from wintun_cffi.validate import check_packet_size

from .releases import NEWEST, Release
from .ring import (
    ALERTABLE_OFFSET,
    HEAD_OFFSET,
    I32,
    PACKET_RELEASE_FLAG,
    TAIL_OFFSET,
    U32,
    Ring,
)

_OFFSET_MASK = 0xFFFFFFFF
# Tokens are (serial << 32) | offset: a serial is never reused, so a stale token never matches.
_serials = count(1)


class SessionClient:
    """The client side of one session: reads ``send_ring``, writes ``receive_ring``, as the
    DLL of ``release`` does (default: the newest)."""

    def __init__(
        self, send_ring: Ring, receive_ring: Ring, receive_tail_moved: FdEvent,
        release: Release | None = None,
    ) -> None:
        release = release or NEWEST["0.14"]
        if send_ring.capacity != receive_ring.capacity:
            raise ValueError("both rings of a session have the same capacity")
        self.send_ring = send_ring
        self.receive_ring = receive_ring
        self.capacity = send_ring.capacity
        self._mask = send_ring.mask
        self._receive_tail_moved = receive_tail_moved
        self._release_name = release.release_function
        # The 2020-11 snapshot, 0.9 and 0.9.1 signal the driver even if Tail did not move.
        self._signals_unmoved_tail = release.signals_unmoved_tail
        self.ended = False
        # Reading the Send ring.
        self._read_lock = threading.Lock()
        self._read_memory = send_ring.memory
        self._read_data = send_ring.data
        self._head = 0
        self._head_release = 0
        self._reads_to_release = 0
        self._outstanding_reads = Outstanding()
        # Writing the Receive ring.
        self._write_lock = threading.Lock()
        self._write_memory = receive_ring.memory
        self._write_data = receive_ring.data
        self._tail = 0
        self._tail_release = 0
        self._writes_to_send = 0
        self._outstanding_writes = Outstanding()

    # -- reading the Send ring -------------------------------------------------------------

    def receive_packet(self) -> tuple[memoryview, int]:
        """``WintunReceivePacket``: the next packet's payload view and its token."""
        with self._read_lock:
            return self._receive_locked()

    def receive_packets(self, limit: int) -> list[tuple[memoryview, int]]:
        """Up to ``limit`` packets under one lock; raises only if there is not even one."""
        with self._read_lock:
            return as_many_as_possible(lambda _: self._receive_locked(), range(limit))

    def _receive_locked(self) -> tuple[memoryview, int]:
        if self.ended:
            raise HandleClosedError("WintunReceivePacket: the session has ended")
        head = self._head
        capacity = self.capacity
        if head >= capacity:
            raise error_from_code(ERROR_HANDLE_EOF, "WintunReceivePacket")
        tail = U32.unpack_from(self._read_memory, TAIL_OFFSET)[0]
        if tail >= capacity:
            raise error_from_code(ERROR_HANDLE_EOF, "WintunReceivePacket")
        if head == tail:
            raise error_from_code(ERROR_NO_MORE_ITEMS, "WintunReceivePacket")
        data = self._read_data
        content = (tail - head) & self._mask
        size = U32.unpack_from(data, head)[0] if content >= 4 else -1
        aligned = (size + 7) & ~3
        if size < 0 or size > MAX_IP_PACKET_SIZE or aligned > content:
            self.send_ring.check_record(head, tail)  # raises the precise RingCorruptError
        self._head = (head + aligned) & self._mask
        self._reads_to_release += 1
        token = (next(_serials) << 32) | head
        view = data[head + 4 : head + 4 + size]
        self._outstanding_reads[token] = (view, None)  # the ring's memory outlives the session
        return view, token

    def release_receive_packet(self, token: object) -> None:
        """``WintunReleaseReceivePacket`` (seed: ``WintunReceiveRelease``): give a received
        packet's space back, in ring order."""
        self.release_receive_packets((token,))

    def release_receive_packets(self, tokens: Iterable[object]) -> None:
        """Release several packets under one lock, publishing Head once.

        Stops at the first token that is refused; the ones before it are released.
        """
        with self._read_lock:
            if self.ended:
                raise HandleClosedError(f"{self._release_name}: the session has ended")
            data = self._read_data
            take = self._outstanding_reads.take
            try:
                for token in tokens:
                    take(token, "not a packet received from this session, or already released")
                    offset = token & _OFFSET_MASK  # type: ignore[operator]
                    flagged = U32.unpack_from(data, offset)[0] | PACKET_RELEASE_FLAG
                    U32.pack_into(data, offset, flagged)
            finally:
                self._advance_head_release()

    def _advance_head_release(self) -> None:
        """Move Head past every released packet at its front (out-of-order release waits)."""
        data = self._read_data
        position = self._head_release
        pending = self._reads_to_release
        mask = self._mask
        while pending:
            size = U32.unpack_from(data, position)[0]
            if not size & PACKET_RELEASE_FLAG:
                break
            position = (position + (((size & ~PACKET_RELEASE_FLAG) + 7) & ~3)) & mask
            pending -= 1
        self._head_release = position
        self._reads_to_release = pending
        U32.pack_into(self._read_memory, HEAD_OFFSET, position)

    # -- writing the Receive ring ----------------------------------------------------------

    def allocate_send_packet(self, size: int) -> tuple[memoryview, int]:
        """``WintunAllocateSendPacket``: a writable view of ``size`` bytes and its token."""
        if size.__class__ is not int or not 0 <= size <= MAX_IP_PACKET_SIZE:
            check_packet_size(size)
        with self._write_lock:
            return self._allocate_locked(size)

    def allocate_send_packets(self, sizes: Sequence[int]) -> list[tuple[memoryview, int]]:
        """Allocate in order under one lock until one does not fit; raises only if none fit."""
        for size in sizes:
            check_packet_size(size)
        with self._write_lock:
            return as_many_as_possible(self._allocate_locked, sizes)

    def _allocate_locked(self, size: int) -> tuple[memoryview, int]:
        if self.ended:
            raise HandleClosedError("WintunAllocateSendPacket: the session has ended")
        tail = self._tail
        capacity = self.capacity
        if tail >= capacity:
            raise error_from_code(ERROR_HANDLE_EOF, "WintunAllocateSendPacket")
        head = U32.unpack_from(self._write_memory, HEAD_OFFSET)[0]
        if head >= capacity:
            raise error_from_code(ERROR_HANDLE_EOF, "WintunAllocateSendPacket")
        aligned = (size + 7) & ~3
        if aligned > ((head - tail - 4) & self._mask):
            raise error_from_code(ERROR_BUFFER_OVERFLOW, "WintunAllocateSendPacket")
        data = self._write_data
        U32.pack_into(data, tail, size | PACKET_RELEASE_FLAG)
        self._tail = (tail + aligned) & self._mask
        self._writes_to_send += 1
        token = (next(_serials) << 32) | tail
        view = data[tail + 4 : tail + 4 + size]
        self._outstanding_writes[token] = (view, None)
        return view, token

    def send_packet(self, token: object) -> None:
        """``WintunSendPacket``: publish every sent packet up to the first one still allocated."""
        self.send_packets((token,))

    def send_packets(self, tokens: Iterable[object]) -> None:
        """Send several packets under one lock, publishing Tail (and signalling) once.

        Stops at the first token that is refused; the ones before it are sent.
        """
        with self._write_lock:
            if self.ended:
                raise HandleClosedError("WintunSendPacket: the session has ended")
            data = self._write_data
            take = self._outstanding_writes.take
            try:
                for token in tokens:
                    take(token, "not a packet allocated in this session, or already sent")
                    offset = token & _OFFSET_MASK  # type: ignore[operator]
                    cleared = U32.unpack_from(data, offset)[0] & ~PACKET_RELEASE_FLAG
                    U32.pack_into(data, offset, cleared)
            finally:
                self._publish_tail()

    def _publish_tail(self) -> None:
        """Move Tail past every sent packet at the front; wake an alertable driver (when Tail
        moved, or on every call for the releases that signal regardless)."""
        data = self._write_data
        position = self._tail_release
        pending = self._writes_to_send
        mask = self._mask
        while pending:
            size = U32.unpack_from(data, position)[0]
            if size & PACKET_RELEASE_FLAG:
                break
            position = (position + ((size + 7) & ~3)) & mask
            pending -= 1
        self._tail_release = position
        self._writes_to_send = pending
        memory = self._write_memory
        if self._signals_unmoved_tail or U32.unpack_from(memory, TAIL_OFFSET)[0] != position:
            U32.pack_into(memory, TAIL_OFFSET, position)
            if I32.unpack_from(memory, ALERTABLE_OFFSET)[0]:
                self._receive_tail_moved.set()

    # -- bookkeeping ---------------------------------------------------------------------

    def outstanding(self) -> int:
        """Packets received but not released, plus packets allocated but not sent."""
        return len(self._outstanding_reads) + len(self._outstanding_writes)

    def end(self) -> None:
        """Refuse every later call (the session's memory is about to be freed)."""
        with self._read_lock, self._write_lock:
            self.ended = True
            self._outstanding_reads.release_all()
            self._outstanding_writes.release_all()


__all__ = ["SessionClient"]
