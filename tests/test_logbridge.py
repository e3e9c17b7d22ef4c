"""Wintun's log by default: silent until the application configures logging, while errors
still carry the lines."""

from __future__ import annotations

import subprocess
import sys

import pytest

FAILING_CALL = """
import logging, sys
import wintun_cffi
{setup}
try:
    wintun_cffi.emulated().open_adapter("Nope")
except wintun_cffi.AdapterNotFoundError as error:
    print("log:", list(error.log))
"""


def run(setup: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FAILING_CALL.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_nothing_is_printed_by_default_but_the_error_has_the_log() -> None:
    result = run("")
    assert result.stderr == ""
    assert result.stdout == "log: ['Failed to find matching adapter name']\n"


@pytest.mark.parametrize(
    "setup",
    [
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')",
        "handler = logging.StreamHandler(); "
        "handler.setFormatter(logging.Formatter('%(name)s %(levelname)s %(message)s')); "
        "logging.getLogger('wintun_cffi.driver').addHandler(handler)",
    ],
    ids=["root-configured", "handler-on-the-driver-logger"],
)
def test_configured_logging_shows_the_lines(setup: str) -> None:
    result = run(setup)
    assert "wintun_cffi.driver ERROR Failed to find matching adapter name" in result.stderr
    assert "log: ['Failed to find matching adapter name']" in result.stdout
