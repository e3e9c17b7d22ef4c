"""Turn ``wintun.h`` into cffi declarations and out-of-line ABI-mode modules.

``python build_ffi.py`` regenerates ``wintun_cffi/_ffi_*.py`` (+ ``.pyi``) and
``wintun_cffi/_exports.py`` from the headers in ``wintun_cffi/include``.
``python build_ffi.py --check`` only reports (exit 1) the generated files that are stale.
``python build_ffi.py --header PATH`` parses a user's own ``wintun.h`` and compares it with ours.

The parser understands exactly the subset of C that the real ``wintun.h`` files use (three
typedef styles, SAL annotations, integer ``#define``s, enums, handle and callback typedefs). It
is deliberately not a C preprocessor: conditionals are read through (except ``__cplusplus``
blocks), so every declaration in the file is seen whatever the compiler would pick.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import io
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = ROOT / "wintun_cffi"
INCLUDE_DIR = PACKAGE_DIR / "include"

#: API generation -> (our header in wintun_cffi/include, generated module in wintun_cffi).
GENERATIONS: dict[str, tuple[str, str]] = {
    "0.14": ("wintun-0.14.h", "_ffi_0_14"),
    "pool": ("wintun-pool.h", "_ffi_pool"),
    "seed": ("wintun-seed.h", "_ffi_seed"),
}

#: Words of a typedef name that are not simply capitalized in the export name.
#: (The LUID export is ``WintunGetAdapterLUID`` in every Wintun version.)
ACRONYMS: dict[str, str] = {"LUID": "LUID"}

_GUID = "typedef struct { uint32_t Data1; uint16_t Data2; uint16_t Data3; uint8_t Data4[8]; } GUID;"

#: Windows types with fixed widths, so one generated module fits every platform (Windows is
#: LLP64: LONG/ULONG/DWORD are 32 bits everywhere). Order matters: later entries use earlier ones.
PRELUDE_TYPES: tuple[tuple[str, str], ...] = (
    ("WCHAR", "typedef char16_t WCHAR;"),
    ("LPCWSTR", "typedef const WCHAR *LPCWSTR;"),
    ("PCWSTR", "typedef const WCHAR *PCWSTR;"),
    ("LPWSTR", "typedef WCHAR *LPWSTR;"),
    ("PWSTR", "typedef WCHAR *PWSTR;"),
    ("BYTE", "typedef uint8_t BYTE;"),
    ("UCHAR", "typedef uint8_t UCHAR;"),
    ("BOOLEAN", "typedef uint8_t BOOLEAN;"),
    ("WORD", "typedef uint16_t WORD;"),
    ("USHORT", "typedef uint16_t USHORT;"),
    ("BOOL", "typedef int BOOL;"),
    ("INT", "typedef int INT;"),
    ("LONG", "typedef int32_t LONG;"),
    ("ULONG", "typedef uint32_t ULONG;"),
    ("UINT", "typedef uint32_t UINT;"),
    ("DWORD", "typedef uint32_t DWORD;"),
    ("DWORD64", "typedef uint64_t DWORD64;"),
    ("ULONG64", "typedef uint64_t ULONG64;"),
    ("ULONGLONG", "typedef uint64_t ULONGLONG;"),
    ("LPARAM", "typedef intptr_t LPARAM;"),
    ("WPARAM", "typedef uintptr_t WPARAM;"),
    ("HANDLE", "typedef void *HANDLE;"),
    ("PVOID", "typedef void *PVOID;"),
    ("LPVOID", "typedef void *LPVOID;"),
    ("GUID", _GUID),
    ("LPCGUID", "typedef const GUID *LPCGUID;"),
    ("NET_LUID", "typedef union { uint64_t Value; } NET_LUID;"),
)

#: Pointer aliases spelled out when two headers' signatures are compared.
_CANONICAL: dict[str, str] = {
    "VOID": "void",
    "LPCWSTR": "const WCHAR *",
    "PCWSTR": "const WCHAR *",
    "LPWSTR": "WCHAR *",
    "PWSTR": "WCHAR *",
    "PVOID": "void *",
    "LPVOID": "void *",
    "LPCGUID": "const GUID *",
}

_C_TYPE_WORDS = frozenset(
    [
        *("void", "char", "short", "int", "long", "float", "double", "signed", "unsigned"),
        *("const", "volatile", "struct", "union", "enum", "_Bool", "bool"),
        *("char16_t", "char32_t", "wchar_t", "size_t", "ssize_t", "intptr_t", "uintptr_t"),
        *("int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t"),
    ]
)
_CALLING_CONVENTIONS = ("WINAPI", "CALLBACK", "__stdcall", "APIENTRY", "NTAPI")
_IDENT = r"[A-Za-z_]\w*"


class HeaderParseError(ValueError):
    """A header uses C that this parser does not understand; names the file, line and text."""

    def __init__(self, filename: str, line: int, reason: str, text: str) -> None:
        self.filename = filename
        self.line = line
        self.reason = reason
        self.text = text
        super().__init__(f"{filename}:{line}: {reason}: {text!r}")


@dataclass(frozen=True)
class Param:
    """One parameter; ``name`` is empty when the header leaves it unnamed."""

    type: str
    name: str


@dataclass(frozen=True)
class Function:
    """One exported function, from its ``WINTUN_*_FUNC`` typedef."""

    export: str
    typedef: str
    return_type: str
    params: tuple[Param, ...]
    line: int = field(default=0, compare=False)

    def declaration(self) -> str:
        """The cffi declaration, e.g. ``BOOL WINAPI WintunSendPacket(...)``."""
        return f"{_declarator(self.return_type, 'WINAPI ' + self.export)}({_params(self.params)});"

    def canonical(self) -> tuple[str, tuple[str, ...]]:
        """Return and parameter types with aliases spelled out; names ignored."""
        return canonical_type(self.return_type), tuple(canonical_type(p.type) for p in self.params)


@dataclass(frozen=True)
class Callback:
    """A callback pointer typedef such as ``WINTUN_LOGGER_CALLBACK`` (no export)."""

    name: str
    return_type: str
    params: tuple[Param, ...]
    line: int = field(default=0, compare=False)

    def declaration(self) -> str:
        # cffi knows WINAPI (stdcall on 32-bit Windows) but not CALLBACK; they are the same.
        inner = _declarator(self.return_type, f"(WINAPI *{self.name})")
        return f"typedef {inner}({_params(self.params)});"

    def canonical(self) -> tuple[str, tuple[str, ...]]:
        return canonical_type(self.return_type), tuple(canonical_type(p.type) for p in self.params)


@dataclass(frozen=True)
class Constant:
    name: str
    value: int
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Enum:
    name: str
    members: tuple[tuple[str, int], ...]
    line: int = field(default=0, compare=False)

    def declaration(self) -> str:
        body = ", ".join(f"{n} = {v}" for n, v in self.members)
        return f"typedef enum {{ {body} }} {self.name};"


@dataclass(frozen=True)
class Handle:
    """An opaque handle typedef; ``target`` is e.g. ``struct _WINTUN_ADAPTER *`` or ``void *``."""

    name: str
    target: str
    line: int = field(default=0, compare=False)

    def declaration(self) -> str:
        return f"typedef {self.target}{self.name};"


@dataclass(frozen=True)
class Field:
    """A struct member; ``length`` is set for an array member."""

    type: str
    name: str
    length: int | None = None

    def declaration(self) -> str:
        suffix = f"[{self.length}]" if self.length is not None else ""
        return f"{_declarator(self.type, self.name)}{suffix};"


@dataclass(frozen=True)
class Struct:
    """A ``typedef struct/union { ... } NAME;``."""

    name: str
    kind: str
    fields: tuple[Field, ...]
    line: int = field(default=0, compare=False)

    def declaration(self) -> str:
        members = " ".join(f.declaration() for f in self.fields)
        return f"typedef {self.kind} {{ {members} }} {self.name};"


@dataclass(frozen=True)
class Header:
    """Everything the parser found, in declaration order within each kind."""

    filename: str
    functions: tuple[Function, ...]
    callbacks: tuple[Callback, ...]
    constants: tuple[Constant, ...]
    enums: tuple[Enum, ...]
    handles: tuple[Handle, ...]
    structs: tuple[Struct, ...] = ()

    @property
    def exports(self) -> tuple[str, ...]:
        return tuple(f.export for f in self.functions)

    def function(self, export: str) -> Function | None:
        return next((f for f in self.functions if f.export == export), None)

    def callback(self, name: str) -> Callback | None:
        return next((c for c in self.callbacks if c.name == name), None)


# ---------------------------------------------------------------------------------------------
# Small text helpers


def _declarator(return_type: str, inner: str) -> str:
    # "BYTE *" + "WINAPI f" -> "BYTE *WINAPI f"; "BOOL" + ... -> "BOOL WINAPI f".
    return f"{return_type}{inner}" if return_type.endswith("*") else f"{return_type} {inner}"


def _params(params: tuple[Param, ...]) -> str:
    if not params:
        return "void"
    return ", ".join(_declarator(p.type, p.name) if p.name else p.type for p in params)


def _leading_newlines(text: str) -> int:
    return text[: len(text) - len(text.lstrip())].count("\n")


def _normalize_type(tokens: Sequence[str]) -> str:
    """Spell a type as ``const WCHAR *``: words split by one space, stars attached together."""
    words = ["void" if t == "VOID" else t for t in tokens]
    out = ""
    for word in words:
        if word == "*":
            out += "*" if out.endswith("*") else " *"
        else:
            out += (" " if out else "") + word
    return out.strip()


def canonical_type(type_: str) -> str:
    """``LPCWSTR`` -> ``const WCHAR *`` etc., for comparing two headers."""
    tokens: list[str] = []
    for tok in re.findall(rf"{_IDENT}|\*", type_):
        tokens.extend(re.findall(rf"{_IDENT}|\*", _CANONICAL.get(tok, tok)))
    return _normalize_type(tokens)


def export_name(typedef_name: str) -> str:
    """``WINTUN_CREATE_ADAPTER_FUNC`` (or ``..._FUNC_IMPL``) -> ``WintunCreateAdapter``."""
    m = re.fullmatch(r"WINTUN_([A-Z0-9_]+?)_FUNC(?:_IMPL)?", typedef_name)
    if not m:
        raise ValueError(f"not a WINTUN_*_FUNC typedef name: {typedef_name!r}")
    words = m.group(1).split("_")
    return "Wintun" + "".join(ACRONYMS.get(w, w.capitalize()) for w in words)


def _strip_comments(text: str, filename: str) -> str:
    """Blank out comments, keeping every newline so line numbers stay right."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line = text.count("\n", 0, i) + 1
                raise HeaderParseError(filename, line, "unterminated comment", text[i : i + 40])
            chunk = text[i : end + 2]
            out.append(re.sub(r"[^\n]", " ", chunk))
            i = end + 2
        elif c in "\"'":
            # Skip string/char literals so "/*" inside them is not a comment.
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


