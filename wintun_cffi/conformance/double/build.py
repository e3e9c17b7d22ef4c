"""Compile the C test doubles: the Wintun double per API generation, and the IP Helper double.

Usage::

    from wintun_cffi.conformance.double.build import build_double, double_unavailable
    path = build_double("0.14", tmp_dir)                   # libwintun_double_0_14.so
    path = build_double("pool", tmp_dir, sanitize=True)    # libwintun_double_pool_asan.so
    path = build_double("seed", tmp_dir, target=WINDOWS)   # wintun_double_seed.dll (MinGW)

Each library is built for a *target*: :data:`LINUX` (the system C compiler, an ELF ``.so``) or
:data:`WINDOWS` (MinGW-w64, a statically linked PE ``.dll``). The target of the running Python
is the default. A Windows Python (under Wine, or on Windows without a compiler) uses the DLLs
that were built beforehand on Linux, from :func:`prebuilt_directory`::

    python -m wintun_cffi.conformance.double.build --target windows   # into ./build/windows

A library is rebuilt (or copied again) only when its source or this file changed: the SHA-256
of their content is recorded beside it (``<library>.sha256``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
SOURCE: Final = HERE / "wintun_double.c"
IPHLPAPI_SOURCE: Final = HERE / "iphlpapi_double.c"
DEPENDENCY_SOURCE: Final = HERE / "dependency.c"

#: Accepted ``api`` spellings -> (file-name tag, value of the WINTUN_DOUBLE_API macro).
APIS: Final[dict[str, tuple[str, str]]] = {
    "0.14": ("0_14", "WINTUN_DOUBLE_API_0_14"),
    "0_14": ("0_14", "WINTUN_DOUBLE_API_0_14"),
    "pool": ("pool", "WINTUN_DOUBLE_API_POOL"),
    "seed": ("seed", "WINTUN_DOUBLE_API_SEED"),
}

SANITIZE_FLAGS: Final = ("-fsanitize=address", "-fno-omit-frame-pointer")
#: The environment variable naming a folder of prebuilt Windows doubles.
PREBUILT_ENV: Final = "WINTUN_DOUBLE_PREBUILT"


@dataclass(frozen=True)
class Target:
    """An operating system to build the doubles for."""

    name: str
    #: The compiler when neither ``$<compiler_env>`` nor ``$CC`` (native target only) is set.
    default_compiler: str
    compiler_env: str
    flags: tuple[str, ...]
    prefix: str
    suffix: str

    def file_name(self, stem: str) -> str:
        """``lib<stem>.so`` or ``<stem>.dll``."""
        return f"{self.prefix}{stem}{self.suffix}"


LINUX: Final = Target(
    "linux",
    "cc",
    "CC",
    (
        "-std=gnu11",
        "-shared",
        "-fPIC",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        "-fvisibility=hidden",
    ),
    "lib",
    ".so",
)
#: Statically linked: the DLL needs nothing but KERNEL32 and the C runtime every Windows has.
WINDOWS: Final = Target(
    "windows",
    "x86_64-w64-mingw32-gcc",
    "MINGW_CC",
    ("-std=gnu11", "-shared", "-O2", "-Wall", "-Wextra", "-Werror", "-static", "-static-libgcc"),
    "",
    ".dll",
)
TARGETS: Final = {target.name: target for target in (LINUX, WINDOWS)}


class DoubleBuildError(RuntimeError):
    """The C compiler failed (the message carries its output), or no double can be had."""


def host_target() -> Target:
    """The target of the running Python."""
    return WINDOWS if sys.platform == "win32" else LINUX


def compiler_command(target: Target | None = None) -> list[str]:
    """The C compiler for ``target`` as an argument list.

    Linux: ``$CC``, else Python's configured ``CC``, else ``cc``. Windows: ``$MINGW_CC``, else
    ``$CC`` on Windows itself, else ``x86_64-w64-mingw32-gcc``.
    """
    target = target or host_target()
    configured = os.environ.get(target.compiler_env)
    if not configured and target is host_target():
        configured = os.environ.get("CC") or sysconfig.get_config_var("CC")
    return shlex.split(str(configured or target.default_compiler))


def compiler_available(target: Target | None = None) -> bool:
    """True if the C compiler for ``target`` is on ``PATH``."""
    cmd = compiler_command(target)
    return bool(cmd) and shutil.which(cmd[0]) is not None


def prebuilt_directory(target: Target | None = None) -> Path:
    """Where prebuilt doubles of ``target`` are: ``$WINTUN_DOUBLE_PREBUILT``, else
    ``build/<target>`` beside this module."""
    target = target or host_target()
    configured = os.environ.get(PREBUILT_ENV)
    return Path(configured) if configured else HERE / "build" / target.name


def double_unavailable(target: Target | None = None) -> str | None:
    """None if the doubles of ``target`` can be had (a compiler, or prebuilt ones); else why
    not, as a skip reason."""
    target = target or host_target()
    if compiler_available(target):
        return None
    if _prebuilt(target.file_name(_stem("0.14", False)), _inputs(SOURCE), target) is not None:
        return None
    if target is WINDOWS:
        return (
            f"no MinGW compiler ({compiler_command(target)[0]}) and no prebuilt Windows doubles "
            f"in {prebuilt_directory(target)} "
            "(python -m wintun_cffi.conformance.double.build --target windows)"
        )
    return "no C compiler (cc / $CC) to build the Wintun test double"


def double_available(target: Target | None = None) -> bool:
    """True if the doubles of ``target`` can be had (see :func:`double_unavailable`)."""
    return double_unavailable(target) is None


def library_name(api: str, *, sanitize: bool = False, target: Target | None = None) -> str:
    """``libwintun_double_<tag>[_asan].so`` or ``wintun_double_<tag>.dll`` for ``api``
    (``"0.14"``, ``"pool"`` or ``"seed"``)."""
    return (target or host_target()).file_name(_stem(api, sanitize))


def _stem(api: str, sanitize: bool) -> str:
    try:
        tag = APIS[api][0]
    except KeyError:
        known = sorted(APIS)
        raise ValueError(f"unknown Wintun API generation {api!r}; use one of {known}") from None
    return f"wintun_double_{tag}{'_asan' if sanitize else ''}"


def asan_runtime() -> Path | None:
    """The compiler's ``libasan.so`` (for ``LD_PRELOAD``), or None if it has none (or this
    is not Linux)."""
    if host_target() is not LINUX or not compiler_available():
        return None
    try:
        out = subprocess.run(
            [*compiler_command(), "-print-file-name=libasan.so"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(out)
    # An unknown file name is echoed back bare, without a directory.
    return path if path.is_absolute() and path.exists() else None


def build_double(
    api: str, out_dir: Path, *, sanitize: bool = False, target: Target | None = None
) -> Path:
    """Build the Wintun double for ``api`` into ``out_dir`` and return the library's path."""
    target = target or host_target()
    if sanitize and target is not LINUX:
        raise DoubleBuildError("AddressSanitizer builds of the double are Linux only")
    name = library_name(api, sanitize=sanitize, target=target)
    flags = (*(SANITIZE_FLAGS if sanitize else ()), f"-DWINTUN_DOUBLE_API={APIS[api][1]}")
    return _build(SOURCE, name, flags, Path(out_dir), target)


