"""What the windows-native conformance backend does to a machine: one run at a time (a named
mutex), and the test adapters a killed run left removed before the first test."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from emulator import Emulator
from wintun_cffi import Wintun
from wintun_cffi.conformance.backends import (
    OTHER_POOL,
    POOL,
    DoubleLibraries,
    Unavailable,
    WindowsNative,
)
from wintun_cffi.conformance.windows import ADAPTER_PREFIX, RunLock, remove_stale_adapters

windows_only = pytest.mark.skipif(
    sys.platform != "win32", reason="Win32 named mutexes: Windows only (CI runs it under Wine)"
)


def test_stale_pool_era_adapters_are_removed_and_nothing_else() -> None:
    machine = Emulator("pool")
    killed_run = Wintun(machine)
    for name, pool in (("A", POOL), ("B", POOL), ("C", OTHER_POOL), ("Yours", "Theirs")):
        killed_run.create_adapter(ADAPTER_PREFIX + name, pool=pool).close()  # outlives it
    next_run = Wintun(machine)
    removed = remove_stale_adapters(next_run, (POOL, OTHER_POOL))
    assert sorted(removed) == [ADAPTER_PREFIX + name for name in ("A", "B", "C")]
    assert next_run.adapters(POOL) == [] and next_run.adapters(OTHER_POOL) == []
    [kept] = next_run.adapters("Theirs")
    with kept:
        assert kept.name == ADAPTER_PREFIX + "Yours"


def test_nothing_to_remove_in_0_14() -> None:
    """A 0.14 adapter goes with the handle (and process) that created it."""
    machine = Emulator("0.14")
    holder = Wintun(machine)
    held = holder.create_adapter(ADAPTER_PREFIX + "Held", tunnel_type="WintunCffi")
    assert remove_stale_adapters(Wintun(machine), (POOL, OTHER_POOL)) == []
    assert Wintun(machine).open_adapter(ADAPTER_PREFIX + "Held").luid == held.luid
    held.close()


def _in_thread(action: object) -> object:
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(action()))  # type: ignore[operator]
    thread.start()
    thread.join()
    return results[0]


@windows_only
def test_one_run_at_a_time() -> None:
    name = "Local\\WintunCffiConformanceTest1"
    first = RunLock.take(name)
    assert first is not None and not first.abandoned
    assert _in_thread(lambda: RunLock.take(name)) is None  # held by another thread
    first.release()
    first.release()
    again = _in_thread(lambda: RunLock.take(name))
    assert isinstance(again, RunLock)  # the thread ended holding it: abandoned
    taken = RunLock.take(name)
    assert taken is not None and taken.abandoned
    taken.release()


@contextmanager
def held_by_another_thread(name: str) -> Iterator[None]:
    """The lock ``name`` held by a thread that keeps it for the block (another run)."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        lock = RunLock.take(name)
        assert lock is not None
        taken.set()
        done.wait()
        lock.release()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(10)
        yield
    finally:
        done.set()
        thread.join()


@windows_only
def test_a_second_run_skips_windows_native(tmp_path: Path) -> None:
    from wintun_cffi.conformance.windows import RUN_LOCK_NAME, is_administrator

    if not is_administrator():
        pytest.skip("windows-native needs administrator rights")
    doubles = DoubleLibraries(tmp_path)
    windows = WindowsNative(doubles)
    try:
        with held_by_another_thread(RUN_LOCK_NAME):
            for _ in range(2):  # the same reason for every test of the run
                with pytest.raises(Unavailable, match="another conformance run"):
                    windows.open()
    finally:
        windows.close()
        doubles.close()
