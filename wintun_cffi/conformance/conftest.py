"""Fixtures of the conformance suite: every test runs once per backend (see backends.py).

``--wintun-backend NAME[,NAME...]`` narrows the backends; at the end of the run a line per
backend gives its passed/failed/skipped counts.

A test that takes the ``wintun_release`` argument runs once per release in
:data:`RULE_RELEASES` of each backend's generation (test ids like ``emulator-pool-0.9.1``),
the backend reproducing that release.
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

#: Per generation, one release for each set of rules that differ inside it (the send signal:
#: 0.9.1 signals when Tail did not move, 0.13 does not).
RULE_RELEASES: dict[str, tuple[str, ...]] = {
    "0.14": ("0.14.1",), "pool": ("0.9.1", "0.13"), "seed": ("2020-11",),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wintun-backend", action="store", default=None, metavar="NAME[,NAME...]",
        help="run the conformance suite on these backends only: "
        f"{', '.join(BACKENDS)} (default: all; unavailable ones are skipped with the reason)",
    )


def pytest_configure(config: pytest.Config) -> None:
    selected_backends(config)  # a usage error at once for an unknown name


def selected_backends(config: pytest.Config) -> list[str]:
    try:
        return parse_backend_option(config.getoption("wintun_backend", default=None))
    except ValueError as error:
        raise pytest.UsageError(f"--wintun-backend: {error}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    names = selected_backends(metafunc.config)
    if "wintun_release" not in metafunc.fixturenames:
        metafunc.parametrize("backend", names, ids=names, indirect=True)
        return
    pairs = [(name, release) for name in names for release in _releases_of(name)]
    metafunc.parametrize(
        ("backend", "wintun_release"), pairs, indirect=["backend"],
        ids=[name if release is None else f"{name}-{release}" for name, release in pairs],
    )


def _releases_of(backend: str) -> tuple[str | None, ...]:
    api = BACKENDS[backend][1]
    return (None,) if api is None else RULE_RELEASES[api]


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
    callspec = getattr(request.node, "callspec", None)
    release = callspec.params.get("wintun_release") if callspec is not None else None
    try:
        case = make_case(request.param, double_libraries, real_name_prefix, release)
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
