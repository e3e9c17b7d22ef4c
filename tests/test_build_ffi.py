"""Tests of the header tooling (ffigen/header.py and ffigen/build.py, run as build_ffi.py):
the wintun.h parser, the cdef it produces and the generated modules."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import typing
from pathlib import Path

import cffi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffigen import build as build_ffi
from ffigen import header as wintun_header
from ffigen.header import Callback, Function, HeaderParseError, Param, parse_header
from wintun_cffi.constants import API_GENERATIONS, GENERATIONS, ApiGeneration

HEADERS: dict[str, str] = {g.name: g.header for g in GENERATIONS}

ROOT = Path(build_ffi.__file__).resolve().parents[1]
INCLUDE = ROOT / "wintun_cffi" / "platform" / "include"

# Written out by hand, not read from wintun_cffi/platform/_exports.py: that file is what the parser
# under test generates, so it cannot be the parser's expectation.
EXPECTED_EXPORTS = {
    "0.14": {
        "WintunCreateAdapter",
        "WintunOpenAdapter",
        "WintunCloseAdapter",
        "WintunDeleteDriver",
        "WintunGetAdapterLUID",
        "WintunGetRunningDriverVersion",
        "WintunSetLogger",
        "WintunStartSession",
        "WintunEndSession",
        "WintunGetReadWaitEvent",
        "WintunReceivePacket",
        "WintunReleaseReceivePacket",
        "WintunAllocateSendPacket",
        "WintunSendPacket",
    },
    "pool": {
        "WintunCreateAdapter",
        "WintunOpenAdapter",
        "WintunFreeAdapter",
        "WintunDeleteAdapter",
        "WintunEnumAdapters",
        "WintunDeletePoolDriver",
        "WintunGetAdapterLUID",
        "WintunGetAdapterName",
        "WintunSetAdapterName",
        "WintunGetRunningDriverVersion",
        "WintunSetLogger",
        "WintunStartSession",
        "WintunEndSession",
        "WintunGetReadWaitEvent",
        "WintunReceivePacket",
        "WintunReleaseReceivePacket",
        "WintunAllocateSendPacket",
        "WintunSendPacket",
    },
    "seed": {
        "WintunCreateAdapter",
        "WintunGetAdapter",
        "WintunFreeAdapter",
        "WintunDeleteAdapter",
        "WintunEnumAdapters",
        "WintunDeletePoolDriver",
        "WintunOpenAdapterDeviceObject",
        "WintunGetAdapterLUID",
        "WintunGetAdapterName",
        "WintunSetAdapterName",
        "WintunGetRunningDriverVersion",
        "WintunSetLogger",
        "WintunStartSession",
        "WintunEndSession",
        "WintunGetReadWaitEvent",
        "WintunReceivePacket",
        "WintunReceiveRelease",
        "WintunAllocateSendPacket",
        "WintunSendPacket",
    },
}

SESSION = "typedef void *WINTUN_SESSION_HANDLE;\n"

# The same two functions in the three real header styles.
STYLE_A = (
    SESSION
    + """
typedef BYTE *(WINAPI *WINTUN_RECEIVE_PACKET_FUNC)(WINTUN_SESSION_HANDLE Session, DWORD *PacketSize);
typedef void(WINAPI *WINTUN_SEND_PACKET_FUNC)(WINTUN_SESSION_HANDLE Session, const BYTE *Packet);
"""
)
STYLE_B = (
    SESSION
    + """
typedef BYTE *(WINAPI WINTUN_RECEIVE_PACKET_FUNC_IMPL)(WINTUN_SESSION_HANDLE Session, DWORD *PacketSize);
typedef WINTUN_RECEIVE_PACKET_FUNC_IMPL *WINTUN_RECEIVE_PACKET_FUNC;
typedef VOID(WINAPI WINTUN_SEND_PACKET_FUNC_IMPL)(WINTUN_SESSION_HANDLE Session, const BYTE *Packet);
typedef WINTUN_SEND_PACKET_FUNC_IMPL *WINTUN_SEND_PACKET_FUNC;
"""
)
STYLE_C = (
    SESSION
    + """
