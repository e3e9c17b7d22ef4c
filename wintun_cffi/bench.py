"""``python -m wintun_cffi bench``: packets per second through every layer, one thread.

Rows: the emulator (high-level receive+release, allocate+fill+send, and the batch forms), and,
when run from the repository with a C compiler, the native backend on the C test double: the
high-level zero-copy path, the bare cffi calls (the floor of any cffi binding), a ctypes loop
that copies each packet (how existing Python wrappers work) and a C loop over the same library
(the physical limit). Receive rows time only the application's side: the Send ring is filled
by the emulated driver before each timed drain.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from . import emulated, ip, load
from .api import Adapter, Wintun
from .errors import RingFullError
from .session import Session

CAPACITY = 0x4000000  # 64 MiB: many packets per fill, even at 64 KiB each
BATCH = 64


@dataclass
class Row:
    """One measurement."""

    name: str
    size: int
    packets: int
    seconds: float

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0

    @property
    def ns_per_packet(self) -> float:
        return self.seconds / self.packets * 1e9 if self.packets else 0.0


def _payload(size: int) -> bytes:
    if size < 28:
        return bytes(size)
    body = ip.udp_packet("10.6.7.7", "10.6.7.8", 5000, 5001, bytes(size - 28))
    return body


def _fill(host: Any, payload: bytes, limit: int) -> int:
    """Put up to ``limit`` packets into the Send ring through the driver (untimed)."""
    written = 0
    batch = [payload] * BATCH
    while written + BATCH <= limit and host.deliver_many(batch):
        written += BATCH
    while written < limit and host.deliver(payload):
        written += 1
    return written


def _drain_timed(name: str, host: Any, payload: bytes, total: int,
                 drain: Callable[[], int]) -> Row:
    """Repeatedly fill (untimed) and drain (timed) until at least ``total`` packets."""
    done = 0
    spent = 0.0
    while done < total:
        if not _fill(host, payload, total - done):
            raise RuntimeError("the ring did not accept a single packet")
        start = time.perf_counter()
        done += drain()
        spent += time.perf_counter() - start
    return Row(name, len(payload), done, spent)


def _receive_single(session: Session) -> Callable[[], int]:
    def drain() -> int:
        count = 0
        receive = session.receive_packet
        while True:
            packet = receive()
            if packet is None:
                return count
            packet.release()
            count += 1
    return drain


def _receive_batch(session: Session) -> Callable[[], int]:
    def drain() -> int:
        count = 0
        while True:
            packets = session.receive_many(BATCH, timeout=0)
            if not packets:
                return count
            session.release_many(packets)
            count += len(packets)
    return drain


def _send_timed(session: Session, payload: bytes, total: int, batch: bool) -> float:
    """Send ``total`` packets, timing only this thread's CPU (the driver runs beside it)."""
    done = 0
    spent = 0.0
    payloads = [payload] * BATCH
    view = memoryview(payload)
    while done < total:
        start = time.thread_time()
        if batch:
            done += session.send_many(payloads)
        else:
            try:
                while done < total:
                    buffer = session.allocate_send_packet(len(view))
                    buffer.data[:] = view
                    buffer.send()
                    done += 1
            except RingFullError:
                pass
        spent += time.thread_time() - start
        time.sleep(0)  # let the driver's consumer make room
    return spent


def _session(wintun: Wintun) -> tuple[Adapter, Session]:
    if wintun.api == "0.14":
        adapter = wintun.create_adapter("Bench", tunnel_type="Bench")
    else:
        adapter = wintun.create_adapter("Bench", pool="Bench")
    return adapter, adapter.start_session(CAPACITY)


def emulator_rows(size: int, total: int) -> list[Row]:
    """The emulator's rows for one packet size."""
    wintun = emulated()
    wintun.set_logger(None)
    adapter, session = _session(wintun)
    host = adapter.host
    host.echo_responder = False
    payload = _payload(size)
    rows = [
        _drain_timed("emulator receive+release", host, payload, total,
                     _receive_single(session)),
        _drain_timed("emulator receive_many+release_many", host, payload, total,
                     _receive_batch(session)),
        Row("emulator allocate+fill+send", size, total, _send_timed(session, payload, total, False)),
        Row("emulator send_many", size, total, _send_timed(session, payload, total, True)),
    ]
    session.close()
    adapter.close()
    return rows


def _double() -> tuple[str, Any] | None:
    """The 0.14 C double and its kernel harness, if there is a C compiler."""
    from .conformance.double.build import build_double, compiler_available
    from .conformance.double.kernel import DoubleKernel

    if not compiler_available():
        return None
    out = Path(tempfile.gettempdir()) / "wintun-cffi-bench"
    path = str(build_double("0.14", out))
    return path, DoubleKernel(path)


def _c_drain(path: str, out: Path) -> Any:
    """The compiled C loop of wintun_cffi/conformance/double/bench_drain.c, through cffi."""
    import cffi

    from .conformance.double.build import HERE

    source = HERE / "bench_drain.c"
    library = out / "libwintun_bench_drain.so"
    compiler = os.environ.get("CC", "cc")
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True)
    ffi = cffi.FFI()
    ffi.cdef("long wintun_bench_drain(void *, void *, void *);")
    return ffi, ffi.dlopen(str(library))


