"""``python -m wintun_cffi conformance``: the installed suite in one command, on the backends
named (built-in ones and a user's ``module:factory``), with JUnit XML; bad input ends it with
one line and exit status 2 before any test runs."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from emulator import netns
from tests.test_docs_examples import ROOT, python_blocks
from wintun_cffi.conformance import command
from wintun_cffi.conformance.double.build import PREBUILT_ENV, double_available, prebuilt_directory

SUMMARY = re.compile(
    r"^conformance: (\S+) (\d+) passed, (\d+) failed, (\d+) skipped$", re.MULTILINE
)


def conformance(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command, run from ``cwd`` (a Windows Python without MinGW takes this checkout's
    prebuilt doubles)."""
    env = {**os.environ, PREBUILT_ENV: str(prebuilt_directory())}
    return subprocess.run(
        [sys.executable, "-m", "wintun_cffi", "conformance", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def summaries(output: str) -> dict[str, tuple[int, int, int]]:
    """Per backend, (passed, failed, skipped) from the suite's summary lines."""
    return {name: (int(p), int(f), int(s)) for name, p, f, s in SUMMARY.findall(output)}


def test_runs_the_suite_on_the_backends_named(tmp_path: Path) -> None:
    done = conformance(
        "--backend",
        "emulator-seed,double-pool,windows-native",
        "--",
        "-q",
        "-k",
        "test_adapters",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    counts = summaries(done.stdout)
    assert list(counts) == ["emulator-seed", "double-pool", "windows-native"]
    passed, failed, skipped = counts["emulator-seed"]
    assert passed > 20 and failed == 0 and skipped == 0
    double_passed, double_failed, _ = counts["double-pool"]
    assert double_failed == 0 and (double_passed > 20) is double_available()
    if sys.platform != "win32":
        assert counts["windows-native"][:2] == (0, 0)
        # Every skip reason once, with its count, under the backend's line.
        assert (
            f"    {counts['windows-native'][2]} skipped: needs Windows, administrator "
            "rights and wintun.dll (this is not Windows)"
        ) in done.stdout
    assert not (tmp_path / ".pytest_cache").exists()


def test_a_backend_of_your_own_from_the_docs(tmp_path: Path) -> None:
    """The toy backend of the conformance page passes the adapter tests and fails those that
    need a session; the JUnit XML says which."""
    toy = python_blocks(ROOT / "docs" / "conformance.rst")[1]
    (tmp_path / "toy_backend.py").write_text(toy, encoding="utf-8")
    done = conformance(
        "--backend",
        "toy_backend:make",
        "--junit-xml",
        "results.xml",
        "--",
        "-q",
        "--tb=no",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    passed, failed, _ = summaries(done.stdout)["toy_backend:make"]
    assert passed > 10 and failed > 10
    cases = list(ElementTree.parse(tmp_path / "results.xml").getroot().iter("testcase"))
    outcome = {
        case.get("name"): [child.tag for child in case if child.tag != "properties"]
        for case in cases
    }
    properties = {(p.get("name"), p.get("value")) for p in cases[0].iter("property")}
    assert properties == {("wintun_backend", "toy_backend:make")}
    assert outcome["test_create_then_open_gives_the_same_adapter[toy_backend:make]"] == []
    assert outcome["test_datagrams_arrive_in_order[toy_backend:make]"] == ["error"]
    assert outcome["test_start_close_restart[toy_backend:make]"] == ["failure"]


def test_the_emulator_as_a_backend_of_your_own_passes(tmp_path: Path) -> None:
    """The passing example of the conformance page: every test that applies to a backend of
    one's own passes (the release-dependent ones included), none fails."""
    mine = python_blocks(ROOT / "docs" / "conformance.rst")[0]
    assert "class Mine(Emulator)" in mine
    (tmp_path / "my_backend.py").write_text(mine, encoding="utf-8")
    done = conformance("--backend", "my_backend:make", "--", "-q", "-rs", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    passed, failed, skipped = summaries(done.stdout)["my_backend:make"]
    assert failed == 0 and passed > 70
    assert "needs to know which release" not in done.stdout


@pytest.mark.skipif(
    netns.unavailable_reason() is not None,
    reason=f"the Linux TUN backend: {netns.unavailable_reason()}",
)
def test_linux_tun_runs_in_a_namespace_the_command_makes(tmp_path: Path) -> None:
    done = conformance(
        "--backend", "linux-tun-pool", "--", "-q", "-k", "test_sessions", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed, failed, _ = summaries(done.stdout)["linux-tun-pool"]
    assert passed > 10 and failed == 0


@pytest.mark.skipif(
    netns.unavailable_reason() is not None,
    reason=f"runs pytest in a new network namespace: {netns.unavailable_reason()}",
)
def test_following_the_linux_tun_skip_reason_works(tmp_path: Path) -> None:
    """``unshare --net python -m pytest`` (what the linux-tun skip reason suggests) starts with
    loopback down: the Linux TUN backend brings it up, the loopback-only tests skip saying
    what to do when it is down, and nothing fails."""
    done = subprocess.run(
        netns.namespace_command(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(tmp_path),
                "-q",
                "-rs",
                "--wintun-backend",
                "linux-tun-0.14",
                "-k",
                "test_farside or test_datagrams_arrive_in_order",
                str(ROOT / "wintun_cffi" / "conformance"),
            ]
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert summaries(done.stdout)["linux-tun-0.14"][:2] == (1, 0), done.stdout
    assert done.stdout.count("loopback is unusable here") == 2, done.stdout


TOY = """
from emulator import Emulator

def make():
    return Emulator("pool")

def dictionary():
    return {"api": "0.14"}

def broken():
    raise RuntimeError("no driver here")

def exits():
    import sys
    sys.exit()

VALUE = 3
"""


@pytest.mark.parametrize(
    ("backends", "dll", "sha256", "message"),
    [
        ("emulator-0.15", None, None, r"--backend: unknown backend emulator-0\.15; choose from "),
        (",", None, None, "--backend names no backend"),
        (
            "nosuchmodule:make",
            None,
            None,
            "--backend nosuchmodule:make: cannot import module 'nosuchmodule': ModuleNotFoundError",
        ),
        ("toy_for_bad_input", None, None, "unknown backend toy_for_bad_input;"),
        ("toy_for_bad_input:absent", None, None, "module 'toy_for_bad_input' has no 'absent'"),
        (
            "toy_for_bad_input:VALUE",
            None,
            None,
            "toy_for_bad_input:VALUE: VALUE = 3 is not a function that returns a backend",
        ),
        (
            "toy_for_bad_input:dictionary",
            None,
            None,
            (
                r"toy_for_bad_input:dictionary\(\) returned a dict, not a wintun_cffi\.backend\.Backend "
                r"\(it lacks allocate_send_packet, api, close_adapter, create_adapter and \d+ more\)"
            ),
        ),
        (
            "toy_for_bad_input:broken",
            None,
            None,
            r"toy_for_bad_input:broken\(\) raised RuntimeError: no driver here",
        ),
        ("toy_for_bad_input:exits", None, None, r"toy_for_bad_input:exits\(\) raised SystemExit"),
        ("emulator-0.14", "wintun.dll", None, "--dll and --sha256 are the windows-native"),
        ("windows-native", "missing.dll", None, "--dll: Wintun library not found"),
        ("windows-native", "notwintun.dll", None, "--dll: .*notwintun.dll"),
        ("windows-native", "notwintun.dll", "abc", "--sha256: .*64 hexadecimal digits"),
    ],
)
def test_bad_input(
    backends: str,
    dll: str | None,
    sha256: str | None,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "toy_for_bad_input.py").write_text(TOY, encoding="utf-8")
    (tmp_path / "notwintun.dll").write_bytes(b"not a library\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_for_bad_input", raising=False)
    stderr = io.StringIO()
    assert command.main(backends, dll, sha256, None, [], stderr=stderr) == 2
    [line] = stderr.getvalue().splitlines()
    assert line.startswith("error: ") and re.search(message, line), line


def test_a_dll_that_is_not_wintun(tmp_path: Path) -> None:
    """One line, exit status 2, no traceback, no test run."""
    (tmp_path / "wintun.dll").write_bytes(
        b"MZ" + bytes(200) if sys.platform == "win32" else b"\x7fELF" + bytes(200)
    )
    done = conformance("--backend", "windows-native", "--dll", "wintun.dll", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: --dll: ") and "wintun.dll" in line


def test_a_wrong_sha256(tmp_path: Path) -> None:
    library = tmp_path / "wintun.dll"
    library.write_bytes(b"MZ" + bytes(200))
    stderr = io.StringIO()
    assert command.main("windows-native", str(library), "00" * 32, None, [], stderr=stderr) == 2
    assert "SHA-256" in stderr.getvalue() and "expected " + "00" * 32 in stderr.getvalue()


def test_pytest_usage_errors_are_bad_input(tmp_path: Path) -> None:
    done = conformance("--backend", "emulator-0.14", "--", "--no-such-option", cwd=tmp_path)
    assert done.returncode == 2
    assert "--no-such-option" in done.stderr


@pytest.mark.skipif(
    sys.platform == "win32", reason="windows-native may run here (Windows, or the real DLL)"
)
def test_a_run_in_which_no_test_ran_is_not_a_success(tmp_path: Path) -> None:
    done = conformance("--backend", "windows-native", "--", "-q", cwd=tmp_path)
    assert done.returncode == command.EXIT_NO_TEST_RAN, done.stdout + done.stderr
    assert summaries(done.stdout)["windows-native"][:2] == (0, 0)  # every test skipped
    assert "error: no test ran" in done.stderr
