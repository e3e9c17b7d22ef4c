"""Real signals against the packet path (:mod:`tests.reliability.signal_stress`), bounded for
CI: each scenario (receive and send loops interrupted by ``SIGALRM``, ``close()`` re-entered
from a handler) once per backend in a watched child process, so that a hang fails the test
instead of hanging the suite; and the same on the double built with AddressSanitizer. The long
run: ``python -m tests.reliability.signal_stress --backend emulator --minutes 10``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wintun_cffi.conformance.double.build import asan_runtime, build_double, double_available

from .signal_stress import SCENARIOS, stress
from .traffic import BACKENDS, NO_DOUBLE

ROOT = Path(__file__).resolve().parents[2]
#: Seconds each scenario's child process runs.
PER_CHILD = 1.0

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="needs POSIX signals (setitimer)"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_signals_lose_duplicate_and_hang_nothing(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if backend == "double" and not double_available():
        pytest.skip(NO_DOUBLE)
    where = "emulator"
    if backend == "double":
        where = str(build_double("0.14", tmp_path_factory.mktemp("signal-double")))
    counts = stress(where, 0, PER_CHILD)  # one round: each scenario once
    assert counts.problems == [], "\n".join(counts.problems)
    assert (counts.hangs, counts.duplicates, counts.losses, counts.errors) == (0, 0, 0, 0)
    assert counts.interrupts_in_receive > 0  # the timer really interrupted receive calls
    assert counts.interrupts > counts.interrupts_in_receive  # and send calls and close()
    assert counts.trials >= len(SCENARIOS)


def test_real_signals_on_the_double_under_address_sanitizer() -> None:
    """The same round on the native backend over the double built with ASan (the runtime
    preloaded in the children): any use of freed memory aborts a child and fails."""
    if not double_available():
        pytest.skip(NO_DOUBLE)
    runtime = asan_runtime()
    if runtime is None:
        pytest.skip("no AddressSanitizer runtime (libasan.so): Linux builds with one only")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.signal_stress",
            "--backend",
            "double",
            "--sanitize",
            "--minutes",
            "0",
            "--per-child",
            str(PER_CHILD),
        ],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "AddressSanitizer" not in done.stdout + done.stderr, done.stdout[-4000:]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "OK" in done.stdout.splitlines()[-1]
