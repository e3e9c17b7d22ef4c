"""The C test double (wintun_cffi/conformance/double/wintun_double.c), driven directly
through cffi ABI mode.

The test plays the kernel by hand: it reaches the session's ring memory through
``WintunDoubleGetSessionRings`` + ``ffi.buffer`` and reads and writes it with the emulator's
ring layout (:class:`emulator.ring.Ring`). The cdefs below are this test's own, minimal ones
(not the project's generated declarations). It runs against the build of the running Python's
OS: the Linux library (last error in ``errno``, eventfd events) or the Windows DLL (last error
through ``GetLastError``, auto-reset Win32 events).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.ring import DATA_OFFSET, Ring
from wintun_cffi import platform
from wintun_cffi.conformance.double.build import (
    PREBUILT_ENV,
    WINDOWS,
    DoubleBuildError,
    asan_runtime,
    build_double,
    compiler_available,
    compiler_command,
    double_unavailable,
    host_target,
    library_name,
)
from wintun_cffi.conformance.double.kernel import adopt_event
from wintun_cffi.constants import (
    API_GENERATIONS,
    ERROR_ALREADY_EXISTS,
    ERROR_ALREADY_INITIALIZED,
    ERROR_BUFFER_OVERFLOW,
    ERROR_FILE_NOT_FOUND,
    ERROR_HANDLE_EOF,
    ERROR_INF_IN_USE_BY_DEVICES,
    ERROR_INVALID_DATA,
    ERROR_INVALID_PARAMETER,
    ERROR_NO_MORE_ITEMS,
    ERROR_NOT_FOUND,
    MAX_IP_PACKET_SIZE,
    MIN_RING_CAPACITY,
    PACKET_RELEASE_FLAG,
    RING_DEAD_MARKER,
    record_size,
    ring_size,
)
from wintun_cffi.platform import _win32
from wintun_cffi.platform._exports import DECLARED

_UNAVAILABLE = double_unavailable()
if _UNAVAILABLE is not None:
    pytest.skip(_UNAVAILABLE, allow_module_level=True)

cffi = pytest.importorskip("cffi")

GENERATIONS = API_GENERATIONS

#: What each generation exports: what our header of it declares (wintun_cffi/platform/include).
EXPORTS: dict[str, frozenset[str]] = {api: frozenset(DECLARED[api].exports) for api in GENERATIONS}
ALL_NAMES = frozenset().union(*EXPORTS.values())
HELPERS = frozenset(
    {
        "WintunDoubleGetSessionRings",
        "WintunDoubleSetSessionHooks",
        "WintunDoubleMarkDead",
        "WintunDoubleReset",
        "WintunDoubleLog",
        "WintunDoubleAdapterCount",
        "WintunDoubleSessionCount",
        "WintunDoubleApi",
        "WintunDoubleSetDriverVersion",
        "WintunDoubleGetAdapterInfo",
        "WintunDoubleSetSignalUnmovedTail",
        "WintunDoubleSetSignalAtEnd",
        "WintunDoubleSetRegisterHook",
    }
)

#: The double's own refusal (WintunDoubleReset with a session open); no Wintun call uses it.
ERROR_BUSY = 170

CAP = MIN_RING_CAPACITY

TYPES = """
typedef uint16_t WCHAR;
typedef uint32_t DWORD;
typedef uint64_t DWORD64;
typedef int BOOL;
typedef uint8_t BYTE;
typedef void *HANDLE;
typedef intptr_t LPARAM;
typedef struct { uint32_t Data1; uint16_t Data2; uint16_t Data3; uint8_t Data4[8]; } GUID;
typedef union { uint64_t Value; } NET_LUID;
typedef void *WINTUN_ADAPTER_HANDLE;
typedef void *WINTUN_SESSION_HANDLE;
"""
COMMON = """
void WintunGetAdapterLUID(WINTUN_ADAPTER_HANDLE, NET_LUID *);
DWORD WintunGetRunningDriverVersion(void);
WINTUN_SESSION_HANDLE WintunStartSession(WINTUN_ADAPTER_HANDLE, DWORD);
void WintunEndSession(WINTUN_SESSION_HANDLE);
HANDLE WintunGetReadWaitEvent(WINTUN_SESSION_HANDLE);
BYTE *WintunReceivePacket(WINTUN_SESSION_HANDLE, DWORD *);
BYTE *WintunAllocateSendPacket(WINTUN_SESSION_HANDLE, DWORD);
void WintunSendPacket(WINTUN_SESSION_HANDLE, const BYTE *);
BOOL WintunDoubleGetSessionRings(WINTUN_SESSION_HANDLE, void **, void **, DWORD *, DWORD *,
                                 HANDLE *, HANDLE *);
void WintunDoubleSetSessionHooks(void (*)(WINTUN_SESSION_HANDLE), void (*)(WINTUN_SESSION_HANDLE));
void WintunDoubleMarkDead(WINTUN_SESSION_HANDLE);
BOOL WintunDoubleReset(void);
void WintunDoubleLog(int, const WCHAR *);
DWORD WintunDoubleAdapterCount(void);
DWORD WintunDoubleSessionCount(void);
const char *WintunDoubleApi(void);
void WintunDoubleSetDriverVersion(DWORD);
void WintunDoubleSetSignalUnmovedTail(BOOL);
void WintunDoubleSetSignalAtEnd(BOOL);
void WintunDoubleSetRegisterHook(DWORD (*)(WINTUN_SESSION_HANDLE));
BOOL WintunDoubleGetAdapterInfo(WINTUN_ADAPTER_HANDLE, WCHAR *, GUID *, BOOL *);
"""
PER_GENERATION = {
    "0.14": """
WINTUN_ADAPTER_HANDLE WintunCreateAdapter(const WCHAR *, const WCHAR *, const GUID *);
WINTUN_ADAPTER_HANDLE WintunOpenAdapter(const WCHAR *);
void WintunCloseAdapter(WINTUN_ADAPTER_HANDLE);
BOOL WintunDeleteDriver(void);
void WintunSetLogger(void (*)(int, DWORD64, const WCHAR *));
void WintunReleaseReceivePacket(WINTUN_SESSION_HANDLE, const BYTE *);
""",
    "pool": """
