"""Read a ``wintun.h`` into a :class:`Header`: a small preprocessing step, then pycparser.

1. :func:`preprocess` blanks comments and directives (keeping every line number), evaluates
   integer ``#define``\\ s and drops ``__cplusplus`` blocks. It is deliberately not a C
   preprocessor: other conditionals are read through, so every declaration in the file is seen
   whatever the compiler would pick.
2. SAL annotations and calling conventions, which pycparser does not know, are blanked, and the
   text is cut into top-level declarations (brackets must balance and nest at most 32 deep).
3. pycparser parses each declaration, told which of its words are type names so far, and
   :class:`_Reader` turns every ``typedef`` of its AST into a model object. Anything else is a
   :class:`HeaderParseError` naming file, line and declaration.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pycparser import c_ast, c_parser

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

#: Type names cffi knows without a declaration (the prelude uses them); pycparser is told.
_BUILTIN_TYPES = (
    *("char16_t", "char32_t", "wchar_t", "size_t", "ssize_t", "intptr_t", "uintptr_t"),
    *("int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t"),
)

#: Type names a declaration may use before the header declares its own.
_KNOWN_TYPES = frozenset(
    [*_BUILTIN_TYPES, *(name for name, _ in PRELUDE_TYPES), "void", "char", "short", "int"]
    + ["long", "float", "double", "signed", "unsigned", "_Bool"]
)

#: The names among them that pycparser must be told are types (VOID is read as void).
_TYPEDEFS = frozenset(["VOID", *_BUILTIN_TYPES, *(name for name, _ in PRELUDE_TYPES)])

#: Pointer aliases spelled out when two headers' signatures are compared.
_CANONICAL: dict[str, str] = {
    "LPCWSTR": "const WCHAR *",
    "PCWSTR": "const WCHAR *",
    "LPWSTR": "WCHAR *",
    "PWSTR": "WCHAR *",
    "PVOID": "void *",
    "LPVOID": "void *",
    "LPCGUID": "const GUID *",
}


class HeaderParseError(ValueError):
    """A header uses C that this parser does not understand; names the file, line and text."""

    def __init__(self, filename: str, line: int, reason: str, text: str) -> None:
        self.filename = filename
        self.line = line
        self.reason = reason
        self.text = " ".join(text.split())
        super().__init__(f"{filename}:{line}: {reason}: {self.text!r}")


# ---------------------------------------------------------------------------------------------
# The model


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


def _declarator(type_: str, inner: str) -> str:
    # "BYTE *" + "WINAPI f" -> "BYTE *WINAPI f"; "BOOL" + ... -> "BOOL WINAPI f".
    return f"{type_}{inner}" if type_.endswith("*") else f"{type_} {inner}"


def _params(params: tuple[Param, ...]) -> str:
    if not params:
        return "void"
    return ", ".join(_declarator(p.type, p.name) if p.name else p.type for p in params)


def _pointer_to(type_: str) -> str:
    return type_ + ("*" if type_.endswith("*") else " *")


def canonical_type(type_: str) -> str:
    """``LPCWSTR`` -> ``const WCHAR *`` etc., for comparing two headers."""
    words = [_CANONICAL.get(w, w) for w in re.findall(r"\w+|\*", type_)]
    return re.sub(r"\* (?=\*)", "*", " ".join(words))


def export_name(typedef_name: str) -> str:
    """``WINTUN_CREATE_ADAPTER_FUNC`` (or ``..._FUNC_IMPL``) -> ``WintunCreateAdapter``."""
    m = re.fullmatch(r"WINTUN_([A-Z0-9_]+?)_FUNC(?:_IMPL)?", typedef_name)
    if not m:
        raise ValueError(f"not a WINTUN_*_FUNC typedef name: {typedef_name!r}")
    words = m.group(1).split("_")
    return "Wintun" + "".join(ACRONYMS.get(w, w.capitalize()) for w in words)


# ---------------------------------------------------------------------------------------------
# Step 1: comments and directives

# Each alternative always matches, so the scan stays linear even on an unterminated "/*".
_COMMENT = re.compile(
    r"""//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?""", re.S
)
# Directives that change no declaration (and #define in an inactive block).
_IGNORED = ("define", "include", "pragma", "error", "warning", "undef", "line", "")


