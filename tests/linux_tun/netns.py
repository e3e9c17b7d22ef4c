"""Run this repository's Python in a fresh network namespace (``unshare --net``): every kernel
interface a test creates lives and dies there, and all its traffic stays there.

A scenario runs as ``unshare --net -- python -m tests.linux_tun.scenarios NAME`` (see
:mod:`tests.linux_tun.scenarios`); the namespace goes away with that process. Whether it can
run at all is :func:`emulator.netns.unavailable_reason`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from emulator.netns import namespace_command

REPO = Path(__file__).resolve().parents[2]
#: Longest a scenario may take before it counts as hung (a guard, not a timing assertion).
SCENARIO_TIMEOUT = 120


def run_in_netns(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python args...`` from the repository root, in a network namespace of its own;
    ``prefix`` is a command to run Python under (e.g. ``setpriv`` to drop privileges)."""
    environment = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        namespace_command([*prefix, sys.executable, *args]),
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT,
        check=False,
    )


def run_scenario(name: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run :mod:`tests.linux_tun.scenarios` ``name`` in a fresh network namespace."""
    return run_in_netns("-m", "tests.linux_tun.scenarios", name, prefix=prefix)
