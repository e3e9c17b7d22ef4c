"""python -m wintun_cffi: the example, info and bench commands, run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from emulator.netns import unavailable_reason
from wintun_cffi.constants import API_GENERATIONS

REPLY = "Received IPv4 ICMP echo reply from 10.6.7.7 to 10.6.7.8"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wintun_cffi", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("api", API_GENERATIONS)
def test_example_on_the_emulator_gets_echo_replies(api: str) -> None:
    result = run("example", "--backend", "emulator", "--api", api, "--count", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "emulator" in lines[0]  # the first line says where Wintun comes from
    assert sum(REPLY in line for line in lines) >= 2
    assert any(
        "[+] Sent IPv4 ICMP echo request from 10.6.7.8 to 10.6.7.7" in line for line in lines
    )
    # Cleanup in order: threads, then the session, then the adapter.
    assert lines[-1].endswith("Session ended, closing the adapter")


def test_example_duration_stops_without_replies_needed() -> None:
    result = run("example", "--backend", "emulator", "--duration", "0.5")
    assert result.returncode == 0, result.stderr
    assert "Session ended" in result.stdout


def test_example_with_the_linux_kernel_answering() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # Runs itself in a new network namespace (unshare --net): nothing reaches this machine's.
    result = run("example", "--backend", "linux-tun", "--count", "2")
    assert result.returncode == 0, result.stderr
    assert "Linux kernel" in result.stdout.splitlines()[0]
    assert sum(REPLY in line for line in result.stdout.splitlines()) >= 2


def interrupt_after_first_reply(*args: str) -> tuple[int, str, str]:
    """Run ``python -m wintun_cffi example args``, press Ctrl+C (SIGINT to its process group,
    as a terminal does) once a reply is printed; exit code, stdout, stderr."""
    process, lines = start_until_first_reply(*args)
    time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, "".join(lines) + out, err


@pytest.mark.parametrize("backend", ["emulator", "linux-tun"])
def test_ctrl_c_ends_the_example_cleanly(backend: str) -> None:
    if sys.platform == "win32":
        pytest.skip(
            "presses Ctrl+C as a POSIX terminal does (SIGINT to a process group); "
            "Windows delivers it to a console, which a test process does not have; "
            ".ci/wine types it into a pseudo-terminal instead (.ci/ctrl_c.py)"
        )
    if backend == "linux-tun" and (reason := unavailable_reason()) is not None:
        pytest.skip(reason)
    code, out, err = interrupt_after_first_reply("--backend", backend)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out.rstrip().endswith("Session ended, closing the adapter"), out
    assert code == 0


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:  # it ended meanwhile
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def start_until_first_reply(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``python -m wintun_cffi example args`` in a session of its own, once it printed an
    echo reply; the lines printed so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wintun_cffi", "example", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if REPLY in line:
            return process, lines
    raise AssertionError(f"no reply: {''.join(lines)}{process.communicate()[1]}")


def skip_unless_linux_backend(backend: str) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("finds the command's processes in /proc and signals them as POSIX does")
    if backend == "linux-tun" and (reason := unavailable_reason()) is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGHUP"])
@pytest.mark.parametrize("backend", ["emulator", "linux-tun"])
def test_a_stop_signal_to_the_command_alone_ends_it_cleanly(backend: str, signame: str) -> None:
    """``kill`` on the command's process (not its group): it cleans up and exits 0, and no
    process it started outlives it (linux-tun re-runs itself in a new namespace)."""
    skip_unless_linux_backend(backend)
    process, lines = start_until_first_reply("--backend", backend)
    children = children_of(process.pid)
    assert len(children) == (1 if backend == "linux-tun" else 0), children
    os.kill(process.pid, getattr(signal, signame))
    out, err = process.communicate(timeout=60)  # a guard against a hang, not a time goal
    assert "Traceback" not in err, err
    assert (("".join(lines) + out).rstrip()).endswith("Session ended, closing the adapter")
    assert process.returncode == 0
    assert not any(running(child) for child in children)


def test_the_re_run_child_ends_when_its_parent_is_killed() -> None:
    """SIGKILL to the linux-tun command's process, which can pass nothing on: its child in
    the new namespace notices, cleans up and exits."""
    skip_unless_linux_backend("linux-tun")
    process, lines = start_until_first_reply("--backend", "linux-tun")
    [child] = children_of(process.pid)
    process.kill()
    # The child shares the output pipe: it reaches its end when the child has exited.
    out, err = process.communicate(timeout=60)  # a guard against a hang, not a time goal
    assert process.returncode == -signal.SIGKILL
    assert "Traceback" not in err, err
    assert out.rstrip().endswith("Session ended, closing the adapter"), out
    for _ in range(600):  # bounded wait for the kernel to finish the exit it reported
        if not running(child):
            break
        time.sleep(0.05)
    assert not running(child)


def test_linux_tun_without_root_says_what_it_needs() -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("drops root with setpriv: needs Linux and root to start from")
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "wintun_cffi",
            "example",
            "--backend",
            "linux-tun",
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: --backend linux-tun cannot run here: needs root (CAP_NET_ADMIN) to create "
        "TUN interfaces and network namespaces"
    )


def test_info_on_the_emulator() -> None:
    result = run("info", "--backend", "emulator", "--api", "pool")
    assert result.returncode == 0, result.stderr
    assert "API generation: pool" in result.stdout
    # No adapter yet, so no driver: said in the emulator's terms, not as a Win32 error.
    assert "driver:         not loaded (the emulator loads it with an adapter)" in result.stdout
    assert "WinError" not in result.stdout
    assert "adapters in pool 'WireGuard': 0" in result.stdout
    # Which backends work here, and why not.
    assert "  emulator  works" in result.stdout
    if sys.platform != "win32":
        assert "  native    not here: needs Windows and wintun.dll" in result.stdout
    linux = unavailable_reason() if sys.platform.startswith("linux") else "needs Linux"
    expected = "  linux-tun works" if linux is None else f"  linux-tun not here: {linux}"
    assert expected in result.stdout


def test_native_backend_without_a_library_says_where_it_looked(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WINTUN_DLL"}
    result = subprocess.run(
        [sys.executable, "-m", "wintun_cffi", "info", "--backend", "native"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=str(tmp_path),
    )
    assert result.returncode == 1
    assert "Wintun library not found" in result.stderr and "Looked at" in result.stderr
    assert "Traceback" not in result.stderr
    if sys.platform != "win32":
        assert "wintun.dll runs on Windows only" in result.stderr


def test_info_names_the_linux_tun_backend() -> None:
    result = run("info", "--backend", "linux-tun")  # creates nothing: root not needed
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "backend:        linux-tun (the emulator, with the Linux kernel on the far side "
        "through a TUN interface)"
    )


def test_bench_json_is_one_document_of_every_row() -> None:
    result = run(
        "bench", "--sizes", "64", "--packets", "1000", "--repeats", "2", "--json", timeout=300
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # exactly one JSON document, nothing else
    rows = {row["name"]: row for row in document["rows"]}
    assert {
        "emulator receive_packet+release",
        "emulator receive_batch+release",
        "emulator send_many",
        "emulator host deliver",
        "emulator host collect",
    } <= set(rows)
    for row in rows.values():
        assert 0 < row["best_ns"] <= row["median_ns"] and row["runs"] == 2
    assert document["import_ms"] > 0
    assert {ratio["ratio"] for ratio in document["ratios"]} >= {"native single ÷ bare cffi"}
    # It says what the native rows are, or why there are none.
    native = any(name.startswith("native") for name in rows)
    assert any(
        note.startswith("native rows:" if native else "no native rows:")
        for note in document["notes"]
    ), document["notes"]


def test_bench_table() -> None:
    result = run("bench", "--sizes", "64", "--packets", "1000", "--repeats", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "emulator receive_packet+release" in result.stdout
    assert "ratios (medians):" in result.stdout
    # Figures, what each row means and what each ratio shows; no goals "met" or "missed".
    lines = result.stdout.splitlines()
    assert any(
        line.split()
        == ["emulator", "receive_packet+release", "one", "packet", "received", "and", "released"]
        for line in lines
    ), result.stdout
    assert "what the API adds to the floor, per packet" in result.stdout
    assert "goal" not in result.stdout and "missed" not in result.stdout