def preprocess(text: str, filename: str) -> tuple[str, dict[str, Constant]]:
    """The C text with comments and directive lines blanked, and the integer ``#define``\\ s."""

    def blank(m: re.Match[str]) -> str:
        if m.group()[0] in "\"'":
            return m.group()  # a literal: "/*" inside it is no comment
        if m.group().startswith("/*") and (len(m.group()) < 4 or not m.group().endswith("*/")):
            line = text.count("\n", 0, m.start()) + 1
            raise HeaderParseError(filename, line, "unterminated comment", m.group()[:40])
        return " " + "\n" * m.group().count("\n")

    lines = _COMMENT.sub(blank, text).split("\n")
    for i in range(len(lines)):  # join continuations, keeping the line count
        j = i
        while lines[i].endswith("\\") and j + 1 < len(lines):
            j += 1
            lines[i], lines[j] = lines[i][:-1] + " " + lines[j].rstrip(), ""
    constants: dict[str, Constant] = {}
    stack: list[tuple[bool, bool, int]] = []  # (active, is a __cplusplus block, its line)
    for number, line in enumerate(lines, start=1):
        active = all(frame[0] for frame in stack)
        m = re.match(r"\s*#\s*(\w*)\s*(.*)$", line)
        lines[number - 1] = line if active and not m else ""
        directive, rest = m.groups() if m else ("", "")
        if directive in ("if", "ifdef", "ifndef"):
            # Only C++ blocks are decided (we are C); other conditions are read through.
            cplusplus = "__cplusplus" in rest
            stack.append((directive == "ifndef" if cplusplus else True, cplusplus, number))
        elif directive in ("elif", "else", "endif") and stack:
            was, cplusplus, start = stack.pop()
            if directive != "endif":
                stack.append((not was if cplusplus else True, cplusplus, start))
        elif directive == "define" and active:
            d = re.match(r"([A-Za-z_]\w*)(\(?)(.*)$", rest)
            # Function-like macros, strings and empty SAL fallbacks are no constants. A name
            # defined in several #if branches keeps its first definition.
            value = eval_int(d.group(3), _values(constants)) if d and not d.group(2) else None
            if d and value is not None and d.group(1) not in constants:
                constants[d.group(1)] = Constant(d.group(1), value, number)
            elif not d:
                raise HeaderParseError(filename, number, "malformed #define", line)
        elif m and directive not in _IGNORED:
            why = f"#{directive} without #if" if directive in ("elif", "else", "endif") else ""
            raise HeaderParseError(filename, number, why or "unknown preprocessor directive", line)
    if stack:
        number = stack[-1][2]
        raise HeaderParseError(filename, number, "#if without #endif", _lines(text)[number - 1])
    return "\n".join(lines), constants


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _values(constants: dict[str, Constant]) -> dict[str, int]:
    return {name: c.value for name, c in constants.items()}


# ---------------------------------------------------------------------------------------------
# Step 2: what pycparser does not know, and where each declaration is

_SAL = re.compile(r"\b_[A-Z][A-Za-z0-9_]*_(?![A-Za-z0-9_])")
_CONVENTIONS = r"\b(?:WINAPI|CALLBACK|__stdcall|APIENTRY|NTAPI)\b"
# The name a calling convention introduces: "(WINAPI *NAME)" or "(WINAPI NAME)".
_CONVENTION = re.compile(rf"{_CONVENTIONS}(?=\s*\*?\s*([A-Za-z_]\w*)\s*\))?")
_ARGUMENTS = re.compile(rf"\s*\((?!\s*{_CONVENTIONS})")  # "(WINAPI *X)" is a declarator


