"""Fixtures of the reliability tests: a session on each backend, the C double built once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wintun_cffi.conformance.double.build import double_available

from .traffic import BACKENDS, NO_DOUBLE, DoubleBuilds, Rig, open_rig

SMALL_RING = 0x20000  # the smallest ring: full often, so the waiting paths run


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stress: many threads through one session (short counts here; the long "
        "run is python -m tests.reliability.stress)",
    )


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoubleBuilds]:
    """The C double, built and loaded (with its kernel hooks) once for the test session."""
    built = DoubleBuilds(tmp_path_factory.mktemp("reliability-double"))
    yield built
    built.close()


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, builds: DoubleBuilds) -> Iterator[Rig]:
    """A fresh adapter and session (small ring) on the emulator, then on the native double."""
    if request.param == "double" and not double_available():
        pytest.skip(NO_DOUBLE)
    with open_rig(request.param, SMALL_RING, builds) as opened:
        yield opened
