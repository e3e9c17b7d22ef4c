"""The programs the README and the guides print run as pasted (here: on the emulator, since
they pick it off Windows) and print what the text says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    """The Python code blocks of a Markdown (```python) or reStructuredText
    (``.. code-block:: python``) file, in order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return re.findall(r"```python\n(.*?)```", text, re.S)
    blocks = []
    for match in re.finditer(r"\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines) + "\n")
    return blocks


def run(code: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="on Windows the programs drive the real "
    "driver, as administrator (the windows-native conformance run covers it)",
)
class TestAsPasted:
    def test_readme_first_program(self, tmp_path: Path) -> None:
        [program] = python_blocks(ROOT / "README.md")
        assert run(program, tmp_path) == "IPv4 ICMP echo reply from 10.6.7.7 to 10.6.7.8\n"

    def test_quickstart_first_program(self, tmp_path: Path) -> None:
        program = python_blocks(ROOT / "docs" / "quickstart.rst")[0]
        assert run(program, tmp_path) == "IPv4 ICMP echo reply from 10.6.7.7 to 10.6.7.8\n"

    def test_netconfig_guide_vpn(self, tmp_path: Path) -> None:
        [program] = python_blocks(ROOT / "docs" / "netconfig.rst")
        assert run(program, tmp_path).splitlines() == [
            "addresses: [IPv4Interface('10.8.0.2/24')]",
            "mtu: 1420",
            "route: 10.20.0.0/16 on-link metric 0",
            "route: fd00:20::/48 on-link metric 5",
            "dns: DnsSettings(servers=(IPv4Address('10.20.0.53'),), domains=('corp.example',))",
        ]

    def test_impairment_guide(self, tmp_path: Path) -> None:
        simulated, emulated, wrapped = python_blocks(ROOT / "docs" / "impairment.rst")
        assert run(simulated, tmp_path).splitlines() == [
            "10000 1006 8994 5072",
            "b'packet 1' 0.0163",
        ]
        assert run(emulated, tmp_path) == "15 of 20 answered, 5 lost on the way\n"
        reply = "IPv4 ICMP echo reply from 10.6.7.7 to 10.6.7.8"
        assert run(wrapped, tmp_path).splitlines() == [reply, reply, "1"]

    def test_statistics_guide(self, tmp_path: Path) -> None:
        [program] = python_blocks(ROOT / "docs" / "statistics.rst")
        assert run(program, tmp_path).splitlines() == ["3 84 3 84", "1 0 3", "3 1 3 0"]

    def test_replay_guide(self, tmp_path: Path) -> None:
        [program] = python_blocks(ROOT / "docs" / "replay.rst")
        reply = "IPv4 ICMP echo reply from 10.6.7.8 to 10.6.7.7"
        assert run(program, tmp_path).splitlines() == [
            reply,
            reply,
            reply,
            "3 delivered, the last at least 20 ms after the first: True",
        ]

    def test_worked_example(self, tmp_path: Path) -> None:
        [program] = python_blocks(ROOT / "docs" / "worked-example.rst")
        assert run(program, tmp_path).splitlines() == [
            "40 answered with 45 requests",
            "captured 45 requests and 40 replies",
            "first round trip at least 60 ms: True",
        ]


def test_readme_commands_use_the_virtual_environment() -> None:
    """Like the two main commands, every pip and Sphinx command runs from .venv/bin."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    bare = re.findall(r"(?:`|&& )(pip|sphinx-build|pytest) ", text)
    assert "sphinx" in text and bare == [], bare
