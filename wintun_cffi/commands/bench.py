"""``python -m wintun_cffi bench``: what one packet costs on each path, measured.

Every row is timed several times with :func:`time.perf_counter` (the same exact clock on every
OS) and reports the best and the median run, in nanoseconds per packet. Only the application's
side is timed: before each timed drain the far side fills the Send ring (untimed), and while
sends are timed the far side holds its driver (:meth:`emulator.Host.pause`), so the ring only
fills, and is let go afterwards (untimed).

What runs where:

* the emulator's rows, everywhere;
* the native backend's rows, on the C test double (shipped with the conformance suite), where
  a C compiler is there (it says so otherwise): the high-level paths next to the bare cffi calls
  (the floor of any binding in cffi's ABI mode), a ctypes loop that copies every packet (how
  older wrappers work) and a C loop over the same library (the physical limit).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import emulated, ip, load
from ..api import Adapter, Wintun
from ..errors import RingFullError
from ..session import Session
from .timing import Row

CAPACITY = 0x4000000  # 64 MiB: many packets per fill, even at 64 KiB each
BATCH = 256  # packets per batch call
#: The paths timed again with a capture on (:meth:`Session.capture`), and their rows' suffix.
CAPTURED = ("receive_batch+release", "read", "send")
CAPTURING = ", capturing"
_clock = time.perf_counter


def _payload(size: int) -> bytes:
    if size < 28:
        return bytes([0x45]) + bytes(size - 1) if size else b""
    return ip.udp_packet("10.6.7.7", "10.6.7.8", 5000, 5001, bytes(size - 28))


class _Bench:
    """One session on one backend, its far side, and the rows measured on it."""

    def __init__(
        self,
        wintun: Wintun,
        host: Any,
        adapter: Adapter,
        session: Session,
        size: int,
        packets: int,
        repeats: int,
    ) -> None:
        self.wintun, self.host, self.adapter, self.session = wintun, host, adapter, session
        self.size, self.packets, self.repeats = size, packets, repeats
        self.payload = _payload(size)
        self.rows: list[Row] = []

    def _fill(self) -> int:
        """Put up to ``packets`` packets into the Send ring through the driver (untimed)."""
        written, batch = 0, [self.payload] * 64
        while written + 64 <= self.packets and self.host.deliver_many(batch):
            written += 64
        while written < self.packets and self.host.deliver(self.payload):
            written += 1
        if not written:
            raise RuntimeError("the ring did not take a single packet")
        return written

    def drain(self, name: str, drain: Callable[[], int]) -> None:
        """Time ``drain()`` emptying a filled Send ring, ``repeats`` times."""
        row = Row(name, self.size)
        for _ in range(self.repeats):
            self._fill()
            start = _clock()
            count = drain()
            row.samples.append((_clock() - start) / count * 1e9)
        self.rows.append(row)

    def send(self, name: str, send: Callable[[int], int]) -> None:
        """Time ``send(limit)`` (which returns how many it sent, stopping when the ring is
        full) with the driver held, ``repeats`` times; the ring is emptied between runs."""
        row = Row(name, self.size)
        for _ in range(self.repeats):
            self.host.pause()
            try:
                start = _clock()
                count = send(self.packets)
                row.samples.append((_clock() - start) / count * 1e9)
            finally:
                self.host.resume()
            self._settle()
        self.rows.append(row)

    def _settle(self) -> None:
        """Wait (untimed) until the driver took everything the application sent."""
        deadline = time.monotonic() + 60
        while self.host.driver is not None and time.monotonic() < deadline:
            ring = self.host.driver.receive_ring
            if ring.head == ring.tail:
                break
            time.sleep(0.001)
        self.host.collect()

    # -- the high-level paths -----------------------------------------------------------

    def high_level_rows(self, prefix: str, only: tuple[str, ...] = (), suffix: str = "") -> None:
        """The rows of the session's paths (``only`` those named, if given), named
        ``f"{prefix} {path}{suffix}"``."""
        session, payload = self.session, memoryview(self.payload)

        def single() -> int:
            count, receive = 0, session.receive_packet
            while True:
                packet = receive()
                if packet is None:
                    return count
                packet.release()
                count += 1

        def many() -> int:
            count = 0
            while True:
                packets = session.receive_many(BATCH, timeout=0)
                if not packets:
                    return count
                session.release_many(packets)
                count += len(packets)

        def batch() -> int:
            count = 0
            while True:
                received = session.receive_batch(BATCH, timeout=0)
                if not len(received):
                    return count
                received.release()
                count += len(received)

        def read() -> int:
            count, read_one = 0, session.read
            try:
                while True:
                    read_one(0)
                    count += 1
            except TimeoutError:
                return count

        def read_many() -> int:
            count = 0
            while True:
                copies = session.read_many(BATCH, timeout=0)
                if not copies:
                    return count
                count += len(copies)

        def read_into() -> int:
            count, read_one, buffer = 0, session.read_into, bytearray(0xFFFF)
            try:
                while True:
                    read_one(buffer, 0)
                    count += 1
            except TimeoutError:
                return count

        def allocate(limit: int) -> int:
            count, allocate_one, size = 0, session.allocate_send_packet, len(payload)
            try:
                while count < limit:
                    buffer = allocate_one(size)
                    buffer.data[:] = payload
                    buffer.send()
                    count += 1
            except RingFullError:
                pass
            return count

        def send_one(limit: int) -> int:  # bytes, as most programs send
            count, send, payload = 0, session.send, self.payload
            try:
                while count < limit:
                    send(payload)
                    count += 1
            except RingFullError:
                pass
            return count

        def send_many(limit: int) -> int:
            count, payloads = 0, [self.payload] * BATCH
            while count < limit:
                sent = session.send_many(payloads[: min(BATCH, limit - count)])
                if not sent:
                    break
                count += sent
            return count

        drains = {
            "receive_packet+release": single,
            "receive_many+release_many": many,
            "receive_batch+release": batch,
            "read": read,
            "read_many": read_many,
            "read_into": read_into,
        }
        sends = {"allocate+fill+send": allocate, "send": send_one, "send_many": send_many}
        for path, drain in drains.items():
            if not only or path in only:
                self.drain(f"{prefix} {path}{suffix}", drain)
        for path, send in sends.items():
            if not only or path in only:
                self.send(f"{prefix} {path}{suffix}", send)

    def capturing_rows(self, prefix: str) -> str:
        """The rows of :data:`CAPTURED` paths again, capturing to a file; returns what the
        capture wrote and dropped."""
        with tempfile.TemporaryDirectory() as directory:
            capture = self.session.capture(Path(directory) / "bench.pcapng")
            try:
                self.high_level_rows(prefix, only=CAPTURED, suffix=CAPTURING)
            finally:
                capture.close()
            return (
                f"{prefix} rows{CAPTURING}: {capture.written:,} records written, "
                f"{capture.dropped:,} dropped ({self.size} bytes)"
            )


# -- the emulator ------------------------------------------------------------------------------


@contextmanager
def _emulated(size: int, packets: int, repeats: int) -> Iterator[_Bench]:
    wintun = emulated()
    wintun.set_logger(None)
    with wintun.create_adapter("Bench", tunnel_type="Bench") as adapter:
        with adapter.start_session(CAPACITY) as session:
            host = adapter.host
            host.echo_responder = False
            yield _Bench(wintun, host, adapter, session, size, packets, repeats)


def emulator_rows(size: int, packets: int, repeats: int) -> list[Row]:
    """The emulator's rows for one packet size: the application's paths and the far side's."""
    with _emulated(size, packets, repeats) as bench:
        bench.high_level_rows("emulator")
        host, payload = bench.host, bench.payload

        def deliver() -> int:  # the far side's producer: into the Send ring
            delivered, batch = 0, [payload] * 64
            start = _clock()
            while delivered + 64 <= packets and host.deliver_many(batch):
                delivered += 64
            spent = _clock() - start
            bench.session.release_many(_all(bench.session))
            return _per_packet(spent, delivered)

        def collect() -> int:  # the far side's consumer: the driver takes the app's packets
            host.pause()
            sent = bench.session.send_many([payload] * min(packets, BATCH * 64))
            start = _clock()
            host.resume()
            bench._settle()
            return _per_packet(_clock() - start, sent)

        for name, measure in (
            ("emulator host deliver", deliver),
            ("emulator host collect", collect),
        ):
            bench.rows.append(Row(name, size, [measure() for _ in range(repeats)]))
        return bench.rows


