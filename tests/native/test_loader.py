"""The loader: search order, absolute paths, SHA-256 and architecture checks before loading,
generation detection and missing exports.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import wintun_cffi
from wintun_cffi import platform
from wintun_cffi.conformance.double.build import compiler_available, compiler_command
from wintun_cffi.errors import (
    ChecksumMismatchError,
    LibraryLoadError,
    MissingExportsError,
    UnknownGenerationError,
    WrongArchitectureError,
)
from wintun_cffi.platform import loader
from wintun_cffi.platform._exports import EXPORTS

from .conftest import GENERATIONS, DoubleLibraries

ARCH = platform.interpreter_architecture()


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really a library")
    return path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every search location moved into tmp_path, none holding a library yet."""
    monkeypatch.delenv(loader.ENV_VAR, raising=False)
    monkeypatch.delattr(sys, "frozen", raising=False)
    program = tmp_path / "program"
    program.mkdir()
    script = program / "main.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script)])
    bundled = tmp_path / "package" / "bin" / ARCH
    monkeypatch.setattr(loader, "bundled_directory", lambda: bundled)
    user = tmp_path / "user" / "bin" / ARCH
    monkeypatch.setattr(loader, "user_directory", lambda: user)
    return {
        "env": tmp_path / "env" / "custom.dll",
        "program": program / "wintun.dll",
        "bundled": bundled / "wintun.dll",
        "user": user / "wintun.dll",
    }


# -- search order ---------------------------------------------------------------------------


