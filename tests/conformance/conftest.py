"""Fixtures of the conformance suite: every test runs once per backend (see backends.py).

``--wintun-backend NAME[,NAME...]`` narrows the backends; at the end of the run a line per
backend gives its passed/failed/skipped counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from wintun_cffi import Adapter, Session
from wintun_cffi.constants import MIN_RING_CAPACITY
from wintun_cffi.pytest_plugin import TrackingWintun

from .backends import (
    BACKENDS,
    BackendCase,
    DoubleLibraries,
    Unavailable,
    make_case,
    parse_backend_option,
    windows_prefix,
)
from .farside import FarSide, RawFarSide

_PROPERTY = "wintun_backend"


def selected_backends(config: pytest.Config) -> list[str]:
    try:
        return parse_backend_option(config.getoption("wintun_backend", default=None))
    except ValueError as error:
        raise pytest.UsageError(f"--wintun-backend: {error}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        metafunc.parametrize("backend", names, ids=names, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            item.user_properties.append((_PROPERTY, callspec.params["backend"]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    outcomes: dict[str, str] = {}
    backend_of: dict[str, str] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue  # e.g. deselected items
            properties = dict(getattr(report, "user_properties", ()))
            if _PROPERTY not in properties:
                continue
            nodeid = report.nodeid
            backend_of[nodeid] = str(properties[_PROPERTY])
            if report.failed:
                outcomes[nodeid] = "failed"
            elif report.skipped and outcomes.get(nodeid) != "failed":
                outcomes[nodeid] = "skipped"
            elif report.passed and report.when == "call":
                outcomes.setdefault(nodeid, "passed")
    if not outcomes:
        return
    counts: dict[str, Counter[str]] = {}
    for nodeid, outcome in outcomes.items():
        counts.setdefault(backend_of[nodeid], Counter())[outcome] += 1
    terminalreporter.section("wintun conformance", sep="-")
    for name in BACKENDS:
        if name in counts:
            c = counts[name]
            terminalreporter.write_line(
                f"conformance: {name} {c['passed']} passed, {c['failed']} failed, "
                f"{c['skipped']} skipped"
            )


@pytest.fixture(scope="session")
def double_libraries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoubleLibraries]:
    doubles = DoubleLibraries(tmp_path_factory.mktemp("conformance_double"))
    yield doubles
    doubles.close()


@pytest.fixture(scope="session")
def real_name_prefix() -> str:
    return windows_prefix()


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, double_libraries: DoubleLibraries, real_name_prefix: str
) -> Iterator[BackendCase]:
    try:
        case = make_case(request.param, double_libraries, real_name_prefix)
    except Unavailable as reason:
        pytest.skip(str(reason))
    try:
        yield case
    finally:
        case.close()


@pytest.fixture
def wintun(backend: BackendCase) -> TrackingWintun:
    return backend.wintun


@pytest.fixture
def adapter(backend: BackendCase) -> Adapter:
    return backend.create_adapter()


@pytest.fixture
def session(adapter: Adapter) -> Iterator[Session]:
    with adapter.start_session(MIN_RING_CAPACITY) as session:
        yield session


@pytest.fixture
def far(backend: BackendCase, session: Session) -> FarSide:
    try:
        return backend.far_side(session)
    except Unavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture
def raw(far: FarSide) -> RawFarSide:
    if far.raw is None:
        pytest.skip("needs raw access to the far side (packets, statistics, faults): "
                    "only the emulator host has it")
    return far.raw