def _all(session: Session) -> list[Any]:
    packets: list[Any] = []
    while True:
        more = session.receive_many(BATCH, timeout=0)
        if not more:
            return packets
        packets += more


def _per_packet(seconds: float, count: int) -> int:
    return int(seconds / max(count, 1) * 1e9)


# -- the native backend on the C double ---------------------------------------------------------


def _double() -> tuple[str, Any] | str:
    """The 0.14 C double and its kernel harness, or why they cannot be had here."""
    from ..conformance.double.build import build_double, double_unavailable
    from ..conformance.double.kernel import DoubleKernel

    reason = double_unavailable()
    if reason is not None:
        return f"no native rows: {reason}"
    out = Path(tempfile.gettempdir()) / "wintun-cffi-bench"
    path = str(build_double("0.14", out))
    return path, DoubleKernel(path)


def native_rows(size: int, packets: int, repeats: int) -> tuple[list[Row], list[str]]:
    """The native backend's rows on the C double for one size, and notes on them (or why
    there are none)."""
    found = _double()
    if isinstance(found, str):
        return [], [found]
    path, kernel = found
    wintun = load(path)
    wintun.set_logger(None)
    try:
        with wintun.create_adapter("Bench", tunnel_type="Bench") as adapter:
            with adapter.start_session(CAPACITY) as session:
                host = kernel.last_host
                host.echo_responder = False
                bench = _Bench(wintun, host, adapter, session, size, packets, repeats)
                bench.high_level_rows("native")
                _bare_rows(bench, path)
                return bench.rows, [bench.capturing_rows("native")]
    finally:
        kernel.reset()
        kernel.close()