# "(WINAPI *X)" after an annotation opens the declarator, not annotation arguments. (A bare
# "(*X)" is taken as arguments: _Ret_bytecount_(*PacketSize) is real, cdecl callbacks are not.)
_DECLARATOR_PAREN = re.compile(rf"\(\s*(?:{'|'.join(_CALLING_CONVENTIONS)})\b")
_SAL = re.compile(r"\b_[A-Z][A-Za-z0-9_]*_(?![A-Za-z0-9_])")


def strip_annotations(text: str) -> str:
    """Remove SAL annotations: ``_Xxx_`` and ``_Xxx_(...)`` (nested parentheses allowed)."""
    out: list[str] = []
    pos = 0
    for m in _SAL.finditer(text):
        if m.start() < pos:
            continue  # inside the arguments of an annotation already removed
        out.append(text[pos : m.start()])
        pos = m.end()
        rest = text[pos:]
        stripped = rest.lstrip()
        # An argument list follows directly, unless the "(" opens a declarator like (WINAPI *X).
        if stripped.startswith("(") and not _DECLARATOR_PAREN.match(stripped):
            start = pos + len(rest) - len(stripped)
            depth = 0
            for k in range(start, len(text)):
                if text[k] == "(":
                    depth += 1
                elif text[k] == ")":
                    depth -= 1
                    if depth == 0:
                        # Keep the newlines of multi-line arguments for line counting.
                        out.append("\n" * text.count("\n", pos, k + 1) or " ")
                        pos = k + 1
                        break
            else:
                break  # unbalanced: leave the rest for the statement splitter to report
        out.append(" ")
    out.append(text[pos:])
    return "".join(out)


