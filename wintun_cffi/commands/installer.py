"""``python -m wintun_cffi install-dll``: the official ``wintun.dll``, checked, in a per-user folder.

The official Wintun release is a zip archive on wintun.net. :func:`install` downloads it (or
takes a local copy), refuses it unless its SHA-256 is the one pinned here (checked before the
archive is opened), takes out ``wintun/bin/<arch>/wintun.dll`` for this interpreter's
architecture and nothing else, and writes it atomically (a temporary file, then a rename) to
:func:`wintun_cffi.platform.loader.user_directory`, where :func:`wintun_cffi.load` looks last.

Only the standard library is used (``urllib.request``, ``zipfile``, ``hashlib``).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TextIO

from .. import platform
from ..platform import loader

#: The Wintun release this command installs.
OFFICIAL_VERSION = "0.14.1"
#: Where the official archive is downloaded from.
OFFICIAL_URL = f"https://www.wintun.net/builds/wintun-{OFFICIAL_VERSION}.zip"
#: The SHA-256 of that archive: nothing else is installed.
OFFICIAL_SHA256 = "07c256185d6ee3652e09fa55c0b673e2624b565e02c4b9091c79ca7d2f24ef51"
#: The architectures the archive holds a DLL for (``wintun/bin/<arch>/wintun.dll``).
ARCHITECTURES = ("amd64", "x86", "arm64", "arm")
#: Largest archive accepted (the official one is well under 1 MiB).
MAX_ARCHIVE_BYTES = 16 << 20
#: Largest DLL accepted from the archive.
MAX_DLL_BYTES = 8 << 20
#: Seconds a download may wait for the server before giving up.
TIMEOUT = 30.0

_CHUNK = 64 << 10


class InstallError(OSError):
    """``install-dll`` refused the archive or could not install from it; nothing was
    installed. The message says why."""


class ArchiveChecksumError(InstallError):
    """The archive's SHA-256 is not the official one (it was not opened)."""


class UnsafeArchiveError(InstallError):
    """The archive holds an entry that could write outside the target folder (an absolute
    name, a ``..`` component, a drive) or a symbolic link, or holds the DLL twice."""