typedef BYTE *(WINAPI WINTUN_RECEIVE_PACKET_FUNC)(WINTUN_SESSION_HANDLE Session, DWORD *PacketSize);
typedef VOID(WINAPI WINTUN_SEND_PACKET_FUNC)(WINTUN_SESSION_HANDLE Session, const BYTE *Packet);
"""
)
EXPECTED_STYLE_FUNCTIONS = (
    Function(
        "WintunReceivePacket",
        "WINTUN_RECEIVE_PACKET_FUNC",
        "BYTE *",
        (Param("WINTUN_SESSION_HANDLE", "Session"), Param("DWORD *", "PacketSize")),
    ),
    Function(
        "WintunSendPacket",
        "WINTUN_SEND_PACKET_FUNC",
        "void",
        (Param("WINTUN_SESSION_HANDLE", "Session"), Param("const BYTE *", "Packet")),
    ),
)


# ------------------------------------------------------------------------------------------
# Export names


@pytest.mark.parametrize(
    ("typedef", "export"),
    [
        ("WINTUN_CREATE_ADAPTER_FUNC", "WintunCreateAdapter"),
        ("WINTUN_CREATE_ADAPTER_FUNC_IMPL", "WintunCreateAdapter"),
        ("WINTUN_GET_ADAPTER_LUID_FUNC", "WintunGetAdapterLUID"),
        ("WINTUN_GET_ADAPTER_LUID_FUNC_IMPL", "WintunGetAdapterLUID"),
        ("WINTUN_RECEIVE_RELEASE_FUNC", "WintunReceiveRelease"),
        ("WINTUN_OPEN_ADAPTER_DEVICE_OBJECT_FUNC", "WintunOpenAdapterDeviceObject"),
        ("WINTUN_GET_RUNNING_DRIVER_VERSION_FUNC", "WintunGetRunningDriverVersion"),
    ],
)
def test_export_name(typedef: str, export: str) -> None:
    assert wintun_header.export_name(typedef) == export


@pytest.mark.parametrize(
    "bad", ["CREATE_ADAPTER_FUNC", "WINTUN_CREATE_ADAPTER", "WINTUN_LOGGER_CALLBACK"]
)
def test_export_name_rejects_other_names(bad: str) -> None:
    with pytest.raises(ValueError):
        wintun_header.export_name(bad)


def test_luid_export_in_a_header() -> None:
    header = parse_header(
        "typedef void *WINTUN_ADAPTER_HANDLE;\n"
        "typedef VOID(WINAPI WINTUN_GET_ADAPTER_LUID_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _Out_ NET_LUID *Luid);\n"
    )
    assert header.exports == ("WintunGetAdapterLUID",)
    assert header.functions[0].declaration() == (
        "void WINAPI WintunGetAdapterLUID(WINTUN_ADAPTER_HANDLE Adapter, NET_LUID *Luid);"
    )


# ------------------------------------------------------------------------------------------
# The three styles and the annotations


@pytest.mark.parametrize("text", [STYLE_A, STYLE_B, STYLE_C], ids=["pointer", "impl", "type"])
def test_each_style_gives_the_same_functions(text: str) -> None:
    header = parse_header(text)
    assert header.functions == EXPECTED_STYLE_FUNCTIONS
    assert header.functions[0].declaration() == (
        "BYTE *WINAPI WintunReceivePacket(WINTUN_SESSION_HANDLE Session, DWORD *PacketSize);"
    )
    cffi.FFI().cdef(build_ffi.make_cdef(header))


ANNOTATIONS = [
    "_In_",
    "_In_z_",
    "_In_opt_",
    "_Out_",
    "_Out_opt_",
    "_Inout_",
    "_Out_cap_c_(MAX_ADAPTER_NAME)",
    "_Out_writes_z_(MAX_ADAPTER_NAME)",
    "_Return_type_success_(return != NULL)",
    "_Must_inspect_result_",
    "_Post_maybenull_",
    "_Ret_bytecount_(*PacketSize)",
    "_Post_writable_byte_size_(PacketSize)",
    "_When_((Flags & (1 << 2)) != 0, _Out_writes_((Size)))",
]


@pytest.mark.parametrize("note", ANNOTATIONS)
def test_annotations_are_ignored_everywhere(note: str) -> None:
    text = SESSION + (
        f"typedef {note} BYTE *{note}(WINAPI *WINTUN_RECEIVE_PACKET_FUNC)"
        f"({note} WINTUN_SESSION_HANDLE Session, {note}\n DWORD *PacketSize);\n"
        f"typedef {note}\nvoid(WINAPI *WINTUN_SEND_PACKET_FUNC)({note} WINTUN_SESSION_HANDLE Session, {note} const BYTE *Packet);\n"
    )
    assert parse_header(text).functions == EXPECTED_STYLE_FUNCTIONS


def test_strip_annotations_keeps_declarators() -> None:
    stripped = wintun_header.strip_annotations("_A_(x (y)) BYTE *_B_ (WINAPI *F)(_C_ int a)")
    assert " ".join(stripped.split()) == "BYTE * (WINAPI *F)( int a)"


def test_array_parameter_is_a_pointer() -> None:
    header = parse_header(
        "typedef void *WINTUN_ADAPTER_HANDLE;\n"
        "typedef BOOL(WINAPI *WINTUN_GET_ADAPTER_NAME_FUNC)(WINTUN_ADAPTER_HANDLE Adapter, WCHAR Name[128]);\n"
    )
    assert header.functions[0].params[1] == Param("WCHAR *", "Name")


def test_unnamed_and_void_parameters() -> None:
    header = parse_header(
        "typedef DWORD(WINAPI *WINTUN_GET_RUNNING_DRIVER_VERSION_FUNC)(VOID);\n"
        "typedef BOOL(CALLBACK *WINTUN_ENUM_CALLBACK)(HANDLE, LPARAM);\n"
        "typedef BOOL(WINAPI *WINTUN_DELETE_DRIVER_FUNC)(void);\n"
    )
    assert header.functions[0].params == ()
    assert header.functions[1].declaration() == "BOOL WINAPI WintunDeleteDriver(void);"
    assert header.callbacks[0].params == (Param("HANDLE", ""), Param("LPARAM", ""))


# ------------------------------------------------------------------------------------------
# Defines, enums, handles, callbacks, structs, preprocessor


def test_integer_defines() -> None:
    header = parse_header(
        """
