"""Run code in a fresh network namespace: every kernel interface a test creates lives and dies
there, and all its traffic stays there.

A scenario runs as ``unshare --net -- python -m tests.linux_tun.scenarios NAME`` (see
:mod:`tests.linux_tun.scenarios`); the namespace goes away with that process.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Longest a scenario may take before it counts as hung (a guard, not a timing assertion).
SCENARIO_TIMEOUT = 120


@functools.cache
def unavailable_reason() -> str | None:
    """Why scenarios cannot run here (a skip reason), or None if they can."""
    if not sys.platform.startswith("linux"):
        return "TUN interfaces and network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create TUN interfaces and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no TUN support in this kernel)"
    try:
        probe = subprocess.run(
            ["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except FileNotFoundError as error:
        return f"`{error.filename}` is not installed (util-linux unshare, iproute2 ip)"
    if probe.returncode != 0:
        return f"`unshare --net` does not work here: {probe.stderr.strip()}"
    return None


def run_in_netns(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python args...`` from the repository root, in a network namespace of its own;
    ``prefix`` is a command to run Python under (e.g. ``setpriv`` to drop privileges)."""
    environment = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        ["unshare", "--net", "--", *prefix, sys.executable, *args],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT,
        check=False,
    )


def run_scenario(name: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run :mod:`tests.linux_tun.scenarios` ``name`` in a fresh network namespace."""
    return run_in_netns("-m", "tests.linux_tun.scenarios", name, prefix=prefix)
