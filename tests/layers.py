"""The layers of the code (docs/layout.rst), and the import graph drawn from the source.

:data:`PLACES` puts every module of ``wintun_cffi``, ``emulator`` and the header tooling on
a layer (:data:`LAYERS`, lowest first). :func:`draw` reads each module's imports with
:mod:`ast` and :func:`upward` / :func:`circles` / :func:`unplaced` say what breaks the rules;
``tests/test_layers.py`` fails on any of them. ``python -m tests.layers`` prints the figures:
files, levels, arrows, arrows pointing up a layer, circles.

What counts as an arrow: an ``import`` or ``from ... import`` of a module of the project, at
the top of a module or inside a function. ``from package import name`` points at the
submodule ``package.name`` when there is one, else at the package. Importing a submodule runs
its package's ``__init__`` too; that is Python's doing and is not drawn. Imports under
``if TYPE_CHECKING:`` run only for the type checker: they are drawn apart (typing arrows),
make no circle, and must not point up a layer either.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The top-level packages and modules drawn (tests are above everything and not drawn).
TOP_LEVEL = ("wintun_cffi", "emulator", "ffigen", "build_ffi")

#: The layers, lowest first. A module may import from its own layer and the layers below.
LAYERS: dict[int, str] = {
    1: "foundation",  # facts, errors, checks and values; only the standard library below
    2: "core",  # the Backend protocol and the packet ledger
    3: "platform",  # the operating system seams and the native binding's generated modules
    4: "backends",  # the native backend over the DLL; the emulator
    5: "api",  # Wintun, Adapter, Session, packets, asyncio; the package's own names
    6: "netconfig",  # addresses, MTU, routes, DNS of an adapter
    7: "tools",  # commands, the conformance suite, the pytest plugin, the header tooling
}

#: Module -> layer. ``name`` is that module alone; ``name.*`` is the module or package and
#: everything below it. The longest entry that matches wins. Entries may name modules that
#: do not exist (yet): the table places modules, it does not list them.
PLACES: dict[str, int] = {
    # 1 foundation
    "wintun_cffi.constants": 1,
    "wintun_cffi.errors": 1,
    "wintun_cffi.validate": 1,
    "wintun_cffi.fdevent": 1,
    "wintun_cffi.lifetime": 1,
    "wintun_cffi.logbridge": 1,
    "wintun_cffi.send_rules": 1,
    "wintun_cffi.statistics": 1,
    "wintun_cffi.ip": 1,
    "wintun_cffi.impair": 1,
    "wintun_cffi.capture": 1,
    "wintun_cffi.capture_read": 1,
    "wintun_cffi.netconfig.values": 1,
    "wintun_cffi.netconfig.configurator": 1,
    # 2 core
    "wintun_cffi.backend": 2,
    "wintun_cffi.ledger": 2,
    # 3 platform
    "wintun_cffi.platform.*": 3,
    # 4 backends
    "wintun_cffi.native": 4,
    "emulator.*": 4,
    # 5 api
    "wintun_cffi": 5,
    "wintun_cffi.api": 5,
    "wintun_cffi.session": 5,
    "wintun_cffi.packets": 5,
    "wintun_cffi.aio": 5,
    "wintun_cffi.impaired": 5,
    # 6 netconfig
    "wintun_cffi.netconfig.*": 6,
    # 7 tools
    "wintun_cffi.__main__": 7,
    "wintun_cffi.commands.*": 7,
    "wintun_cffi.conformance.*": 7,
    "wintun_cffi.pytest_plugin": 7,
    "emulator.__main__": 7,
    "ffigen.*": 7,
    "build_ffi": 7,
}


@dataclass(frozen=True)
class Arrow:
    """One import: ``source`` imports ``target`` at ``line``."""

    source: str
    target: str
    line: int
    typing: bool  # under ``if TYPE_CHECKING:``


def place(module: str, places: dict[str, int] = PLACES) -> int | None:
    """The layer of ``module`` (the longest matching entry of ``places``), or None."""
    if module in places:
        return places[module]
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = places.get(".".join(parts[:end]) + ".*")
        if layer is not None:
            return layer
    return None


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module drawn: dotted name -> file."""
    found: dict[str, Path] = {}
    for top in TOP_LEVEL:
        single = root / f"{top}.py"
        if single.is_file():
            found[top] = single
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ():
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, typing: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import under ``node``, with whether it is for the type checker only."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, typing
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _walk_one(statement, True)
            for statement in child.orelse:
                yield from _walk_one(statement, typing)
        else:
            yield from _walk(child, typing)