def build_iphlpapi_double(out_dir: Path, *, target: Target | None = None) -> Path:
    """Build the IP Helper double (Windows only: it is compiled against Windows' own
    ``netioapi.h``) into ``out_dir``."""
    target = target or host_target()
    if target is not WINDOWS:
        raise DoubleBuildError("the IP Helper double is a Windows DLL (target windows)")
    return _build(IPHLPAPI_SOURCE, target.file_name("iphlpapi_double"), (), Path(out_dir), target)


def build_dependent(out_dir: Path, *, target: Target | None = None) -> tuple[Path, Path]:
    """A DLL that imports from a second DLL, and that second DLL, side by side in ``out_dir``
    (Windows only): ``(dependent, dependency)``, for the loader's dependency tests."""
    target = target or host_target()
    if target is not WINDOWS:
        raise DoubleBuildError("the dependency pair is a Windows DLL pair (target windows)")
    out_dir = Path(out_dir)
    dependency = _build(
        DEPENDENCY_SOURCE, "wintun_test_dependency.dll", ("-DBUILD_DEPENDENCY",), out_dir, target
    )
    dependent = _build(
        DEPENDENCY_SOURCE, "wintun_test_dependent.dll", (str(dependency),), out_dir, target
    )
    return dependent, dependency


def build_all(out_dir: Path, target: Target) -> list[Path]:
    """Every double of ``target`` (what a Windows Python needs prebuilt)."""
    built = [build_double(api, out_dir, target=target) for api in ("0.14", "pool", "seed")]
    if target is WINDOWS:
        built.append(build_iphlpapi_double(out_dir, target=target))
        built.extend(build_dependent(out_dir, target=target))
    return built


