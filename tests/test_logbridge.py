"""Wintun's log by default: silent until the application configures logging, while errors
still carry the lines."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import wintun_cffi
from emulator.backend import Emulator
from wintun_cffi.constants import LOG_ERR, LOG_INFO

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


def test_delete_driver_passes_on_the_errors_it_logged_while_succeeding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """wintun.dll 0.14.1's WintunDeleteDriver returns success when it could not take its
    installation lock: the error lines it logged are the only sign, so they come as a
    warning (the default logger is silent)."""
    wintun = wintun_cffi.emulated("0.14")

    def delete_driver(self: Emulator) -> None:
        assert self._logger is not None
        self._logger(LOG_INFO, None, "Looking for the driver")
        self._logger(LOG_ERR, None, "Failed to take driver installation mutex")

    monkeypatch.setattr(Emulator, "delete_driver", delete_driver)
    with pytest.warns(RuntimeWarning) as caught:
        assert wintun.delete_driver() is False
    [warning] = caught
    assert str(warning.message) == (
        "WintunDeleteDriver returned success but logged errors, so the driver may still be "
        "installed: Failed to take driver installation mutex"
    )


def test_delete_driver_that_logs_no_error_does_not_warn() -> None:
    wintun = wintun_cffi.emulated("0.14")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wintun.delete_driver() is False
