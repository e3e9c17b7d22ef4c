"""The conformance suite catches each Backend protocol method done wrong.

For every method of :class:`wintun_cffi.backend.Backend`, a mutant of the emulator where that
method does nothing (or returns a wrong value) is run through the suite's protocol tests as a
backend of one's own (:mod:`tests.mutants`): it must fail at least one test whose message
names the method and the rule it broke, while the unchanged emulator passes them all. One
pytest run checks every mutant.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.mutants import MUTATIONS
from wintun_cffi.backend import Backend

ROOT = Path(__file__).resolve().parents[1]
UNCHANGED = ["unchanged_0_14", "unchanged_pool", "unchanged_seed"]


def protocol_methods() -> set[str]:
    return {name for name in dir(Backend) if not name.startswith("_")}


def test_there_is_a_mutant_for_every_protocol_method() -> None:
    assert set(MUTATIONS) == protocol_methods()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Per backend (``tests.mutants:NAME``): the messages of its failed tests."""
    results = tmp_path_factory.mktemp("mutants") / "results.xml"
    names = [f"tests.mutants:{name}" for name in UNCHANGED] + [
        f"tests.mutants:broken_{method}" for method in sorted(MUTATIONS)
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=short",
            "--wintun-backend",
            ",".join(names),
            "--junit-xml",
            str(results),
            str(ROOT / "wintun_cffi" / "conformance" / "test_protocol.py"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert results.exists(), done.stdout + done.stderr
    failed: dict[str, list[str]] = {name.partition(":")[2]: [] for name in names}
    for case in ElementTree.parse(results).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        backend = properties.get("wintun_backend") or ""
        for child in case:
            if child.tag in ("failure", "error"):
                failed[backend.partition(":")[2]].append(
                    f"{child.get('message', '')}\n{child.text or ''}"
                )
    return failed


@pytest.mark.parametrize("name", UNCHANGED)
def test_the_unchanged_emulator_passes(outcomes: dict[str, list[str]], name: str) -> None:
    assert outcomes[name] == []


@pytest.mark.parametrize("method", sorted(MUTATIONS))
def test_a_broken_method_fails_a_test_that_names_it_and_the_rule(
    outcomes: dict[str, list[str]], method: str
) -> None:
    messages = outcomes[f"broken_{method}"]
    assert messages, f"nothing failed with Backend.{method} broken"
    named = [message for message in messages if f"Backend.{method} (" in message]
    assert named, f"no failure names Backend.{method}:\n" + "\n---\n".join(messages)
    # After the method and its Wintun function comes the rule: "must ..." or what it broke.
    assert any("): " in message.split(f"Backend.{method} (", 1)[1] for message in named)
