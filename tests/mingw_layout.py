"""Sizes and field offsets of Windows structures as the MinGW-w64 x64 compiler lays them out
from its own copies of the Windows SDK headers: an independent check of the layouts that the
bindings declare by hand. Nothing is run: the numbers are read from the assembly the compiler
writes for a table of ``sizeof``/``offsetof`` values.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

COMPILER = "x86_64-w64-mingw32-gcc"
#: Why a layout test that needs the cross compiler is skipped.
NO_COMPILER = (
    f"{COMPILER} is not installed (apt-get install gcc-mingw-w64-x86-64) to read the Windows "
    "headers' layouts"
)


def available() -> bool:
    """True if the MinGW-w64 x64 compiler is on PATH."""
    return shutil.which(COMPILER) is not None


def layout(
    headers: list[str], queries: list[tuple[str, str | None]]
) -> dict[tuple[str, str | None], int]:
    """``{(type, field): offset, (type, None): size}`` for each query, from ``headers``."""
    lines = [f"#include <{header}>" for header in ["stddef.h", *headers]]
    values = [
        f"sizeof({name})" if field is None else f"offsetof({name}, {field})"
        for name, field in queries
    ]
    lines.append("const unsigned long long wintun_cffi_layout[] = {" + ", ".join(values) + "};")
    with tempfile.TemporaryDirectory(prefix="wintun-layout-") as directory:
        source = Path(directory) / "layout.c"
        source.write_text("\n".join(lines) + "\n")
        assembly = subprocess.run(
            [COMPILER, "-S", "-o", "-", str(source)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    table = assembly[assembly.index("wintun_cffi_layout:") :]
    numbers = [int(number) for number in re.findall(r"^\s*\.quad\s+(\d+)", table, re.M)]
    return dict(zip(queries, numbers[: len(queries)], strict=True))
