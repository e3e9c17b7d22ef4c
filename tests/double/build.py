"""Compile the C test double (``wintun_double.c``) for one Wintun API generation.

Usage::

    from tests.double.build import build_double, compiler_available
    path = build_double("0.14", tmp_dir)                   # libwintun_double_0_14.so
    path = build_double("pool", tmp_dir, sanitize=True)    # libwintun_double_pool_asan.so

The library is rebuilt only when the C source (or this file) is newer than the output.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Final

SOURCE: Final = Path(__file__).with_name("wintun_double.c")

#: Accepted ``api`` spellings -> (file-name tag, value of the WINTUN_DOUBLE_API macro).
APIS: Final[dict[str, tuple[str, str]]] = {
    "0.14": ("0_14", "WINTUN_DOUBLE_API_0_14"),
    "0_14": ("0_14", "WINTUN_DOUBLE_API_0_14"),
    "pool": ("pool", "WINTUN_DOUBLE_API_POOL"),
    "seed": ("seed", "WINTUN_DOUBLE_API_SEED"),
}

BASE_FLAGS: Final = (
    "-std=gnu11", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread",
    "-fvisibility=hidden",
)
SANITIZE_FLAGS: Final = ("-fsanitize=address", "-fno-omit-frame-pointer")


class DoubleBuildError(RuntimeError):
    """The C compiler failed; the message carries its output."""


def compiler_command() -> list[str]:
    """The C compiler as an argument list: ``$CC``, else Python's configured ``CC``, else ``cc``."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(str(cc))


def compiler_available() -> bool:
    """True if the C compiler named by :func:`compiler_command` is on ``PATH``."""
    cmd = compiler_command()
    return bool(cmd) and shutil.which(cmd[0]) is not None


def library_name(api: str, *, sanitize: bool = False) -> str:
    """``libwintun_double_<tag>[_asan].so`` for ``api`` (``"0.14"``, ``"pool"`` or ``"seed"``)."""
    try:
        tag = APIS[api][0]
    except KeyError:
        known = sorted(APIS)
        raise ValueError(f"unknown Wintun API generation {api!r}; use one of {known}") from None
    return f"libwintun_double_{tag}{'_asan' if sanitize else ''}.so"


def asan_runtime() -> Path | None:
    """The compiler's ``libasan.so`` (for ``LD_PRELOAD``), or None if it has none."""
    if not compiler_available():
        return None
    try:
        out = subprocess.run(
            [*compiler_command(), "-print-file-name=libasan.so"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(out)
    # An unknown file name is echoed back bare, without a directory.
    return path if path.is_absolute() and path.exists() else None


def build_double(api: str, out_dir: Path, *, sanitize: bool = False) -> Path:
    """Compile the double for ``api`` into ``out_dir`` and return the library's path."""
    name = library_name(api, sanitize=sanitize)
    macro = APIS[api][1]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    newest_input = max(SOURCE.stat().st_mtime, Path(__file__).stat().st_mtime)
    if target.exists() and target.stat().st_mtime >= newest_input:
        return target
    if not compiler_available():
        raise DoubleBuildError("no C compiler found (set CC)")
    # Compile to a temporary name and rename, so parallel test runs never load a half file.
    fd, tmp_name = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=out_dir)
    os.close(fd)
    cmd = [
        *compiler_command(), *BASE_FLAGS, *(SANITIZE_FLAGS if sanitize else ()),
        f"-DWINTUN_DOUBLE_API={macro}", str(SOURCE), "-o", tmp_name,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DoubleBuildError(
                f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target
