"""Windows-style events over file descriptors, for every place that is not the real driver.

The emulator's events and the C test double's events are descriptors that are readable while
the event is signalled. An *auto-reset* event wakes one waiter per signal: the waiter that reads
the signal resets it, the others go back to waiting. A *manual-reset* event stays signalled once
set; it is how a session wakes every blocked receiver when it closes.

On Linux an event is an ``eventfd`` (the C test double's kind, which this module can adopt);
elsewhere a non-blocking socket pair, which ``select`` can wait on on every OS.
"""

from __future__ import annotations

import os
import select
import socket
import time


class WaitInterrupted(Exception):
    """The interrupting event was set while waiting."""


_HAS_EVENTFD = hasattr(os, "eventfd")


class FdEvent:
    """An event whose :meth:`fileno` is readable while it is signalled."""

    __slots__ = ("manual_reset", "_fd", "_sender", "_receiver", "_owned")

    def __init__(self, *, manual_reset: bool = False, adopt_eventfd: int | None = None) -> None:
        """Create an event, or wrap ``adopt_eventfd`` (a non-blocking eventfd made elsewhere,
        which this object will not close)."""
        self.manual_reset = manual_reset
        self._sender: socket.socket | None = None
        self._receiver: socket.socket | None = None
        self._owned = adopt_eventfd is None
        if adopt_eventfd is not None:
            self._fd = adopt_eventfd
        elif _HAS_EVENTFD:
            self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            self._receiver, self._sender = socket.socketpair()
            self._receiver.setblocking(False)
            self._sender.setblocking(False)
            self._fd = self._receiver.fileno()

    def fileno(self) -> int:
        """The descriptor to poll: readable while the event is signalled."""
        return self._fd

    def set(self) -> None:
        """Signal the event (``SetEvent``); signals coalesce until consumed."""
        try:
            if self._sender is None:
                os.eventfd_write(self._fd, 1)
            else:
                self._sender.send(b"\x01")
        except (OSError, ValueError):  # ValueError: eventfd_write(-1) after close()
            pass  # already signalled as much as the descriptor can hold, or closed

    def consume(self) -> bool:
        """Take the signal if there is one (auto-reset). True if the event was signalled."""
        if self.manual_reset:
            return self.is_set()
        if self._receiver is None:
            try:
                os.eventfd_read(self._fd)
                return True
            except OSError:  # BlockingIOError: not signalled (or taken by another waiter)
                return False
        taken = False
        try:
            while self._receiver.recv(4096):
                taken = True
        except OSError:  # BlockingIOError: drained
            pass
        return taken

    def is_set(self) -> bool:
        """True while signalled, without consuming anything."""
        return bool(_readable([self._fd], 0.0))

    def wait(self, timeout: float | None = None, interrupt: FdEvent | None = None) -> bool:
        """Wait for a signal and consume it: True, or False after ``timeout`` seconds.

        Raises :class:`WaitInterrupted` as soon as ``interrupt`` is set.
        """
        if timeout == float("inf"):
            timeout = None
        deadline = None if timeout is None else time.monotonic() + timeout
        fds = [self._fd] if interrupt is None else [self._fd, interrupt._fd]
        while True:
            if interrupt is not None and interrupt.is_set():
                raise WaitInterrupted
            if self.consume():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            _readable(fds, remaining)

    def close(self) -> None:
        """Close the descriptors this object made (an adopted eventfd is left alone)."""
        if self._receiver is not None and self._sender is not None:
            self._receiver.close()
            self._sender.close()
        elif self._owned and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1


def _readable(fds: list[int], timeout: float | None) -> list[int]:
    """The descriptors of ``fds`` that are readable within ``timeout`` seconds."""
    if hasattr(select, "poll"):
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        try:
            return [fd for fd, _ in poller.poll(ms)]
        except InterruptedError:
            return []
    ready, _, _ = select.select(fds, [], [], timeout)  # Windows: sockets only
    return ready