class _Minimal:
    """The least a per-packet object holds: its view and its token."""

    __slots__ = ("view", "token")

    def __init__(self, view: memoryview, token: Any) -> None:
        self.view, self.token = view, token


def _bare_rows(bench: _Bench, path: str) -> None:
    """The floor of cffi's ABI mode, a ctypes copying loop, and a C loop."""
    backend: Any = bench.wintun.backend
    lib, ffi = backend._lib, backend._ffi
    pointer = bench.session._handle.pointer  # type: ignore[attr-defined]
    payload, size = bench.payload, bench.size

    def bare() -> int:
        count, size_out = 0, ffi.new("DWORD *")
        receive, release = lib.WintunReceivePacket, lib.WintunReleaseReceivePacket
        while True:
            packet = receive(pointer, size_out)
            if not packet:
                return count
            release(pointer, packet)
            count += 1

    def bare_view() -> int:  # the floor of a zero-copy view: one buffer, one memoryview
        count, size_out = 0, ffi.new("DWORD *")
        receive, release, buffer = (
            lib.WintunReceivePacket,
            lib.WintunReleaseReceivePacket,
            ffi.buffer,
        )
        while True:
            packet = receive(pointer, size_out)
            if not packet:
                return count
            memoryview(buffer(packet, size_out[0])).release()
            release(pointer, packet)
            count += 1

    def bare_object() -> int:  # ... and the least a packet object costs: made, recorded, dropped
        count, size_out, record = 0, ffi.new("DWORD *"), {}
        receive, release, buffer = (
            lib.WintunReceivePacket,
            lib.WintunReleaseReceivePacket,
            ffi.buffer,
        )
        while True:
            packet = receive(pointer, size_out)
            if not packet:
                return count
            record[packet] = held = _Minimal(memoryview(buffer(packet, size_out[0])), packet)
            held.view.release()
            del record[held.token]
            release(pointer, packet)
            count += 1

    def bare_copy() -> int:  # the floor of any copying ABI-mode binding: the C calls, a copy
        count, size_out = 0, ffi.new("DWORD *")
        receive, release, buffer = (
            lib.WintunReceivePacket,
            lib.WintunReleaseReceivePacket,
            ffi.buffer,
        )
        while True:
            packet = receive(pointer, size_out)
            if not packet:
                return count
            bytes(buffer(packet, size_out[0]))
            release(pointer, packet)
            count += 1

    def bare_send(limit: int) -> int:
        count, allocate, send, copy = (
            0,
            lib.WintunAllocateSendPacket,
            lib.WintunSendPacket,
            ffi.memmove,
        )
        while count < limit:
            packet = allocate(pointer, size)
            if not packet:
                break
            copy(packet, payload, size)
            send(pointer, packet)
            count += 1
        return count

    def bare_view_send(limit: int) -> int:  # the zero-copy floor: a view, filled, then sent
        count, allocate, send, buffer = (
            0,
            lib.WintunAllocateSendPacket,
            lib.WintunSendPacket,
            ffi.buffer,
        )
        while count < limit:
            packet = allocate(pointer, size)
            if not packet:
                break
            view = memoryview(buffer(packet, size))
            view[:] = payload
            view.release()
            send(pointer, packet)
            count += 1
        return count

    dll = ctypes.CDLL(path)
    c_receive = dll.WintunReceivePacket
    c_receive.restype = ctypes.c_void_p
    c_receive.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    c_release = dll.WintunReleaseReceivePacket
    c_release.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    c_session = ctypes.c_void_p(int(ffi.cast("uintptr_t", pointer)))

    def ctypes_copying() -> int:
        count, size_out = 0, ctypes.c_uint32()
        while True:
            packet = c_receive(c_session, ctypes.byref(size_out))
            if not packet:
                return count
            ctypes.string_at(packet, size_out.value)
            c_release(c_session, packet)
            count += 1

    bench.drain("native bare cffi receive+release", bare)
    bench.drain("native bare cffi receive+view+release", bare_view)
    bench.drain("native bare cffi receive+view+object", bare_object)
    bench.drain("native bare cffi receive+copy+release", bare_copy)
    bench.drain("native ctypes copying loop", ctypes_copying)
    bench.send("native bare cffi allocate+copy+send", bare_send)
    bench.send("native bare cffi allocate+view+fill+send", bare_view_send)
    try:
        drain_ffi, drain_lib = _c_drain(Path(tempfile.gettempdir()) / "wintun-cffi-bench")
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"(no C loop row: {error})", file=sys.stderr)
        return
    receive_address = drain_ffi.cast("void *", ctypes.cast(c_receive, ctypes.c_void_p).value)
    release_address = drain_ffi.cast("void *", ctypes.cast(c_release, ctypes.c_void_p).value)
    session_address = drain_ffi.cast("void *", c_session.value)
    bench.drain(
        "native C loop (limit)",
        lambda: int(
            drain_lib.wintun_bench_drain(session_address, receive_address, release_address)
        ),
    )


