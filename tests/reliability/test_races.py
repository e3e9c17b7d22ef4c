"""Closing while calls are in progress (scenarios in :mod:`tests.reliability.races`): from
another thread, and from a signal handler on the thread inside the call; in this process on
both backends, and against the C double built with AddressSanitizer, where a use-after-free
would abort the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wintun_cffi.conformance.double.build import asan_runtime, build_double, double_available

from .races import SCENARIOS, available, run
from .traffic import NO_DOUBLE

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 25
ASAN_ITERATIONS = 100
NO_SIGNALS = "needs POSIX signals with setitimer (the handler must run on the busy thread)"


@pytest.fixture(scope="module")
def race_double(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A double of its own (its kernel hooks are per library, so not the shared build's)."""
    if not double_available():
        pytest.skip(NO_DOUBLE)
    return str(build_double("0.14", tmp_path_factory.mktemp("race-double")))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_race_on_the_emulator(scenario: str) -> None:
    if not available(scenario):
        pytest.skip(NO_SIGNALS)
    assert run("emulator", [scenario], ITERATIONS) == {scenario: ITERATIONS}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_race_on_the_native_double(scenario: str, race_double: str) -> None:
    if not available(scenario):
        pytest.skip(NO_SIGNALS)
    assert run(race_double, [scenario], ITERATIONS) == {scenario: ITERATIONS}


def test_races_under_address_sanitizer(tmp_path: Path) -> None:
    if not double_available():
        pytest.skip(NO_DOUBLE)
    runtime = asan_runtime()
    if runtime is None:
        pytest.skip("no AddressSanitizer runtime (libasan.so): Linux builds with one only")
    path = build_double("0.14", tmp_path, sanitize=True)
    env = dict(os.environ, LD_PRELOAD=str(runtime), ASAN_OPTIONS="detect_leaks=0")
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.races", str(path), "all", str(ASAN_ITERATIONS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "AddressSanitizer" not in done.stderr, done.stderr[-4000:]
    assert done.returncode == 0, done.stderr[-4000:]
    for scenario in SCENARIOS:
        if available(scenario):
            assert f"race {scenario}: {ASAN_ITERATIONS} runs" in done.stdout, done.stdout