def strip_annotations(text: str) -> str:
    """Blank SAL annotations, ``_Xxx_`` and ``_Xxx_(...)`` (nested parentheses allowed).

    A ``(`` right after an annotation is its argument list, unless it opens a declarator such as
    ``(WINAPI *X)``. (A bare ``(*X)`` is taken as arguments: ``_Ret_bytecount_(*PacketSize)`` is
    real, cdecl callbacks are not.) Newlines inside arguments are kept.
    """
    out: list[str] = []
    pos = 0
    for m in _SAL.finditer(text):
        if m.start() < pos:
            continue  # inside the arguments of an annotation already removed
        out.append(text[pos : m.start()] + " ")
        pos = m.end()
        if args := _ARGUMENTS.match(text, pos):
            depth = 0
            for k in range(args.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[k], 0)
                if depth == 0:
                    out.append("\n" * text.count("\n", pos, k + 1))
                    pos = k + 1
                    break
            else:
                break  # unbalanced: left for _declarations to report
    return "".join(out) + text[pos:]


_MAX_DEPTH = 32  # brackets nest 3 deep in real headers; the bound keeps pycparser's recursion low


def _declarations(text: str, filename: str, source: list[str]) -> list[tuple[int, str]]:
    """``(first line, text)`` of each top-level declaration, once brackets are known to balance."""
    found: list[tuple[int, str]] = []
    open_: list[tuple[str, int]] = []
    line, start, start_line = 1, 0, 1
    for m in re.finditer(r"[\n(){}\[\];]", text):
        c = m.group()
        if c == "\n":
            line += 1
        elif c in "({[":
            open_.append((c, line))
            if len(open_) > _MAX_DEPTH:
                raise HeaderParseError(filename, line, "brackets nested too deep", source[line - 1])
        elif c in ")}]" and (not open_ or open_.pop()[0] + c not in ("()", "{}", "[]")):
            raise HeaderParseError(filename, line, f"unbalanced '{c}'", source[line - 1])
        elif c == ";" and not open_:
            found.append((start_line, text[start : m.end()]))
            start, start_line = m.end(), line
    if open_:
        c, line = open_[-1]
        raise HeaderParseError(filename, line, f"unbalanced '{c}'", source[line - 1])
    found.append((start_line, text[start:]))
    return [
        (line + text[: len(text) - len(text.lstrip())].count("\n"), text.strip())
        for line, text in found
        if text.strip(" \t\n;")
    ]


# ---------------------------------------------------------------------------------------------
# Step 3: pycparser, one declaration at a time, and integer constants

_PARSER = c_parser.CParser()


def _syntax_reason(message: str, before: str) -> str:
    """pycparser's message, unless it stopped at a name right after an unknown type name (as in
    ``(WIDGET w``: with ``WIDGET`` a known type, pycparser would have read on)."""
    m = re.search(r"(?:^|[(,{;]|\btypedef|\bconst)\s*([A-Za-z_]\w*)\s+$", before)
    if m and m.group(1) not in _KNOWN_TYPES and re.fullmatch(r"before: [A-Za-z_]\w*", message):
        return f"unknown type {m.group(1)!r}"
    return f"C syntax: {message}"


def eval_int(expr: str, known: dict[str, int]) -> int | None:
    """Value of a C integer constant expression, or None if it is not one we can evaluate.

    pycparser reads it, knowing the Windows type names, so ``(DWORD)1`` is a cast (ignored, like
    any cast) while ``(A) - 1`` subtracts when ``A`` is a known constant.
    """
    try:
        ext = _parse(f"int _ =\n{expr}\n;", _TYPEDEFS, 1)
        if len(ext) != 1 or not isinstance(ext[0], c_ast.Decl) or ext[0].init is None:
            return None
        return _evaluate(ext[0].init, known)
    except (c_parser.ParseError, RecursionError):
        return None


def _parse(c_text: str, typedefs: frozenset[str] | set[str], line: int) -> list[c_ast.Node]:
    """pycparser's AST of ``c_text`` (starting at ``line``), told which of its words are types."""
    names = sorted(typedefs.intersection(re.findall(r"[A-Za-z_]\w*", c_text)))
    prelude = "".join(f"typedef int {name};" for name in names)
    return list(_PARSER.parse(f"{prelude}\n#line {line}\n{c_text}", "header").ext[len(names) :])


