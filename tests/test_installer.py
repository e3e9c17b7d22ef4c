"""python -m wintun_cffi install-dll: the hash before the archive, one DLL out of it, written
atomically where load() looks.

Nothing here reaches the internet: archives are made by the tests (the pinned official one
is never available offline, so they are installed with their own SHA-256 through the Python
API, and refused for not being the official one through the command), and downloads come from
an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import struct
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wintun_cffi import platform
from wintun_cffi.commands import cli, installer
from wintun_cffi.commands.installer import (
    ArchiveChecksumError,
    InstallError,
    MissingArchitectureError,
    UnsafeArchiveError,
)
from wintun_cffi.platform import loader

ARCH = platform.interpreter_architecture()
MACHINES = {"amd64": 0x8664, "x86": 0x014C, "arm64": 0xAA64, "arm": 0x01C4}
pytestmark = pytest.mark.skipif(ARCH not in MACHINES, reason=f"Wintun has no DLL for {ARCH}")


def fake_dll(arch: str, marker: bytes = b"") -> bytes:
    """A PE image header for ``arch``, then ``marker``: enough for the architecture check."""
    data = bytearray(0x200)
    data[0:2] = b"MZ"
    struct.pack_into("<I", data, 0x3C, 0x80)
    data[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<H", data, 0x84, MACHINES[arch])
    return bytes(data) + arch.encode() + marker


def release(entries: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like the official release (a DLL per architecture, headers, a licence),
    with ``entries`` added or replacing those."""
    files = {f"wintun/bin/{arch}/wintun.dll": fake_dll(arch) for arch in MACHINES}
    files |= {
        "wintun/include/wintun.h": b"/* header */",
        "wintun/LICENSE.txt": b"licence",
        "wintun/README.md": b"readme",
    }
    files |= entries or {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "user" / "bin" / ARCH


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    path = tmp_path / "wintun-0.14.1.zip"
    path.write_bytes(release())
    return path


def installed_files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


# -- from a local archive -------------------------------------------------------------------


def test_installs_only_this_architectures_dll(archive: Path, target: Path) -> None:
    path = installer.install(archive, sha256=sha256(archive.read_bytes()), directory=target)
    assert path == target / "wintun.dll"
    assert path.read_bytes() == fake_dll(ARCH)
    assert installed_files(target) == ["wintun.dll"]  # no headers, no other architectures
    assert installed_files(target.parent) == [ARCH]


def test_the_pinned_release_is_the_official_one() -> None:
    assert installer.OFFICIAL_URL == "https://www.wintun.net/builds/wintun-0.14.1.zip"
    assert installer.OFFICIAL_SHA256 == (
        "07c256185d6ee3652e09fa55c0b673e2624b565e02c4b9091c79ca7d2f24ef51"
    )


def test_a_wrong_hash_is_refused_before_the_archive_is_opened(
    archive: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        pytest.fail("the archive was opened before its hash was checked")

    monkeypatch.setattr(zipfile, "ZipFile", never)
    with pytest.raises(ArchiveChecksumError) as caught:
        installer.install(archive, directory=target)  # the official hash
    message = str(caught.value)
    assert sha256(archive.read_bytes()) in message and installer.OFFICIAL_SHA256 in message
    assert installed_files(target) == []


def test_the_hash_is_compared_in_any_case(archive: Path, target: Path) -> None:
    installer.install(archive, sha256=sha256(archive.read_bytes()).upper(), directory=target)
    assert (target / "wintun.dll").exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../wintun.dll", "a '..' component"),
        ("wintun/bin/../../../evil.dll", "a '..' component"),
        ("/tmp/evil.dll", "an absolute name"),
        ("C:/Windows/evil.dll", "an absolute name"),
        ("\\evil.dll", "an absolute name"),
        ("wintun\\..\\..\\evil.dll", "a '..' component"),
    ],
)
def test_hostile_paths_refuse_the_archive(
    tmp_path: Path, target: Path, name: str, reason: str
) -> None:
    data = release({name: b"payload"})
    path = tmp_path / "hostile.zip"
    path.write_bytes(data)
    with pytest.raises(UnsafeArchiveError, match=reason):
        installer.install(path, sha256=sha256(data), directory=target)
    assert installed_files(target) == []
    assert not (tmp_path / "evil.dll").exists() and not (tmp_path.parent / "evil.dll").exists()