#pragma once
#include <windows.h>
#define HEX 0x20000 /* 128 KiB */
#define DEC 256
#define CAST ((DWORD)0xFFFF)
#define SUFFIX 0x4000000UL
#define SHIFT (1 << 16)
#define DERIVED (DEC * 2 + 1)
#define NEGATIVE (ULONG)-1
#define STRING L"not a number"
#define EMPTY
#define MACRO(n) ((n) + 3)
#define UNKNOWN SOMETHING_ELSE
"""
    )
    assert {c.name: c.value for c in header.constants} == {
        "HEX": 0x20000,
        "DEC": 256,
        "CAST": 0xFFFF,
        "SUFFIX": 0x4000000,
        "SHIFT": 1 << 16,
        "DERIVED": 513,
        "NEGATIVE": -1,
    }
    cffi.FFI().cdef(build_ffi.make_cdef(header))


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("0x10", 16),
        ("010", 8),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("~0 & 0xFF", 255),
        ("1 |\t2", 3),
        ("(A) - 1", 4),
        ("A << 2", 20),
        ("B", None),
        ("1 ? 2 : 3", None),
        ("", None),
    ],
)
def test_eval_int(expr: str, value: int | None) -> None:
    assert wintun_header.eval_int(expr, {"A": 5}) == value


def test_enums_handles_callbacks_structs() -> None:
    header = parse_header(
        """