def _c_drain(out: Path) -> tuple[Any, Any]:
    """The compiled C loop of ``conformance/double/bench_drain.c``, through cffi."""
    import cffi

    from ..conformance.double.build import HERE

    source = HERE / "bench_drain.c"
    library = out / "libwintun_bench_drain.so"
    compiler = os.environ.get("CC", "cc")
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source)], check=True
    )
    ffi = cffi.FFI()
    ffi.cdef("long wintun_bench_drain(void *, void *, void *);")
    return ffi, ffi.dlopen(str(library))


# -- import time, ratios, output ----------------------------------------------------------------


def import_seconds(repeat: int = 5) -> float:
    """The fastest of ``repeat`` fresh-interpreter ``import wintun_cffi`` times."""
    code = (
        "import time; t = time.perf_counter(); import wintun_cffi; print(time.perf_counter() - t)"
    )
    # As an installed package imports: from cached bytecode (the first run writes it).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(repeat + 1):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        times.append(float(result.stdout))
    return min(times[1:])


#: The ratios printed after the table: (name, row, row it is compared with, what it shows).
#: The goals the project holds them to are on the benchmarks page, not here.
RATIOS: tuple[tuple[str, str, str, str], ...] = (
    (
        "native single ÷ bare cffi",
        "native receive_packet+release",
        "native bare cffi receive+release",
        "what the API adds to the floor, per packet",
    ),
    (
        "native batch ÷ bare cffi",
        "native receive_batch+release",
        "native bare cffi receive+release",
        "what batches add to the floor",
    ),
    (
        "ctypes copying ÷ native single",
        "native ctypes copying loop",
        "native receive_packet+release",
        "how much longer a copying ctypes loop takes",
    ),
    (
        "ctypes copying ÷ native batch",
        "native ctypes copying loop",
        "native receive_batch+release",
        "the same against batches",
    ),
    (
        "ctypes copying ÷ native read",
        "native ctypes copying loop",
        "native read",
        "a copying ctypes loop against the copying path",
    ),
    (
        "ctypes copying ÷ native read_many",
        "native ctypes copying loop",
        "native read_many",
        "the same against the copying path's batches",
    ),
    (
        "native read ÷ bare cffi copying",
        "native read",
        "native bare cffi receive+copy+release",
        "what the copying path adds to the copying floor",
    ),
    (
        "native send ÷ bare cffi sending",
        "native send",
        "native bare cffi allocate+copy+send",
        "what send adds to the sending floor",
    ),
    (
        "native allocate+fill+send ÷ bare cffi",
        "native allocate+fill+send",
        "native bare cffi allocate+view+fill+send",
        "what the API adds to the zero-copy sending floor",
    ),
    (
        "native batch capturing ÷ not",
        f"native receive_batch+release{CAPTURING}",
        "native receive_batch+release",
        "what a capture adds to batches",
    ),
    (
        "native read capturing ÷ not",
        f"native read{CAPTURING}",
        "native read",
        "what a capture adds to the copying path",
    ),
    (
        "native send capturing ÷ not",
        f"native send{CAPTURING}",
        "native send",
        "what a capture adds to send",
    ),
    (
        "emulator single ÷ native single",
        "emulator receive_packet+release",
        "native receive_packet+release",
        "the pure-Python client against the C one",
    ),
    (
        "native single ÷ native batch",
        "native receive_packet+release",
        "native receive_batch+release",
        "what batching saves",
    ),
    (
        "native allocate+fill+send ÷ native single",
        "native allocate+fill+send",
        "native receive_packet+release",
        "sending against receiving",
    ),
)