def zip_with_symlink(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(member)
        info.create_system = 3  # Unix
        info.external_attr = 0o120777 << 16  # a symbolic link ...
        archive.writestr(info, "/etc/passwd")  # ... whose target is this
    return buffer.getvalue()


def test_a_symbolic_link_refuses_the_archive(tmp_path: Path, target: Path) -> None:
    data = zip_with_symlink(f"wintun/bin/{ARCH}/wintun.dll")
    path = tmp_path / "link.zip"
    path.write_bytes(data)
    with pytest.raises(UnsafeArchiveError, match="a symbolic link"):
        installer.install(path, sha256=sha256(data), directory=target)
    assert installed_files(target) == []


def test_the_dll_twice_refuses_the_archive(tmp_path: Path, target: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr(f"wintun/bin/{ARCH}/wintun.dll", fake_dll(ARCH, b"first"))
        archive.writestr(f"wintun/bin/{ARCH}/wintun.dll", fake_dll(ARCH, b"second"))
    path = tmp_path / "twice.zip"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeArchiveError, match="twice"):
        installer.install(path, sha256=sha256(path.read_bytes()), directory=target)


def test_a_missing_architecture_says_which_there_are(tmp_path: Path, target: Path) -> None:
    others = [arch for arch in MACHINES if arch != ARCH]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for arch in others:
            archive.writestr(f"wintun/bin/{arch}/wintun.dll", fake_dll(arch))
    path = tmp_path / "partial.zip"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(MissingArchitectureError) as caught:
        installer.install(path, sha256=sha256(path.read_bytes()), directory=target)
    assert f"this Python is {ARCH}" in str(caught.value)
    assert all(arch in str(caught.value) for arch in others)
    assert installed_files(target) == []


def test_a_dll_of_another_architecture_in_this_ones_folder(tmp_path: Path, target: Path) -> None:
    other = next(arch for arch in MACHINES if arch != ARCH)
    data = release({f"wintun/bin/{ARCH}/wintun.dll": fake_dll(other)})
    path = tmp_path / "swapped.zip"
    path.write_bytes(data)
    with pytest.raises(InstallError, match=f"built for {other}"):
        installer.install(path, sha256=sha256(data), directory=target)
    assert installed_files(target) == []


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "bad crc"])
def test_damaged_archives(tmp_path: Path, target: Path, damage: str) -> None:
    data = release()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "not a zip":
        data = b"<html>not found</html>"
    else:
        dll = fake_dll(ARCH)
        offset = data.index(dll)
        data = data[:offset] + b"NZ" + data[offset + 2 :]  # stored, so the CRC no longer fits
    path = tmp_path / "damaged.zip"
    path.write_bytes(data)
    with pytest.raises(InstallError):
        installer.install(path, sha256=sha256(data), directory=target)
    assert installed_files(target) == []


def damaged_member(damage: str) -> bytes:
    """The release with this architecture's DLL deflated and then damaged: its compressed
    bytes overwritten, flagged as encrypted, or given a compression method zipfile lacks."""
    member = f"wintun/bin/{ARCH}/wintun.dll"
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(release())) as source, zipfile.ZipFile(buffer, "w") as out:
        for info in source.infolist():
            method = zipfile.ZIP_DEFLATED if info.filename == member else zipfile.ZIP_STORED
            out.writestr(info.filename, source.read(info), compress_type=method)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as opened:
        info = opened.getinfo(member)
    if damage == "corrupt":
        local = info.header_offset
        name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
        start = local + 30 + name_length + extra_length
        data[start : start + 16] = b"\xff" * 16
        return bytes(data)
    # The central directory's entry for the member: flags at +8, method at +10.
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    if damage == "encrypted":
        struct.pack_into(
            "<H", data, central + 8, struct.unpack_from("<H", data, central + 8)[0] | 1
        )
    else:
        struct.pack_into("<H", data, central + 10, 99)  # AE-x: not something zipfile reads
    return bytes(data)