def test_explicit_path_wins_and_nothing_else_is_tried(
    places: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for place in places.values():
        touch(place)
    monkeypatch.setenv(loader.ENV_VAR, str(places["env"]))
    given = touch(tmp_path / "given" / "w.dll")
    assert loader.find_library(given) == str(given)
    missing = tmp_path / "missing.dll"
    with pytest.raises(FileNotFoundError) as caught:
        loader.find_library(missing)  # never falls back to the other places
    assert str(missing) in str(caught.value)
    assert str(places["program"]) not in str(caught.value)


def test_environment_variable_before_the_program_folder(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for place in places.values():
        touch(place)
    monkeypatch.setenv(loader.ENV_VAR, str(places["env"]))
    assert loader.find_library() == str(places["env"])


def test_program_folder_before_the_bundled_one(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(places["program"])
    touch(places["bundled"])
    monkeypatch.setenv(loader.ENV_VAR, str(places["env"]))  # set, but nothing there
    assert loader.find_library() == str(places["program"])


def test_frozen_program_uses_the_executables_folder(
    places: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = tmp_path / "frozen"
    touch(frozen / "wintun.dll")
    touch(places["program"])  # beside the script: ignored once frozen
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(frozen / "app.exe"))
    assert loader.find_library() == str(frozen / "wintun.dll")


def test_bundled_folder_before_the_users(places: dict[str, Path]) -> None:
    touch(places["bundled"])
    touch(places["user"])
    assert loader.find_library() == str(places["bundled"])


def test_the_users_folder_last(places: dict[str, Path]) -> None:
    touch(places["user"])
    assert loader.find_library() == str(places["user"])


def test_bundled_folder_is_the_packages_bin_for_this_architecture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = Path(wintun_cffi.__file__).resolve().parent
    assert loader.bundled_directory() == package / "bin" / ARCH


@pytest.mark.parametrize(
    ("system", "environment", "expected"),
    [
        ("win32", {"LOCALAPPDATA": "/home/u/AppData/Local"}, "/home/u/AppData/Local/wintun-cffi"),
        ("win32", {}, "/home/u/AppData/Local/wintun-cffi"),
        ("darwin", {}, "/home/u/Library/Application Support/wintun-cffi"),
        ("linux", {"XDG_DATA_HOME": "/data"}, "/data/wintun-cffi"),
        ("linux", {"XDG_DATA_HOME": "relative/ignored"}, "/home/u/.local/share/wintun-cffi"),
        ("linux", {}, "/home/u/.local/share/wintun-cffi"),
    ],
)
def test_the_users_folder_per_os(
    monkeypatch: pytest.MonkeyPatch, system: str, environment: dict[str, str], expected: str
) -> None:
    if os.sep != "/":
        pytest.skip("the expected paths are written with '/'")
    for name in ("LOCALAPPDATA", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(platform, "IS_WINDOWS", system == "win32")
    monkeypatch.setattr(sys, "platform", system)
    assert loader.user_data_directory() == Path(expected)


def test_the_users_folder_holds_this_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "user_data_directory", lambda: Path("/data/wintun-cffi"))
    assert loader.user_directory() == Path("/data/wintun-cffi/bin") / ARCH


def test_no_program_folder_for_an_interactive_interpreter(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["-c"])
    whys = [why for why, _ in loader.candidate_paths()]
    assert whys == [
        "wintun_cffi/bin for this architecture",
        "installed by install-dll for this user",
    ]


def test_not_found_lists_every_place(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(loader.ENV_VAR, str(places["env"]))
    with pytest.raises(FileNotFoundError) as caught:
        loader.find_library()
    message = str(caught.value)
    positions = [message.index(str(places[key])) for key in ("env", "program", "bundled", "user")]
    assert positions == sorted(positions)  # in search order
    with pytest.raises(FileNotFoundError):
        wintun_cffi.load()


def test_a_directory_is_not_a_library(places: dict[str, Path]) -> None:
    places["program"].mkdir()
    touch(places["bundled"])
    assert loader.find_library() == str(places["bundled"])


def test_relative_paths_become_absolute(
    places: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    touch(work / "lib" / "w.dll")
    monkeypatch.chdir(work)
    assert loader.find_library(os.path.join("lib", "w.dll")) == str(work / "lib" / "w.dll")
    assert loader.find_library(Path("lib/w.dll")) == str(work / "lib" / "w.dll")
    monkeypatch.setattr(sys, "argv", ["main.py"])  # a relative script path
    (work / "main.py").write_text("")
    assert all(place.is_absolute() for _, place in loader.candidate_paths())
    with pytest.raises(FileNotFoundError) as caught:
        loader.find_library("nothing.dll")
    assert str(work / "nothing.dll") in str(caught.value)


def test_a_relative_environment_variable_is_refused(
    places: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader never searches the current directory: a relative $WINTUN_DLL would."""
    work = tmp_path / "cwd"
    touch(work / "lib" / "w.dll")
    monkeypatch.chdir(work)
    monkeypatch.setenv(loader.ENV_VAR, os.path.join("lib", "w.dll"))
    with pytest.raises(LibraryLoadError, match=r"\$WINTUN_DLL is .*a relative path.*absolute"):
        loader.find_library()
    touch(places["program"])  # refused even when another place has a library
    with pytest.raises(LibraryLoadError, match="relative"):
        loader.find_library()


def test_the_program_folder_survives_a_change_of_directory(tmp_path: Path) -> None:
    """A script started by a relative path finds the DLL beside it after os.chdir, and does
    not take the one in the new current directory."""
    program, elsewhere = tmp_path / "program", tmp_path / "elsewhere"
    touch(program / "wintun.dll")
    touch(elsewhere / "wintun.dll")
    (program / "main.py").write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from wintun_cffi.platform import loader\n"
        f"os.chdir({str(elsewhere)!r})\n"
        "print(loader.find_library())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != loader.ENV_VAR}
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=program, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(program / "wintun.dll")


@pytest.mark.parametrize("bad", ["", "abc", "0" * 63, "g" * 64, "0" * 65])
def test_a_sha256_that_is_not_one_is_a_value_error(bad: str, tmp_path: Path) -> None:
    library = touch(tmp_path / "wintun.dll")
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        loader.open_wintun(str(library), sha256=bad)
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        loader.verify_sha256(str(library), bad)


# -- checks before loading ---------------------------------------------------------------------


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to load a library."""

    def refuse(ffi: object, path: str) -> object:
        pytest.fail(f"{path} was loaded")

    monkeypatch.setattr(platform, "open_library", refuse)


def test_sha256_mismatch_refused_before_loading(tmp_path: Path, no_loading: None) -> None:
    path = touch(tmp_path / "w.dll")
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumMismatchError) as caught:
        loader.open_wintun(str(path), wrong)
    assert wrong in str(caught.value) and hashlib.sha256(path.read_bytes()).hexdigest() in str(
        caught.value
    )
    assert isinstance(caught.value, LibraryLoadError) and isinstance(caught.value, OSError)
    with pytest.raises(ChecksumMismatchError):
        wintun_cffi.load(path, sha256=wrong)


def test_verify_sha256_accepts_any_case_and_spaces(tmp_path: Path) -> None:
    path = touch(tmp_path / "w.dll")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loader.verify_sha256(str(path), digest)
    loader.verify_sha256(str(path), f" {digest.upper()}\n")


def pe_file(path: Path, machine: int, e_lfanew: int = 0x80) -> Path:
    """A minimal PE image header: MZ, e_lfanew at 0x3C, then PE\\0\\0 and the Machine."""
    data = bytearray(e_lfanew + 24)
    data[0:2] = b"MZ"
    struct.pack_into("<I", data, 0x3C, e_lfanew)
    data[e_lfanew : e_lfanew + 4] = b"PE\0\0"
    struct.pack_into("<H", data, e_lfanew + 4, machine)
    path.write_bytes(bytes(data))
    return path


def elf_file(path: Path, bits: int, machine: int, big_endian: bool = False) -> Path:
    """A minimal ELF identification: class, data order and e_machine."""
    data = bytearray(64)
    data[0:4] = b"\x7fELF"
    data[4] = 2 if bits == 64 else 1
    data[5] = 2 if big_endian else 1
    struct.pack_into(">H" if big_endian else "<H", data, 18, machine)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("machine", "name"), [(0x8664, "amd64"), (0x014C, "x86"), (0xAA64, "arm64"), (0x01C4, "arm")]
)
def test_pe_architecture(tmp_path: Path, machine: int, name: str) -> None:
    assert loader.binary_architecture(str(pe_file(tmp_path / "w.dll", machine))) == name


@pytest.mark.parametrize(
    ("bits", "machine", "big", "name"),
    [
        (64, 62, False, "amd64"),
        (32, 3, False, "x86"),
        (64, 183, False, "arm64"),
        (32, 40, False, "arm"),
        (32, 62, False, "ELF machine 62 (32-bit)"),
        (64, 21, True, "ELF machine 21 (64-bit)"),
    ],
)
def test_elf_architecture(tmp_path: Path, bits: int, machine: int, big: bool, name: str) -> None:
    path = elf_file(tmp_path / "w.so", bits, machine, big)
    assert loader.binary_architecture(str(path)) == name


def test_unknown_formats_have_no_architecture(tmp_path: Path) -> None:
    assert loader.binary_architecture(str(touch(tmp_path / "text.dll"))) is None
    mz = tmp_path / "mz.dll"
    mz.write_bytes(b"MZ" + bytes(0x40))  # e_lfanew 0: no PE signature there
    assert loader.binary_architecture(str(mz)) is None
    assert loader.binary_architecture(str(pe_file(tmp_path / "o.dll", 0x1234))) == (
        "PE machine 0x1234"
    )


def foreign(machine_names: dict[str, int]) -> tuple[str, int]:
    """An architecture of the table that is not this interpreter's."""
    return next((name, value) for name, value in machine_names.items() if name != ARCH)


@pytest.mark.parametrize("kind", ["pe-x86", "pe-arm64", "elf-32", "elf-other"])
def test_wrong_architecture_refused_before_loading(
    tmp_path: Path, no_loading: None, kind: str
) -> None:
    if kind.startswith("pe-"):
        pe = {"x86": 0x014C, "arm64": 0xAA64, "amd64": 0x8664}
        name = kind[3:] if kind[3:] != ARCH else "amd64"
        path = pe_file(tmp_path / "w.dll", pe[name])
    elif kind == "elf-32":
        name = "x86" if ARCH != "x86" else "amd64"
        path = elf_file(tmp_path / "w.so", 32 if ARCH != "x86" else 64, 3 if ARCH != "x86" else 62)
    else:
        name, machine = foreign({"arm64": 183, "amd64": 62})
        path = elf_file(tmp_path / "w.so", 64, machine)
    with pytest.raises(WrongArchitectureError) as caught:
        loader.open_wintun(str(path))
    message = str(caught.value)
    assert name in message and ARCH in message
    assert str(path) in message


def test_right_architecture_then_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The architecture check passes for this interpreter's machine; loading is what fails.
    machine = {"amd64": 0x8664, "x86": 0x014C, "arm64": 0xAA64, "arm": 0x01C4}.get(ARCH)
    if machine is None:
        pytest.skip(f"no PE machine value for {ARCH}")
    path = pe_file(tmp_path / "w.dll", machine)
    loaded: list[str] = []

    def record(ffi: object, path: str) -> object:
        loaded.append(path)
        raise OSError("not a real library")

    monkeypatch.setattr(platform, "open_library", record)
    with pytest.raises(LibraryLoadError, match="not a real library"):
        loader.open_wintun(str(path))
    assert loaded == [str(path)]


def test_a_file_that_is_no_library(tmp_path: Path) -> None:
    path = touch(tmp_path / "wintun.dll")
    with pytest.raises(LibraryLoadError) as caught:
        wintun_cffi.load(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)  # the loader's own reason, chained


# -- exports and generations -------------------------------------------------------------------


def compile_library(tmp_path: Path, name: str, functions: list[str]) -> Path:
    """A shared library exporting ``functions`` as stubs (return 0), plus one unrelated."""
    if sys.platform == "win32" or not compiler_available():
        pytest.skip(
            "stub libraries are compiled at test time: needs the system C compiler "
            "(Linux; a Windows Python gets only the prebuilt doubles)"
        )
    source = tmp_path / f"{name}.c"
    body = "".join(f"int {function}(void) {{ return 0; }}\n" for function in functions)
    source.write_text(body + "int SomethingElse(void) { return 1; }\n")
    output = tmp_path / f"lib{name}.so"
    subprocess.run(
        [*compiler_command(), "-shared", "-fPIC", str(source), "-o", str(output)],
        check=True,
        capture_output=True,
    )
    return output


@pytest.mark.parametrize(
    "missing", ["WintunSendPacket", "WintunCloseAdapter", "WintunGetAdapterLUID"]
)
def test_missing_export_is_named(tmp_path: Path, missing: str) -> None:
    names = [name for name in EXPORTS["0.14"] if name != missing]
    assert len(names) == 13
    path = compile_library(tmp_path, "almost", names)
    with pytest.raises(MissingExportsError) as caught:
        loader.open_wintun(str(path))
    message = str(caught.value)
    assert missing in message and "'0.14'" in message
    assert not any(name in message for name in names)


def test_missing_pool_export_is_named(tmp_path: Path) -> None:
    names = [name for name in EXPORTS["pool"] if name != "WintunEnumAdapters"]
    path = compile_library(tmp_path, "almost_pool", names)
    with pytest.raises(MissingExportsError, match="'pool'.*WintunEnumAdapters"):
        loader.open_wintun(str(path))


def test_no_wintun_exports_is_unknown_generation(tmp_path: Path) -> None:
    path = compile_library(tmp_path, "unrelated", ["NotWintun"])
    with pytest.raises(UnknownGenerationError) as caught:
        loader.open_wintun(str(path))
    assert all(generation in str(caught.value) for generation in GENERATIONS)
    with pytest.raises(UnknownGenerationError):
        wintun_cffi.load(path)


def test_complete_stub_exports_load(tmp_path: Path) -> None:
    path = compile_library(tmp_path, "complete", list(EXPORTS["seed"]))
    library = loader.open_wintun(str(path))
    assert library.api == "seed" and library.path == str(path)


@pytest.mark.parametrize("api", GENERATIONS)
def test_generation_of_each_double(libraries: DoubleLibraries, api: str) -> None:
    path = libraries.path(api)  # type: ignore[arg-type]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    library = loader.open_wintun(path, digest)
    assert library.api == api and library.path == path
    assert library.lib.WintunGetRunningDriverVersion is not None
    wintun = wintun_cffi.load(path, sha256=digest.upper())
    assert wintun.api == api
