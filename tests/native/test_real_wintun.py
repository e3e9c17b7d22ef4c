"""The real, signed ``wintun.dll`` 0.14.1, as a Windows user meets it.

``$WINTUN_CFFI_REAL_WINTUN`` names a folder holding ``<arch>/wintun.dll`` for amd64, x86 and
arm64, the official binaries (``.ci/wine`` takes them from the ``pytun-pmd3`` wheel on PyPI,
refused unless their SHA-256 are the ones below; the Windows workflow from the official
release). Without it, or off Windows, every test here is skipped with that reason. The module
runs unchanged on real Windows, where adapters can be created, and under Wine, where there is
no driver: a test whose outcome depends on which names both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import wintun_cffi
from wintun_cffi import platform
from wintun_cffi.conformance.backends import NO_DRIVER_REASON
from wintun_cffi.conformance.windows import under_wine
from wintun_cffi.errors import (
    ChecksumMismatchError,
    DriverNotLoadedError,
    UntrustedLibraryError,
    WintunError,
    WrongArchitectureError,
)
from wintun_cffi.platform import _authenticode
from wintun_cffi.platform._exports import DECLARED
from wintun_cffi.platform._heldfile import HeldFile

from . import pe

#: The folder of ``<arch>/wintun.dll``.
ENV_VAR = "WINTUN_CFFI_REAL_WINTUN"
#: The SHA-256 of the official wintun.dll 0.14.1 of each architecture.
SHA256 = {
    "amd64": "e5da8447dc2c320edc0fc52fa01885c103de8c118481f683643cacc3220dafce",
    "x86": "d694fa46ab4cfebcb2632d094c7aa97278eef2f8052438621766d863ae98a931",
    "arm64": "f7ba89005544be9d85231a9e0d5f23b2d15b3311667e2dad0debd344918a3f80",
}
ARCH = platform.interpreter_architecture() if sys.platform == "win32" else "amd64"
FOLDER = os.environ.get(ENV_VAR, "")

pytestmark = [
    pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (or Wine): wintun.dll"),
    pytest.mark.skipif(
        not FOLDER,
        reason=f"needs the real wintun.dll 0.14.1: ${ENV_VAR} names the folder of "
        "<arch>/wintun.dll (.ci/wine sets it)",
    ),
]


def real(arch: str = ARCH) -> Path:
    """The real DLL of ``arch``, after checking it is the official one."""
    path = Path(FOLDER) / arch / "wintun.dll"
    wintun_cffi.platform.loader.verify_sha256(str(path), SHA256[arch])
    return path


def others() -> list[str]:
    return [arch for arch in SHA256 if arch != ARCH]


@pytest.fixture
def wintun() -> wintun_cffi.Wintun:
    return wintun_cffi.load(real(), sha256=SHA256[ARCH])


def copy_of(tmp_path: Path, data: bytes, name: str) -> Path:
    path = tmp_path / name / "wintun.dll"
    path.parent.mkdir()
    path.write_bytes(data)
    return path


# -- loading --------------------------------------------------------------------------------


def test_load_detects_0_14_and_checks_the_sha256(tmp_path: Path) -> None:
    wintun = wintun_cffi.load(real(), sha256=SHA256[ARCH].upper())
    assert wintun.api == "0.14"
    assert wintun.path == str(real())
    with pytest.raises(ChecksumMismatchError, match=f"expected {'0' * 64}; not loaded"):
        wintun_cffi.load(real(), sha256="0" * 64)


@pytest.mark.parametrize("arch", ["amd64", "x86", "arm64"])
def test_another_architectures_build_is_refused(arch: str) -> None:
    if arch == ARCH:
        pytest.skip(f"{arch} is this Python's own architecture")
    with pytest.raises(WrongArchitectureError) as caught:
        wintun_cffi.load(real(arch))
    assert f"is built for {arch}, but this Python is {ARCH}" in str(caught.value)


def test_the_export_table_is_the_generated_declarations_of_0_14() -> None:
    for arch in SHA256:
        assert pe.export_names(real(arch).read_bytes()) == set(DECLARED["0.14"].exports), arch


# -- the signature --------------------------------------------------------------------------


def test_the_signature_is_accepted_and_names_wireguard() -> None:
    with HeldFile(str(real())) as held:
        assert _authenticode.signer_of(str(real()), held.windows_handle) == "WireGuard LLC"
    wintun = wintun_cffi.load(real(), verify_signature=True, sha256=SHA256[ARCH])
    assert wintun.api == "0.14"


def changed_in_code(image: bytes) -> bytes:
    text = next(section for section in pe.sections(image) if section.name == ".text")
    return pe.flip_byte(image, text.raw_offset + text.raw_size // 2)


def changed_in_driver(image: bytes) -> bytes:
    driver = pe.embedded_images(image)[0]
    return pe.flip_byte(image, driver + 0x1000)


def corrupted_signature_value(image: bytes) -> bytes:
    offset, length = pe.signer_signature_span(image)
    return pe.flip_byte(image, offset + length // 2)


@pytest.mark.parametrize(
    ("alter", "words"),
    [
        (changed_in_code, "its contents do not match its signature (TRUST_E_BAD_DIGEST)"),
        (changed_in_driver, "its contents do not match its signature (TRUST_E_BAD_DIGEST)"),
        (pe.strip_signature, "it carries no signature (TRUST_E_NOSIGNATURE)"),
        (corrupted_signature_value, "a signature in it does not verify"),
    ],
    ids=["code-byte", "driver-byte", "no-signature", "signer-signature"],
)
def test_an_altered_copy_is_refused_in_words(tmp_path: Path, alter: object, words: str) -> None:
    assert callable(alter)
    original = real().read_bytes()
    altered = alter(original)
    assert isinstance(altered, bytes) and altered != original
    path = copy_of(tmp_path, altered, "altered")
    with pytest.raises(UntrustedLibraryError) as caught:
        wintun_cffi.load(path, verify_signature=True)
    message = str(caught.value)
    if words.startswith("a signature") and not under_wine():
        # Real Windows may name a corrupted signature value otherwise; always in words.
        assert message.split(": ", 1)[1] in {
            f"{reason}, HRESULT {code:#010x}" for code, reason in _authenticode.REASONS.items()
        }, message
    else:
        assert words in message, message
    assert "HRESULT 0x" in message


# -- the driver -----------------------------------------------------------------------------


def test_the_running_driver_version(wintun: wintun_cffi.Wintun) -> None:
    if under_wine():
        with pytest.raises(DriverNotLoadedError, match="the Wintun driver is not loaded"):
            wintun.running_driver_version
        return
    try:
        assert wintun.running_driver_version == (0, 14)
    except DriverNotLoadedError:  # no adapter on this machine right now
        pass


def test_creating_an_adapter_fails_with_the_dlls_log_under_wine(
    wintun: wintun_cffi.Wintun,
) -> None:
    name = f"WintunCffiReal {uuid.uuid4().hex[:8]}"
    if not under_wine():
        with wintun.create_adapter(name, tunnel_type="WintunCffiReal") as adapter:
            assert adapter.luid
        return
    with pytest.raises(WintunError) as caught:
        wintun.create_adapter(name, tunnel_type="WintunCffiReal")
    assert caught.value.log, "the DLL's own log lines of the failed call"
    assert "WintunCreateAdapter" in str(caught.value)


def test_opening_a_missing_adapter_fails_with_the_dlls_log(wintun: wintun_cffi.Wintun) -> None:
    with pytest.raises(WintunError) as caught:
        wintun.open_adapter(f"WintunCffiAbsent {uuid.uuid4().hex[:8]}")
    assert caught.value.log, "the DLL's own log lines of the failed call"
    assert "WintunOpenAdapter" in str(caught.value)


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("WINTUN_DLL", None)
    return subprocess.run(
        [sys.executable, "-m", "wintun_cffi", *arguments],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
    )


def test_info_on_the_real_dll() -> None:
    done = run_cli("info", "--backend", "native", "--dll", str(real()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"library:        {real()}" in done.stdout
    assert "API generation: 0.14" in done.stdout
    if under_wine():
        assert "driver:         not running" in done.stdout
        assert "the Wintun driver is not loaded" in done.stdout


@pytest.mark.skipif(
    not under_wine(),
    reason="real Windows can create adapters: the Windows workflow runs the conformance "
    "suite on this DLL itself",
)
def test_conformance_without_a_driver_gives_one_reason() -> None:
    done = run_cli("conformance", "--backend", "windows-native", "--dll", str(real()), "--", "-q")
    output = done.stdout + done.stderr
    assert done.returncode == 5, output  # no test ran: never a success
    assert "Traceback" not in output, output
    summary = [line for line in output.splitlines() if line.startswith("conformance: ")]
    assert len(summary) == 1 and summary[0].startswith(
        "conformance: windows-native 0 passed, 0 failed, "
    ), summary
    reasons = [line.strip() for line in output.splitlines() if " skipped: " in line]
    assert len(reasons) == 1 and NO_DRIVER_REASON in reasons[0], reasons


@pytest.mark.skipif(
    not under_wine(), reason="real Windows creates the adapter: the example would run"
)
def test_the_example_fails_in_one_line_without_a_driver() -> None:
    done = run_cli("example", "--backend", "native", "--dll", str(real()), "--count", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: [WinError 0] WintunCreateAdapter: failed without an error code")
    assert "(Wintun log: " in line


@pytest.mark.skipif(
    not under_wine(), reason="on real Windows it would uninstall the system's Wintun driver"
)
def test_delete_driver_passes_on_what_it_logged(wintun: wintun_cffi.Wintun) -> None:
    """Without the driver's installation lock (Wine) WintunDeleteDriver returns success and
    logs why it did nothing."""
    with pytest.warns(RuntimeWarning, match="returned success but logged errors") as caught:
        assert wintun.delete_driver() is False
    assert "Failed to take driver installation mutex" in str(caught[0].message)
