"""A library file held open from the moment it is checked until it is loaded.

:func:`wintun_cffi.platform.loader.open_wintun` checks a file (SHA-256, architecture, signature) and
then loads it by path. Checked through one handle and loaded by path, the file could be
swapped in between. :class:`HeldFile` closes that window:

* on Windows the file is opened with ``CreateFileW`` sharing only reading
  (``FILE_SHARE_READ``: no ``FILE_SHARE_WRITE``, no ``FILE_SHARE_DELETE``). While the handle is
  open, no process can open the file for writing, delete it or rename it (renaming needs
  delete access), nor rename the folder it is in; the Windows loader, which only reads,
  still can. The checks read through that handle, and the signature check is given it.
* elsewhere no such sharing modes exist. The file is read through one descriptor, and after
  the load the path must still name the same file (device and inode); if it does not, the
  load is refused. That detects a swap, it cannot prevent one, and the swapped-in library's
  initialisers have run by then; a file changed in place is not detected.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from . import IS_WINDOWS

# CreateFileW arguments (fileapi.h / winnt.h).
GENERIC_READ = 0x80000000
FILE_SHARE_READ = 0x00000001
OPEN_EXISTING = 3
FILE_ATTRIBUTE_NORMAL = 0x00000080
_ERROR_SHARING_VIOLATION = 32

_kernel32: Any = None


def _create_file(path: str) -> int:
    """A descriptor over a ``CreateFileW`` handle that lets others only read (Windows)."""
    global _kernel32
    import msvcrt

    import cffi

    if _kernel32 is None:
        ffi = cffi.FFI()
        ffi.cdef("""
            void *WINAPI CreateFileW(const char16_t *Name, uint32_t Access, uint32_t Share,
                                     void *Security, uint32_t Disposition, uint32_t Flags,
                                     void *Template);
        """)
        _kernel32 = (ffi, ffi.dlopen("kernel32.dll"))
    ffi, kernel32 = _kernel32
    # CreateFileW(GENERIC_READ, FILE_SHARE_READ only, OPEN_EXISTING)
    handle = kernel32.CreateFileW(
        path,
        GENERIC_READ,
        FILE_SHARE_READ,
        ffi.NULL,
        OPEN_EXISTING,
        FILE_ATTRIBUTE_NORMAL,
        ffi.NULL,
    )
    value = int(ffi.cast("uintptr_t", handle))
    if value == int(ffi.cast("uintptr_t", -1)):  # INVALID_HANDLE_VALUE, whatever the width
        code = ffi.getwinerror()[0]
        if code == _ERROR_SHARING_VIOLATION:
            raise PermissionError(
                13, "another program has the file open for writing or deleting", path
            )
        raise OSError(None, ffi.getwinerror()[1], path, code)
    # open_osfhandle: the descriptor owns the handle from now on (os.close closes both).
    return int(msvcrt.open_osfhandle(value, os.O_RDONLY))  # type: ignore[attr-defined, unused-ignore]


class HeldFile:
    """``path`` open for reading, others kept from changing it on Windows (see above).

    A context manager; :meth:`close` (or leaving the block) lets the file go.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = (
            _create_file(path)
            if IS_WINDOWS
            else os.open(
                path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
            )
        )
        self._identity = self._file_identity()

    def __enter__(self) -> HeldFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Let the file go. Idempotent."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    @property
    def windows_handle(self) -> int:
        """The Windows ``HANDLE`` of the held file (Windows only)."""
        import msvcrt

        return int(msvcrt.get_osfhandle(self._fd))  # type: ignore[attr-defined, unused-ignore]

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes from the start, through the held descriptor."""
        os.lseek(self._fd, 0, os.SEEK_SET)
        while chunk := os.read(self._fd, size):
            yield chunk

    def head(self, size: int = 4096) -> bytes:
        """The first ``size`` bytes."""
        os.lseek(self._fd, 0, os.SEEK_SET)
        return os.read(self._fd, size)

    def sha256(self) -> str:
        """The SHA-256 of the held file (hex)."""
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def _file_identity(self) -> tuple[int, int]:
        status = os.fstat(self._fd)
        return status.st_dev, status.st_ino

    def still_at_path(self) -> bool:
        """True if the path still names the held file (same device and inode / file index)."""
        try:
            status = os.stat(self.path)
        except OSError:
            return False
        return (status.st_dev, status.st_ino) == self._identity