@pytest.mark.parametrize("damage", ["corrupt", "encrypted", "unsupported method"])
def test_an_unreadable_dll_entry_is_an_install_error(
    tmp_path: Path, target: Path, damage: str
) -> None:
    data = damaged_member(damage)
    path = tmp_path / "damaged.zip"
    path.write_bytes(data)
    with pytest.raises(InstallError, match="cannot be read"):
        installer.install(path, sha256=sha256(data), directory=target)
    assert installed_files(target) == []


def test_a_folder_where_the_dll_goes_is_an_install_error(archive: Path, target: Path) -> None:
    (target / "wintun.dll").mkdir(parents=True)
    with pytest.raises(InstallError, match="cannot replace"):
        installer.install(archive, sha256=sha256(archive.read_bytes()), directory=target)
    assert installed_files(target) == ["wintun.dll"]  # the folder, and no temporary file
    assert (target / "wintun.dll").is_dir()


def test_a_file_where_the_folder_goes_is_an_install_error(archive: Path, target: Path) -> None:
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a file")
    with pytest.raises(InstallError, match="cannot create"):
        installer.install(archive, sha256=sha256(archive.read_bytes()), directory=target)
    assert target.read_bytes() == b"a file"


def test_an_unknown_interpreter_architecture(archive: Path, target: Path) -> None:
    with pytest.raises(MissingArchitectureError, match="riscv64"):
        installer.install(
            archive,
            sha256=sha256(archive.read_bytes()),
            directory=target,
            architecture=lambda: "riscv64",
        )


# -- writing -----------------------------------------------------------------------------------


def test_an_installed_dll_is_replaced_whole(archive: Path, target: Path) -> None:
    target.mkdir(parents=True)
    (target / "wintun.dll").write_bytes(b"an older copy")
    installer.install(archive, sha256=sha256(archive.read_bytes()), directory=target)
    assert (target / "wintun.dll").read_bytes() == fake_dll(ARCH)
    assert installed_files(target) == ["wintun.dll"]  # no temporary file left


def test_a_failed_rename_keeps_the_old_dll(
    archive: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target.mkdir(parents=True)
    (target / "wintun.dll").write_bytes(b"in use")

    def busy(source: str, destination: str) -> None:
        raise PermissionError(13, "The process cannot access the file")

    monkeypatch.setattr(os, "replace", busy)
    with pytest.raises(InstallError, match="is a program using it"):
        installer.install(archive, sha256=sha256(archive.read_bytes()), directory=target)
    assert (target / "wintun.dll").read_bytes() == b"in use"
    assert installed_files(target) == ["wintun.dll"]


def test_load_looks_in_the_per_user_folder_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if platform.IS_WINDOWS:
        monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "data"))
    else:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.setattr("sys.platform", "linux")
    expected = tmp_path / "data" / "wintun-cffi" / "bin" / ARCH / "wintun.dll"
    places = loader.candidate_paths()
    assert places[-1] == ("installed by install-dll for this user", expected)
    assert loader.user_directory() / "wintun.dll" == expected


# -- downloading -----------------------------------------------------------------------------


