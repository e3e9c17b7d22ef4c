"""A packet capture in pcapng, written by a thread of its own so that the packet path never
waits for a disk or a pipe.

A :class:`Capture` takes packets from the session's packet path (:meth:`Capture.add`,
:meth:`Capture.add_one`, :meth:`Capture.add_given_up`) and writes them to a file, a series of
files or any binary stream, as pcapng that Wireshark and ``tshark`` read, live through a pipe
too. The file holds one Section Header Block, one Interface Description Block (link type
``LINKTYPE_RAW``: each packet an IPv4 or IPv6 packet, no link-layer header; nanosecond
timestamps; the adapter's name) and one Enhanced Packet Block per packet, with the packet's
direction in its flags.

**The packet path.** Adding a packet copies at most ``snaplen`` of its bytes, takes the time and
appends one record to a bounded queue; it never waits and never raises. When the queue is full
the record is dropped and counted (:attr:`Capture.dropped`): the capture falls behind, the
packets never do. This relies on the GIL (CPython's global interpreter lock): appending to a
:class:`collections.deque` and copying a bytes-like object run in C without letting another
thread in, so several threads may add at once with no lock; the queue's bound may be passed by
one record per thread adding at the same moment. A free-threaded interpreter is not supported.

**The writer** is a daemon thread that drains the queue in batches, encodes them and writes
each batch with one ``write()`` (then ``flush()``). A failure stops the capture: it is kept in
:attr:`Capture.error` and raised by :meth:`Capture.close` as :class:`CaptureError`.

This module sits below the session and its ledger: it imports neither.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from itertools import islice, repeat, starmap
from typing import Any, BinaryIO, Protocol

#: Direction flag of a packet from the system to the application (received). The values are
#: the direction bits of a pcapng Enhanced Packet Block's ``epb_flags`` (01 inbound).
INBOUND = 1
#: Direction flag of a packet from the application to the system (sent): ``epb_flags`` 10.
OUTBOUND = 2
#: The comment (``opt_comment``) of the record of a send the application gave up, which the
#: session sent after making it harmless.
GIVEN_UP_COMMENT = (
    "given up: the application abandoned this send; the session gave the driver "
    "this harmless packet in its place"
)

#: The link type of every packet: raw IP (IPv4 or IPv6 by the first nibble).
LINKTYPE_RAW = 101
#: The largest ``snaplen`` accepted (Wireshark's limit for most link types; a Wintun packet
#: is at most 65,535 bytes).
MAX_SNAPLEN = 262144
#: The smallest ``rotate_bytes`` accepted: a file must have room for its headers and packets.
MIN_ROTATE_BYTES = 4096
#: The default bound of the queue between the packet path and the writer, in records (each
#: a copy of up to ``snaplen`` bytes: about 100 MB of 1,500-byte packets when full).
DEFAULT_QUEUE_LIMIT = 65536
#: How long :meth:`Capture.close` waits for the writer by default, in seconds.
DEFAULT_CLOSE_TIMEOUT = 5.0
#: The longest interface name accepted, in characters.
MAX_NAME_LENGTH = 256

#: What a capture takes as a packet: any bytes-like object (these are the common ones).
BytesLike = bytes | bytearray | memoryview

# The clock of the timestamps (wall-clock nanoseconds, as pcapng's epoch wants).
_now = time.time_ns
# Record kind of a given-up send: not a pcapng direction value; recorded as OUTBOUND with
# GIVEN_UP_COMMENT.
_GIVEN_UP = 4
# The most records the writer encodes into one write(), and about the most bytes (a larger
# buffer is slower to join: fresh memory each time).
_BATCH = 1024
_WRITE_BYTES = 1 << 18
# After the queue ran empty the writer waits this long for more before it asks to be woken:
# packets close together then cost the packet path no wake-up each.
_LINGER = 0.002
# The longest the writer sleeps without a wake-up (a safety net: it is woken when needed).
_IDLE = 1.0

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT = 0
_OPT_COMMENT = 1
_SHB_USERAPPL = 4
_IF_NAME = 2
_IF_TSRESOL = 9
_EPB_FLAGS = 2

# Little-endian throughout (the byte-order magic tells readers so).
_U32 = struct.Struct("<I")
_OPTION = struct.Struct("<HH")
# Block type, total length, interface id, timestamp high, timestamp low, captured, original.
_EPB_HEAD = struct.Struct("<IIIIIII")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


class CaptureError(Exception):
    """The capture's writer failed (the cause is the writer's exception); the capture
    stopped there. Raised once, by :meth:`Capture.close`."""


class Writable(Protocol):
    """A binary stream a capture can write to: ``write(bytes)``; ``flush()`` is called too
    when it has one. ``write`` may return how many bytes it took (the rest is written again)
    or None (it took them all)."""

    def write(self, data: bytes, /) -> int | None: ...


def _option(code: int, value: bytes) -> bytes:
    """One pcapng option: code, length, the value padded to 32 bits."""
    return _OPTION.pack(code, len(value)) + value + _PADDING[len(value) & 3]


_END_OF_OPTIONS = _OPTION.pack(_OPT_ENDOFOPT, 0)


def _block(kind: int, body: bytes) -> bytes:
    """One pcapng block: type, total length, the body (a multiple of 4 bytes), total length."""
    total = _U32.pack(len(body) + 12)
    return _U32.pack(kind) + total + body + total


def file_header(interface_name: str, snaplen: int) -> bytes:
    """The Section Header Block and Interface Description Block every file of a capture
    starts with."""
    section = (
        _U32.pack(_BYTE_ORDER_MAGIC)
        + struct.pack("<HHq", 1, 0, -1)  # version 1.0; section length unknown
        + _option(_SHB_USERAPPL, b"wintun-cffi")
        + _END_OF_OPTIONS
    )
    interface = (
        struct.pack("<HHI", LINKTYPE_RAW, 0, snaplen)
        + _option(_IF_NAME, interface_name.encode())
        + _option(_IF_TSRESOL, bytes((9,)))  # 10**-9 s: nanoseconds
        + _END_OF_OPTIONS
    )
    return _block(_SHB, section) + _block(_IDB, interface)


# The options of each kind of record, end of options included.
_OPTIONS = {
    INBOUND: _option(_EPB_FLAGS, _U32.pack(INBOUND)) + _END_OF_OPTIONS,
    OUTBOUND: _option(_EPB_FLAGS, _U32.pack(OUTBOUND)) + _END_OF_OPTIONS,
    _GIVEN_UP: _option(_EPB_FLAGS, _U32.pack(OUTBOUND))
    + _option(_OPT_COMMENT, GIVEN_UP_COMMENT.encode())
    + _END_OF_OPTIONS,
}
# "No limit", as a number the writer compares with.
_NO_LIMIT = 1 << 62


def _check_size(name: str, value: object, least: int, most: int | None = None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < least or (most is not None and value > most):
        bound = f"from {least} to {most}" if most is not None else f"at least {least}"
        raise ValueError(f"{name} must be {bound}, not {value}")


def rotated_name(path: str, index: int) -> str:
    """The name of file ``index`` of a rotating capture at ``path``: ``path`` itself for 0,
    then the number before the last suffix (``cap.pcapng``, ``cap.1.pcapng``,
    ``cap.2.pcapng``, ...; ``cap``, ``cap.1``, ... without a suffix)."""
    if index == 0:
        return path
    head, tail = os.path.split(path)
    stem, dot, suffix = tail.rpartition(".")
    if not stem:  # no suffix (or a name like ".pcapng"): the number goes last
        return os.path.join(head, f"{tail}.{index}")
    return os.path.join(head, f"{stem}.{index}{dot}{suffix}")


class Capture:
    """Records packets to pcapng as they pass, without slowing them down.

    ``target`` is a path (``str`` or :class:`os.PathLike`: the file is created, or emptied)
    or a binary stream with ``write()`` (a file, ``sys.stdout.buffer``, a pipe). A stream is
    flushed after each batch, so a live reader sees packets promptly, and it is never closed
    here: it is the caller's. Files the capture opens it closes.

    Options (each checked before anything is created: a bad one raises :class:`ValueError`,
    or :class:`TypeError` for a wrong type, naming it):

    * ``interface_name``: the interface's name in the file (``if_name``), at most
      :data:`MAX_NAME_LENGTH` characters;
    * ``snaplen``: the most bytes kept of each packet, 1 to :data:`MAX_SNAPLEN`;
    * ``max_packets``, ``max_bytes``: stop recording once this many packets are recorded,
      or before the files would pass this many bytes in all (headers included);
      :attr:`stopped` is then true;
    * ``rotate_bytes`` (a path target only; at least :data:`MIN_ROTATE_BYTES`): start a new
      file (named by :func:`rotated_name`) instead of letting the current one pass this size
      (a file holds one packet at least);
    * ``keep_bytes`` (a path target only): a ring of files: at each new file the oldest are
      deleted until the rest and the new file's ``rotate_bytes`` fit in ``keep_bytes``.
      Without ``rotate_bytes``, files rotate at an eighth of ``keep_bytes`` (at least
      :data:`MIN_ROTATE_BYTES`); ``keep_bytes`` must be at least the rotation size;
    * ``queue_limit``: the most records waiting for the writer (:data:`DEFAULT_QUEUE_LIMIT`);
      past it records are dropped and counted in :attr:`dropped`.

    A path target is opened here (an :class:`OSError` if it cannot be); the writer thread
    starts at once and writes the headers.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | Writable | BinaryIO,
        *,
        interface_name: str = "wintun",
        snaplen: int = MAX_SNAPLEN,
        max_packets: int | None = None,
        max_bytes: int | None = None,
        rotate_bytes: int | None = None,
        keep_bytes: int | None = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        path: str | None = None
        if isinstance(target, (str, os.PathLike)):
            path = os.fspath(target)
            if not isinstance(path, str):
                raise TypeError("a path target must be a str path, not bytes")
        elif not callable(getattr(target, "write", None)):
            raise TypeError(
                f"target must be a path or a binary stream with write(), "
                f"not {type(target).__name__}"
            )
        if not isinstance(interface_name, str):
            raise TypeError(f"interface_name must be a str, not {type(interface_name).__name__}")
        if len(interface_name) > MAX_NAME_LENGTH or "\0" in interface_name:
            raise ValueError(
                f"interface_name must be at most {MAX_NAME_LENGTH} characters, without NUL"
            )
        _check_size("snaplen", snaplen, 1, MAX_SNAPLEN)
        _check_size("max_packets", max_packets, 1)
        _check_size("max_bytes", max_bytes, 1)
        _check_size("rotate_bytes", rotate_bytes, MIN_ROTATE_BYTES)
        _check_size("keep_bytes", keep_bytes, MIN_ROTATE_BYTES)
        _check_size("queue_limit", queue_limit, 1)
        if path is None and (rotate_bytes is not None or keep_bytes is not None):
            raise ValueError("rotate_bytes and keep_bytes need a path target, not a stream")
        if keep_bytes is not None:
            if rotate_bytes is None:
                rotate_bytes = max(keep_bytes // 8, MIN_ROTATE_BYTES)
            if keep_bytes < rotate_bytes:
                raise ValueError(
                    f"keep_bytes ({keep_bytes}) must be at least rotate_bytes ({rotate_bytes})"
                )
        try:
            interface_name.encode()
        except UnicodeEncodeError:
            raise ValueError("interface_name must be encodable as UTF-8") from None

        self._path = path
        self._header = file_header(interface_name, snaplen)
        self._snaplen = snaplen
        self._max_packets = max_packets
        self._max_bytes = max_bytes
        self._rotate_bytes = rotate_bytes
        self._keep_bytes = keep_bytes
        self._limit = queue_limit
        # (timestamp in ns, kind, copy, original length or 0: the copy's).
        self._queue: deque[tuple[int, int, bytes, int]] = deque()
        # False once the capture stops (a limit, a failure, close()): adding is then a no-op.
        self._recording = True
        self._sleeping = False
        self._wake = threading.Event()
        # Guards the counters the writer and close() share, and drops on the packet path.
        self._lock = threading.Lock()
        self._dropped = 0
        self._written = 0
        self._bytes_written = 0
        self._in_flight = 0
        self._closing = False
        self._abandoned = False  # close() gave up waiting: the writer must stop at once
        self._closed = False
        self._reported = False
        self._limit_reached = False
        #: The writer's failure (an exception), or None. The capture stopped there.
        self.error: BaseException | None = None
        # (path, size) of each file written and not deleted, oldest first.
        self._files: list[tuple[str, int]] = []
        self._file_bytes = 0
        self._rotations = 0
        self._stream: Any
        if path is None:
            self._stream = target
            self._owned = False
        else:
            self._stream = open(path, "wb")  # the writer thread closes it
            self._owned = True
            self._files.append((path, 0))
        self._thread = threading.Thread(
            target=self._run, name=f"wintun-cffi capture writer ({interface_name})", daemon=True
        )
        self._thread.start()

    # -- the packet path ------------------------------------------------------------------

    def add_one(self, direction: int, data: BytesLike) -> None:
        """Record one packet (a copy of up to ``snaplen`` bytes, taken now) going
        ``direction`` (:data:`INBOUND` or :data:`OUTBOUND`; another value is recorded without
        a direction). Never blocks, never raises for the capture's sake (only for ``data``
        that is not bytes-like): a full queue drops the record (counted); a stopped capture
        ignores it."""
        if self._recording:
            queue = self._queue
            if len(queue) < self._limit:
                if len(data) <= self._snaplen:
                    queue.append((_now(), direction, bytes(data), 0))
                else:
                    queue.append(self._cut(direction, data))
                if self._sleeping:
                    self._sleeping = False
                    self._wake.set()
            else:
                with self._lock:
                    self._dropped += 1

    def add(self, direction: int, packets: Sequence[BytesLike]) -> None:
        """Record the packets of one pass, all going ``direction``, with one timestamp (they
        were taken together). Each is copied (up to ``snaplen`` bytes) before this returns,
        so the caller may release them at once. Never blocks, never raises for the
        capture's sake: the records that find the queue full are dropped (counted)."""
        if not self._recording or not packets:
            return
        queue = self._queue
        room = self._limit - len(queue)
        count = len(packets)
        if count > room:
            with self._lock:
                self._dropped += count - max(room, 0)
            if room <= 0:
                return
            packets = list(islice(packets, room))
        now = _now()
        if max(map(len, packets)) <= self._snaplen:
            queue.extend(zip(repeat(now), repeat(direction), map(bytes, packets), repeat(0)))
        else:
            queue.extend(self._cut(direction, packet, now) for packet in packets)
        if self._sleeping:
            self._sleeping = False
            self._wake.set()

    def add_given_up(self, data: BytesLike | None) -> None:
        """Record a send the application gave up and the session sent made harmless:
        ``data`` is what the driver got. Recorded :data:`OUTBOUND` with
        :data:`GIVEN_UP_COMMENT`; when ``data`` is None (unknown), the record is empty
        (captured and original length 0) and still carries the comment."""
        self.add_one(_GIVEN_UP, b"" if data is None else data)

    def _cut(
        self, direction: int, data: BytesLike, now: int | None = None
    ) -> tuple[int, int, bytes, int]:
        """The record of a packet longer than ``snaplen`` (or of items wider than a byte)."""
        view = memoryview(data)
        size = view.nbytes
        if view.c_contiguous:
            copy = bytes(view.cast("B")[: self._snaplen])
        else:  # not for the hot path: copied whole, then cut
            copy = bytes(view)[: self._snaplen]
        return (_now() if now is None else now, direction, copy, size)

    # -- counters -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Records dropped because the writer fell behind (the queue was full), failed, or
        had not written them when :meth:`close` stopped waiting. Never packets: they go on."""
        return self._dropped

    @property
    def written(self) -> int:
        """Packet records written so far."""
        return self._written

    @property
    def bytes_written(self) -> int:
        """Bytes written so far, headers included, over every file (deleted ones too)."""
        return self._bytes_written

    @property
    def stopped(self) -> bool:
        """True once the capture records nothing more: ``max_packets`` or ``max_bytes``
        reached, the writer failed (:attr:`error`), or closed."""
        return not self._recording

    @property
    def limit_reached(self) -> bool:
        """True if ``max_packets`` or ``max_bytes`` stopped the capture."""
        return self._limit_reached

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def files(self) -> list[str]:
        """The files written and not deleted (``keep_bytes``), oldest first; empty for a
        stream target."""
        return [name for name, _ in list(self._files)]

    # -- the end --------------------------------------------------------------------------

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Stop recording, let the writer write what is queued and wait for it, up to
        ``timeout`` seconds: a writer still blocked then (a pipe nobody reads) is left to
        finish on its own, and the records it had not written are counted in
        :attr:`dropped` (a file the capture opened is then closed by the writer when its
        write returns). Closes the files the capture opened, never a stream it was given.

        Raises :class:`CaptureError` once if the writer failed; calling again does nothing.
        """
        if not self._closed:
            self._closed = True
            self._recording = False
            self._closing = True
            self._wake.set()
            self._thread.join(timeout)
            with self._lock:
                if self._thread.is_alive():
                    self._abandoned = True
                    self._dropped += self._in_flight
                    self._in_flight = 0
                # Queued after the writer's last look (an add racing close), or never taken;
                # after a limit, offered too late to be recorded (not dropped).
                if not self._limit_reached:
                    self._dropped += len(self._queue)
                self._queue.clear()
        error = self.error
        if error is not None and not self._reported:
            self._reported = True
            raise CaptureError(f"the capture's writer failed: {error!r}") from error

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "stopped" if not self._recording else "recording"
        return (
            f"<Capture {state} written={self._written} dropped={self._dropped} "
            f"bytes_written={self._bytes_written}>"
        )

    # -- the writer -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._emit([self._header], 0)
            while not self._abandoned:
                batch = self._take()
                if batch:
                    self._write(batch)
                    if self._limit_reached:
                        break
                elif self._closing:
                    break
                else:
                    self._idle()
        except BaseException as exc:  # kept for close(); nothing may escape a thread
            self.error = exc
            self._recording = False
            with self._lock:
                # The batch being written and everything queued will not be written.
                self._dropped += self._in_flight + len(self._queue)
                self._in_flight = 0
                self._queue.clear()
        finally:
            if self._limit_reached:
                self._queue.clear()  # offered after the limit: not recorded, not dropped
            if self._owned:
                try:
                    self._stream.close()
                except Exception as exc:
                    if self.error is None:
                        self.error = exc

    def _idle(self) -> None:
        """Wait for records: a short linger, then until woken (or :data:`_IDLE`)."""
        time.sleep(_LINGER)
        if self._queue or self._closing:
            return
        self._wake.clear()
        self._sleeping = True
        # An add after this line sees _sleeping and wakes us; one before it is seen here.
        if not self._queue and not self._closing:
            self._wake.wait(_IDLE)
        self._sleeping = False

    def _take(self) -> list[tuple[int, int, bytes, int]]:
        queue = self._queue
        with self._lock:
            count = len(queue)
            if count:  # about _WRITE_BYTES, judged by the oldest record
                count = min(count, _BATCH, _WRITE_BYTES // (len(queue[0][2]) + 64) + 1)
            batch = list(starmap(queue.popleft, repeat((), count)))
            self._in_flight = len(batch)
        return batch

    def _write(self, batch: list[tuple[int, int, bytes, int]]) -> None:
        """Encode and write one batch, rotating files and applying the limits on the way."""
        snaplen = self._snaplen
        head = _EPB_HEAD.pack
        u32 = _U32.pack
        options = _OPTIONS
        padding = _PADDING
        parts: list[bytes] = []
        extend = parts.extend
        packets = 0
        pending = 0  # bytes in parts
        packets_left, room = self._room()
        for stamp, kind, data, original in batch:
            size = len(data)
            if size > snaplen:  # items wider than a byte, counted as items on the way in
                original = original or size
                data = data[:snaplen]
                size = snaplen
            option = options.get(kind, _END_OF_OPTIONS)
            total = 32 + size + (-size & 3) + len(option)
            if packets >= packets_left or pending + total > room:  # a limit, or a new file
                if packets >= packets_left:
                    self._limit_reached = True
                    break
                if self._full(pending, total):
                    self._emit(parts, packets)
                    parts.clear()
                    packets = pending = 0
                    self._rotate()
                    packets_left, room = self._room()
                most = self._max_bytes
                if most is not None and self._bytes_written + pending + total > most:
                    self._limit_reached = True
                    break
            extend(
                (
                    head(_EPB, total, 0, stamp >> 32, stamp & 0xFFFFFFFF, size, original or size),
                    data,
                    padding[size & 3],
                    option,
                    u32(total),
                )
            )
            packets += 1
            pending += total
        self._emit(parts, packets)
        if packets_left == packets:
            self._limit_reached = True
        if self._limit_reached:
            self._recording = False
        with self._lock:
            self._in_flight = 0

    def _room(self) -> tuple[int, int]:
        """How many more packets the capture may take, and how many bytes the current file
        surely may (past them, :meth:`_write` looks closer: a new file, or a limit)."""
        packets = _NO_LIMIT if self._max_packets is None else self._max_packets - self._written
        room = _NO_LIMIT
        if self._max_bytes is not None:
            room = self._max_bytes - self._bytes_written
            if self._rotate_bytes is not None:
                room -= len(self._header)
        if self._rotate_bytes is not None:
            room = min(room, self._rotate_bytes - self._file_bytes)
        return packets, room

    def _full(self, pending: int, total: int) -> bool:
        """Whether a record of ``total`` bytes needs a new file (a file holds one at least)."""
        return (
            self._rotate_bytes is not None
            and self._file_bytes + pending + total > self._rotate_bytes
            and (pending > 0 or self._file_bytes > len(self._header))
        )

    def _emit(self, parts: list[bytes], packets: int) -> None:
        """Write ``parts`` (``packets`` of them records) in one call, then flush."""
        if not parts:
            return
        data = b"".join(parts)
        stream = self._stream
        taken = stream.write(data)
        if taken is not None and taken < len(data):  # a raw stream took part: the rest
            view = memoryview(data)[taken:]
            while view:
                taken = stream.write(view)
                if taken is None:
                    break
                view = view[taken:]
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
        with self._lock:
            if self._abandoned:  # close() counted these dropped already
                return
            self._written += packets
            self._in_flight -= packets
            self._bytes_written += len(data)
        self._file_bytes += len(data)
        if self._files:
            name, _ = self._files[-1]
            self._files[-1] = (name, self._file_bytes)

    def _rotate(self) -> None:
        """Close the current file, delete the oldest beyond ``keep_bytes``, open the next."""
        assert self._path is not None and self._rotate_bytes is not None
        self._stream.close()
        self._rotations += 1
        index = self._rotations
        if self._keep_bytes is not None:
            budget = self._keep_bytes - self._rotate_bytes
            while self._files and sum(size for _, size in self._files) > budget:
                name, _ = self._files[0]
                try:
                    os.remove(name)
                except FileNotFoundError:
                    pass
                except OSError:  # in use (Windows): kept, tried again at the next rotation
                    break
                del self._files[0]
        name = rotated_name(self._path, index)
        self._stream = open(name, "wb")  # closed at the next rotation, or by _run
        self._file_bytes = 0
        self._files.append((name, 0))
        self._emit([self._header], 0)