def copy_file(source: Path, target: Path) -> None:
    """Copy a file with its modification time (not shutil.copy2: on Windows it calls
    CopyFile2, which Wine 8 lacks)."""
    target.write_bytes(source.read_bytes())
    stat = source.stat()
    os.utime(target, (stat.st_atime, stat.st_mtime))


def _inputs(source: Path) -> str:
    """The SHA-256 of what a library is built from: its source and this file (whose flags
    it is built with), line endings aside."""
    digest = hashlib.sha256()
    for path in (source, Path(__file__)):
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def _record(library: Path) -> Path:
    """Beside each library, the :func:`_inputs` it was built from. (Installing a package
    gives its files new times, so only their content tells.)"""
    return library.with_name(library.name + ".sha256")


def _built_from(library: Path, inputs: str) -> bool:
    try:
        return library.is_file() and _record(library).read_text(encoding="ascii") == inputs
    except OSError:
        return False


def _prebuilt(name: str, inputs: str, target: Target) -> Path | None:
    """The prebuilt ``name`` if it was built from ``inputs``."""
    path = prebuilt_directory(target) / name
    return path if _built_from(path, inputs) else None


def _build(source: Path, name: str, flags: tuple[str, ...], out_dir: Path, target: Target) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / name
    inputs = _inputs(source)
    if _built_from(output, inputs):
        return output
    if not compiler_available(target):
        prebuilt = _prebuilt(name, inputs, target)
        if prebuilt is None:
            raise DoubleBuildError(double_unavailable(target) or f"no prebuilt {name}")
        if prebuilt.resolve() != output.resolve():
            copy_file(prebuilt, output)
            _record(output).write_text(inputs, encoding="ascii")
        return output
    # Compile into a temporary folder and rename, so parallel test runs never load a half
    # file; the file keeps its final name, which a DLL records in its export table.
    scratch = tempfile.mkdtemp(prefix=name + ".", dir=out_dir)
    built = os.path.join(scratch, name)
    cmd = [*compiler_command(target), *target.flags, str(source), *flags, "-o", built]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DoubleBuildError(
                f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        os.replace(built, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _record(output).write_text(inputs, encoding="ascii")
    return output


def main(argv: list[str] | None = None) -> int:
    """``python -m wintun_cffi.conformance.double.build [--target linux|windows] [OUT_DIR]``."""
    parser = argparse.ArgumentParser(description="Build every C test double for one target.")
    parser.add_argument("--target", choices=sorted(TARGETS), default=host_target().name)
    parser.add_argument(
        "out_dir",
        nargs="?",
        type=Path,
        help="default: build/<target> beside this module (where tests look)",
    )
    args = parser.parse_args(argv)
    target = TARGETS[args.target]
    for path in build_all(args.out_dir or prebuilt_directory(target), target):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
