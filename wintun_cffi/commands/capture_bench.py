"""What recording packets with :mod:`wintun_cffi.capture` costs, measured.

``python -m wintun_cffi.commands.capture_bench [SIZE ...]`` prints a table; :func:`capture_rows` gives
the rows (the ``bench`` command's :class:`~wintun_cffi.commands.timing.Row`: nanoseconds per packet of
each run, best and median). The packets are views over one buffer, as a received pass is:

* ``capture add_one`` and ``capture add, passes of 64``: what the packet path pays (the copy,
  the timestamp, the queue), with the writer held up so that it takes no time from them; the
  queue is emptied after every 64 records, as the writer empties it, so that memory is
  reused (the frees are counted here);
* ``capture add_one, fresh memory``: the same without emptying: each copy in memory the
  process has not used before, as when the writer falls behind;
* ``capture writer``: what the writer thread then takes per record (encoding, one write per
  batch to a stream that discards it);
* ``capture add_one, writer running``: both together, the writer draining as the packets
  come and the run ending when all are written (``close()``): the whole cost per packet of a
  capture that keeps up, one interpreter lock between the two.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from ..capture import INBOUND, OUTBOUND, Capture
from .timing import Row

_clock = time.perf_counter
#: Packets per pass in the ``add`` row.
PASS = 64


class _Discard:
    """A stream that discards what it is given, each write first waiting for ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def write(self, data: bytes) -> int:
        self.gate.wait()
        return len(data)


def capture_rows(size: int, repeats: int = 5, packets: int = 6400) -> list[Row]:
    """The rows at ``size`` bytes per packet."""
    if not 1 <= size <= 0xFFFF:
        raise ValueError(f"size must be 1 to 65535, not {size}")
    count = max(PASS, packets - packets % PASS)
    buffer = bytearray(size * PASS)
    views = [memoryview(buffer)[i * size : (i + 1) * size] for i in range(PASS)]
    one = views[0]
    rounds = range(count // PASS)

    def add_one(capture: Capture) -> None:
        add = capture.add_one
        for _ in range(count):
            add(OUTBOUND, one)

    def add_one_recycled(capture: Capture) -> None:
        add = capture.add_one
        clear = capture._queue.clear
        for _ in rounds:
            for _ in views:
                add(OUTBOUND, one)
            clear()

    def add_recycled(capture: Capture) -> None:
        add = capture.add
        clear = capture._queue.clear
        for _ in rounds:
            add(INBOUND, views)
            clear()

    rows = [
        _held("capture add_one", size, repeats, count, add_one_recycled),
        _held(f"capture add, passes of {PASS}", size, repeats, count, add_recycled),
        _held("capture add_one, fresh memory", size, repeats, count, add_one),
        _writer(size, repeats, count, add_one),
    ]
    running = Row("capture add_one, writer running", size)
    for _ in range(repeats):
        capture = Capture(_Discard(), queue_limit=count)
        start = _clock()
        add_one(capture)
        capture.close()
        running.samples.append((_clock() - start) / count * 1e9)
        assert capture.written == count, "the writer kept up: nothing dropped"
    rows.append(running)
    return rows


def _held(name: str, size: int, repeats: int, count: int, run: Callable[[Capture], None]) -> Row:
    """Time ``run`` (``count`` packets) while the writer waits in its first write."""
    row = Row(name, size)
    for _ in range(repeats):
        stream = _Discard()
        stream.gate.clear()
        capture = Capture(stream, queue_limit=count)
        start = _clock()
        run(capture)
        row.samples.append((_clock() - start) / count * 1e9)
        stream.gate.set()
        capture.close()
    return row


def _writer(size: int, repeats: int, count: int, fill: Callable[[Capture], None]) -> Row:
    """Time the writer alone: ``count`` records queued, then the writer let go until
    ``close()`` returns."""
    row = Row("capture writer", size)
    for _ in range(repeats):
        stream = _Discard()
        stream.gate.clear()
        capture = Capture(stream, queue_limit=count)
        fill(capture)
        start = _clock()
        stream.gate.set()
        capture.close()
        row.samples.append((_clock() - start) / count * 1e9)
    return row


def main(argv: list[str] | None = None) -> int:
    """Print the table for each size given (default 1500)."""
    sizes = [int(arg) for arg in (sys.argv[1:] if argv is None else argv)] or [1500]
    print(f"{'':38} {'size':>6} {'best ns':>9} {'median ns':>10}")
    for size in sizes:
        for row in capture_rows(size):
            print(f"{row.name:38} {row.size:>6} {row.best:>9.0f} {row.median:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