#: What each row measures (by its name without "emulator " / "native "; "ip" rows by prefix).
ROW_MEANINGS: dict[str, str] = {
    "receive_packet+release": "one packet received and released",
    "receive_many+release_many": "receive_many and release_many, batches of 256",
    "receive_batch+release": "receive_batch, the batch released as one (256)",
    "read": "read: a copy of each packet as bytes (taken, copied, given back ahead)",
    "read_many": "read_many, batches of 256 copies",
    "read_into": "read_into one reused buffer",
    "allocate+fill+send": "allocate, copy into the view, send",
    "send": "send of bytes",
    "send_many": "send_many, batches of 256",
    "host deliver": "the emulated system putting packets into the Send ring",
    "host collect": "the emulated system taking packets out of the Receive ring",
    "bare cffi receive+release": "the C calls alone: the floor of any ABI-mode binding",
    "bare cffi receive+view+release": "the floor of any zero-copy ABI-mode binding",
    "bare cffi receive+view+object": "the floor of an API with one object per packet",
    "bare cffi receive+copy+release": "the C calls and a copy to bytes: the copying floor",
    "bare cffi allocate+copy+send": "the floor for sending",
    "bare cffi allocate+view+fill+send": "the floor for sending through a zero-copy view",
    "ctypes copying loop": "a ctypes loop copying each packet out (older wrappers)",
    "C loop (limit)": "a C loop over the same library: what the machine allows",
    "ip convenience": "a packet built or answered with wintun_cffi.ip's helpers",
    "ip fast": "the same with wintun_cffi.ip's fast path",
}


