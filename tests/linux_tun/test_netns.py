"""emulator.netns: a thread enters a new network namespace and comes back; commands are
prefixed with unshare."""

from __future__ import annotations

import os
import sys
import threading

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip(
        "network namespaces and TUN interfaces are Linux only (emulator.netns drives "
        "/proc and /dev/net/tun)",
        allow_module_level=True,
    )

from emulator import netns  # noqa: E402 - after the skip above
from emulator.linux_tun import LinuxTunHost  # noqa: E402


def namespace_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@pytest.fixture
def can_isolate() -> None:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def test_isolated_moves_only_this_thread_and_brings_it_back(can_isolate: None) -> None:
    outside = namespace_inode()
    outside_interfaces = netns.interface_names()
    seen_by_other_thread: list[int] = []
    with netns.isolated():
        inside = namespace_inode()
        assert inside != outside
        assert netns.interface_names() == ["lo"]
        host = LinuxTunHost("NsProbe")
        try:
            assert "NsProbe" in netns.interface_names()
            checker = threading.Thread(
                target=lambda: seen_by_other_thread.append(namespace_inode())
            )
            checker.start()
            checker.join()
            assert seen_by_other_thread == [inside]  # a thread started inside is inside
        finally:
            host.close()
    assert namespace_inode() == outside
    assert netns.interface_names() == outside_interfaces  # the probe never appeared here


def test_a_thread_outside_stays_outside(can_isolate: None) -> None:
    outside = namespace_inode()
    entered, leave = threading.Event(), threading.Event()
    seen: list[int] = []

    def inside() -> None:
        with netns.isolated():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=inside)
    thread.start()
    try:
        assert entered.wait(10)
        seen.append(namespace_inode())  # the main thread, while the other one is inside
    finally:
        leave.set()
        thread.join()
    assert seen == [outside]


def test_an_error_inside_still_brings_the_thread_back(can_isolate: None) -> None:
    outside = namespace_inode()
    with pytest.raises(RuntimeError, match="boom"), netns.isolated():
        raise RuntimeError("boom")
    assert namespace_inode() == outside


def test_namespace_command_prefixes_unshare() -> None:
    command = netns.namespace_command(["ip", "link"])
    assert os.path.basename(command[0]) == "unshare"
    assert command[1:] == ["--net", "--", "ip", "link"]


def test_reason_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the root check comes after the Linux check")
    netns.unavailable_reason.cache_clear()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    try:
        assert netns.unavailable_reason() == (
            "needs root (CAP_NET_ADMIN) to create TUN interfaces and network namespaces"
        )
    finally:
        monkeypatch.undo()
        netns.unavailable_reason.cache_clear()