_INT_LITERAL = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b")


def eval_int(expr: str, known: dict[str, int]) -> int | None:
    """Value of a C integer constant expression, or None if it is not one we can evaluate.

    Handles hex/octal/decimal literals with U/L suffixes, casts such as ``(DWORD)``,
    parentheses, arithmetic, shifts and bit operators, and names of earlier constants.
    """
    s = expr.strip()
    if not s:
        return None

    def drop_cast(m: re.Match[str]) -> str:
        words = m.group(1).split()
        return m.group(0) if any(w in known for w in words) else " "

    # A parenthesized type name followed by an operand is a cast.
    # Words must be apart: "(?:IDENT\s*)+" splits a long word in exponentially many ways.
    s = re.sub(rf"\(\s*((?:{_IDENT}\s+)*{_IDENT}\s*\**)\s*\)(?=\s*[\w(~+-])", drop_cast, s)

    def literal(m: re.Match[str]) -> str:
        text = m.group(1)
        if text.lower().startswith("0x"):
            return str(int(text, 16))
        return str(int(text, 8) if len(text) > 1 and text.startswith("0") else int(text))

    try:
        s = _INT_LITERAL.sub(literal, s)
    except ValueError:  # e.g. "09": not an octal literal, so not a constant we know
        return None
    s = s.replace("/", "//").strip()
    try:
        with warnings.catch_warnings():  # text like "1abc" is no constant, not a warning
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(s, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None
    return _eval_node(tree.body, known)


def _eval_node(node: ast.expr, known: dict[str, int]) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        return known.get(node.id)
    if isinstance(node, ast.UnaryOp):
        v = _eval_node(node.operand, known)
        if v is None:
            return None
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Invert):
            return ~v
        return None
    if isinstance(node, ast.BinOp):
        a, b = _eval_node(node.left, known), _eval_node(node.right, known)
        if a is None or b is None:
            return None
        return _binary(node.op, a, b)
    return None