WINTUN_ADAPTER_HANDLE WintunCreateAdapter(const WCHAR *, const WCHAR *, const GUID *, BOOL *);
WINTUN_ADAPTER_HANDLE WintunOpenAdapter(const WCHAR *, const WCHAR *);
void WintunFreeAdapter(WINTUN_ADAPTER_HANDLE);
BOOL WintunDeleteAdapter(WINTUN_ADAPTER_HANDLE, BOOL, BOOL *);
BOOL WintunEnumAdapters(const WCHAR *, BOOL (*)(WINTUN_ADAPTER_HANDLE, LPARAM), LPARAM);
BOOL WintunDeletePoolDriver(const WCHAR *, BOOL *);
BOOL WintunGetAdapterName(WINTUN_ADAPTER_HANDLE, WCHAR *);
BOOL WintunSetAdapterName(WINTUN_ADAPTER_HANDLE, const WCHAR *);
void WintunSetLogger(void (*)(int, const WCHAR *));
void WintunReleaseReceivePacket(WINTUN_SESSION_HANDLE, const BYTE *);
""",
    "seed": """
WINTUN_ADAPTER_HANDLE WintunCreateAdapter(const WCHAR *, const WCHAR *, const GUID *, BOOL *);
WINTUN_ADAPTER_HANDLE WintunGetAdapter(const WCHAR *, const WCHAR *);
HANDLE WintunOpenAdapterDeviceObject(WINTUN_ADAPTER_HANDLE);
void WintunFreeAdapter(WINTUN_ADAPTER_HANDLE);
BOOL WintunDeleteAdapter(WINTUN_ADAPTER_HANDLE, BOOL, BOOL *);
BOOL WintunEnumAdapters(const WCHAR *, BOOL (*)(WINTUN_ADAPTER_HANDLE, LPARAM), LPARAM);
BOOL WintunDeletePoolDriver(const WCHAR *, BOOL *);
BOOL WintunGetAdapterName(WINTUN_ADAPTER_HANDLE, WCHAR *);
BOOL WintunSetAdapterName(WINTUN_ADAPTER_HANDLE, const WCHAR *);
void WintunSetLogger(BOOL (*)(int, const WCHAR *));
void WintunReceiveRelease(WINTUN_SESSION_HANDLE, const BYTE *);
""",
}


def cdef_for(api: str) -> str:
    """This generation's declarations plus a ``void X(void)`` stub for every foreign name."""
    foreign = sorted(ALL_NAMES - EXPORTS[api])
    stubs = "".join(f"void {name}(void);\n" for name in foreign)
    return TYPES + COMMON + PER_GENERATION[api] + stubs


class Double:
    """One loaded build of the double plus small conveniences for the tests."""

    def __init__(self, api: str, path: Path) -> None:
        self.api = api
        self.ffi = cffi.FFI()
        self.ffi.cdef(cdef_for(api))
        self.lib: Any = self.ffi.dlopen(str(path))
        self.keep: list[Any] = []

    # -- strings and errors

    def w(self, text: str) -> Any:
        units = struct.unpack(f"<{len(text.encode('utf-16-le')) // 2}H", text.encode("utf-16-le"))
        return self.ffi.new("WCHAR[]", [*units, 0])

    def unw(self, ptr: Any, limit: int = 128) -> str:
        units = []
        for i in range(limit):
            if ptr[i] == 0:
                break
            units.append(ptr[i])
        return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le")

    def last_error(self) -> int:
        """The double's last error: GetLastError on Windows, errno elsewhere (as a DWORD)."""
        return platform.last_error(self.ffi)

    def clear_last_error(self) -> None:
        if platform.IS_WINDOWS:
            _win32.kernel32()[0].SetLastError(0)  # cffi keeps it per thread, for every library
        else:
            self.ffi.errno = 0

    def fails(self, result: Any, code: int) -> None:
        if isinstance(result, self.ffi.CData):
            assert result == self.ffi.NULL
        else:
            assert not result
        assert self.last_error() == code

    def call_err(self, func: Any, *args: Any) -> tuple[Any, int]:
        self.clear_last_error()
        result = func(*args)
        return result, self.last_error()

    # -- adapters, in each generation's own terms

    @property
    def pool_era(self) -> bool:
        return self.api != "0.14"

    def create(
        self,
        name: str,
        *,
        pool: str = "Pool",
        tunnel_type: str = "Test",
        guid: uuid.UUID | None = None,
    ) -> Any:
        g = self.ffi.NULL
        if guid is not None:
            g = self.ffi.new("GUID *")
            self.ffi.memmove(g, guid.bytes_le, 16)
        if self.pool_era:
            reboot = self.ffi.new("BOOL *", 7)
            handle = self.lib.WintunCreateAdapter(self.w(pool), self.w(name), g, reboot)
            assert reboot[0] == 0
            return handle
        return self.lib.WintunCreateAdapter(self.w(name), self.w(tunnel_type), g)

    def open(self, name: str, *, pool: str = "Pool") -> Any:
        if self.api == "0.14":
            return self.lib.WintunOpenAdapter(self.w(name))
        if self.api == "pool":
            return self.lib.WintunOpenAdapter(self.w(pool), self.w(name))
        return self.lib.WintunGetAdapter(self.w(pool), self.w(name))

    def close(self, handle: Any) -> None:
        if self.api == "0.14":
            self.lib.WintunCloseAdapter(handle)
        else:
            self.lib.WintunFreeAdapter(handle)

    def info(self, handle: Any) -> tuple[str, uuid.UUID, bool]:
        name = self.ffi.new("WCHAR[128]")
        guid = self.ffi.new("GUID *")
        present = self.ffi.new("BOOL *")
        assert self.lib.WintunDoubleGetAdapterInfo(handle, name, guid, present)
        return self.unw(name), uuid.UUID(bytes_le=bytes(self.ffi.buffer(guid))), bool(present[0])

    def luid(self, handle: Any) -> int:
        out = self.ffi.new("NET_LUID *")
        self.lib.WintunGetAdapterLUID(handle, out)
        return int(out.Value)

    def release(self, session: Any, packet: Any) -> None:
        if self.api == "seed":
            self.lib.WintunReceiveRelease(session, packet)
        else:
            self.lib.WintunReleaseReceivePacket(session, packet)