def _walk_one(node: ast.stmt, typing: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, typing
    else:
        yield from _walk(node, typing)


def arrows_of(name: str, path: Path, known: dict[str, Path]) -> list[Arrow]:
    """The imports of module ``name`` that point at modules in ``known``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[Arrow] = []
    for node, typing in _walk(tree, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                targets.append(submodule if submodule in known else origin)
        for target in targets:
            while target and target not in known:  # import a.b.c of a package a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append(Arrow(name, target, node.lineno, typing))
    return found


@dataclass
class Drawing:
    """The import graph of a tree."""

    root: Path
    files: dict[str, Path]
    arrows: list[Arrow]

    @property
    def edges(self) -> set[tuple[str, str]]:
        """Distinct (source, target) pairs of the imports that run."""
        return {(a.source, a.target) for a in self.arrows if not a.typing}

    @property
    def typing_edges(self) -> set[tuple[str, str]]:
        """Distinct pairs imported only for the type checker."""
        return {(a.source, a.target) for a in self.arrows if a.typing} - self.edges


def draw(root: Path = ROOT) -> Drawing:
    """The import graph of the tree at ``root``."""
    known = modules(root)
    arrows = [arrow for name, path in known.items() for arrow in arrows_of(name, path, known)]
    return Drawing(root, known, arrows)


def unplaced(drawing: Drawing, places: dict[str, int] = PLACES) -> list[str]:
    """Modules the table does not place."""
    return sorted(name for name in drawing.files if place(name, places) is None)


def upward(drawing: Drawing, places: dict[str, int] = PLACES) -> list[Arrow]:
    """Imports (type-checking ones included) from a lower layer to a higher one."""
    found = []
    for arrow in drawing.arrows:
        source, target = place(arrow.source, places), place(arrow.target, places)
        if source is not None and target is not None and target > source:
            found.append(arrow)
    return sorted(set(found), key=lambda a: (a.source, a.line, a.target))


def _components(nodes: list[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted."""
    following: dict[str, list[str]] = {node: [] for node in nodes}
    for source, target in sorted(edges):
        following[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in following[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for node in nodes:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def circles(drawing: Drawing) -> list[list[str]]:
    """Groups of modules that import each other round in a circle (imports that run)."""
    groups = _components(sorted(drawing.files), drawing.edges)
    return sorted(group for group in groups if len(group) > 1)


def levels(drawing: Drawing) -> int:
    """How many levels the graph has: the longest chain of imports, a circle counted as one
    module."""
    groups = _components(sorted(drawing.files), drawing.edges)
    group_of = {member: n for n, group in enumerate(groups) for member in group}
    below: dict[int, set[int]] = {n: set() for n in range(len(groups))}
    for source, target in drawing.edges:
        if group_of[source] != group_of[target]:
            below[group_of[source]].add(group_of[target])
    depth: dict[int, int] = {}
    for n in range(len(groups)):  # Tarjan yields a component after those it imports
        depth[n] = 1 + max((depth[m] for m in below[n]), default=0)
    return max(depth.values(), default=0)


def report(drawing: Drawing, places: dict[str, int] = PLACES) -> str:
    """The figures of a drawing, one per line, then what breaks the rules."""
    lines = [
        f"files: {len(drawing.files)}",
        f"levels: {levels(drawing)}",
        f"arrows: {len(drawing.edges)} (and {len(drawing.typing_edges)} for type checking only)",
        f"upward arrows: {len({(a.source, a.target) for a in upward(drawing, places)})}",
        f"circles: {len(circles(drawing))}",
    ]
    for arrow in upward(drawing, places):
        lines.append(f"  up: {describe(arrow, drawing, places)}")
    for group in circles(drawing):
        lines.append(f"  circle: {' <-> '.join(group)}")
    for name in unplaced(drawing, places):
        shown = drawing.files[name].relative_to(drawing.root).as_posix()
        lines.append(f"  not placed: {name} ({shown})")
    return "\n".join(lines) + "\n"


def describe(arrow: Arrow, drawing: Drawing, places: dict[str, int] = PLACES) -> str:
    """``file:line: source (layer) imports target (layer)``."""
    shown = drawing.files[arrow.source].relative_to(drawing.root).as_posix()
    source, target = place(arrow.source, places), place(arrow.target, places)
    assert source is not None and target is not None
    kind = " (TYPE_CHECKING)" if arrow.typing else ""
    return (
        f"{shown}:{arrow.line}: {arrow.source} ({LAYERS[source]}) imports {arrow.target} "
        f"({LAYERS[target]}){kind}"
    )


if __name__ == "__main__":
    sys.stdout.write(report(draw(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)))