def _binary(op: ast.operator, a: int, b: int) -> int | None:
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    if isinstance(op, ast.FloorDiv) and b:
        q = abs(a) // abs(b)  # C division truncates toward zero
        return q if (a < 0) == (b < 0) else -q
    if isinstance(op, ast.Mod) and b:
        return a - b * (_binary(ast.FloorDiv(), a, b) or 0)
    if isinstance(op, ast.LShift) and 0 <= b < 128:
        return a << b
    if isinstance(op, ast.RShift) and b >= 0:
        return a >> b
    if isinstance(op, ast.BitOr):
        return a | b
    if isinstance(op, ast.BitAnd):
        return a & b
    if isinstance(op, ast.BitXor):
        return a ^ b
    return None


# ---------------------------------------------------------------------------------------------
# The parser


@dataclass
class _Parser:
    filename: str
    functions: list[Function] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    constants: dict[str, Constant] = field(default_factory=dict)
    enums: list[Enum] = field(default_factory=list)
    handles: list[Handle] = field(default_factory=list)
    structs: list[Struct] = field(default_factory=list)
    impls: dict[str, int] = field(default_factory=dict)  # FUNC_IMPL name -> index in functions
    enum_values: dict[str, int] = field(default_factory=dict)

    def fail(self, line: int, reason: str, text: str) -> HeaderParseError:
        return HeaderParseError(self.filename, line, reason, " ".join(text.split()))

    # -- preprocessor lines ------------------------------------------------------------------

    def preprocess(self, text: str) -> list[str]:
        """Handle directives; return the C lines (directive lines blanked, same count)."""
        lines = text.split("\n")
        # Join backslash continuations onto the first line; keep the count with empty lines.
        i = 0
        while i < len(lines):
            j = i
            while lines[i].rstrip().endswith("\\") and j + 1 < len(lines):
                j += 1
                lines[i] = lines[i].rstrip()[:-1] + " " + lines[j]
                lines[j] = ""
            i = j + 1

        # Conditional stack: each frame is (active, is __cplusplus block, start line).
        stack: list[tuple[bool, bool, int]] = []
        out: list[str] = []
        for number, line in enumerate(lines, start=1):
            active = all(frame[0] for frame in stack)
            m = re.match(r"\s*#\s*(\w*)(.*)$", line)
            if not m:
                out.append(line if active else "")
                continue
            out.append("")
            directive, rest = m.group(1), m.group(2).strip()
            if directive in ("if", "ifdef", "ifndef"):
                cplusplus = "__cplusplus" in rest
                # Only C++ blocks are decided (we are C); other conditions are read through.
                stack.append((directive == "ifndef" if cplusplus else True, cplusplus, number))
            elif directive in ("elif", "else"):
                if not stack:
                    raise self.fail(number, f"#{directive} without #if", line)
                was, cplusplus, start = stack.pop()
                stack.append((not was if cplusplus else True, cplusplus, start))
            elif directive == "endif":
                if not stack:
                    raise self.fail(number, "#endif without #if", line)
                stack.pop()
            elif directive == "define":
                if active:
                    self.define(number, rest)
            elif directive in ("include", "pragma", "error", "warning", "undef", "line", ""):
                pass  # nothing that changes declarations
            else:
                raise self.fail(number, "unknown preprocessor directive", line)
        if stack:
            raise self.fail(stack[-1][2], "#if without #endif", lines[stack[-1][2] - 1])
        return out

    def define(self, line: int, rest: str) -> None:
        m = re.match(rf"({_IDENT})(\(?)(.*)$", rest)
        if not m:
            raise self.fail(line, "malformed #define", "#define " + rest)
        name, paren, value = m.group(1), m.group(2), m.group(3)
        if paren:
            return  # function-like macro (e.g. ALIGNED(n)): not a declaration
        known = {k: c.value for k, c in self.constants.items()} | self.enum_values
        number = eval_int(value, known)
        # Non-integer macros (empty SAL fallbacks, strings) are irrelevant to the ABI. If a name
        # is defined in several #if branches, the first definition wins.
        if number is not None and name not in self.constants:
            self.constants[name] = Constant(name, number, line)

    # -- statements --------------------------------------------------------------------------

    def statements(self, lines: list[str]) -> list[tuple[int, str]]:
        """Split C text at top-level ';' into (first line, statement) pairs."""
        text = strip_annotations("\n".join(lines))
        result: list[tuple[int, str]] = []
        depth: list[tuple[str, int]] = []  # open brackets with their line
        start, start_line, line = 0, 1, 1
        for k, c in enumerate(text):
            if c == "\n":
                line += 1
            elif c in "({":
                depth.append((c, line))
            elif c in ")}":
                want = "(" if c == ")" else "{"
                if not depth or depth[-1][0] != want:
                    raise self.fail(line, f"unbalanced '{c}'", text[start : k + 1])
                depth.pop()
            elif c == ";" and not depth:
                stmt = text[start:k]
                result.append((start_line + _leading_newlines(stmt), stmt))
                start, start_line = k + 1, line
        tail = text[start:]
        if depth:
            raise self.fail(depth[-1][1], f"unbalanced '{depth[-1][0]}'", tail)
        if tail.strip():
            raise self.fail(start_line + _leading_newlines(tail), "declaration without ';'", tail)
        return result

    def statement(self, line: int, raw: str) -> None:
        s = " ".join(raw.split())
        if not s:
            raise self.fail(line, "empty declaration", raw)
        if not s.startswith("typedef "):
            raise self.fail(line, "not a typedef", s)
        body = s[len("typedef ") :]
        cc = "|".join(_CALLING_CONVENTIONS)
        m = re.fullmatch(
            rf"(?P<ret>[\w\s*]+?)\s*\(\s*(?:{cc})\b\s*(?P<ptr>\*)?\s*(?P<name>{_IDENT})\s*\)\s*\((?P<params>.*)\)",
            body,
        )
        if m:
            self.function_typedef(
                line, m.group("ret"), bool(m.group("ptr")), m.group("name"), m.group("params"), s
            )
            return
        m = re.fullmatch(
            rf"(?P<kind>struct|union|enum)\b\s*(?:{_IDENT})?\s*\{{(?P<body>.*)\}}\s*(?P<names>[\w\s,*]+)",
            body,
        )
        if m and m.group("kind") == "enum":
            self.enum(line, m.group("body"), m.group("names"), s)
            return
        if m:
            self.struct(line, m.group("kind"), m.group("body"), m.group("names"), s)
            return
        m = re.fullmatch(
            rf"(?P<target>struct\s+{_IDENT}|void|VOID|{_IDENT})\s*\*\s*(?P<name>{_IDENT})", body
        )
        if m:
            self.pointer_typedef(line, m.group("target"), m.group("name"), s)
            return
        raise self.fail(line, "unknown typedef shape", s)

    def function_typedef(
        self, line: int, ret: str, pointer: bool, name: str, params: str, s: str
    ) -> None:
        return_type = self.type_of(line, ret, s)
        parsed = self.params(line, params, s)
        if name.endswith(("_FUNC", "_FUNC_IMPL")):
            if name.endswith("_FUNC_IMPL") and pointer:
                raise self.fail(
                    line, "a *_FUNC_IMPL typedef must be a function type, not a pointer", s
                )
            try:
                export = export_name(name)
            except ValueError:
                raise self.fail(line, "function typedef name is not WINTUN_*_FUNC", s) from None
            if any(f.export == export for f in self.functions):
                raise self.fail(line, f"{export} declared twice", s)
            if name.endswith("_FUNC_IMPL"):
                self.impls[name] = len(self.functions)
            self.functions.append(Function(export, name, return_type, parsed, line))
        elif pointer:
            self.callbacks.append(Callback(name, return_type, parsed, line))
        else:
            raise self.fail(line, "a function type typedef must be named *_FUNC or *_FUNC_IMPL", s)

    def pointer_typedef(self, line: int, target: str, name: str, s: str) -> None:
        if target in self.impls:  # style b: typedef WINTUN_X_FUNC_IMPL *WINTUN_X_FUNC;
            index = self.impls.pop(target)
            if target != name + "_IMPL":
                raise self.fail(line, f"{name} does not match {target}", s)
            self.functions[index] = dataclasses.replace(self.functions[index], typedef=name)
        elif target.startswith("struct") or target in ("void", "VOID"):
            target = "void" if target == "VOID" else " ".join(target.split())
            self.handles.append(Handle(name, target + " *", line))
        else:
            raise self.fail(line, "unknown typedef shape", s)

    def enum(self, line: int, body: str, names: str, s: str) -> None:
        members: list[tuple[str, int]] = []
        nxt = 0
        for item in [i.strip() for i in body.split(",")]:
            if not item:
                continue  # trailing comma
            m = re.fullmatch(rf"({_IDENT})\s*(?:=\s*(.+))?", item)
            if not m:
                raise self.fail(line, "bad enumerator", item)
            value = nxt
            if m.group(2) is not None:
                known = {k: c.value for k, c in self.constants.items()} | self.enum_values
                v = eval_int(m.group(2), known)
                if v is None:
                    raise self.fail(line, "enumerator value is not an integer constant", item)
                value = v
            members.append((m.group(1), value))
            self.enum_values[m.group(1)] = value
            nxt = value + 1
        self.enums.append(Enum(self.single_name(line, names, s), tuple(members), line))

    def struct(self, line: int, kind: str, body: str, names: str, s: str) -> None:
        fields: list[Field] = []
        for item in [i.strip() for i in body.split(";")]:
            if not item:
                continue
            m = re.fullmatch(rf"(.+?)\s*\b({_IDENT})\s*(?:\[\s*([^\]]+)\s*\])?", item)
            if not m or "(" in item or ":" in item:
                raise self.fail(line, "unsupported struct field", item)
            length = None
            if m.group(3) is not None:
                known = {k: c.value for k, c in self.constants.items()} | self.enum_values
                length = eval_int(m.group(3), known)
                if length is None:
                    raise self.fail(line, "array size is not an integer constant", item)
            fields.append(Field(self.type_of(line, m.group(1), s), m.group(2), length))
        self.structs.append(Struct(self.single_name(line, names, s), kind, tuple(fields), line))

    def single_name(self, line: int, names: str, s: str) -> str:
        # "} NAME" or "} NAME, *PNAME": keep NAME, pointer aliases are not needed.
        first = names.split(",")[0].strip()
        if not re.fullmatch(_IDENT, first):
            raise self.fail(line, "unknown typedef shape", s)
        return first

    def type_of(self, line: int, text: str, s: str) -> str:
        tokens = re.findall(rf"{_IDENT}|\*|\S", text)
        if not tokens or any(not re.fullmatch(rf"{_IDENT}|\*", t) for t in tokens):
            raise self.fail(line, "cannot read type", text or s)
        return _normalize_type(tokens)

    def params(self, line: int, text: str, s: str) -> tuple[Param, ...]:
        items = [p.strip() for p in text.split(",")]
        if items in (["void"], ["VOID"], [""]):
            return ()
        result: list[Param] = []
        for item in items:
            tokens = re.findall(rf"{_IDENT}|\*|\[|\]|\w+|\S", item)
            is_array = False
            if len(tokens) >= 3 and tokens[-1] == "]":
                # "WCHAR Name[128]": a parameter array is a pointer.
                open_at = len(tokens) - 1 - tokens[::-1].index("[")
                tokens = tokens[:open_at]
                is_array = True
            if not tokens or any(not re.fullmatch(rf"{_IDENT}|\*", t) for t in tokens):
                raise self.fail(line, "cannot read parameter", item or s)
            name = ""
            # The last word is the name unless it is part of the type ("unsigned int", "struct X").
            if (
                len(tokens) >= 2
                and re.fullmatch(_IDENT, tokens[-1])
                and tokens[-1] not in _C_TYPE_WORDS
                and tokens[-2] not in ("struct", "union", "enum")
            ):
                name = tokens.pop()
            if is_array:
                tokens.append("*")
            result.append(Param(_normalize_type(tokens), name))
        return tuple(result)

    # -- finish ------------------------------------------------------------------------------

    def header(self) -> Header:
        if self.impls:
            name, index = next(iter(self.impls.items()))
            fn = self.functions[index]
            raise self.fail(fn.line, f"{name} has no pointer typedef {name[: -len('_IMPL')]}", name)
        header = Header(
            self.filename,
            tuple(self.functions),
            tuple(self.callbacks),
            tuple(self.constants.values()),
            tuple(self.enums),
            tuple(self.handles),
            tuple(self.structs),
        )
        self.check_types(header)
        return header

    def check_types(self, header: Header) -> None:
        """Every type name must be a C type, a prelude type or declared in the header."""
        known = set(_C_TYPE_WORDS) | {n for n, _ in PRELUDE_TYPES}
        known |= {h.name for h in header.handles} | {e.name for e in header.enums}
        known |= {s.name for s in header.structs} | {c.name for c in header.callbacks}
        uses: list[tuple[int, str, str]] = []
        items: list[Function | Callback] = [*header.functions, *header.callbacks]
        for item in items:
            uses += [(item.line, item.return_type, item.declaration())]
            uses += [(item.line, p.type, item.declaration()) for p in item.params]
        for st in header.structs:
            uses += [(st.line, f.type, st.declaration()) for f in st.fields]
        for line, type_, decl in uses:
            words = re.findall(_IDENT, type_)
            for i, word in enumerate(words):
                tag = i > 0 and words[i - 1] in ("struct", "union", "enum")
                if word not in known and not tag:
                    raise self.fail(line, f"unknown type {word!r}", decl)


