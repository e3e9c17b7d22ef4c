"""Hooks shared by the whole test tree (the conformance suite's own options and hooks are in
wintun_cffi/conformance/conftest.py)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One line about the skipped tests, instead of a screen of their reasons (``-rs``)."""
    skipped = len(terminalreporter.stats.get("skipped", []))
    chars = str(config.getoption("reportchars", default=""))
    if skipped and not set(chars) & set("sSaA"):
        terminalreporter.write_line(
            f"{skipped} skipped: each says why (another OS or backend, root, a missing tool); "
            "add -rs to list the reasons"
        )