typedef struct _WINTUN_ADAPTER *WINTUN_ADAPTER_HANDLE;
typedef void *WINTUN_SESSION_HANDLE;
typedef VOID *OTHER_HANDLE;
typedef enum { WINTUN_LOG_INFO, WINTUN_LOG_WARN, WINTUN_LOG_ERR } WINTUN_LOGGER_LEVEL;
typedef enum _E { A = 2, B, C = A + 10, D = 0x20, } E;
#define MAX 4
typedef struct _S { DWORD Size; BYTE Data[MAX]; WINTUN_ADAPTER_HANDLE Adapter; } S, *PS;
typedef void(CALLBACK *WINTUN_LOGGER_CALLBACK)(_In_ WINTUN_LOGGER_LEVEL Level, _In_ DWORD64 Timestamp, _In_z_ LPCWSTR Message);
typedef BOOL(CALLBACK *WINTUN_ENUM_CALLBACK)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _In_ LPARAM Param);
"""
    )
    assert [(h.name, h.target) for h in header.handles] == [
        ("WINTUN_ADAPTER_HANDLE", "struct _WINTUN_ADAPTER *"),
        ("WINTUN_SESSION_HANDLE", "void *"),
        ("OTHER_HANDLE", "void *"),
    ]
    assert header.enums[0].members == (
        ("WINTUN_LOG_INFO", 0),
        ("WINTUN_LOG_WARN", 1),
        ("WINTUN_LOG_ERR", 2),
    )
    assert header.enums[1].members == (("A", 2), ("B", 3), ("C", 12), ("D", 32))
    assert header.structs[0].declaration() == (
        "typedef struct { DWORD Size; BYTE Data[4]; WINTUN_ADAPTER_HANDLE Adapter; } S;"
    )
    assert header.callbacks == (
        Callback(
            "WINTUN_LOGGER_CALLBACK",
            "void",
            (
                Param("WINTUN_LOGGER_LEVEL", "Level"),
                Param("DWORD64", "Timestamp"),
                Param("LPCWSTR", "Message"),
            ),
        ),
        Callback(
            "WINTUN_ENUM_CALLBACK",
            "BOOL",
            (Param("WINTUN_ADAPTER_HANDLE", "Adapter"), Param("LPARAM", "Param")),
        ),
    )
    # CALLBACK becomes WINAPI, which cffi knows (stdcall on 32-bit Windows).
    assert header.callbacks[1].declaration() == (
        "typedef BOOL (WINAPI *WINTUN_ENUM_CALLBACK)(WINTUN_ADAPTER_HANDLE Adapter, LPARAM Param);"
    )
    ffi = cffi.FFI()
    ffi.cdef(build_ffi.make_cdef(header))
    assert ffi.sizeof("S") == 8 + ffi.sizeof("void *")
    assert ffi.typeof("WINTUN_LOGGER_CALLBACK").result is ffi.typeof("void")


def test_preprocessor_guards_and_blocks() -> None:
    header = parse_header(
        """#pragma once
