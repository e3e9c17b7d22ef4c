"""Ctrl+C at every step (see :mod:`tests.reliability.interrupts`), bounded for CI: every
:data:`EVERY`-th interruption point of each operation, on each backend, in both modes. The
full sweep, every point: ``python -m tests.reliability.interrupts``."""

from __future__ import annotations

import pytest

from wintun_cffi.conformance.double.build import double_available

from .interrupts import MODES, OPERATIONS, sweep
from .traffic import BACKENDS, NO_DOUBLE, DoubleBuilds

#: Try every EVERY-th point (and the last): about a tenth of the full sweep.
EVERY = 9

# An interrupt while a generator is being closed is reported, not raised: expected here.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_interrupt_anywhere_leaves_the_session_working(
    backend: str, operation: str, mode: str, builds: DoubleBuilds
) -> None:
    if backend == "double" and not double_available():
        pytest.skip(NO_DOUBLE)
    outcome = sweep(backend, operation, mode, EVERY, builds)
    assert outcome.points > 10  # the operation really ran through the library
    assert outcome.interrupted == outcome.tried  # every chosen point was reached
    assert outcome.failures == [], "\n".join(outcome.failures)
