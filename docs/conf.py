"""Sphinx configuration of the wintun-cffi documentation.

Built by CI with ``sphinx-build -q -n -W -b html docs docs/_build/html``: nitpicky, warnings are
errors, and nothing is fetched from the network (no intersphinx).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docutils.nodes import Element
    from sphinx.addnodes import pending_xref
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

# autodoc imports the packages from this checkout, not from an installed copy.
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import wintun_cffi  # noqa: E402

project = "wintun-cffi"
author = "the wintun-cffi authors"
copyright = "the wintun-cffi authors"
release = wintun_cffi.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# benchmark-results.rst is included by benchmarks.rst, not a page of its own.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "benchmark-results.rst"]
nitpicky = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"

html_theme = "furo"
html_title = f"wintun-cffi {release}"

# Standard-library (and pytest) names that appear in signatures and docstrings. Without
# intersphinx (the build must not use the network) they cannot resolve; builtins and
# ``typing`` names are already accepted by Sphinx itself. ``PathLike`` is ``os.PathLike`` as
# ``load()`` imports it for type checking only, so autodoc sees the bare name.
nitpick_ignore = [
    ("py:class", name)
    for name in (
        "uuid.UUID",
        "datetime.datetime",
        "os.PathLike",
        "PathLike",
        "pathlib.Path",
        "ipaddress.IPv4Network",
        "ipaddress.IPv6Network",
        "logging.NullHandler",
        "random.Random",
        "socket.AddressFamily",
        "ipaddress.IPv4Address",
        "ipaddress.IPv6Address",
        "ipaddress.IPv4Interface",
        "ipaddress.IPv6Interface",
        "asyncio.AbstractEventLoop",
        "collections.deque",
        "collections.Counter",
        "collections.abc.AsyncIterator",
        "collections.abc.Callable",
        "collections.abc.Collection",
        "collections.abc.Iterable",
        "collections.abc.Iterator",
        "collections.abc.Sequence",
        "_pytest.fixtures.FixtureRequest",
    )
] + [("py:mod", name) for name in ("logging", "ipaddress", "winreg")]


# The packages re-export their main names (``wintun_cffi.Adapter`` is
# ``wintun_cffi.api.Adapter``, ``emulator.Host`` is ``emulator.host.Host``), and docstrings
# use both spellings. The reference documents each object once, where it is defined; this
# resolver sends a reference made through another name there.


def _documented_name(dotted: str) -> str | None:
    """Where the object ``dotted`` names is defined, if that differs from ``dotted``.

    ``wintun_cffi.Adapter.host`` becomes ``wintun_cffi.api.Adapter.host``: the packages
    re-export their main classes, and docstrings may use either name. Returns ``""`` for a
    TypeVar (it has no entry of its own).
    """
    import importlib
    import typing

    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        home = None
        for index in range(split, len(parts)):
            try:
                obj = getattr(obj, parts[index])
            except AttributeError:
                return None
            if isinstance(obj, typing.TypeVar):
                return ""
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", None)
            if isinstance(module, str) and isinstance(qualname, str):
                home = ".".join([module, qualname, *parts[index + 1 :]])
        return home if home != dotted else None
    return None


def _is_plain_union(target: str) -> bool:
    """True for a union written as a string (``"int | None"`` inside a ``Callable[...]``)
    whose members are builtins or names ignored below: Sphinx sees it as one class name."""
    import builtins

    ignored = {name for _, name in nitpick_ignore}
    members = [member.strip() for member in target.split("|")]
    return len(members) > 1 and all(
        member == "None" or isinstance(getattr(builtins, member, None), type) or member in ignored
        for member in members
    )


def _resolve_reexports(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element
) -> Element | None:
    """Resolve a Python reference made through a re-exported name (see above)."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if _is_plain_union(target):
        return contnode
    module = node.get("py:module")
    klass = node.get("py:class")
    candidates = [target]
    if module:
        candidates.append(f"{module}.{target}")
        if klass:
            candidates.insert(0, f"{module}.{klass}.{target}")
    domain = env.get_domain("py")
    for candidate in candidates:
        canonical = _documented_name(candidate)
        if canonical == "":
            return contnode
        if canonical:
            found = domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode
            )
            if found is not None:
                return found
    return None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _resolve_reexports)