class Served:
    """What the local server answers per path: (status, body, announced length or None)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            served.requests.append(self.path)
            status, body, length = served.routes.get(self.path, (404, b"no", None))
            self.send_response(status)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_download_and_install(server: tuple[str, Served], target: Path) -> None:
    base, served = server
    data = release()
    served.routes["/wintun.zip"] = (200, data, len(data))
    out = io.StringIO()
    path = installer.install(
        url=f"{base}/wintun.zip", sha256=sha256(data), directory=target, progress=out
    )
    assert path.read_bytes() == fake_dll(ARCH)
    assert out.getvalue().splitlines() == [
        f"Downloading {base}/wintun.zip ({len(data)} bytes)",
        f"Downloaded {len(data)} bytes",
    ]
    assert served.requests == ["/wintun.zip"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar(server: tuple[str, Served], target: Path) -> None:
    base, served = server
    data = release({"wintun/padding.bin": os.urandom(300_000)})  # several chunks
    served.routes["/wintun.zip"] = (200, data, len(data))
    out = Terminal()
    installer.install(url=f"{base}/wintun.zip", sha256=sha256(data), directory=target, progress=out)
    text = out.getvalue()
    assert "\r[" in text and "100%" in text and "#" * installer.Progress.WIDTH in text
    assert text.endswith(f"Downloaded {len(data)} bytes\n")


def test_without_a_length_the_bar_counts_bytes(server: tuple[str, Served], target: Path) -> None:
    base, served = server
    data = release()
    served.routes["/wintun.zip"] = (200, data, None)
    out = Terminal()
    installer.install(url=f"{base}/wintun.zip", sha256=sha256(data), directory=target, progress=out)
    assert " KiB" in out.getvalue()


def test_a_truncated_download_is_refused(server: tuple[str, Served], target: Path) -> None:
    base, served = server
    data = release()
    served.routes["/wintun.zip"] = (200, data[:500], len(data))
    with pytest.raises(InstallError, match=f"ended after 500 of {len(data)} bytes"):
        installer.install(url=f"{base}/wintun.zip", sha256=sha256(data), directory=target)
    assert installed_files(target) == []


def test_a_truncated_download_without_a_length_fails_the_hash(
    server: tuple[str, Served], target: Path
) -> None:
    base, served = server
    data = release()
    served.routes["/wintun.zip"] = (200, data[:500], None)
    with pytest.raises(ArchiveChecksumError):
        installer.install(url=f"{base}/wintun.zip", sha256=sha256(data), directory=target)


def test_http_errors_and_other_schemes(server: tuple[str, Served], target: Path) -> None:
    base, _ = server
    with pytest.raises(InstallError, match="HTTP 404"):
        installer.install(url=f"{base}/missing.zip", directory=target)
    with pytest.raises(InstallError, match="only download over http or https"):
        installer.install(url="file:///etc/passwd", directory=target)
    with pytest.raises(InstallError, match="failed"):
        installer.install(url="http://127.0.0.1:9/wintun.zip", directory=target)  # discard port
    assert installed_files(target) == []


def test_an_oversized_archive_is_not_downloaded(server: tuple[str, Served], target: Path) -> None:
    base, served = server
    served.routes["/huge.zip"] = (200, b"x", installer.MAX_ARCHIVE_BYTES + 1)
    with pytest.raises(InstallError, match="more than a Wintun release"):
        installer.install(url=f"{base}/huge.zip", directory=target)


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setattr(loader, "user_data_directory", lambda: directory / "wintun-cffi")
    return directory / "wintun-cffi" / "bin" / ARCH


def test_the_command_refuses_an_archive_that_is_not_the_official_one(
    server: tuple[str, Served], user_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served = server
    data = release()
    served.routes["/wintun-0.14.1.zip"] = (200, data, len(data))
    with pytest.raises(SystemExit) as caught:
        cli.main(["install-dll", "--url", f"{base}/wintun-0.14.1.zip"])
    message = str(caught.value.code)
    assert message.startswith("error: the archive downloaded from")
    assert installer.OFFICIAL_SHA256 in message and sha256(data) in message
    assert installed_files(user_data) == []


def test_the_command_installs_offline_and_says_where(
    archive: Path,
    user_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The official archive cannot be had offline: pin this one instead.
    monkeypatch.setattr(installer, "OFFICIAL_SHA256", sha256(archive.read_bytes()))
    assert cli.main(["install-dll", "--from", str(archive)]) == 0
    out = capsys.readouterr().out
    assert f"to {user_data / 'wintun.dll'}" in out.splitlines()[0]
    assert (user_data / "wintun.dll").read_bytes() == fake_dll(ARCH)
    assert loader.candidate_paths()[-1][1] == user_data / "wintun.dll"


def test_the_command_downloads_from_a_mirror(
    server: tuple[str, Served],
    user_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, served = server
    data = release()
    served.routes["/mirror/wintun-0.14.1.zip"] = (200, data, len(data))
    monkeypatch.setattr(installer, "OFFICIAL_SHA256", sha256(data))
    assert cli.main(["install-dll", "--url", f"{base}/mirror/wintun-0.14.1.zip"]) == 0
    captured = capsys.readouterr()
    assert "Downloading" in captured.err and "Installed" in captured.out
    assert (user_data / "wintun.dll").exists()


def test_the_command_with_a_missing_archive(user_data: Path) -> None:
    with pytest.raises(SystemExit, match="error: no archive at"):
        cli.main(["install-dll", "--from", str(user_data / "nothing.zip")])
