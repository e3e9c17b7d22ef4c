"""Network namespaces: somewhere to create Linux TUN interfaces that the machine never sees.

A :class:`~emulator.linux_tun.LinuxTunHost` creates a real kernel interface. Created inside a
network namespace of its own, the interface, its addresses and routes, and every packet stay
there and vanish with the namespace. Two ways in:

* :func:`isolated` moves the calling *thread* into a new namespace for a ``with`` block (what
  the pytest fixture ``linux_tun_adapter`` uses): threads and processes started inside the
  block inherit it, the rest of the process stays where it was;
* :func:`namespace_command` prefixes a command with ``unshare --net``, so a whole process runs
  in a new namespace (what ``python -m wintun_cffi example --backend linux-tun`` does).

Both need Linux and root; :func:`unavailable_reason` says why they cannot run here.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: ``CLONE_NEWNET`` of ``<sched.h>``: the flag of unshare(2) and setns(2) for network namespaces.
CLONE_NEWNET = 0x40000000

_libc: Any = None


@functools.cache
def unavailable_reason() -> str | None:
    """Why a new network namespace with a TUN interface cannot be made here (a sentence fit
    for a skip reason), or None if it can."""
    if not sys.platform.startswith("linux"):
        return "TUN interfaces and network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to create TUN interfaces and network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no TUN support in this kernel)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is not installed"
    try:
        probe = subprocess.run(
            namespace_command(["ip", "link", "set", "lo", "up"]),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return "util-linux's `unshare` command is not installed"
    if probe.returncode != 0:
        return f"`unshare --net` does not work here: {probe.stderr.strip()}"
    return None


def namespace_command(command: Sequence[str]) -> list[str]:
    """``command`` run by ``unshare --net``: in a new network namespace, gone when it exits."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--net", "--", *command]


def interface_names() -> list[str]:
    """The interfaces of the calling thread's network namespace."""
    listing = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True
    )
    return [str(link["ifname"]) for link in json.loads(listing.stdout or "[]")]


def _namespace_calls() -> Any:
    global _libc
    if _libc is None:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(
            "int unshare(int flags); int setns(int fd, int nstype);"
            "int prctl(int option, unsigned long arg2, unsigned long arg3,"
            "          unsigned long arg4, unsigned long arg5);"
        )
        _libc = (ffi, ffi.dlopen(None))  # the C library
    return _libc


def _call(name: str, *args: int) -> None:
    ffi, libc = _namespace_calls()
    if getattr(libc, name)(*args) != 0:
        code = ffi.errno
        raise OSError(code, f"{name}(CLONE_NEWNET) failed: {os.strerror(code)}")


#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
_PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int, signum: int) -> bool:
    """Have the kernel send ``signum`` to this process when its parent (the thread that
    started it) ends; False if the parent, process ``parent``, is already gone (so no signal
    would ever come). Linux only.
    """
    ffi, libc = _namespace_calls()
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        code = ffi.errno
        raise OSError(code, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(code)}")
    # Checked after asking: a parent that ended before the request is seen here.
    return os.getppid() == parent


def open_current() -> int:
    """A descriptor of the calling thread's network namespace (close it when done): it keeps
    the namespace alive and lets :func:`entered` come back to it from any thread."""
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


@contextmanager
def entered(namespace: int) -> Iterator[None]:
    """Run the block with the calling thread in the network namespace ``namespace`` (a
    descriptor from :func:`open_current`), then put the thread back where it was. A thread
    already there stays put. Processes started in the block run in that namespace.
    """
    here = os.stat("/proc/thread-self/ns/net").st_ino
    if here == os.fstat(namespace).st_ino:
        yield
        return
    original = open_current()
    try:
        _call("setns", namespace, CLONE_NEWNET)
        try:
            yield
        finally:
            _call("setns", original, CLONE_NEWNET)
    finally:
        os.close(original)


@contextmanager
def isolated() -> Iterator[None]:
    """Run the block with the calling thread in a new network namespace that has only ``lo``
    (up); the thread returns to its own namespace afterwards, and the new one disappears once
    nothing inside it is left (interfaces, sockets, threads started in the block).

    Raises :class:`OSError` if it cannot (not Linux, not root; see
    :func:`unavailable_reason`).
    """
    if not sys.platform.startswith("linux"):
        raise OSError("network namespaces are Linux only")
    # thread-self: namespaces belong to threads, and only this one moves.
    original = open_current()
    try:
        _call("unshare", CLONE_NEWNET)
        try:
            if os.stat("/proc/thread-self/ns/net").st_ino == os.fstat(original).st_ino:
                raise OSError("unshare(CLONE_NEWNET) left the thread in its namespace")
            if interface_names() != ["lo"]:  # never create anything in a shared namespace
                raise OSError("the new network namespace is not empty")
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
            yield
        finally:
            _call("setns", original, CLONE_NEWNET)
    finally:
        os.close(original)