def row_meaning(name: str) -> str | None:
    """What the row ``name`` measures (None if unknown)."""
    short = name.removeprefix("emulator ").removeprefix("native ")
    if short.endswith(CAPTURING) and short.removesuffix(CAPTURING) in ROW_MEANINGS:
        return f"{ROW_MEANINGS[short.removesuffix(CAPTURING)]}, capturing to a pcapng file"
    if short in ROW_MEANINGS:
        return ROW_MEANINGS[short]
    for prefix in ("ip convenience", "ip fast"):
        if short.startswith(prefix):
            return ROW_MEANINGS[prefix]
    return None


def ratios(rows: list[Row], size: int) -> list[dict[str, Any]]:
    """Each ratio at ``size`` (medians; None where a row is missing)."""
    by_name = {row.name: row for row in rows if row.size == size}
    found = []
    for name, numerator, denominator, meaning in RATIOS:
        top, bottom = by_name.get(numerator), by_name.get(denominator)
        value = top.median / bottom.median if top and bottom and bottom.median else None
        found.append(
            {
                "ratio": name,
                "size": size,
                "value": None if value is None else round(value, 2),
                "meaning": meaning,
            }
        )
    return found


#: What the native rows are, said with every run that has them.
_NATIVE_SCOPE = (
    "native rows: the binding over the 0.14 C test double, with the emulator's "
    "driver as the kernel; the real wintun.dll and driver are not measured by "
    "this command (receiving needs traffic from the system)"
)


def main(sizes: list[int], packets: int, as_json: bool, repeats: int = 5) -> int:
    """The ``bench`` command: a table (or exactly one JSON document on stdout)."""
    for size in sizes:
        if not 0 <= size <= 0xFFFF:
            raise SystemExit(f"packet size {size} is outside 0..65535")
    say = (lambda text: print(text, file=sys.stderr)) if as_json else print
    rows: list[Row] = []
    notes: list[str] = []
    for size in sizes:
        count = max(1000, packets if size <= 1500 else packets // 10)
        rows += emulator_rows(size, count, repeats)
        native, said = native_rows(size, count, repeats)
        rows += native
        if size >= 48:  # an ICMPv6 echo request fits
            from .ip_bench import ip_rows

            rows += ip_rows(size, repeats)
        notes += [note for note in said if note not in notes]
    if any(row.name.startswith("native") for row in rows):
        notes.append(_NATIVE_SCOPE)
    seconds = import_seconds()
    goals = [ratio for size in sizes for ratio in ratios(rows, size)]
    if as_json:
        print(
            json.dumps(
                {
                    "machine": {
                        "python": sys.version.split()[0],
                        "implementation": platform.python_implementation(),
                        "system": platform.system(),
                        "processor": platform.machine(),
                        "cores": os.cpu_count(),
                    },
                    "repeats": repeats,
                    "rows": [row.as_dict() for row in rows],
                    "import_ms": round(seconds * 1000, 1),
                    "ratios": goals,
                    "notes": notes,
                },
                indent=2,
            )
        )
        return 0
    say(f"{'measurement':42} {'bytes':>6} {'best ns':>9} {'median ns':>10} {'packets/s':>12}")
    for row in rows:
        say(
            f"{row.name:42} {row.size:6} {row.best:9,.0f} {row.median:10,.0f} "
            f"{1e9 / row.median:12,.0f}"
        )
    say(f"import wintun_cffi: {seconds * 1000:.1f} ms")
    for note in notes:
        say(note)
    say("what each row measures:")
    for name in dict.fromkeys(row.name for row in rows):
        say(f"  {name:42} {row_meaning(name) or ''}")
    say("ratios (medians):")
    for ratio in goals:
        value = "n/a" if ratio["value"] is None else f"{ratio['value']:.2f}"
        say(f"  {ratio['ratio']:42} {ratio['size']:6} {value:>6}  {ratio['meaning']}")
    return 0
