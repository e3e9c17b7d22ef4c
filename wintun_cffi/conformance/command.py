"""``python -m wintun_cffi conformance``: the installed conformance suite on the backends you
name, in one command.

It runs pytest in this process on the package's own test files, with the package's own
settings (``conformance.ini``: no configuration of the project in the current directory
applies), after checking what it was given: an unknown backend, a ``module:factory`` that
cannot be imported or does not return a :class:`~wintun_cffi.backend.Backend`, or a
``--dll`` that is not Wintun end the command with one line on standard error and exit status
2 before any test runs. The Linux TUN backends run in a network namespace the command makes
(as root; elsewhere they are skipped with the reason).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from .backends import (
    BACKEND_PROPERTY,
    BACKENDS,
    UserBackendError,
    is_user_backend,
    kind_of,
    make_user_backend,
    parse_backend_option,
)

#: The exit status for bad input (and for pytest's usage errors).
EXIT_BAD_INPUT = 2
#: The exit status after Ctrl+C, as the other commands.
EXIT_INTERRUPTED = 130
#: The exit status of a run in which no test ran (every one skipped): never a success.
EXIT_NO_TEST_RAN = 5
HERE = Path(__file__).resolve().parent
CONFIG = HERE / "conformance.ini"


class BadInput(Exception):
    """What the command was given cannot be used; the message says what and why."""


def main(
    backends: str | None,
    dll: str | None,
    sha256: str | None,
    junit_xml: str | None,
    pytest_args: Sequence[str],
    stderr: TextIO | None = None,
) -> int:
    """Run the suite; the exit status: 0 if tests ran and none failed, 1 if one failed, 2 for
    bad input, 5 if no test ran (every one skipped, or none selected), 130 after Ctrl+C
    (3 is pytest's internal error)."""
    try:
        import pytest
    except ImportError:
        print(
            "error: the conformance suite needs pytest: pip install 'wintun-cffi[test]'",
            file=stderr or sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        names = check_backends(backends)
        check_library(names, dll, sha256)
    except BadInput as error:
        print(f"error: {error}", file=stderr or sys.stderr)
        return EXIT_BAD_INPUT
    ran = _Ran()
    with own_network_namespace(names):
        code = pytest.main(
            pytest_arguments(names, dll, sha256, junit_xml, pytest_args), plugins=[ran]
        )
    if code == pytest.ExitCode.INTERRUPTED:
        return EXIT_INTERRUPTED
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_BAD_INPUT
    if code == pytest.ExitCode.OK and not ran.tests:
        print(
            "error: no test ran: every test was skipped on every backend named (the reasons "
            "are above)",
            file=stderr or sys.stderr,
        )
        return EXIT_NO_TEST_RAN
    return int(code)


class _Ran:
    """A pytest plugin that counts the tests that ran on a backend (passed or failed, not
    skipped)."""

    def __init__(self) -> None:
        self.tests = 0

    def pytest_runtest_logreport(self, report: Any) -> None:
        on_a_backend = any(name == BACKEND_PROPERTY for name, _ in report.user_properties)
        if on_a_backend and report.when == "call" and not report.skipped:
            self.tests += 1


def pytest_arguments(
    names: Sequence[str],
    dll: str | None,
    sha256: str | None,
    junit_xml: str | None,
    extra: Sequence[str],
) -> list[str]:
    """The pytest command line of a run on backends ``names``."""
    arguments = [
        str(HERE),
        "-c",
        str(CONFIG),
        "--wintun-backend",
        ",".join(names),
        "--wintun-skip-reasons",
    ]
    if dll is not None:
        arguments += ["--wintun-dll", dll]
    if sha256 is not None:
        arguments += ["--wintun-sha256", sha256]
    if junit_xml is not None:
        arguments += ["--junitxml", junit_xml]
    return arguments + list(extra)


def check_backends(option: str | None) -> list[str]:
    """The backends ``option`` names (all built-in ones if None); :class:`BadInput` for an
    unknown name or a ``module:factory`` that cannot make a backend (each factory is called
    once here, and its backend closed if it can be)."""
    if option is not None and not option.replace(",", "").strip():
        raise BadInput(
            f"--backend names no backend; choose from {', '.join(BACKENDS)}, or module:factory"
        )
    # Like `python -m`, a user's module is found in the current directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        names = parse_backend_option(option)
        for name in names:
            if is_user_backend(name):
                close = getattr(make_user_backend(name), "close", None)
                if close is not None:
                    close()
    except UserBackendError as error:
        raise BadInput(f"--backend {error}") from None
    except ValueError as error:
        raise BadInput(f"--backend: {error}") from None
    return names


def check_library(names: Sequence[str], dll: str | None, sha256: str | None) -> None:
    """:class:`BadInput` unless ``dll`` (else the ``wintun.dll`` that
    :func:`wintun_cffi.load` finds) loads as Wintun with SHA-256 ``sha256``. Nothing to check
    without either; a Windows DLL is only checked for its SHA-256 off Windows, where the
    windows-native backend is skipped anyway."""
    if dll is None and sha256 is None:
        return
    if "windows-native" not in names:
        raise BadInput(
            "--dll and --sha256 are the windows-native backend's, and --backend does not name it"
        )
    from wintun_cffi import load
    from wintun_cffi.errors import LibraryLoadError
    from wintun_cffi.platform.loader import find_library, verify_sha256

    try:
        path = find_library(dll)
        if sys.platform == "win32" or not _is_windows_image(path):
            load(path, sha256=sha256)
        elif sha256 is not None:
            verify_sha256(path, sha256)
    except (FileNotFoundError, LibraryLoadError) as error:
        raise BadInput(f"{'--dll' if dll is not None else '--sha256'}: {error}") from None
    except ValueError as error:  # --sha256 is not a SHA-256
        raise BadInput(f"--sha256: {error}") from None


def _is_windows_image(path: str) -> bool:
    with open(path, "rb") as file:
        return file.read(2) == b"MZ"


@contextmanager
def own_network_namespace(names: Sequence[str]) -> Iterator[None]:
    """Around the run: this thread in a new network namespace if a Linux TUN backend is
    named and one can be made here (else those backends skip, saying why)."""
    from emulator import netns

    wanted = any(kind_of(name)[0] == "linux-tun" for name in names)
    if not wanted or netns.unavailable_reason() is not None:
        yield
        return
    with netns.isolated():
        yield
