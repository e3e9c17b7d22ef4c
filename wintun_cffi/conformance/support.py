"""Small helpers of the conformance suite, shared with the repository's own tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; its final value.

    For state another thread changes without an event to wait on (e.g. a ring index the
    driver's consumer moves).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(0.001)
    return True
