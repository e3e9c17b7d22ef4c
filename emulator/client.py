"""What ``wintun.dll`` does in the application's process: the four packet operations.

The client reads the Send ring (packets the driver delivers) and writes the Receive ring
(packets the application sends), exactly as the protocol page describes: the same check order,
error codes, release flag, out-of-order release and allocation-order publication. One lock per
direction makes every operation thread-safe, as in the real DLL.

Like the DLL it keeps no table of the packets it handed out; the session's
:class:`~wintun_cffi.ledger.Ledger` does, for both backends. What the ledger needs of a backend
is that taking a packet and recording it are one step: here each taken packet's token is
appended to the ledger's list by the same line of plain stores that moves the client's
position, so nothing can fall between them. Giving back queues the token (a C-level append, in
the ledger's pipeline), and :meth:`SessionClient.flush_releases` /
:meth:`SessionClient.flush_sends` do the DLL's work for the queued tokens, each step safe to
redo if an interruption cuts it short.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Sequence
from itertools import count
from typing import Any

from wintun_cffi.constants import (
    ERROR_BUFFER_OVERFLOW,
    ERROR_HANDLE_EOF,
    ERROR_INVALID_DATA,
    ERROR_NO_MORE_ITEMS,
    MAX_IP_PACKET_SIZE,
    PACKET_SIZE_MASK,
)
from wintun_cffi.errors import HandleClosedError, error_from_code
from wintun_cffi.fdevent import FdEvent

from .releases import NEWEST, Release
from .ring import (
    ALERTABLE_WORD,
    DATA_WORD,
    HEAD_WORD,
    PACKET_HEADER_SIZE,
    PACKET_RELEASE_FLAG,
    TAIL_WORD,
    Ring,
)

_OFFSET_MASK = 0xFFFFFFFF
#: ``raw[_APPEND] = (token,)`` appends without a call: a store, like the ones beside it.
_APPEND = slice(sys.maxsize, sys.maxsize)
# Serials are never reused, by any session: a stale or foreign token never matches.
_serials = count(1)


class SessionClient:
    """The client side of one session: reads ``send_ring``, writes ``receive_ring``, as the
    DLL of ``release`` does (default: the newest). Tokens are ``(serial << 32) | offset``.
    """

    def __init__(
        self,
        send_ring: Ring,
        receive_ring: Ring,
        receive_tail_moved: FdEvent,
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
        #: The release function's name in this release (for errors).
        self.release_name = release.release_function
        # The 2020-11 snapshot, 0.9 and 0.9.1 signal the driver even if Tail did not move.
        self._signals_unmoved_tail = release.signals_unmoved_tail
        self.ended = False
        # Reading the Send ring.
        self._read_lock = threading.Lock()
        self._read_words = send_ring.words
        self._head = 0
        self._head_release = 0
        self._reads_pending = 0  # taken and not yet behind Head
        #: Tokens given back, to flag as released (see :meth:`flush_releases`).
        self.released: deque[int] = deque()
        # Writing the Receive ring.
        self._write_lock = threading.Lock()
        self._write_words = receive_ring.words
        self._write_data = receive_ring.data
        self._tail = 0
        self._tail_release = 0
        self._writes_pending = 0  # allocated and not yet behind Tail
        # A publication whose signal is still to come (an interruption cut it off).
        self._signal_owed = False
        #: Tokens sent, to clear the flag of (see :meth:`flush_sends`).
        self.sent: deque[int] = deque()

    # -- reading the Send ring -------------------------------------------------------------

    def take_received(self, raw: list[Any], limit: int) -> None:
        """``WintunReceivePacket`` up to ``limit`` times, each token appended to ``raw``.

        Raises the first call's error (e.g. NoMoreItemsError) only if nothing was taken.
        """
        with self._read_lock:
            if self.ended:
                raise HandleClosedError.session_ended("WintunReceivePacket")
            words, capacity, mask = self._read_words, self.capacity, self._mask
            head, pending = self._head, self._reads_pending
            for _ in range(limit):
                code = 0
                if head >= capacity:
                    code = ERROR_HANDLE_EOF
                else:
                    tail = words[TAIL_WORD]
                    if tail >= capacity:  # the driver is gone
                        code = ERROR_HANDLE_EOF
                    elif head == tail:
                        code = ERROR_NO_MORE_ITEMS
                    else:
                        content = (tail - head) & mask
                        size = words[DATA_WORD + (head >> 2)] if content >= 4 else -1
                        aligned = (size + 7) & ~3
                        if size < 0 or size > MAX_IP_PACKET_SIZE or aligned > content:
                            code = ERROR_INVALID_DATA
                if code:
                    if raw:
                        return
                    if code == ERROR_INVALID_DATA:
                        self.send_ring.check_record(head, tail)  # the precise RingCorruptError
                    raise error_from_code(code, "WintunReceivePacket")
                token = (next(_serials) << 32) | head
                head = (head + aligned) & mask
                pending += 1
                # One line of stores: the client moves on and the ledger records the token.
                self._head, self._reads_pending, raw[_APPEND] = head, pending, (token,)

    def received_views(self, raw: list[Any]) -> tuple[list[memoryview], list[None]]:
        """The payload views of received tokens (no per-packet buffer object here)."""
        return self._views(self.send_ring, raw)

    def flush_releases(self) -> None:
        """``WintunReleaseReceivePacket`` for the queued tokens: flag each record released,
        then move Head past every released record at the front."""
        with self._read_lock:
            if self.ended:
                return
            words, released = self._read_words, self.released
            while released:
                index = DATA_WORD + ((released[0] & _OFFSET_MASK) >> 2)
                words[index] = words[index] | PACKET_RELEASE_FLAG  # redone harmlessly if cut
                released.popleft()
            position, pending, mask = self._head_release, self._reads_pending, self._mask
            while pending:
                size = words[DATA_WORD + (position >> 2)]
                if not size & PACKET_RELEASE_FLAG:
                    break
                position = (position + (((size & PACKET_SIZE_MASK) + 7) & ~3)) & mask
                pending -= 1
            self._head_release, self._reads_pending = position, pending
            words[HEAD_WORD] = position

    # -- writing the Receive ring ----------------------------------------------------------

    def take_allocated(self, raw: list[Any], sizes: Sequence[int]) -> None:
        """``WintunAllocateSendPacket`` for each size in order, each token appended to
        ``raw``, until one does not fit. Sizes must be checked (0..0xFFFF) by the caller.

        Raises the first call's error (e.g. RingFullError) only if nothing was taken.
        """
        with self._write_lock:
            if self.ended:
                raise HandleClosedError.session_ended("WintunAllocateSendPacket")
            words, capacity, mask = self._write_words, self.capacity, self._mask
            tail, pending = self._tail, self._writes_pending
            for size in sizes:
                code = 0
                aligned = (size + 7) & ~3
                if tail >= capacity:
                    code = ERROR_HANDLE_EOF
                else:
                    head = words[HEAD_WORD]
                    if head >= capacity:  # the driver is gone
                        code = ERROR_HANDLE_EOF
                    elif aligned > ((head - tail - PACKET_HEADER_SIZE) & mask):
                        code = ERROR_BUFFER_OVERFLOW
                if code:
                    if raw:
                        return
                    raise error_from_code(code, "WintunAllocateSendPacket")
                # Past Tail, so the driver cannot see it yet; harmless if cut off here.
                words[DATA_WORD + (tail >> 2)] = size | PACKET_RELEASE_FLAG
                token = (next(_serials) << 32) | tail
                tail = (tail + aligned) & mask
                pending += 1
                # One line of stores: the client moves on and the ledger records the token.
                self._tail, self._writes_pending, raw[_APPEND] = tail, pending, (token,)

    def allocated_views(self, raw: list[Any]) -> tuple[list[memoryview], list[None]]:
        """The payload views of allocated tokens."""
        return self._views(self.receive_ring, raw)

    def allocated_view(self, token: int, size: int) -> tuple[memoryview, None]:
        """The payload view of one allocated token of ``size`` bytes."""
        start = (token & _OFFSET_MASK) + PACKET_HEADER_SIZE
        return self._write_data[start : start + size], None

    def write_allocated(self, token: int, data: Any, size: int) -> None:
        """Copy ``data`` (``size`` bytes) into the payload of an allocated token."""
        start = (token & _OFFSET_MASK) + PACKET_HEADER_SIZE
        self._write_data[start : start + size] = data

    def flush_sends(self) -> None:
        """``WintunSendPacket`` for the queued tokens: clear each record's flag, then publish
        Tail past every sent record at the front and wake an alertable driver."""
        with self._write_lock:
            if self.ended:
                return
            words, sent = self._write_words, self.sent
            while sent:
                index = DATA_WORD + ((sent[0] & _OFFSET_MASK) >> 2)
                words[index] = words[index] & PACKET_SIZE_MASK  # redone harmlessly if cut
                sent.popleft()
            position, pending, mask = self._tail_release, self._writes_pending, self._mask
            while pending:
                size = words[DATA_WORD + (position >> 2)]
                if size & PACKET_RELEASE_FLAG:
                    break
                position = (position + ((size + 7) & ~3)) & mask
                pending -= 1
            self._tail_release, self._writes_pending = position, pending
            # 0.9.2 on: publish (and signal) only if the ring's Tail field differs, whoever
            # wrote it last; before, always.
            if self._signals_unmoved_tail or words[TAIL_WORD] != position:
                self._signal_owed = True  # first: a cut after the store still signals next time
                words[TAIL_WORD] = position
            if self._signal_owed:
                if words[ALERTABLE_WORD]:
                    self._receive_tail_moved.set()
                self._signal_owed = False

    # -- bookkeeping ---------------------------------------------------------------------

    @staticmethod
    def _views(ring: Ring, raw: list[Any]) -> tuple[list[memoryview], list[None]]:
        words, data = ring.words, ring.data
        views = []
        for token in raw:
            offset = token & _OFFSET_MASK
            size = words[DATA_WORD + (offset >> 2)] & PACKET_SIZE_MASK
            start = offset + PACKET_HEADER_SIZE
            views.append(data[start : start + size])
        return views, [None] * len(views)

    def end(self) -> None:
        """Refuse every later call (the session's memory is about to be freed)."""
        with self._read_lock, self._write_lock:
            self.ended = True


__all__ = ["SessionClient"]