class MissingArchitectureError(InstallError):
    """The archive has no DLL for this interpreter's architecture."""


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """Reports a download on ``out``: a bar redrawn in place on a terminal, else two lines."""

    WIDTH = 30

    def __init__(self, out: TextIO | None) -> None:
        self._out = out
        self._tty = bool(out is not None and out.isatty())
        self._shown = -1

    def start(self, url: str, total: int | None) -> None:
        """The download of ``url`` (``total`` bytes, if the server said) begins."""
        if self._out is not None:
            size = f" ({total} bytes)" if total else ""
            print(f"Downloading {url}{size}", file=self._out, flush=True)

    def update(self, done: int, total: int | None) -> None:
        """``done`` bytes have arrived."""
        if not self._tty or self._out is None:
            return
        if total:
            percent = min(100, done * 100 // total)
            if percent == self._shown:
                return
            self._shown = percent
            filled = self.WIDTH * percent // 100
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self._out.write(f"\r[{bar}] {percent:3d}% {done >> 10} KiB")
        else:
            self._out.write(f"\r{done >> 10} KiB")
        self._out.flush()

    def finish(self, done: int) -> None:
        """The download ended after ``done`` bytes."""
        if self._out is None:
            return
        if self._tty:
            self._out.write("\n")
        print(f"Downloaded {done} bytes", file=self._out, flush=True)


# -- the archive -------------------------------------------------------------------------------


def download(url: str, destination: BinaryIO, progress: Progress) -> str:
    """Copy ``url`` into ``destination``; the SHA-256 of what arrived (hex).

    Refuses schemes other than http/https, answers other than 200, archives larger than
    :data:`MAX_ARCHIVE_BYTES` and downloads shorter than the length the server announced.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise InstallError(f"can only download over http or https, not {url!r}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > MAX_ARCHIVE_BYTES:
                raise InstallError(f"{url} is {total} bytes, more than a Wintun release")
            progress.start(url, total)
            done = 0
            while chunk := response.read(_CHUNK):
                done += len(chunk)
                if done > MAX_ARCHIVE_BYTES:
                    raise InstallError(f"{url} sent more than {MAX_ARCHIVE_BYTES} bytes")
                digest.update(chunk)
                destination.write(chunk)
                progress.update(done, total)
    except urllib.error.HTTPError as error:
        raise InstallError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise InstallError(f"downloading {url} failed: {reason}") from None
    if total is not None and done != total:
        raise InstallError(f"the download of {url} ended after {done} of {total} bytes")
    progress.finish(done)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path`` (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(actual: str, expected: str, what: str) -> None:
    """Refuse ``what`` unless ``actual`` is ``expected`` (hex, any case)."""
    if actual.lower() != expected.strip().lower():
        raise ArchiveChecksumError(
            f"{what} has SHA-256 {actual}, not the official {expected.strip().lower()}; "
            "refused without opening it"
        )


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting ``info`` anywhere could escape the folder, or None."""
    name = info.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute name"
    if ".." in name.replace("\\", "/").split("/"):
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def extract_dll(archive: Path, arch: str) -> bytes:
    """The bytes of ``wintun/bin/<arch>/wintun.dll`` in ``archive``, after checking every
    entry (see :class:`UnsafeArchiveError`); nothing else is read."""
    member = f"wintun/bin/{arch}/wintun.dll"
    try:
        with zipfile.ZipFile(archive) as opened:
            entries = opened.infolist()
            for info in entries:
                reason = _unsafe_reason(info)
                if reason is not None:
                    raise UnsafeArchiveError(
                        f"refusing the archive: its entry {info.filename!r} is {reason}"
                    )
            found = [info for info in entries if info.filename == member]
            if not found:
                present = sorted(
                    {
                        PurePosixPath(i.filename).parent.name
                        for i in entries
                        if i.filename.startswith("wintun/bin/")
                        and i.filename.endswith("/wintun.dll")
                    }
                )
                raise MissingArchitectureError(
                    f"the archive has no {member} (this Python is {arch}; it has "
                    f"{', '.join(present) or 'no wintun.dll at all'})"
                )
            if len(found) > 1:
                raise UnsafeArchiveError(f"refusing the archive: it holds {member} twice")
            info = found[0]
            if info.is_dir() or info.file_size > MAX_DLL_BYTES:
                raise UnsafeArchiveError(f"refusing the archive: {member} is not a plausible DLL")
            try:
                with opened.open(info) as source:  # checks the CRC at the end
                    data = source.read(MAX_DLL_BYTES + 1)
            except (zlib.error, RuntimeError, NotImplementedError, EOFError) as error:
                # Corrupt compressed data, an encrypted entry, a compression zipfile lacks.
                raise InstallError(
                    f"refusing the archive: its {member} cannot be read "
                    f"({type(error).__name__}: {error})"
                ) from None
    except zipfile.BadZipFile as error:
        raise InstallError(f"{archive} is not a readable zip archive: {error}") from None
    if len(data) > MAX_DLL_BYTES:
        raise UnsafeArchiveError(f"refusing the archive: {member} is not a plausible DLL")
    return data


# -- installing --------------------------------------------------------------------------------


def write_atomically(data: bytes, target: Path) -> None:
    """Write ``data`` to ``target`` so that no reader ever sees a partial file: a temporary
    file in the same folder, flushed to disk, then renamed over ``target``; :class:`InstallError`
    if the folder or the file cannot be made there (nothing is left behind)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".wintun-", suffix=".tmp", dir=target.parent)
    except OSError as error:  # e.g. a file where a folder of the path goes
        raise InstallError(f"cannot create {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.replace(temporary, target)
        except PermissionError as error:
            raise InstallError(
                f"cannot replace {target}: {error.strerror} (is a program using it?)"
            ) from None
        except OSError as error:  # e.g. a folder where the DLL goes
            raise InstallError(f"cannot replace {target}: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def install(
    archive: str | os.PathLike[str] | None = None,
    *,
    url: str = OFFICIAL_URL,
    sha256: str | None = None,
    directory: str | os.PathLike[str] | None = None,
    progress: TextIO | None = None,
    architecture: Callable[[], str] | None = None,
) -> Path:
    """Install ``wintun.dll`` from the official archive; the path it was written to.

    ``archive`` is a local copy of the archive (offline installs); otherwise it is downloaded
    from ``url`` (a mirror may be named; its archive must still have the official SHA-256).
    The archive is refused unless its SHA-256 is ``sha256`` (default
    :data:`OFFICIAL_SHA256`), before it is opened. ``directory`` defaults to
    :func:`wintun_cffi.platform.loader.user_directory`; ``progress`` is where the download is
    reported (a bar on a terminal). Raises :class:`InstallError` (or a subclass) saying why;
    then nothing was installed.
    """
    expected = OFFICIAL_SHA256 if sha256 is None else sha256
    arch = (architecture or platform.interpreter_architecture)()
    if arch not in ARCHITECTURES:
        raise MissingArchitectureError(
            f"Wintun has no DLL for {arch!r} (only {', '.join(ARCHITECTURES)})"
        )
    target = Path(directory if directory is not None else loader.user_directory()) / (
        loader.DLL_NAME
    )
    with tempfile.TemporaryDirectory(prefix="wintun-cffi-install-") as scratch:
        if archive is not None:
            zip_path = Path(archive)
            if not zip_path.is_file():
                raise InstallError(f"no archive at {zip_path}")
            check_sha256(file_sha256(zip_path), expected, str(zip_path))
        else:
            zip_path = Path(scratch) / "wintun.zip"
            with open(zip_path, "wb") as file:
                actual = download(url, file, Progress(progress))
            check_sha256(actual, expected, f"the archive downloaded from {url}")
        data = extract_dll(zip_path, arch)
    found = loader.header_architecture(data[:4096])
    if found != arch:
        raise InstallError(
            f"the archive's {arch} wintun.dll is built for {found or 'no known architecture'}; "
            "not installed"
        )
    write_atomically(data, target)
    return target


def main(archive: str | None, url: str, out: TextIO, err: TextIO) -> int:
    """The ``install-dll`` command: progress on ``err``, the result on ``out``."""
    try:
        target = install(archive, url=url, progress=err)
    except InstallError as error:
        raise SystemExit(f"error: {error}") from None
    print(
        f"Installed the official wintun.dll {OFFICIAL_VERSION} "
        f"({platform.interpreter_architecture()}) to {target}",
        file=out,
    )
    print(
        "wintun_cffi.load() finds it there (after $WINTUN_DLL, the program's folder and "
        "wintun_cffi/bin).",
        file=out,
    )
    if not platform.IS_WINDOWS:
        print(
            "wintun.dll runs on Windows only: this copy is for a Windows Python using this folder.",
            file=out,
        )
    return 0


__all__ = [
    "ARCHITECTURES",
    "MAX_ARCHIVE_BYTES",
    "OFFICIAL_SHA256",
    "OFFICIAL_URL",
    "OFFICIAL_VERSION",
    "ArchiveChecksumError",
    "InstallError",
    "MissingArchitectureError",
    "Progress",
    "UnsafeArchiveError",
    "download",
    "extract_dll",
    "install",
    "write_atomically",
]