def parse_header(text: str, filename: str = "<header>") -> Header:
    """Parse the text of a ``wintun.h``; raises :class:`HeaderParseError` on anything unknown."""
    parser = _Parser(filename)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = parser.preprocess(_strip_comments(text, filename))
    for line, stmt in parser.statements(lines):
        parser.statement(line, stmt)
    return parser.header()


def parse_header_file(path: str | Path) -> Header:
    path = Path(path)
    return parse_header(path.read_text(encoding="utf-8"), _display(path))


def _display(path: Path) -> str:
    # Relative paths keep generated files identical whatever the checkout location.
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# cdef and module generation


def prelude() -> str:
    return "\n".join(decl for _, decl in PRELUDE_TYPES) + "\n"


def make_cdef(header: Header) -> str:
    """The complete cdef text: the Windows-type prelude, then the header's declarations."""
    parts = [f"/* Windows types (fixed widths) */\n{prelude()}", f"/* from {header.filename} */"]
    parts += [f"#define {c.name} {c.value}" for c in header.constants]
    parts += [h.declaration() for h in header.handles]
    parts += [e.declaration() for e in header.enums]
    parts += [s.declaration() for s in header.structs]
    parts += [c.declaration() for c in header.callbacks]
    parts += [f.declaration() for f in header.functions]
    return "\n".join(parts) + "\n"