_INTEGER = re.compile(r"(0[xX][0-9a-fA-F']+|0[bB][01']+|0[0-7']*|[1-9][0-9']*)[uUlLwWbB]*")
_OPERATORS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "|": operator.or_, "&": operator.and_, "^": operator.xor,
}  # fmt: skip


def _evaluate(node: c_ast.Node, known: dict[str, int]) -> int | None:
    """C integer arithmetic (division truncates toward zero) over names, literals and casts."""
    if isinstance(node, c_ast.Constant):
        m = _INTEGER.fullmatch(node.value)
        if m is None:
            return None  # a character, string or floating constant
        digits = m.group(1).replace("'", "")
        base = {"0x": 16, "0X": 16, "0b": 2, "0B": 2}.get(digits[:2])
        return int(digits[2:], base) if base else int(digits, 8 if digits[0] == "0" else 10)
    if isinstance(node, c_ast.ID):
        return known.get(node.name)
    if isinstance(node, c_ast.Cast):
        return _evaluate(node.expr, known)
    if isinstance(node, c_ast.UnaryOp) and node.op in ("-", "+", "~"):
        v = _evaluate(node.expr, known)
        return None if v is None else {"-": -v, "+": v, "~": ~v}[node.op]
    if not isinstance(node, c_ast.BinaryOp):
        return None
    a, b, op = _evaluate(node.left, known), _evaluate(node.right, known), node.op
    if a is None or b is None:
        return None
    if op in ("/", "%") and b:
        quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncates to zero
        return quotient if op == "/" else a - b * quotient
    if op in ("<<", ">>") and 0 <= b < 128:
        return a << b if op == "<<" else a >> b
    return _OPERATORS[op](a, b) if op in _OPERATORS else None


# ---------------------------------------------------------------------------------------------
# Step 4: the AST walk into the model


def _body(node: c_ast.Node) -> c_ast.Node | None:
    """The struct, union or enum with a body that a typedef declares, if any."""
    while isinstance(node, c_ast.PtrDecl):
        node = node.type
    inner = node.type if isinstance(node, c_ast.TypeDecl) else None
    if isinstance(inner, (c_ast.Struct, c_ast.Union)) and inner.decls is not None:
        return inner
    return inner if isinstance(inner, c_ast.Enum) and inner.values is not None else None