class Kernel:
    """The driver side of one session, played by hand on the ring memory."""

    def __init__(self, d: Double, session: Any) -> None:
        ffi = d.ffi
        send, receive = ffi.new("void **"), ffi.new("void **")
        size, cap = ffi.new("DWORD *"), ffi.new("DWORD *")
        read_wait, tail_moved = ffi.new("HANDLE *"), ffi.new("HANDLE *")
        assert d.lib.WintunDoubleGetSessionRings(
            session, send, receive, size, cap, read_wait, tail_moved
        )
        self.ring_size, self.capacity = int(size[0]), int(cap[0])
        self.send_addr = int(ffi.cast("uintptr_t", send[0]))
        self.receive_addr = int(ffi.cast("uintptr_t", receive[0]))
        self.send = Ring(memoryview(ffi.buffer(send[0], self.ring_size)), self.capacity)
        self.receive = Ring(memoryview(ffi.buffer(receive[0], self.ring_size)), self.capacity)
        self.read_wait_value = handle_value(ffi, read_wait[0])
        self.tail_moved_value = handle_value(ffi, tail_moved[0])
        #: The Send ring's TailMoved (read-wait) and the Receive ring's TailMoved events.
        self.read_wait = adopt_event(self.read_wait_value)
        self.tail_moved = adopt_event(self.tail_moved_value)
        self.ffi = ffi

    # Send ring (kernel produces)
    def produce(self, payload: bytes) -> int:
        ring = self.send
        tail = ring.tail
        ring.set_record_size_field(tail, len(payload))
        ring.payload(tail, len(payload))[:] = payload
        ring.tail = ring.wrap(tail + record_size(len(payload)))
        return tail

    # Receive ring (kernel consumes)
    def consume(self) -> bytes | None:
        ring = self.receive
        head, tail = ring.head, ring.tail
        if head == tail:
            return None
        size = ring.record_size_field(head)
        assert size & PACKET_RELEASE_FLAG == 0 and size <= MAX_IP_PACKET_SIZE
        data = bytes(ring.payload(head, size))
        ring.head = ring.wrap(head + record_size(size))
        return data

    def pointer_offset(self, ring: str, ptr: Any) -> int:
        """The data offset of ``ptr`` in the ``"send"`` or ``"receive"`` ring."""
        base = self.send_addr if ring == "send" else self.receive_addr
        return int(self.ffi.cast("uintptr_t", ptr)) - base - DATA_OFFSET


def handle_value(ffi: Any, handle: Any) -> int:
    """A HANDLE's value: an event HANDLE on Windows, a descriptor elsewhere."""
    return int(ffi.cast("uintptr_t" if platform.IS_WINDOWS else "intptr_t", handle))


def close_device_object(value: int) -> None:
    """Close the seed's device object the way its OS does (CloseHandle or close)."""
    if platform.IS_WINDOWS:
        lib, ffi = _win32.kernel32()
        assert lib.CloseHandle(ffi.cast("HANDLE", value))
    else:
        os.close(value)


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def double_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wintun_double")


_loaded: dict[str, Double] = {}


def load(api: str, out_dir: Path) -> Double:
    if api not in _loaded:
        _loaded[api] = Double(api, build_double(api, out_dir))
    return _loaded[api]


@pytest.fixture(params=GENERATIONS)
def d(request: pytest.FixtureRequest, double_dir: Path) -> Iterator[Double]:
    yield from _fresh(load(request.param, double_dir))


@pytest.fixture
def d14(double_dir: Path) -> Iterator[Double]:
    yield from _fresh(load("0.14", double_dir))


@pytest.fixture(params=("pool", "seed"))
def dpool(request: pytest.FixtureRequest, double_dir: Path) -> Iterator[Double]:
    yield from _fresh(load(request.param, double_dir))


def _fresh(dbl: Double) -> Iterator[Double]:
    assert dbl.lib.WintunDoubleReset()
    yield dbl
    dbl.lib.WintunSetLogger(dbl.ffi.NULL)
    dbl.lib.WintunDoubleSetSessionHooks(dbl.ffi.NULL, dbl.ffi.NULL)
    dbl.keep.clear()
    assert dbl.lib.WintunDoubleSessionCount() == 0, "a test left a session open"
    assert dbl.lib.WintunDoubleReset()


@pytest.fixture
def session(d: Double) -> Iterator[tuple[Double, Any, Kernel]]:
    adapter = d.create("Ring")
    s = d.lib.WintunStartSession(adapter, CAP)
    assert s != d.ffi.NULL
    yield d, s, Kernel(d, s)
    d.lib.WintunEndSession(s)
    d.close(adapter)


# ---- build and exports ----------------------------------------------------------------------


@pytest.mark.parametrize("api", GENERATIONS)
def test_exports_exactly_the_generation_names(api: str, double_dir: Path) -> None:
    dbl = load(api, double_dir)
    for name in EXPORTS[api] | HELPERS:
        getattr(dbl.lib, name)
    for name in ALL_NAMES - EXPORTS[api]:
        with pytest.raises(AttributeError):
            getattr(dbl.lib, name)
    assert dbl.ffi.string(dbl.lib.WintunDoubleApi()).decode() == api


@pytest.mark.skipif(
    shutil.which("nm") is None or platform.IS_WINDOWS,
    reason="needs binutils nm and the Linux build (ELF)",
)
@pytest.mark.parametrize("api", GENERATIONS)
def test_dynamic_symbol_table_has_nothing_else(api: str, double_dir: Path) -> None:
    path = build_double(api, double_dir)
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert names == EXPORTS[api] | HELPERS
    assert len(EXPORTS[api]) == {"0.14": 14, "pool": 18, "seed": 19}[api]


def pe_exports(objdump: str, path: Path) -> tuple[set[str], set[str]]:
    """(exported names, imported DLLs) of a PE file, read with MinGW's objdump."""
    out = subprocess.run(
        [objdump, "-p", str(path)], capture_output=True, text=True, check=True
    ).stdout
    table = out[out.index("[Ordinal/Name Pointer] Table") :]
    names = {
        line.split("]", 1)[1].strip()
        for line in table.splitlines()[1:]
        if line.strip().startswith("[") and "]" in line and "reloc" not in line
    }
    names = {name for name in names if name and " " not in name}
    dlls = {
        line.split(":", 1)[1].strip().lower() for line in out.splitlines() if "DLL Name:" in line
    }
    return names, dlls


@pytest.mark.skipif(
    not compiler_available(WINDOWS) or platform.IS_WINDOWS,
    reason="needs MinGW-w64 (x86_64-w64-mingw32-gcc) on a non-Windows host",
)
@pytest.mark.parametrize("api", GENERATIONS)
def test_windows_build_exports_the_same_names_and_needs_no_other_dll(
    api: str, double_dir: Path
) -> None:
    path = build_double(api, double_dir / "windows", target=WINDOWS)
    assert path.name == f"wintun_double_{api.replace('.', '_')}.dll"
    objdump = compiler_command(WINDOWS)[0].replace("gcc", "objdump")
    if shutil.which(objdump) is None:
        pytest.skip(f"{objdump} not installed")
    names, dlls = pe_exports(objdump, path)
    assert names == EXPORTS[api] | HELPERS  # dllexport only: nothing else leaks out
    assert dlls == {"kernel32.dll", "msvcrt.dll"}  # statically linked: no MinGW runtime DLLs


