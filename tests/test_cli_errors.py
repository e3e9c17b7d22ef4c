"""python -m wintun_cffi: every command ends a failed Wintun call with one line, no traceback.

Each command is driven into each kind of :class:`~wintun_cffi.errors.WintunError`: the example
through its real path (the backend's ``WintunCreateAdapter`` fails, with a log line, as it
does on Windows without administrator rights), the others where their work begins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emulator.backend import Emulator
from wintun_cffi import constants as c
from wintun_cffi.commands import bench, cli, info, installer
from wintun_cffi.conformance import command
from wintun_cffi.errors import (
    AccessDeniedError,
    DriverNotLoadedError,
    WintunError,
    error_from_code,
)


def _of_code(code: int) -> Callable[[], WintunError]:
    return lambda: error_from_code(code, "WintunCreateAdapter")


#: One error of each kind a Wintun call raises (the code and the call pick the class).
ERRORS: dict[str, Callable[[], WintunError]] = {
    "no-error-code": _of_code(0),
    "driver-not-loaded": lambda: error_from_code(
        c.ERROR_FILE_NOT_FOUND, "WintunGetRunningDriverVersion"
    ),
    **{
        name.lower(): _of_code(code)
        for name, code in vars(c).items()
        if name.startswith("ERROR_") and isinstance(code, int) and code != c.ERROR_SUCCESS
    },
}

ARGUMENTS = {
    "example": ["example", "--backend", "emulator", "--count", "1"],
    "info": ["info", "--backend", "emulator"],
    "install-dll": ["install-dll", "--from", "wintun.zip"],
    "conformance": ["conformance", "--backend", "emulator-0.14"],
    "bench": ["bench", "--sizes", "64", "--packets", "10", "--repeats", "1"],
}


def fail_in_command(monkeypatch: pytest.MonkeyPatch, name: str, error: WintunError) -> None:
    """Make command ``name`` meet ``error`` where its work begins."""

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    if name == "example":  # the real path: the emulator's WintunCreateAdapter fails, logging

        def create_adapter(self: Emulator, *args: Any, **kwargs: Any) -> Any:
            assert self._logger is not None
            self._logger(c.LOG_ERR, None, "Failed to create adapter (the test says so)")
            raise error

        monkeypatch.setattr(Emulator, "create_adapter", create_adapter)
        return
    module: Any = {"info": info, "install-dll": installer, "conformance": command, "bench": bench}
    monkeypatch.setattr(module[name], "describe" if name == "info" else "main", failing)


@pytest.mark.parametrize("kind", sorted(ERRORS))
@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_each_command_ends_a_wintun_failure_with_one_line(
    name: str, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = ERRORS[kind]()
    fail_in_command(monkeypatch, name, error)
    with pytest.raises(SystemExit) as caught:
        cli.main(ARGUMENTS[name])
    assert caught.value.code != 0
    line = str(caught.value.code)
    assert "\n" not in line and line.startswith("error: "), line
    assert f"[WinError {error.winerror}]" in line
    assert ("run as administrator" in line) == isinstance(error, AccessDeniedError), line
    if name == "example":  # the log line the failed call caused travels with it
        assert "(Wintun log: Failed to create adapter (the test says so))" in line
    assert "Traceback" not in capsys.readouterr().err


def test_the_line_for_a_failure_without_an_error_code() -> None:
    error = error_from_code(0, "WintunCreateAdapter")
    error.log = ("Failed to create boundary descriptor: Success. (Code 0x00000000)",)
    assert cli.failure_line(error) == (
        "error: [WinError 0] WintunCreateAdapter: failed without an error code (last error 0) "
        "(Wintun log: Failed to create boundary descriptor: Success. (Code 0x00000000))"
    )


def test_a_log_line_with_a_line_break_stays_on_one_line() -> None:
    error = DriverNotLoadedError("not loaded")
    error.log = ("first\r\nsecond",)
    assert cli.failure_line(error) == "error: [WinError 2] not loaded (Wintun log: first second)"


def test_the_example_still_runs() -> None:
    """The wrapper changes nothing when nothing fails."""
    assert cli.main(["example", "--backend", "emulator", "--count", "1"]) == 0
