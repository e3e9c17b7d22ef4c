"""Fixtures of the conformance suite: every test runs once per backend (see backends.py).

Options: ``--wintun-backend NAME[,NAME...]`` narrows the backends (a ``module:factory`` name
adds a backend of your own); ``--wintun-dll PATH`` and ``--wintun-sha256 HEX`` choose and check
the library of ``windows-native``; ``--wintun-skip-reasons`` lists each backend's skip
reasons, grouped. At the end of the run a line per backend gives its passed/failed/skipped
counts.

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
    BACKEND_PROPERTY,
    BackendCase,
    DoubleLibraries,
    Unavailable,
    WindowsNative,
    kind_of,
    make_case,
    parse_backend_option,
)
from .farside import FarSide, RawFarSide

_PROPERTY = BACKEND_PROPERTY
#: Where the session's windows-native backend is kept for the summary.
_WINDOWS_KEY = pytest.StashKey[WindowsNative]()

#: Per generation, one release for each set of rules that differ inside it (the send signal:
#: 0.9.1 signals when Tail did not move, 0.13 does not).
RULE_RELEASES: dict[str, tuple[str, ...]] = {
    "0.14": ("0.14.1",),
    "pool": ("0.9.1", "0.13"),
    "seed": ("2020-11",),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wintun", "the Wintun conformance suite")
    group.addoption(
        "--wintun-backend",
        default=None,
        metavar="NAME[,NAME...]",
        help="run the conformance suite on these backends only: emulator-0.14, "
        "emulator-pool, emulator-seed, double-0.14, double-pool, double-seed, windows-native, "
        "linux-tun-0.14, linux-tun-pool, or module:factory for your own (default: all "
        "built-in ones; unavailable ones are skipped with the reason)",
    )
    group.addoption(
        "--wintun-dll",
        default=None,
        metavar="PATH",
        help="the wintun.dll of the windows-native backend (default: where "
        "wintun_cffi.load() looks)",
    )
    group.addoption(
        "--wintun-sha256",
        default=None,
        metavar="HEX",
        help="refuse the windows-native backend's wintun.dll unless its SHA-256 is this",
    )
    group.addoption(
        "--wintun-skip-reasons",
        action="store_true",
        help="list each backend's skip reasons, grouped, in the summary",
    )


def pytest_configure(config: pytest.Config) -> None:
    selected_backends(config)  # a usage error at once for a bad name


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
        ("backend", "wintun_release"),
        pairs,
        indirect=["backend"],
        ids=[name if release is None else f"{name}-{release}" for name, release in pairs],
    )


def _releases_of(backend: str) -> tuple[str | None, ...]:
    api = kind_of(backend)[1]
    return (None,) if api is None else RULE_RELEASES[api]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            item.user_properties.append((_PROPERTY, callspec.params["backend"]))


def _skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped test gave (pytest keeps it as (path, line, "Skipped: reason"))."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    outcomes: dict[str, str] = {}
    reasons: dict[str, str] = {}
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
                reasons[nodeid] = _skip_reason(report)
            elif report.passed and report.when == "call":
                outcomes.setdefault(nodeid, "passed")
    if not outcomes:
        return
    counts: dict[str, Counter[str]] = {}
    skipped_why: dict[str, Counter[str]] = {}
    for nodeid, outcome in outcomes.items():
        counts.setdefault(backend_of[nodeid], Counter())[outcome] += 1
        if outcome == "skipped":
            skipped_why.setdefault(backend_of[nodeid], Counter())[reasons[nodeid]] += 1
    list_reasons = bool(config.getoption("wintun_skip_reasons", default=False))
    terminalreporter.section("wintun conformance", sep="-")
    for name in selected_backends(config):
        if name not in counts:
            continue
        c = counts[name]
        terminalreporter.write_line(
            f"conformance: {name} {c['passed']} passed, {c['failed']} failed, "
            f"{c['skipped']} skipped"
        )
        if list_reasons:
            for reason, count in sorted(
                skipped_why.get(name, Counter()).items(), key=lambda item: (-item[1], item[0])
            ):
                terminalreporter.write_line(f"    {count} skipped: {reason}")
    windows = config.stash.get(_WINDOWS_KEY, None)
    if windows is not None and windows.previous_run_killed:
        terminalreporter.write_line(
            "windows-native: the previous run on this machine did not finish (killed?)"
        )
    if windows is not None and windows.removed:
        terminalreporter.write_line(
            "windows-native: removed test adapters an earlier run had "
            f"left: {', '.join(windows.removed)}"
        )


@pytest.fixture(scope="session")
def double_libraries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoubleLibraries]:
    doubles = DoubleLibraries(tmp_path_factory.mktemp("conformance_double"))
    yield doubles
    doubles.close()


@pytest.fixture(scope="session")
def windows_native(
    pytestconfig: pytest.Config, double_libraries: DoubleLibraries
) -> Iterator[WindowsNative]:
    windows = WindowsNative(
        double_libraries,
        pytestconfig.getoption("wintun_dll"),
        pytestconfig.getoption("wintun_sha256"),
    )
    pytestconfig.stash[_WINDOWS_KEY] = windows
    yield windows
    windows.close()


@pytest.fixture
def backend(
    request: pytest.FixtureRequest,
    double_libraries: DoubleLibraries,
    windows_native: WindowsNative,
) -> Iterator[BackendCase]:
    callspec = getattr(request.node, "callspec", None)
    release = callspec.params.get("wintun_release") if callspec is not None else None
    try:
        case = make_case(request.param, double_libraries, windows_native, release)
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
        pytest.skip(
            "needs raw access to the far side (packets, statistics, faults): "
            "only the emulator host has it"
        )
    return far.raw