def make_ffi(header: Header, module_name: str | None = None) -> cffi.FFI:
    """An FFI with the header's cdef (cffi checks it here); set up for out-of-line ABI mode."""
    ffi = cffi.FFI()
    ffi.cdef(make_cdef(header))
    if module_name is not None:
        ffi.set_source(module_name, None)
    return ffi


def module_source(header: Header, module_name: str) -> str:
    """The text of the out-of-line ABI module for ``header`` (what emit_python_code writes)."""
    ffi = make_ffi(header, module_name)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "module.py"
        with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating ..."
            ffi.emit_python_code(str(target))
        body = target.read_text(encoding="utf-8")
    return f"# Generated by build_ffi.py from {header.filename}; do not edit.\n{body}"


_STUB = """\
# Generated by build_ffi.py; do not edit.
import _cffi_backend

ffi: _cffi_backend.FFI
"""


def _find_param_type(header: Header, export: str, kinds: set[str]) -> str | None:
    fn = header.function(export)
    if fn is None:
        return None
    return next((p.type for p in fn.params if p.type in kinds), None)


def exports_source(headers: dict[str, Header]) -> str:
    """The text of ``wintun_cffi/_exports.py``: typed tables the native backend needs."""
    callbacks = {g: {c.name for c in h.callbacks} for g, h in headers.items()}
    logger = {g: _find_param_type(h, "WintunSetLogger", callbacks[g]) for g, h in headers.items()}
    enum = {g: _find_param_type(h, "WintunEnumAdapters", callbacks[g]) for g, h in headers.items()}
    out = [
        "# Generated by build_ffi.py; do not edit.",
        '"""Per API generation: exported function names and cdef names the native backend uses."""',
        "",
        "from __future__ import annotations",
        "",
        "#: The generations, newest first.",
        "GENERATIONS: tuple[str, ...] = (" + ", ".join(f'"{g}"' for g in headers) + ")",
        "",
        "#: Module holding each generation's out-of-line ``ffi``.",
        "FFI_MODULES: dict[str, str] = {",
        *[f'    "{g}": "wintun_cffi.{GENERATIONS[g][1]}",' for g in headers],
        "}",
        "",
        "#: Header (in wintun_cffi/include) each generation was generated from.",
        "HEADERS: dict[str, str] = {",
        *[f'    "{g}": "{GENERATIONS[g][0]}",' for g in headers],
        "}",
        "",
        "#: Exported function names, in header order.",
        "EXPORTS: dict[str, tuple[str, ...]] = {",
    ]
    for g, h in headers.items():
        out.append(f'    "{g}": (')
        out += [f'        "{name}",' for name in h.exports]
        out.append("    ),")
    out += [
        "}",
        "",
        "#: cdef name of the logger callback type (the parameter of WintunSetLogger).",
        "LOGGER_CALLBACK: dict[str, str] = {",
        *[f'    "{g}": "{v}",' for g, v in logger.items() if v],
        "}",
        "",
        "#: cdef name of the adapter enumeration callback type (pool-era generations only).",
        "ENUM_CALLBACK: dict[str, str] = {",
        *[f'    "{g}": "{v}",' for g, v in enum.items() if v],
        "}",
        "",
    ]
    return "\n".join(out)