#ifdef __cplusplus
extern "C" {
#endif
#ifndef ALIGNED
#    if defined(_MSC_VER)
#        define ALIGNED(n) __declspec(align(n))
#    else
#        error "don't know how to align"
#    endif
#endif
#ifndef _Post_maybenull_
#    define _Post_maybenull_
#endif
#pragma warning(push)
#define LONG_ONE \\
    0x10
typedef void *WINTUN_ADAPTER_HANDLE;
#pragma warning(pop)
#ifdef __cplusplus
}
#endif
"""
    )
    assert [h.name for h in header.handles] == ["WINTUN_ADAPTER_HANDLE"]
    assert [(c.name, c.value) for c in header.constants] == [("LONG_ONE", 16)]


def test_comments_and_crlf() -> None:
    text = "// line comment ( {\r\n/** doc ( \r\n * more */\r\ntypedef /* inline */ void * // x\r\nWINTUN_ADAPTER_HANDLE;\r\n"
    assert [h.name for h in parse_header(text).handles] == ["WINTUN_ADAPTER_HANDLE"]


# ------------------------------------------------------------------------------------------
# Our headers and the generated modules


@pytest.mark.parametrize("generation", API_GENERATIONS)
def test_our_headers(generation: str) -> None:
    header = build_ffi.parse_header_file(INCLUDE / HEADERS[generation])
    assert set(header.exports) == EXPECTED_EXPORTS[generation]
    assert len(header.exports) == len(EXPECTED_EXPORTS[generation])
    ffi = build_ffi.make_ffi(header)  # cffi accepts the cdef
    logger = ffi.typeof("WINTUN_LOGGER_CALLBACK")
    assert ffi.typeof("WINTUN_LOGGER_LEVEL").relements == {
        "WINTUN_LOG_INFO": 0,
        "WINTUN_LOG_WARN": 1,
        "WINTUN_LOG_ERR": 2,
    }
    assert ffi.sizeof("GUID") == 16 and ffi.sizeof("NET_LUID") == 8
    assert ffi.sizeof("WCHAR") == 2 and ffi.sizeof("DWORD") == 4 and ffi.sizeof("DWORD64") == 8
    consts = {c.name: c.value for c in header.constants}
    assert consts["WINTUN_MIN_RING_CAPACITY"] == 0x20000
    assert consts["WINTUN_MAX_RING_CAPACITY"] == 0x4000000
    assert consts["WINTUN_MAX_IP_PACKET_SIZE"] == 0xFFFF
    assert ("WINTUN_MAX_POOL" in consts) == (generation != "0.14")
    if generation == "0.14":
        assert len(logger.args) == 3 and logger.result is ffi.typeof("void")
        create = header.function("WintunCreateAdapter")
        assert create is not None and [p.name for p in create.params] == [
            "Name",
            "TunnelType",
            "RequestedGUID",
        ]
    else:
        assert len(logger.args) == 2
        assert logger.result is ffi.typeof("BOOL" if generation == "seed" else "void")
        name = header.function("WintunGetAdapterName")
        assert name is not None and wintun_header.canonical_type(name.params[1].type) == "WCHAR *"
        assert ffi.typeof("WINTUN_ENUM_CALLBACK").result is ffi.typeof("BOOL")
    if generation == "seed":
        dev = header.function("WintunOpenAdapterDeviceObject")
        assert dev is not None and dev.return_type == "HANDLE"


def test_our_headers_have_their_style() -> None:
    def text(g: str) -> str:
        return (INCLUDE / HEADERS[g]).read_text()

    assert "(WINAPI WINTUN_CREATE_ADAPTER_FUNC)" in text("0.14")
    assert "typedef WINTUN_CREATE_ADAPTER_FUNC_IMPL *WINTUN_CREATE_ADAPTER_FUNC;" in text("pool")
    assert "(WINAPI *WINTUN_CREATE_ADAPTER_FUNC)" in text("seed")


def test_generated_modules_are_up_to_date() -> None:
    assert build_ffi.check_generated() == []
    assert build_ffi.main(["--check"]) == 0


def test_generation_is_deterministic() -> None:
    assert build_ffi.generated_files() == build_ffi.generated_files()


def test_check_reports_stale_files(tmp_path: Path) -> None:
    (tmp_path / "wintun_cffi" / "platform" / "include").mkdir(parents=True)
    for h in HEADERS.values():
        (tmp_path / "wintun_cffi" / "platform" / "include" / h).write_bytes(
            (INCLUDE / h).read_bytes()
        )
    assert len(build_ffi.check_generated(tmp_path)) == 7  # 3 .py + 3 .pyi + _exports.py
    assert len(build_ffi.write_generated(tmp_path)) == 7
    assert build_ffi.check_generated(tmp_path) == []
    assert build_ffi.write_generated(tmp_path) == []
    stale = tmp_path / "wintun_cffi" / "platform" / "_ffi_pool.py"
    stale.write_text(stale.read_text() + "# edited\n")
    assert build_ffi.check_generated(tmp_path) == [stale]


def test_generated_modules() -> None:
    from wintun_cffi.platform import _exports
    from wintun_cffi.platform._ffi_0_14 import ffi as ffi_0_14
    from wintun_cffi.platform._ffi_pool import ffi as ffi_pool
    from wintun_cffi.platform._ffi_seed import ffi as ffi_seed

    assert {g: set(e) for g, e in _exports.EXPORTS.items()} == EXPECTED_EXPORTS
    assert _exports.LOGGER_CALLBACK == {g: "WINTUN_LOGGER_CALLBACK" for g in EXPECTED_EXPORTS}
    assert _exports.ENUM_CALLBACK == {
        "pool": "WINTUN_ENUM_CALLBACK",
        "seed": "WINTUN_ENUM_CALLBACK",
    }
    for generation, ffi in zip(GENERATIONS, (ffi_0_14, ffi_pool, ffi_seed), strict=True):
        assert importlib.import_module(generation.module).ffi is ffi
        declared = _exports.DECLARED[generation.name]
        assert declared.exports == _exports.EXPORTS[generation.name]
        assert {generation.open_function, generation.release_function} <= set(declared.exports)
        assert ffi.integer_const("WINTUN_MAX_IP_PACKET_SIZE") == 0xFFFF
        assert ffi.typeof(declared.logger_callback).kind == "function"
    for path in (ROOT / "wintun_cffi").glob("_ffi_*.py"):
        assert path.read_text().startswith("# Generated by build_ffi.py")
        assert path.with_suffix(".pyi").exists()


def test_one_table_of_generations() -> None:
    assert API_GENERATIONS == typing.get_args(ApiGeneration)
    assert [g.name for g in GENERATIONS] == list(API_GENERATIONS)
    assert sorted(p.name for p in INCLUDE.glob("*.h")) == sorted(HEADERS.values())


def test_the_table_is_checked_against_its_header() -> None:
    seed = GENERATIONS[-1]
    header = build_ffi.parse_header_file(INCLUDE / seed.header)
    build_ffi.check_table(seed, header)
    drifted = seed._replace(release_function="WintunReleaseReceivePacket")
    with pytest.raises(ValueError, match="does not declare .*WintunReleaseReceivePacket"):
        build_ffi.check_table(drifted, header)


def test_importing_generated_modules_never_parses_c() -> None:
    code = (
        "import sys\n"
        "import wintun_cffi.platform._ffi_0_14, wintun_cffi.platform._ffi_pool, wintun_cffi.platform._ffi_seed, wintun_cffi.platform._exports\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ffigen', 'pycparser')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------
# Command line


@pytest.mark.parametrize("generation", API_GENERATIONS)
def test_cli_header_on_our_header_matches(
    generation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = INCLUDE / HEADERS[generation]
    assert build_ffi.main(["--header", str(path)]) == 0
    out = capsys.readouterr().out
    assert "result: everything matches" in out
    assert f"looks like {generation!r}" in out
    for export in EXPECTED_EXPORTS[generation]:
        assert f"same  {export}\n" in out
    assert "differs" not in out and "missing" not in out and "extra" not in out


def test_cli_header_reports_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (INCLUDE / "wintun-pool.h").read_text()
    # A 0.9-style logger that returns BOOL, and one function less.
    text = text.replace(
        "typedef VOID(CALLBACK *WINTUN_LOGGER_CALLBACK)",
        "typedef BOOL(CALLBACK *WINTUN_LOGGER_CALLBACK)",
    )
    start = text.index(
        "typedef _Return_type_success_(return != FALSE)\nBOOL(WINAPI WINTUN_SET_ADAPTER_NAME"
    )
    end = text.index("WINTUN_SET_ADAPTER_NAME_FUNC;") + len("WINTUN_SET_ADAPTER_NAME_FUNC;")
    text = text[:start] + text[end:]
    path = tmp_path / "wintun.h"
    path.write_text(text)
    assert build_ffi.main(["--header", str(path)]) == 1
    out = capsys.readouterr().out
    assert "looks like 'pool'" in out
    assert "differs  WINTUN_LOGGER_CALLBACK" in out
    assert "missing  WintunSetAdapterName" in out
    assert "result: 2 difference(s)" in out


def test_cli_header_output_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "my_wintun.py"
    args = [
        "--header",
        str(INCLUDE / "wintun-0.14.h"),
        "--output",
        str(out_file),
        "--module-name",
        "my_wintun",
    ]
    assert build_ffi.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("my_wintun", out_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ffi.typeof("WINTUN_ADAPTER_HANDLE").kind == "pointer"
    # Same tables as our generated module; only the first comment and the module name differ.
    ours = (ROOT / "wintun_cffi" / "platform" / "_ffi_0_14.py").read_text().split("\n", 1)[1]
    assert out_file.read_text().split("\n", 1)[1] == ours.replace(
        "wintun_cffi.platform._ffi_0_14", "my_wintun"
    )


def test_cli_header_parse_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.h"
    path.write_text("typedef void *X;\nthis is garbage;\n")
    assert build_ffi.main(["--header", str(path)]) == 2
    assert f"{path}:2: not a typedef" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Malformed headers


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("typedef void *A;\ntypedef BOOL(WINAPI *WINTUN_X_FUNC)(DWORD a;\n", 2, "unbalanced"),
        (
            "typedef void *A;\n\ntypedef BOOL(WINAPI *WINTUN_X_FUNC) DWORD a);\n",
            3,
            "unbalanced ')'",
        ),
        ("typedef void *A;\ntypedef int A[4];\n", 2, "unknown typedef shape"),
        ("typedef void *A;\ntypedef DWORD *PDWORD;\n", 2, "unknown typedef shape"),
        ("typedef void *A;\n\n\nhello world;\n", 4, "not a typedef"),
        ("typedef void *A;\n\ntypedef void *B\n", 3, "without ';'"),
        ("/* doc */\ntypedef BOOL(WINAPI *WINTUN_X_FUNC)(WIDGET w);\n", 2, "unknown type 'WIDGET'"),
        ("typedef BOOL(WINAPI WINTUN_X_FUNC_IMPL)(void);\n", 1, "no pointer typedef"),
        ("typedef BOOL(WINAPI SOMETHING)(void);\n", 1, "must be named"),
        ("typedef BOOL(WINAPI *WINTUN_X_FUNC)(DWORD a, (b));\n", 1, "C syntax"),
        ("typedef BOOL(WINAPI *WINTUN_X_FUNC)(DWORD a, ...);\n", 1, "cannot read parameter"),
        ("typedef void(WINAPI *WINTUN_X_FUNC)(void (*f)(int));\n", 1, "cannot read parameter"),
        ("typedef struct { DWORD a : 3; } S;\n", 1, "unsupported struct field"),
        ("#define N 4\ntypedef struct { BYTE b[N + M]; } S;\n", 2, "array size"),
        ("typedef enum { A = sizeof(DWORD) } E;\n", 1, "not an integer constant"),
        (
            "typedef void *A;\ntypedef void(WINAPI *WINTUN_X_FUNC)(\n  WIDGET w);\n",
            3,
            "unknown type",
        ),
        (
            "typedef void *A;\ntypedef void(WINAPI *WINTUN_X_FUNC)(\n  A a,\n  WIDGET w);\n",
            2,
            "C syntax",
        ),
        ("typedef BOOL (*WINTUN_X_FUNC)(void);\n", 1, "needs WINAPI or CALLBACK"),
        (
            "typedef BOOL(WINAPI *WINTUN_X_FUNC)(void);\ntypedef void(WINAPI *F)(WINTUN_X_FUNC f);\n",
            2,
            "unknown type 'WINTUN_X_FUNC'",
        ),
        (
            "typedef void *A;\n\n" + "typedef enum { X = " + "-" * 2000 + "1 } E;\n",
            3,
            "nested too deep",
        ),
        ("typedef void *A;\n" + "(" * 40 + ")" * 40 + ";\n", 2, "nested too deep"),
        ("#endif\n", 1, "#endif without #if"),
        ("\n#ifdef X\n", 2, "#if without #endif"),
        ("\n\n#frobnicate\n", 3, "unknown preprocessor directive"),
        ("typedef void *A;\n/* open\n", 2, "unterminated comment"),
        (
            "typedef BOOL(WINAPI *WINTUN_X_FUNC)(void);\ntypedef BOOL(WINAPI *WINTUN_X_FUNC)(void);\n",
            2,
            "twice",
        ),
    ],
)
def test_malformed_headers(text: str, line: int, reason: str) -> None:
    with pytest.raises(HeaderParseError) as info:
        parse_header(text, "my.h")
    assert info.value.line == line
    assert reason in info.value.reason
    assert str(info.value).startswith(f"my.h:{line}: ")
    assert isinstance(info.value, ValueError)


def test_parse_error_names_the_offending_text() -> None:
    with pytest.raises(HeaderParseError, match=r"x\.h:2: not a typedef: 'int garbage here;'"):
        parse_header("typedef void *A;\nint garbage here;\n", "x.h")


# ------------------------------------------------------------------------------------------
# Property: decoration does not change the parse


# A small header as tokens; "@" marks a place where an annotation may go, "\n#..." tokens are
# preprocessor lines (they must stay on their own line).
BASE_TOKENS = """
\n#pragma once\n  \n#define WINTUN_MAX_POOL 256\n
typedef struct _WINTUN_ADAPTER * WINTUN_ADAPTER_HANDLE ;
typedef enum { WINTUN_LOG_INFO , WINTUN_LOG_WARN = 1 , WINTUN_LOG_ERR } WINTUN_LOGGER_LEVEL ;
typedef BOOL ( CALLBACK * WINTUN_LOGGER_CALLBACK ) ( @ WINTUN_LOGGER_LEVEL Level , @ LPCWSTR Message ) ;
typedef @ WINTUN_ADAPTER_HANDLE ( WINAPI * WINTUN_OPEN_ADAPTER_FUNC ) ( @ LPCWSTR Pool , @ LPCWSTR Name ) ;
typedef @ BYTE * @ ( WINAPI WINTUN_RECEIVE_PACKET_FUNC_IMPL ) ( @ WINTUN_ADAPTER_HANDLE Session , @ DWORD * PacketSize ) ;
typedef WINTUN_RECEIVE_PACKET_FUNC_IMPL * WINTUN_RECEIVE_PACKET_FUNC ;
typedef @ VOID ( WINAPI WINTUN_GET_ADAPTER_LUID_FUNC ) ( @ WINTUN_ADAPTER_HANDLE Adapter , @ NET_LUID * Luid ) ;
"""
SEPARATORS = [
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    " /* comment ( { ; */ ",
    "/**\n * doc\n */",
    " // note ( ;\n",
    "\r\n",
]
NOTES = [""] + ANNOTATIONS


def _tokens() -> list[str]:
    tokens: list[str] = []
    for part in BASE_TOKENS.split("\n"):
        if part.strip().startswith("#"):
            tokens.append("\n" + part.strip() + "\n")
        else:
            tokens += part.split()
    return tokens


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_decoration_does_not_change_the_parse(data: st.DataObject) -> None:
    tokens = _tokens()
    plain = parse_header(" ".join(t for t in tokens if t != "@"))
    out: list[str] = []
    for token in tokens:
        if token == "@":
            token = data.draw(st.sampled_from(NOTES))
        out.append(token)
        out.append(data.draw(st.sampled_from(SEPARATORS)))
    decorated = parse_header("".join(out))
    assert decorated == plain
    assert build_ffi.make_cdef(decorated) == build_ffi.make_cdef(plain)
