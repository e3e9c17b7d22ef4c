"""Options shared by the whole test tree (pytest honours pytest_addoption only in initial
conftests, so the conformance suite's option is registered here)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wintun-backend", action="store", default=None, metavar="NAME[,NAME...]",
        help="run the conformance suite (tests/conformance) on these backends only: "
        "emulator-0.14, emulator-pool, emulator-seed, double-0.14, double-pool, double-seed, "
        "windows-native, linux-tun-0.14, linux-tun-pool (default: all; unavailable ones are "
        "skipped with the reason)",
    )


def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("wintun_backend")
    if option:
        from tests.conformance.backends import parse_backend_option

        try:
            parse_backend_option(str(option))
        except ValueError as error:
            raise pytest.UsageError(f"--wintun-backend: {error}") from None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line about the skipped tests, instead of a screen of their reasons (``-rs``)."""
    skipped = len(terminalreporter.stats.get("skipped", []))
    chars = str(config.getoption("reportchars", default=""))
    if skipped and not set(chars) & set("sSaA"):
        terminalreporter.write_line(
            f"{skipped} skipped: each says why (another OS or backend, root, a missing tool); "
            "add -rs to list the reasons"
        )