def native_rows(size: int, total: int) -> list[Row]:
    """The native backend's rows on the C double, for one packet size."""
    found = _double()
    if found is None:
        return []
    path, kernel = found
    wintun = load(path)
    wintun.set_logger(None)
    adapter, session = _session(wintun)
    host = kernel.last_host
    host.echo_responder = False
    payload = _payload(size)
    backend: Any = wintun.backend
    lib, ffi = backend._lib, backend._ffi
    pointer = session._handle.pointer  # type: ignore[attr-defined]

    def bare() -> int:
        count = 0
        size_out = ffi.new("DWORD *")
        receive, release = lib.WintunReceivePacket, lib.WintunReleaseReceivePacket
        while True:
            packet = receive(pointer, size_out)
            if not packet:
                return count
            release(pointer, packet)
            count += 1

    dll = ctypes.CDLL(path)
    c_receive = dll.WintunReceivePacket
    c_receive.restype = ctypes.c_void_p
    c_receive.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    c_release = dll.WintunReleaseReceivePacket
    c_release.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    c_session = ctypes.c_void_p(int(ffi.cast("uintptr_t", pointer)))

    def ctypes_copying() -> int:
        count = 0
        size_out = ctypes.c_uint32()
        while True:
            packet = c_receive(c_session, ctypes.byref(size_out))
            if not packet:
                return count
            ctypes.string_at(packet, size_out.value)
            c_release(c_session, packet)
            count += 1

    rows = [
        _drain_timed("native high-level receive+release", host, payload, total,
                     _receive_single(session)),
        _drain_timed("native receive_many+release_many", host, payload, total,
                     _receive_batch(session)),
        _drain_timed("native bare cffi calls", host, payload, total, bare),
        _drain_timed("native ctypes copying loop", host, payload, total, ctypes_copying),
        Row("native high-level allocate+fill+send", size, total,
            _send_timed(session, payload, total, False)),
    ]
    try:
        drain_ffi, drain_lib = _c_drain(path, Path(tempfile.gettempdir()) / "wintun-cffi-bench")
        receive_address = drain_ffi.cast("void *", ctypes.cast(c_receive, ctypes.c_void_p).value)
        release_address = drain_ffi.cast("void *", ctypes.cast(c_release, ctypes.c_void_p).value)
        session_address = drain_ffi.cast("void *", c_session.value)

        def c_loop() -> int:
            return int(drain_lib.wintun_bench_drain(session_address, receive_address,
                                                    release_address))

        rows.append(_drain_timed("native C loop (limit)", host, payload, total, c_loop))
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"(C loop skipped: {error})", file=sys.stderr)
    session.close()
    adapter.close()
    kernel.reset()
    kernel.close()
    return rows


def import_seconds(repeat: int = 5) -> float:
    """The fastest of ``repeat`` fresh-interpreter ``import wintun_cffi`` times."""
    code = ("import time; t = time.perf_counter(); import wintun_cffi; "
            "print(time.perf_counter() - t)")
    # As an installed package imports: from cached bytecode (the first run writes it).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(repeat + 1):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, env=env)
        times.append(float(result.stdout))
    return min(times[1:])


def _ratio(rows: list[Row], slow: str, fast: str, size: int) -> float | None:
    by_name = {(row.name, row.size): row for row in rows}
    a, b = by_name.get((slow, size)), by_name.get((fast, size))
    if a is None or b is None or not b.ns_per_packet:
        return None
    return a.ns_per_packet / b.ns_per_packet


def main(sizes: list[int], packets: int, as_json: bool) -> int:
    """The ``bench`` command: print the table (and JSON)."""
    rows: list[Row] = []
    for size in sizes:
        if not 0 <= size <= 0xFFFF:
            raise SystemExit(f"packet size {size} is outside 0..65535")
        count = max(1000, packets if size <= 1500 else packets // 10)
        rows += emulator_rows(size, count)
        rows += native_rows(size, count)
    print(f"{'measurement':40} {'bytes':>6} {'packets/s':>12} {'ns/packet':>10}")
    for row in rows:
        print(f"{row.name:40} {row.size:6} {row.packets_per_second:12,.0f} "
              f"{row.ns_per_packet:10,.0f}")
    seconds = import_seconds()
    print(f"import wintun_cffi: {seconds * 1000:.1f} ms")
    size = 1500 if 1500 in sizes else sizes[0]
    ratios = {
        "high-level / bare cffi (time, receive+release)": _ratio(
            rows, "native high-level receive+release", "native bare cffi calls", size),
        "ctypes copying / high-level (time)": _ratio(
            rows, "native ctypes copying loop", "native high-level receive+release", size),
        "batch / single (packets/s, emulator receive)": _ratio(
            rows, "emulator receive+release", "emulator receive_many+release_many", size),
        "batch / single (packets/s, emulator send)": _ratio(
            rows, "emulator allocate+fill+send", "emulator send_many", size),
    }
    print(f"ratios at {size} bytes:")
    for name, value in ratios.items():
        print(f"  {name}: {'n/a' if value is None else f'{value:.2f}'}")
    if as_json:
        print(json.dumps({
            "rows": [dict(asdict(row), packets_per_second=row.packets_per_second,
                          ns_per_packet=row.ns_per_packet) for row in rows],
            "import_ms": seconds * 1000,
            "ratios": ratios,
        }, indent=2))
    return 0