@dataclass
class _Reader:
    """Reads the declarations in order; ``fail`` names the one being read."""

    filename: str
    constants: dict[str, Constant]
    conventions: set[str]  # typedef names declared as "(WINAPI *NAME)" or "(CALLBACK NAME)"
    functions: list[Function] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)
    handles: list[Handle] = field(default_factory=list)
    structs: list[Struct] = field(default_factory=list)
    impls: dict[str, int] = field(default_factory=dict)  # FUNC_IMPL name -> index in functions
    enumerators: dict[str, int] = field(default_factory=dict)
    types: set[str] = field(default_factory=lambda: set(_KNOWN_TYPES))  # names usable as types
    typedefs: set[str] = field(default_factory=lambda: set(_TYPEDEFS))  # what pycparser is told
    line: int = 0
    text: str = ""

    def fail(self, reason: str = "unknown typedef shape", line: int = 0) -> HeaderParseError:
        return HeaderParseError(self.filename, line or self.line, reason, self.text)

    def declaration(self, line: int, text: str, c_text: str) -> None:
        """Read one declaration: ``text`` as written, ``c_text`` as pycparser gets it."""
        self.line, self.text = line, text
        if not c_text.endswith(";"):
            raise self.fail("declaration without ';'")
        if not re.match(r"typedef\b", c_text):
            raise self.fail("not a typedef")
        body = None
        for node in self.parse(c_text):
            if body is not None and _body(node.type) is body:
                continue  # the "*PS" of "typedef struct {...} S, *PS;": only S is needed
            body = _body(node.type)
            self.typedef(node.name, node.type, body)
            self.typedefs.add(node.name)

    def parse(self, c_text: str) -> list[c_ast.Typedef]:
        """pycparser's typedefs, told which of the declaration's words are type names."""
        try:
            ext = _parse(c_text, self.typedefs, self.line)
        except c_parser.ParseError as error:
            m = re.match(r"header:(\d+):(\d+): (.*)", str(error), re.S)
            if m is None:  # pycparser gave no place: the declaration's first line
                raise self.fail("C syntax: " + str(error).split(": ", 1)[-1]) from None
            line, column = int(m.group(1)), int(m.group(2))
            before = c_text.split("\n")[line - self.line][: column - 1]
            raise self.fail(_syntax_reason(m.group(3), before), line) from None
        except RecursionError:  # pycparser 3 recurses on chains of unary operators, casts or ?:
            raise self.fail("nested too deep") from None
        return [node for node in ext if isinstance(node, c_ast.Typedef)]

    def typedef(self, name: str, target: c_ast.Node, body: c_ast.Node | None) -> None:
        function = target.type if isinstance(target, c_ast.PtrDecl) else target
        if isinstance(function, c_ast.FuncDecl):
            self.function(name, function, pointer=function is not target)
        elif isinstance(target, c_ast.PtrDecl) and body is None:
            self.pointer(name, target)
        elif isinstance(body, c_ast.Enum) and isinstance(target, c_ast.TypeDecl):
            self.enums.append(Enum(name, self.members(body), self.line))
        elif isinstance(body, (c_ast.Struct, c_ast.Union)) and isinstance(target, c_ast.TypeDecl):
            fields = tuple(self.field(decl) for decl in body.decls)
            self.structs.append(Struct(name, type(body).__name__.lower(), fields, self.line))
        else:
            raise self.fail()
        if not name.endswith(("_FUNC", "_FUNC_IMPL")):
            self.types.add(name)

    def function(self, name: str, node: c_ast.FuncDecl, pointer: bool) -> None:
        if name not in self.conventions:
            raise self.fail("a function typedef needs WINAPI or CALLBACK, as in (WINAPI *NAME)")
        return_type, params = self.type(node.type), self.params(node)
        if not name.endswith(("_FUNC", "_FUNC_IMPL")):
            if not pointer:
                raise self.fail("a function type typedef must be named *_FUNC or *_FUNC_IMPL")
            self.callbacks.append(Callback(name, return_type, params, self.line))
            return
        if name.endswith("_FUNC_IMPL") and pointer:
            raise self.fail("a *_FUNC_IMPL typedef must be a function type, not a pointer")
        try:
            export = export_name(name)
        except ValueError:
            raise self.fail("function typedef name is not WINTUN_*_FUNC") from None
        if any(f.export == export for f in self.functions):
            raise self.fail(f"{export} declared twice")
        if name.endswith("_FUNC_IMPL"):
            self.impls[name] = len(self.functions)
        self.functions.append(Function(export, name, return_type, params, self.line))

    def pointer(self, name: str, node: c_ast.PtrDecl) -> None:
        impl = getattr(getattr(node.type, "type", None), "names", [""])[0]
        if impl in self.impls and not node.quals:  # typedef WINTUN_X_FUNC_IMPL *WINTUN_X_FUNC;
            if impl != name + "_IMPL":
                raise self.fail(f"{name} does not match {impl}")
            index = self.impls.pop(impl)
            self.functions[index] = dataclasses.replace(self.functions[index], typedef=name)
            return
        target = self.type(node)  # an opaque handle: "struct _X *" or "void *" only
        if not re.fullmatch(r"(void|struct \w+) \*", target):
            raise self.fail()
        self.handles.append(Handle(name, target, self.line))

    def members(self, node: c_ast.Enum) -> tuple[tuple[str, int], ...]:
        members: list[tuple[str, int]] = []
        value = 0
        for item in node.values.enumerators:
            if item.value is not None:
                if (evaluated := self.value(item.value)) is None:
                    raise self.fail("enumerator value is not an integer constant")
                value = evaluated
            members.append((item.name, value))
            self.enumerators[item.name] = value
            value += 1
        return tuple(members)

    def field(self, decl: c_ast.Node) -> Field:
        if not isinstance(decl, c_ast.Decl) or decl.bitsize or not decl.name:
            raise self.fail("unsupported struct field")
        node, length = decl.type, None
        if isinstance(node, c_ast.ArrayDecl):
            if node.dim is None or (length := self.value(node.dim)) is None:
                raise self.fail("array size is not an integer constant")
            node = node.type
        if _body(node) or _is_function(node):
            raise self.fail("unsupported struct field")
        return Field(self.type(node), decl.name, length)

    def value(self, node: c_ast.Node) -> int | None:
        try:
            return _evaluate(node, _values(self.constants) | self.enumerators)
        except RecursionError:
            return None

    def type(self, node: c_ast.Node) -> str:
        """``const WCHAR *`` from pointer declarators around a known type name."""
        pointers: list[list[str]] = []
        while isinstance(node, c_ast.PtrDecl):
            pointers.insert(0, node.quals)
            node = node.type
        if not isinstance(node, c_ast.TypeDecl):
            raise self.fail()
        inner = node.type
        if isinstance(inner, c_ast.IdentifierType):
            words = ["void" if w == "VOID" else w for w in inner.names]
            if unknown := [w for w in words if w not in self.types]:
                raise self.fail(f"unknown type {unknown[0]!r}")  # e.g. a *_FUNC name
        elif isinstance(inner, (c_ast.Struct, c_ast.Union, c_ast.Enum)) and not _body(node):
            words = [type(inner).__name__.lower(), inner.name]
        else:
            raise self.fail()
        out = " ".join([*node.quals, *words])
        for quals in pointers:
            out = " ".join([_pointer_to(out), *quals])
        return out

    def params(self, node: c_ast.FuncDecl) -> tuple[Param, ...]:
        params: list[Param] = []
        for p in node.args.params if node.args else ():
            if not isinstance(p, (c_ast.Decl, c_ast.Typename)) or _is_function(p.type):
                raise self.fail("cannot read parameter")
            if isinstance(p.type, c_ast.ArrayDecl):  # "WCHAR Name[128]": an array is a pointer
                params.append(Param(_pointer_to(self.type(p.type.type)), p.name or ""))
            else:
                params.append(Param(self.type(p.type), p.name or ""))
        return () if [p.type for p in params] == ["void"] else tuple(params)

    def header(self) -> Header:
        if self.impls:
            name, index = next(iter(self.impls.items()))
            reason = f"{name} has no pointer typedef {name[: -len('_IMPL')]}"
            raise HeaderParseError(self.filename, self.functions[index].line, reason, name)
        return Header(
            self.filename,
            tuple(self.functions),
            tuple(self.callbacks),
            tuple(self.constants.values()),
            tuple(self.enums),
            tuple(self.handles),
            tuple(self.structs),
        )


def _is_function(node: c_ast.Node | None) -> bool:
    return isinstance(node, c_ast.PtrDecl) and isinstance(node.type, c_ast.FuncDecl)


def parse_header(text: str, filename: str = "<header>") -> Header:
    """Parse the text of a ``wintun.h``; raises :class:`HeaderParseError` on anything unknown."""
    source = _lines(text)
    c_text, constants = preprocess("\n".join(source), filename)
    c_text = strip_annotations(c_text)
    conventions = {m.group(1) for m in _CONVENTION.finditer(c_text) if m.group(1)}
    c_text = re.sub(_CONVENTIONS, lambda m: " " * len(m.group()), c_text)
    reader = _Reader(filename, constants, conventions)
    for line, declaration in _declarations(c_text, filename, source):
        written = "\n".join(source[line - 1 : line + declaration.count("\n")])
        reader.declaration(line, written, declaration)
    return reader.header()
