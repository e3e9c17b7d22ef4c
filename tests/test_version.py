"""The version is written once, in wintun_cffi/__init__.py; the package metadata reads it."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import wintun_cffi

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_metadata_has_the_package_version() -> None:
    assert version("wintun-cffi") == wintun_cffi.__version__


def test_pyproject_takes_the_version_from_the_package() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert not re.search(r"^version\s*=\s*\"", text, re.MULTILINE)  # no second copy
    assert 'dynamic = ["version"]' in text
    assert 'version = { attr = "wintun_cffi.__version__" }' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", wintun_cffi.__version__)
