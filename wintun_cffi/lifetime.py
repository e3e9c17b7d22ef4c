"""Closing what calls may still be using, safely: the guard of sessions and adapters.

A session's rings and an adapter's handle are native resources: ending them while another call
uses them frees memory under that call. Every call that uses them therefore holds the object's
*live marker* in a local variable (``live = self._live``) while it runs, and drops it in a
``finally``. Closing takes the marker away, so later calls refuse, and ends the object once no
call holds the marker any more, which its reference count tells exactly (CPython).

This holds whatever interrupts a call: a reference held by a frame goes away with the frame, so
a ``KeyboardInterrupt`` can never leave a call counted forever, and there is nothing to undo.

Closing from inside a call on the same thread (a signal handler, the usual SIGTERM shutdown)
cannot wait for that call: the object then ends as soon as the last call returns. Closing never
raises for calls in progress elsewhere: it waits for them (a session wakes its blocked
receivers first).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable

#: ``sys.getrefcount`` where the interpreter counts references (CPython), else None: the one
#: source of reference counts for the guards here, the ledgers and the backends.
getrefcount: Callable[[object], int] | None = getattr(sys, "getrefcount", None)
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_EMULATOR = os.path.join(os.path.dirname(_PACKAGE), "emulator")


def backoff(pause: float = 0.0001, ceiling: float = 0.005) -> Callable[[], None]:
    """A sleep that doubles at each call, from ``pause`` to ``ceiling`` seconds: for waiting
    on something that sends no signal."""
    state = [pause]

    def sleep() -> None:
        time.sleep(state[0])
        state[0] = min(state[0] * 2, ceiling)

    return sleep


class _Live:
    """The marker every call holds while it runs (a plain object; its references count)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<live>"


class Lifetime:
    """Mixin: the ``live`` marker protocol; subclasses implement ``_end()`` (the release)."""

    _live: _Live | None
    _closing: _Live | None
    _ended: bool
    _finishing: set[int]
    _end_lock: threading.Lock

    def _begin_lifetime(self) -> None:
        _open.add(self)
        self._live = _Live()
        self._closing = None
        self._ended = False
        # The threads inside _finish: a signal handler that closes again on one of them
        # leaves the end to the _finish it interrupted (waiting for it would never end).
        self._finishing = set()
        self._end_lock = threading.Lock()

    def close(self) -> None:
        """Close: see the subclass."""
        raise NotImplementedError

    def _end(self) -> bool | None:
        """Free the native resources (called once no call is in progress). False: not yet,
        something this thread is ending first finishes it (by calling :meth:`_finish`)."""
        raise NotImplementedError

    def _stop_calls(self) -> None:
        """Take the marker away: from now on every call refuses. Idempotent."""
        marker = self._live
        if marker is not None:
            self._closing = marker
            self._live = None

    def _finish(self, wait: bool) -> bool:
        """End once no call on another thread holds the marker (waiting for them if
        ``wait``) and none on this thread does. True once ended."""
        if self._closing is None or self._ended:
            return self._ended
        me = threading.get_ident()
        if me in self._finishing:  # a signal handler, inside this thread's own _finish:
            return False  # that one finishes (its frames would count as calls in progress)
        try:
            self._finishing.add(me)  # inside the try: removed whatever interrupts
            return self._finish_now(wait)
        finally:
            self._finishing.discard(me)

    def _finish_now(self, wait: bool) -> bool:
        if getrefcount is not None:
            # No local holds the marker here: closers on two threads must not wait for
            # each other.
            assert self._closing is not None  # set once, never unset
            mine = _held_by_this_thread(self._closing)
            # References: the attribute and the argument, and this thread's calls.
            sleep = backoff()
            while getrefcount(self._closing) > 2 + mine:
                if not wait:
                    return False
                sleep()
            if mine:
                return False  # the call this thread is inside of ends it when it returns
        with self._end_lock:
            if self._ended:
                return True
            try:
                if self._end() is False:
                    return False  # waits for an end under way on this thread; it resumes us
            except Exception:
                self._ended = True  # a failure to end is final; an interruption is not
                raise
            self._ended = True
        self._after_end()  # outside the lock: it may take another object's
        return True

    def _after_end(self) -> None:
        """Called once ended, by the thread that ended it, holding none of its locks."""


#: Every session and adapter made, while it exists: what is still open is closed at exit.
_open: weakref.WeakSet[Lifetime] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Close what the program left open while the interpreter still works (a finaliser run
    during its teardown finds imports and modules gone)."""
    for lifetime in list(_open):
        if not lifetime._ended:
            try:
                lifetime.close()
            except Exception:  # noqa: S112 - one failure must not keep the rest open
                continue


def _held_by_this_thread(marker: _Live) -> int:
    """How many references to ``marker`` this thread's running calls hold (the caller of
    :meth:`Lifetime._finish` and the frames below it, in this project)."""
    held = 0
    frame = sys._getframe(2)  # skip this function and _finish (its locals count apart)
    while frame is not None:
        code = frame.f_code
        # Only the guarded calls have a local named "live"; the others are left untouched
        # (before 3.13 reading f_locals keeps references to every local of the frame).
        if "live" in code.co_varnames and code.co_filename.startswith((_PACKAGE, _EMULATOR)):
            frame_locals = frame.f_locals
            if frame_locals.get("live") is marker:
                # Before Python 3.13 reading f_locals stores a snapshot dict on the frame,
                # which refers to the marker too (until the frame's next snapshot).
                held += 2 if isinstance(frame_locals, dict) else 1
        frame = frame.f_back  # type: ignore[assignment]
    return held


__all__ = ["Lifetime", "backoff", "getrefcount"]