def generated_files(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file (path -> text), built in memory from the headers under ``root``."""
    package = root / "wintun_cffi"
    headers = {g: parse_header_file(package / "include" / h) for g, (h, _) in GENERATIONS.items()}
    files: dict[Path, str] = {}
    for g, (_, module) in GENERATIONS.items():
        files[package / f"{module}.py"] = module_source(headers[g], f"wintun_cffi.{module}")
        files[package / f"{module}.pyi"] = _STUB
    files[package / "_exports.py"] = exports_source(headers)
    return files


def write_generated(root: Path = ROOT) -> list[Path]:
    """Write every generated file; returns the paths whose content changed."""
    changed = []
    for path, text in generated_files(root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_bytes(text.encode("utf-8"))  # bytes: no newline translation on Windows
            changed.append(path)
    return changed


def check_generated(root: Path = ROOT) -> list[Path]:
    """Paths of generated files that are missing or differ from a fresh build."""
    return [
        path
        for path, text in generated_files(root).items()
        if not path.exists() or path.read_bytes() != text.encode("utf-8")
    ]


# ---------------------------------------------------------------------------------------------
# Comparing a user's header with ours


def detect_generation(header: Header, ours: dict[str, Header] | None = None) -> str:
    """The generation whose export names overlap most with ``header``'s (Jaccard index)."""
    ours = ours if ours is not None else our_headers()
    theirs = set(header.exports)

    def score(g: str) -> float:
        mine = set(ours[g].exports)
        return len(theirs & mine) / max(1, len(theirs | mine))

    return max(ours, key=score)


def our_headers() -> dict[str, Header]:
    return {g: parse_header_file(INCLUDE_DIR / h) for g, (h, _) in GENERATIONS.items()}


def compare_headers(theirs: Header, ours: Header) -> list[tuple[str, str, str]]:
    """(status, name, detail) per function and callback; status is same/differs/missing/extra.

    ``missing``: in ours only; ``extra``: in theirs only. Parameter names are not compared.
    """
    result: list[tuple[str, str, str]] = []
    pairs: list[tuple[str, Function | Callback | None, Function | Callback | None]] = []
    for f in ours.functions:
        pairs.append((f.export, theirs.function(f.export), f))
    pairs += [(f.export, f, None) for f in theirs.functions if ours.function(f.export) is None]
    for c in ours.callbacks:
        pairs.append((c.name, theirs.callback(c.name), c))
    pairs += [(c.name, c, None) for c in theirs.callbacks if ours.callback(c.name) is None]
    for name, t, o in pairs:
        if t is None and o is not None:
            result.append(("missing", name, o.declaration()))
        elif o is None and t is not None:
            result.append(("extra", name, t.declaration()))
        elif t is not None and o is not None:
            if t.canonical() == o.canonical():
                result.append(("same", name, t.declaration()))
            else:
                result.append(
                    ("differs", name, f"theirs: {t.declaration()}  ours: {o.declaration()}")
                )
    return result


def describe_header(header: Header) -> tuple[str, bool]:
    """A report on a user's header and whether it matches ours; returns (text, matches)."""
    ours = our_headers()
    generation = detect_generation(header, ours)
    lines = [f"header: {header.filename}", f"functions ({len(header.functions)}):"]
    lines += [f"  {f.export}: {f.declaration()}" for f in header.functions]
    lines.append(f"callbacks ({len(header.callbacks)}):")
    lines += [f"  {c.name}: {c.declaration()}" for c in header.callbacks]
    lines.append(f"constants ({len(header.constants)}):")
    lines += [f"  {c.name} = {c.value} ({c.value:#x})" for c in header.constants]
    lines.append(f"enums ({len(header.enums)}):")
    lines += [f"  {e.name}: " + ", ".join(f"{n}={v}" for n, v in e.members) for e in header.enums]
    lines.append(f"generation: looks like {generation!r} (ours: {GENERATIONS[generation][0]})")
    rows = compare_headers(header, ours[generation])
    # Constants and enum values only count when both sides define them (MAX_ADAPTER_NAME is
    # usually inherited from <ipexport.h>).
    our_consts = {c.name: c.value for c in ours[generation].constants}
    for c in header.constants:
        if c.name in our_consts:
            status = "same" if our_consts[c.name] == c.value else "differs"
            rows.append((status, c.name, f"theirs {c.value:#x}, ours {our_consts[c.name]:#x}"))
    our_enums = {e.name: e.members for e in ours[generation].enums}
    for e in header.enums:
        if e.name in our_enums:
            rows.append(("same" if our_enums[e.name] == e.members else "differs", e.name, ""))
    lines.append("comparison:")
    width = max((len(s) for s, _, _ in rows), default=0)
    lines += [f"  {s:<{width}}  {n}" + (f"  {d}" if s != "same" else "") for s, n, d in rows]
    matches = all(s == "same" for s, _, _ in rows)
    bad = sum(s != "same" for s, _, _ in rows)
    lines.append("result: everything matches" if matches else f"result: {bad} difference(s)")
    return "\n".join(lines) + "\n", matches


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--check", action="store_true", help="exit 1 and list generated files that are stale"
    )
    ap.add_argument(
        "--header",
        type=Path,
        help="parse this wintun.h and compare it with ours (exit 1 if it differs)",
    )
    ap.add_argument(
        "--output", type=Path, help="with --header: write an out-of-line ABI module from it"
    )
    ap.add_argument("--module-name", help="with --output: module name (default: the file's stem)")
    args = ap.parse_args(argv)

    if args.header is not None:
        try:
            header = parse_header_file(args.header)
            text, matches = describe_header(header)
        except (HeaderParseError, cffi.CDefError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        sys.stdout.write(text)
        if args.output is not None:
            name = args.module_name or args.output.stem
            args.output.write_bytes(module_source(header, name).encode("utf-8"))
            print(f"wrote {args.output} (module {name})")
            return 0
        return 0 if matches else 1
    if args.output is not None or args.module_name is not None:
        ap.error("--output and --module-name need --header")

    if args.check:
        stale = check_generated()
        for path in stale:
            print(f"out of date: {_display(path)}")
        return 1 if stale else 0
    for path in write_generated():
        print(f"wrote {_display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