def test_build_is_cached_and_named(double_dir: Path) -> None:
    path = build_double("pool", double_dir)
    expected = {"linux": "libwintun_double_pool.so", "windows": "wintun_double_pool.dll"}
    assert path.name == library_name("pool") == expected[host_target().name]
    before = path.stat().st_mtime_ns
    assert build_double("pool", double_dir) == path
    assert path.stat().st_mtime_ns == before
    with pytest.raises(ValueError):
        build_double("0.8", double_dir)


@pytest.mark.skipif(not compiler_available(), reason="needs a C compiler to build the doubles")
def test_prebuilt_doubles_are_taken_by_content_not_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a compiler a prebuilt double is copied if it was built from these very
    sources, however old its file looks (an installed package's files are all new)."""
    prebuilt = build_double("0.14", tmp_path / "prebuilt")
    os.utime(prebuilt, (0, 0))
    monkeypatch.setenv(PREBUILT_ENV, str(tmp_path / "prebuilt"))
    monkeypatch.setenv("CC", "no-such-compiler-here")
    monkeypatch.setenv("MINGW_CC", "no-such-compiler-here")
    assert double_unavailable() is None
    copied = build_double("0.14", tmp_path / "run")
    assert copied.read_bytes() == prebuilt.read_bytes()
    record = prebuilt.with_name(prebuilt.name + ".sha256")
    record.write_text("0" * 64, encoding="ascii")  # built from other sources
    with pytest.raises(DoubleBuildError) as refused:
        build_double("0.14", tmp_path / "another run")
    assert str(refused.value) == double_unavailable()


# ---- adapters: common -----------------------------------------------------------------------


def test_driver_version_needs_a_loaded_driver(d: Double) -> None:
    version, err = d.call_err(d.lib.WintunGetRunningDriverVersion)
    assert (version, err) == (0, ERROR_FILE_NOT_FOUND)
    a = d.create("Ver")
    assert d.lib.WintunGetRunningDriverVersion() == {"0.14": 14, "pool": 13, "seed": 8}[d.api]
    d.lib.WintunDoubleSetDriverVersion(0x0000000E)
    assert d.lib.WintunGetRunningDriverVersion() == 0x0000000E
    d.close(a)


def test_luid_and_guid(d: Double) -> None:
    wanted = uuid.UUID("{8f3c1a52-2b4d-4e6f-9a0b-1c2d3e4f5a6b}")
    a = d.create("One", guid=wanted)
    b = d.create("Two")
    la, lb = d.luid(a), d.luid(b)
    assert la >> 48 == 53 and lb >> 48 == 53
    assert la & 0xFFFFFF == 0 and lb & 0xFFFFFF == 0
    assert (la >> 24) & 0xFFFFFF != (lb >> 24) & 0xFFFFFF
    assert d.info(a) == ("One", wanted, True)
    assert d.info(b)[1] != wanted
    # The same GUID again is refused by the system.
    d.clear_last_error()
    d.fails(d.create("Three", guid=wanted), ERROR_ALREADY_EXISTS)
    opened = d.open("ONE")
    assert opened != d.ffi.NULL and d.luid(opened) == la
    d.close(opened)
    d.close(b)
    d.close(a)


def test_case_insensitive_names_and_collision_rename(d: Double) -> None:
    first = d.create("wg")
    second = d.create("WG")
    assert d.info(second)[0] == "WG"
    assert d.info(first)[0] == "WG 1"  # the suffix goes on the requested spelling
    third = d.create("wg")
    assert d.info(third)[0] == "wg"
    assert d.info(second)[0] == "wg 2"  # "wg 1" is taken, case-insensitively
    assert d.lib.WintunDoubleAdapterCount() == 3
    for h in (third, second, first):
        d.close(h)


def test_too_long_name(d: Double) -> None:
    code = ERROR_BUFFER_OVERFLOW if d.api == "0.14" else ERROR_INVALID_PARAMETER
    d.fails(d.create("n" * 128), code)
    ok = d.create("n" * 127)
    assert ok != d.ffi.NULL
    # "Name N" must fit too: the holder cannot be renamed, so the create fails.
    d.fails(d.create("n" * 127), code)
    d.close(ok)


def test_logger_messages(d: Double) -> None:
    lines: list[tuple[int, int | None, str]] = []

    def log14(level: int, ts: int, msg: Any) -> None:
        lines.append((level, ts, d.unw(msg, 512)))

    def log_pool(level: int, msg: Any) -> None:
        lines.append((level, None, d.unw(msg, 512)))

    def log_seed(level: int, msg: Any) -> int:
        lines.append((level, None, d.unw(msg, 512)))
        return 1

    if d.api == "0.14":
        logger = d.ffi.callback("void(int, DWORD64, const WCHAR *)", log14)
    elif d.api == "pool":
        logger = d.ffi.callback("void(int, const WCHAR *)", log_pool)
    else:
        logger = d.ffi.callback("BOOL(int, const WCHAR *)", log_seed)
    d.keep.append(logger)
    d.lib.WintunSetLogger(logger)
    a = d.create("Logged")
    d.fails(d.open("Missing"), ERROR_NOT_FOUND if d.api == "0.14" else ERROR_FILE_NOT_FOUND)
    d.lib.WintunDoubleLog(1, d.w("hello from the test"))
    texts = [t for _, _, t in lines]
    prefix = "" if d.api == "0.14" else "CreateAdapter: "
    assert prefix + "Creating adapter" in texts
    assert (1, "hello from the test") in [(lv, t) for lv, _, t in lines]
    if d.api == "0.14":
        assert any(lv == 2 and "Failed to find matching adapter name" in t for lv, _, t in lines)
        now = (time.time() + 11644473600) * 1e7
        assert all(ts is not None and abs(ts - now) < 600e7 for _, ts, _ in lines)
    d.close(a)


# ---- adapters: 0.14 -------------------------------------------------------------------------


def test_0_14_open_close_lifetimes(d14: Double) -> None:
    d = d14
    d.fails(d.open("Nope"), ERROR_NOT_FOUND)
    created = d.create("Life")
    opened = d.open("LIFE")
    luid = d.luid(created)
    d.close(opened)  # an opened handle never removes the adapter
    assert d.lib.WintunDoubleAdapterCount() == 1
    opened = d.open("life")
    d.close(created)  # the creator's close removes it
    assert d.lib.WintunDoubleAdapterCount() == 0
    d.fails(d.open("Life"), ERROR_NOT_FOUND)
    assert d.luid(opened) == luid  # stale handle keeps the cached LUID
    assert d.info(opened)[2] is False
    d.fails(d.lib.WintunStartSession(opened, CAP), ERROR_FILE_NOT_FOUND)
    d.close(opened)
    d.lib.WintunCloseAdapter(d.ffi.NULL)


def test_0_14_tunnel_type_limit(d14: Double) -> None:
    d = d14
    d.fails(d.create("T", tunnel_type="x" * 129), ERROR_BUFFER_OVERFLOW)
    a = d.create("T", tunnel_type="x" * 128)
    assert a != d.ffi.NULL
    d.close(a)


def test_0_14_delete_driver(d14: Double) -> None:
    d = d14
    a = d.create("Drv")
    ok, err = d.call_err(d.lib.WintunDeleteDriver)
    assert not ok and err == ERROR_INF_IN_USE_BY_DEVICES
    d.close(a)
    assert d.lib.WintunDeleteDriver()


def test_0_14_closing_the_creator_terminates_the_session(d14: Double) -> None:
    d = d14
    ended: list[Any] = []
    on_end = d.ffi.callback("void(void *)", lambda s: ended.append(s))
    d.keep.append(on_end)
    d.lib.WintunDoubleSetSessionHooks(d.ffi.NULL, on_end)
    a = d.create("Gone")
    s = d.lib.WintunStartSession(a, CAP)
    k = Kernel(d, s)
    d.close(a)
    assert ended == [s]
    # The rings are still mapped; marking them dead is the driver side's job.
    d.lib.WintunDoubleMarkDead(s)
    assert k.send.tail == RING_DEAD_MARKER and k.receive.head == RING_DEAD_MARKER
    assert k.read_wait.consume()
    d.fails(d.lib.WintunReceivePacket(s, d.ffi.new("DWORD *")), ERROR_HANDLE_EOF)
    d.fails(d.lib.WintunAllocateSendPacket(s, 20), ERROR_HANDLE_EOF)
    d.lib.WintunEndSession(s)
    assert ended == [s]  # the end hook runs once per session


# ---- adapters: pool era ---------------------------------------------------------------------


def test_pool_open_errors(dpool: Double) -> None:
    d = dpool
    a = d.create("Shared", pool="Alpha")
    d.fails(d.open("Shared", pool="Beta"), ERROR_ALREADY_EXISTS)
    d.fails(d.open("Other", pool="Alpha"), ERROR_FILE_NOT_FOUND)
    b = d.open("SHARED", pool="alpha")
    assert b != d.ffi.NULL
    d.close(b)
    d.close(a)
    assert d.lib.WintunDoubleAdapterCount() == 1  # freeing a handle removes nothing


def test_pool_names(dpool: Double) -> None:
    d = dpool
    a = d.create("Alpha")
    b = d.create("Beta")
    buf = d.ffi.new("WCHAR[128]")
    assert d.lib.WintunGetAdapterName(a, buf) and d.unw(buf) == "Alpha"
    assert d.lib.WintunSetAdapterName(a, d.w("Gamma"))
    assert d.lib.WintunGetAdapterName(a, buf) and d.unw(buf) == "Gamma"
    assert d.lib.WintunSetAdapterName(a, d.w("BETA"))  # steals the name
    assert d.lib.WintunGetAdapterName(b, buf) and d.unw(buf) == "BETA 1"
    assert d.lib.WintunGetAdapterName(a, buf) and d.unw(buf) == "BETA"
    d.fails(d.lib.WintunSetAdapterName(a, d.w("x" * 128)), ERROR_INVALID_PARAMETER)
    long = "y" * 127
    assert d.lib.WintunSetAdapterName(a, d.w(long))
    assert d.lib.WintunGetAdapterName(a, buf) and d.unw(buf) == long
    d.close(a)
    d.close(b)


def test_pool_enum(dpool: Double) -> None:
    d = dpool
    handles = [d.create(f"E{i}", pool="Enum") for i in range(3)]
    other = d.create("X", pool="Else")
    seen: list[str] = []
    stop_after = [99]

    def visit(h: Any, param: int) -> int:
        assert param == 1234
        seen.append(d.info(h)[0])
        return 1 if len(seen) < stop_after[0] else 0

    cb = d.ffi.callback("BOOL(WINTUN_ADAPTER_HANDLE, LPARAM)", visit)

    ok, err = d.call_err(d.lib.WintunEnumAdapters, d.w("ENUM"), cb, 1234)
    assert ok and err == 0 and sorted(seen) == ["E0", "E1", "E2"]
    seen.clear()
    stop_after[0] = 1
    assert d.lib.WintunEnumAdapters(d.w("Enum"), cb, 1234)
    assert len(seen) == 1
    seen.clear()
    assert d.lib.WintunEnumAdapters(d.w("Empty"), cb, 1234) and seen == []
    for h in [*handles, other]:
        d.close(h)


def test_pool_delete_adapter_and_pool_driver(dpool: Double) -> None:
    d = dpool
    a = d.create("A", pool="P1")
    b = d.create("B", pool="P1")
    c = d.create("C", pool="P2")
    reboot = d.ffi.new("BOOL *", 5)
    assert d.lib.WintunDeleteAdapter(a, 0, reboot) and reboot[0] == 0
    assert d.info(a)[2] is False
    assert d.lib.WintunDeleteAdapter(a, 0, d.ffi.NULL)  # already gone: still success
    d.close(a)
    reboot[0] = 5
    ok, err = d.call_err(d.lib.WintunDeletePoolDriver, d.w("P1"), reboot)
    assert not ok and err == ERROR_INF_IN_USE_BY_DEVICES and reboot[0] == 0
    assert d.info(b)[2] is False and d.info(c)[2] is True
    assert d.lib.WintunDeletePoolDriver(d.w("P2"), reboot)
    assert d.lib.WintunDoubleAdapterCount() == 0
    for h in (b, c):
        d.close(h)


def test_pool_delete_adapter_with_session(dpool: Double) -> None:
    d = dpool
    ended: list[Any] = []
    on_end = d.ffi.callback("void(void *)", lambda s: ended.append(s))
    d.keep.append(on_end)
    d.lib.WintunDoubleSetSessionHooks(d.ffi.NULL, on_end)
    reboot = d.ffi.new("BOOL *")
    a = d.create("Busy")
    s = d.lib.WintunStartSession(a, CAP)
    assert d.lib.WintunDeleteAdapter(a, 0, reboot) and reboot[0] == 1
    assert ended == []  # pending reboot: the session keeps working
    p = d.lib.WintunAllocateSendPacket(s, 20)
    assert p != d.ffi.NULL
    d.lib.WintunSendPacket(s, p)
    d.lib.WintunEndSession(s)
    assert ended == [s]
    d.close(a)
    b = d.create("Forced")
    s = d.lib.WintunStartSession(b, CAP)
    assert d.lib.WintunDeleteAdapter(b, 1, reboot) and reboot[0] == 0
    assert ended[-1] == s and len(ended) == 2
    d.lib.WintunEndSession(s)
    assert len(ended) == 2
    d.close(b)


def test_seed_device_object(double_dir: Path) -> None:
    for d in _fresh(load("seed", double_dir)):
        a = d.create("Dev")
        handle = d.lib.WintunOpenAdapterDeviceObject(a)
        value = int(d.ffi.cast("intptr_t", handle))
        assert value not in (-1, 0)  # INVALID_HANDLE_VALUE, NULL
        close_device_object(value)
        reboot = d.ffi.new("BOOL *")
        assert d.lib.WintunDeleteAdapter(a, 0, reboot)
        handle, err = d.call_err(d.lib.WintunOpenAdapterDeviceObject, a)
        assert int(d.ffi.cast("intptr_t", handle)) == -1 and err == ERROR_FILE_NOT_FOUND
        d.close(a)


# ---- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [0, 0x10000, 0x1FFFF, 0x20001, 0x30000, 0x8000000, 0xFFFFFFFF])
def test_start_session_refuses_bad_capacity(d: Double, capacity: int) -> None:
    a = d.create("Cap")
    d.fails(d.lib.WintunStartSession(a, capacity), ERROR_INVALID_PARAMETER)
    d.close(a)


def test_one_session_per_adapter_and_hooks(d: Double) -> None:
    events: list[tuple[str, Any]] = []
    on_start = d.ffi.callback("void(void *)", lambda s: events.append(("start", s)))
    on_end = d.ffi.callback("void(void *)", lambda s: events.append(("end", s)))
    d.keep += [on_start, on_end]
    d.lib.WintunDoubleSetSessionHooks(on_start, on_end)
    a = d.create("Once")
    s = d.lib.WintunStartSession(a, 0x4000000)
    assert s != d.ffi.NULL and events == [("start", s)]
    d.fails(d.lib.WintunStartSession(a, CAP), ERROR_ALREADY_INITIALIZED)
    ok, err = d.call_err(d.lib.WintunDoubleReset)
    assert not ok and err == ERROR_BUSY
    d.lib.WintunEndSession(s)
    assert events == [("start", s), ("end", s)]
    s2 = d.lib.WintunStartSession(a, CAP)
    assert s2 != d.ffi.NULL
    d.lib.WintunEndSession(s2)
    d.close(a)


def test_session_memory_layout(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    assert k.capacity == CAP and k.ring_size == ring_size(CAP)
    assert k.receive_addr == k.send_addr + k.ring_size  # one region, two rings
    assert bytes(k.send.memory) == bytes(k.ring_size) == bytes(k.receive.memory)
    assert handle_value(d.ffi, d.lib.WintunGetReadWaitEvent(s)) == k.read_wait_value
    assert k.read_wait_value != k.tail_moved_value
    assert not k.read_wait.consume()


def test_receive_round_trip(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    size = d.ffi.new("DWORD *")
    d.fails(d.lib.WintunReceivePacket(s, size), ERROR_NO_MORE_ITEMS)
    payload = bytes(range(7)) * 3  # 21 bytes: record padded to 28
    k.produce(payload)
    p = d.lib.WintunReceivePacket(s, size)
    assert size[0] == 21 and bytes(d.ffi.buffer(p, 21)) == payload
    assert k.pointer_offset("send", p) == 4
    assert k.send.head == 0  # Head moves only on release
    d.fails(d.lib.WintunReceivePacket(s, size), ERROR_NO_MORE_ITEMS)
    d.release(s, p)
    assert (
        k.send.record_size_field(0) == 21 | PACKET_RELEASE_FLAG
    )  # the release flag marks the record
    assert k.send.head == 28


def test_receive_out_of_order_release(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    size = d.ffi.new("DWORD *")
    for n in (20, 40, 60):
        k.produce(bytes([n]) * n)
    packets = [d.lib.WintunReceivePacket(s, size) for _ in range(3)]
    d.release(s, packets[1])
    assert k.send.head == 0  # the first one still holds the space
    d.release(s, packets[2])
    assert k.send.head == 0
    d.release(s, packets[0])
    assert k.send.head == 24 + 44 + 64


def test_receive_errors(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    size = d.ffi.new("DWORD *")
    # Size above 0xFFFF: corrupt, and it stays corrupt (no state change).
    k.send.set_record_size_field(0, 0x10000)
    k.send.tail = 0x10004 + 8
    for _ in range(2):
        d.fails(d.lib.WintunReceivePacket(s, size), ERROR_INVALID_DATA)
    # Record longer than the published content.
    k.send.set_record_size_field(0, 100)
    k.send.tail = 8
    d.fails(d.lib.WintunReceivePacket(s, size), ERROR_INVALID_DATA)
    # Content shorter than a header cannot occur with 4-aligned offsets; a Tail past capacity
    # is the driver's dead marker.
    k.send.tail = RING_DEAD_MARKER
    d.fails(d.lib.WintunReceivePacket(s, size), ERROR_HANDLE_EOF)
    k.send.tail = CAP
    d.fails(d.lib.WintunReceivePacket(s, size), ERROR_HANDLE_EOF)
    # Back to sane: a valid record is delivered.
    k.send.set_record_size_field(0, 4)
    k.send.tail = 8
    p = d.lib.WintunReceivePacket(s, size)
    assert p != d.ffi.NULL and size[0] == 4
    d.release(s, p)


def test_receive_wraps_through_the_trailer(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    size = d.ffi.new("DWORD *")
    wrapped = False
    for i in range(400):
        payload = bytes([i & 0xFF]) * (997 + i % 7)
        start = k.produce(payload)
        wrapped |= start + 4 + len(payload) > CAP
        p = d.lib.WintunReceivePacket(s, size)
        assert size[0] == len(payload) and bytes(d.ffi.buffer(p, size[0])) == payload
        assert k.pointer_offset("send", p) == start + 4
        d.release(s, p)
        assert k.send.head == k.send.tail
    assert wrapped


def test_send_round_trip_and_allocation_order(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    first = d.lib.WintunAllocateSendPacket(s, 21)
    second = d.lib.WintunAllocateSendPacket(s, 40)
    assert k.pointer_offset("receive", first) == 4
    assert k.pointer_offset("receive", second) == 28 + 4
    assert (
        k.receive.record_size_field(0) == 21 | PACKET_RELEASE_FLAG
        and k.receive.record_size_field(28) == 40 | PACKET_RELEASE_FLAG
    )
    d.ffi.buffer(first, 21)[:] = b"\x45" + bytes(range(1, 21))
    d.ffi.buffer(second, 40)[:] = b"\x60" * 40
    d.lib.WintunSendPacket(s, second)
    assert k.receive.tail == 0  # blocked behind the first allocation
    assert k.receive.record_size_field(28) == 40  # but its flag is cleared
    d.lib.WintunSendPacket(s, first)
    assert k.receive.tail == 28 + 44
    record = struct.pack("<I", 21) + b"\x45" + bytes(range(1, 21)) + b"\0" * 3
    assert bytes(k.receive.data[:28]) == record
    assert k.consume() == b"\x45" + bytes(range(1, 21))
    assert k.consume() == b"\x60" * 40
    assert k.consume() is None
    assert not k.tail_moved.consume()  # Alertable was 0


def test_send_signals_only_when_alertable(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    k.receive.alertable = 1
    p = d.lib.WintunAllocateSendPacket(s, 20)
    d.lib.WintunSendPacket(s, p)
    assert k.tail_moved.consume()
    k.receive.alertable = 0
    p = d.lib.WintunAllocateSendPacket(s, 20)
    d.lib.WintunSendPacket(s, p)
    assert not k.tail_moved.consume()
    assert k.receive.tail == 48


@pytest.mark.parametrize("signal_unmoved", [None, False, True])
def test_send_signal_when_tail_did_not_move(
    session: tuple[Double, Any, Kernel], signal_unmoved: bool | None
) -> None:
    """A packet sent behind an unsent allocation leaves Tail where it is: the snapshot, 0.9
    and 0.9.1 signal the driver anyway, later releases do not. Each build defaults to its
    generation's newest release; WintunDoubleSetSignalUnmovedTail picks the rule."""
    d, s, k = session
    if signal_unmoved is None:
        expected = d.api == "seed"
    else:
        d.lib.WintunDoubleSetSignalUnmovedTail(signal_unmoved)
        expected = signal_unmoved
    k.receive.alertable = 1
    first = d.lib.WintunAllocateSendPacket(s, 20)
    second = d.lib.WintunAllocateSendPacket(s, 20)
    d.lib.WintunSendPacket(s, second)
    assert k.receive.tail == 0
    assert k.tail_moved.consume() is expected
    d.lib.WintunSendPacket(s, first)  # Tail moves: every release signals
    assert k.receive.tail == 2 * record_size(20)
    assert k.tail_moved.consume()


@pytest.mark.parametrize("signal_at_end", [None, False, True])
def test_end_session_signals_the_read_wait_event(d: Double, signal_at_end: bool | None) -> None:
    """The snapshot to 0.10.4: WintunEndSession signals the read-wait event before closing
    it; 0.10.5 on it does not. Each build defaults to its generation's newest release;
    WintunDoubleSetSignalAtEnd picks the rule."""
    if signal_at_end is None:
        expected = d.api == "seed"
    else:
        d.lib.WintunDoubleSetSignalAtEnd(signal_at_end)
        expected = signal_at_end
    adapter = d.create("Ring")
    s = d.lib.WintunStartSession(adapter, CAP)
    k = Kernel(d, s)
    assert not k.read_wait.consume()
    seen: list[bool] = []
    # The end hook runs inside WintunEndSession, before the event is closed.
    on_end = d.ffi.callback(
        "void(WINTUN_SESSION_HANDLE)", lambda _: seen.append(k.read_wait.consume())
    )
    d.lib.WintunDoubleSetSessionHooks(d.ffi.NULL, on_end)
    d.lib.WintunEndSession(s)
    d.close(adapter)
    assert seen == [expected]


def test_a_refused_registration_fails_start_session(d: Double) -> None:
    """The register hook (the driver judging the rings) refuses: WintunStartSession fails
    with its error and nothing of the session stays; the next one starts."""
    calls: list[int] = []

    def judge(session: Any) -> int:
        calls.append(1)
        return ERROR_INVALID_PARAMETER if len(calls) == 1 else 0

    hook = d.ffi.callback("DWORD(WINTUN_SESSION_HANDLE)", judge)
    d.lib.WintunDoubleSetRegisterHook(hook)
    try:
        adapter = d.create("Ring")
        d.fails(d.lib.WintunStartSession(adapter, CAP), ERROR_INVALID_PARAMETER)
        assert d.lib.WintunDoubleSessionCount() == 0
        s = d.lib.WintunStartSession(adapter, CAP)
        assert s != d.ffi.NULL and len(calls) == 2
        d.lib.WintunEndSession(s)
        d.close(adapter)
    finally:
        d.lib.WintunDoubleSetRegisterHook(d.ffi.NULL)


def test_send_ring_full_and_dead(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    # One 4-byte slot always stays free: CAP - 4 bytes of records fit.
    count = 0
    while True:
        p = d.lib.WintunAllocateSendPacket(s, 0xFFFC)  # records of 0x10000
        if p == d.ffi.NULL:
            break
        d.lib.WintunSendPacket(s, p)
        count += 1
    assert count == 1 and d.last_error() == ERROR_BUFFER_OVERFLOW
    p = d.lib.WintunAllocateSendPacket(s, CAP - 0x10000 - 8)  # exactly the rest, minus one slot
    assert p != d.ffi.NULL
    d.lib.WintunSendPacket(s, p)
    d.fails(d.lib.WintunAllocateSendPacket(s, 0), ERROR_BUFFER_OVERFLOW)
    assert k.consume() is not None
    p = d.lib.WintunAllocateSendPacket(s, 0)
    assert p != d.ffi.NULL
    d.lib.WintunSendPacket(s, p)
    k.receive.head = RING_DEAD_MARKER
    d.fails(d.lib.WintunAllocateSendPacket(s, 20), ERROR_HANDLE_EOF)


def test_send_wraps_through_the_trailer(session: tuple[Double, Any, Kernel]) -> None:
    d, s, k = session
    wrapped = False
    for i in range(400):
        n = 1001 + i % 5
        p = d.lib.WintunAllocateSendPacket(s, n)
        off = k.pointer_offset("receive", p)
        wrapped |= off + n > CAP
        d.ffi.buffer(p, n)[:] = bytes([i & 0xFF]) * n
        d.lib.WintunSendPacket(s, p)
        assert k.consume() == bytes([i & 0xFF]) * n
    assert wrapped


def test_concurrent_senders_publish_every_packet_intact(
    session: tuple[Double, Any, Kernel],
) -> None:
    d, s, k = session
    per_thread, threads = 300, 4
    received: list[bytes] = []
    done = threading.Event()

    def sender(t: int) -> None:
        for i in range(per_thread):
            payload = struct.pack("<HH", t, i) * (5 + (i % 20))
            while True:
                p = d.lib.WintunAllocateSendPacket(s, len(payload))
                if p != d.ffi.NULL:
                    break
                time.sleep(0)  # ring full: let the "kernel" drain
            d.ffi.buffer(p, len(payload))[:] = payload
            d.lib.WintunSendPacket(s, p)

    def kernel() -> None:
        while not done.is_set() or k.receive.head != k.receive.tail:
            data = k.consume()
            if data is None:
                time.sleep(0)
            else:
                received.append(data)

    consumer = threading.Thread(target=kernel)
    consumer.start()
    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    consumer.join()
    assert len(received) == per_thread * threads
    last = [-1] * threads
    for data in received:
        t, i = struct.unpack_from("<HH", data)
        assert data == struct.pack("<HH", t, i) * (5 + (i % 20))
        assert i > last[t]  # each sender's packets arrive in its allocation order
        last[t] = i


# ---- AddressSanitizer -----------------------------------------------------------------------

ASAN_SCENARIO = r"""
import struct, sys
import cffi
ffi = cffi.FFI()
ffi.cdef(CDEF)
lib = ffi.dlopen(sys.argv[1])
def w(t):
    b = t.encode("utf-16-le")
    return ffi.new("WCHAR[]", list(struct.unpack(f"<{len(b)//2}H", b)) + [0])
logged = []
@ffi.callback("void(int, DWORD64, const WCHAR *)")
def logger(level, ts, msg):
    logged.append(level)
lib.WintunSetLogger(logger)
hooks = []
on_start = ffi.callback("void(void *)", lambda s: hooks.append("start"))
on_end = ffi.callback("void(void *)", lambda s: hooks.append("end"))
lib.WintunDoubleSetSessionHooks(on_start, on_end)
CAP = 0x20000
a = lib.WintunCreateAdapter(w("asan"), w("T" * 128), ffi.NULL)
b = lib.WintunCreateAdapter(w("ASAN"), w("T"), ffi.NULL)
assert lib.WintunOpenAdapter(w("missing")) == ffi.NULL
assert lib.WintunCreateAdapter(w("n" * 200), w("T"), ffi.NULL) == ffi.NULL
s = lib.WintunStartSession(a, CAP)
assert lib.WintunStartSession(a, CAP) == ffi.NULL
rings = [ffi.new("void **"), ffi.new("void **"), ffi.new("DWORD *"), ffi.new("DWORD *"),
         ffi.new("HANDLE *"), ffi.new("HANDLE *")]
assert lib.WintunDoubleGetSessionRings(s, *rings)
size = rings[2][0]
send = ffi.buffer(rings[0][0], size)
recv = ffi.buffer(rings[1][0], size)
get = lambda b, o: struct.unpack_from("<I", b, o)[0]
put = lambda b, o, v: struct.pack_into("<I", b, o, v)
out = ffi.new("DWORD *")
for i in range(300):
    n = 0xFFFF if i % 50 == 0 else 1000 + i % 9
    tail = get(send, 4)
    put(send, 12 + tail, n)
    send[12 + tail + 4:12 + tail + 4 + n] = bytes([i & 255]) * n
    put(send, 4, (tail + ((4 + n + 3) & ~3)) & (CAP - 1))
    p = lib.WintunReceivePacket(s, out)
    assert p != ffi.NULL and out[0] == n
    ffi.buffer(p, n)[:] = bytes(n)
    lib.WintunReleaseReceivePacket(s, p)
    struct.pack_into("<i", recv, 8, i & 1)
    p = lib.WintunAllocateSendPacket(s, n)
    assert p != ffi.NULL
    ffi.buffer(p, n)[:] = bytes([i & 255]) * n
    lib.WintunSendPacket(s, p)
    put(recv, 0, get(recv, 4))
ps = [lib.WintunAllocateSendPacket(s, 0xFFFF) for _ in range(3)]
assert ps[0] != ffi.NULL and ps[-1] == ffi.NULL
lib.WintunSendPacket(s, ps[0])
lib.WintunDoubleMarkDead(s)
assert lib.WintunReceivePacket(s, out) == ffi.NULL
lib.WintunCloseAdapter(a)
lib.WintunEndSession(s)
lib.WintunCloseAdapter(b)
assert lib.WintunDoubleReset() and lib.WintunDoubleAdapterCount() == 0
assert hooks == ["start", "end"] and 2 in logged
print("SCENARIO-OK")
"""


def test_no_memory_errors_under_asan(double_dir: Path) -> None:
    runtime = asan_runtime()
    if runtime is None:
        pytest.skip(
            "no AddressSanitizer runtime (libasan.so) to preload: Linux builds with one only"
        )
    path = build_double("0.14", double_dir, sanitize=True)
    assert path.name == "libwintun_double_0_14_asan.so"
    script = f"CDEF = {cdef_for('0.14')!r}\n" + ASAN_SCENARIO
    env = dict(os.environ, LD_PRELOAD=str(runtime), ASAN_OPTIONS="detect_leaks=0")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert "AddressSanitizer" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "SCENARIO-OK" in proc.stdout


ASAN_PROBE = r"""
import sys
import cffi
ffi = cffi.FFI()
ffi.cdef(CDEF)
lib = ffi.dlopen(sys.argv[1])
name = ffi.new("WCHAR[]", [65, 0])
a = lib.WintunCreateAdapter(name, name, ffi.NULL)
s = lib.WintunStartSession(a, 0x20000)
r = [ffi.new("void **"), ffi.new("void **"), ffi.new("DWORD *"), ffi.new("DWORD *"),
     ffi.new("HANDLE *"), ffi.new("HANDLE *")]
lib.WintunDoubleGetSessionRings(s, *r)
# A "packet" just past the end of the region: the release writes its flag out of bounds.
lib.WintunReleaseReceivePacket(s, ffi.cast("BYTE *", r[1][0]) + r[2][0] + 64)
print("NOT-DETECTED")
"""


def test_asan_harness_catches_an_overflow(double_dir: Path) -> None:
    """Positive control: the sanitized build in this harness does report a bad access."""
    runtime = asan_runtime()
    if runtime is None:
        pytest.skip(
            "no AddressSanitizer runtime (libasan.so) to preload: Linux builds with one only"
        )
    path = build_double("0.14", double_dir, sanitize=True)
    script = f"CDEF = {cdef_for('0.14')!r}\n" + ASAN_PROBE
    env = dict(os.environ, LD_PRELOAD=str(runtime), ASAN_OPTIONS="detect_leaks=0")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0 and "NOT-DETECTED" not in proc.stdout
    assert "heap-buffer-overflow" in proc.stderr
