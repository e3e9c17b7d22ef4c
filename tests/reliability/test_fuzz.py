"""Fuzzing with hypothesis: the header parser and the ring readers (emulator and native C,
the latter also under AddressSanitizer in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ffigen import header as wintun_header
from ffigen.header import HeaderParseError
from wintun_cffi.conformance.double.build import asan_runtime, build_double, double_available

from .ringfuzz import (
    CORPUS,
    NativeReader,
    RingCase,
    check_emulator_reader,
    corpus_cases,
    ring_cases,
)
from .traffic import NO_DOUBLE

ROOT = Path(__file__).resolve().parents[2]
OUR_HEADERS = sorted((ROOT / "wintun_cffi" / "platform" / "include").glob("*.h"))
SEED_HEADERS = sorted((CORPUS / "headers").glob("*.h"))
#: Examples per fuzz test; the budget is reported by the issue's report.
HEADER_EXAMPLES = 300
RING_EXAMPLES = 300
NATIVE_EXAMPLES = 150
ASAN_EXAMPLES = 400

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _parse(text: str) -> None:
    try:
        wintun_header.parse_header(text, "fuzzed.h")
    except HeaderParseError:
        pass  # the one failure a header may cause


# -- headers -----------------------------------------------------------------------------

_C_PIECES = st.sampled_from(
    [
        ";",
        "{",
        "}",
        "(",
        ")",
        "*",
        ",",
        "#",
        "/*",
        "*/",
        "//",
        "\n",
        '"',
        "'",
        "[",
        "]",
        "=",
        "<<",
        "typedef",
        "struct",
        "enum",
        "#define",
        "#if",
        "#endif",
        "WINAPI",
        "_In_",
        "DWORD",
        "\x00",
        "\\",
        "0x",
        "-",
        "~",
        "...",
        "__declspec(dllimport)",
    ]
)


@st.composite
def mutated_header(draw: st.DrawFn) -> str:
    """One of our headers (or a seed) with a few random cuts, insertions and duplications."""
    text = draw(st.sampled_from(OUR_HEADERS + SEED_HEADERS)).read_text()
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["cut", "insert", "piece", "duplicate"]))
        if kind == "cut":
            text = text[:where] + text[where + draw(st.integers(1, 80)) :]
        elif kind == "insert":
            text = text[:where] + draw(st.text(max_size=12)) + text[where:]
        elif kind == "piece":
            text = text[:where] + draw(_C_PIECES) + text[where:]
        else:
            end = min(len(text), where + draw(st.integers(1, 200)))
            text = text[:end] + text[where:end] + text[end:]
    return text


@settings(FUZZ, max_examples=HEADER_EXAMPLES)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_random_text_only_raises_header_parse_error(text: str) -> None:
    _parse(text)


@settings(FUZZ, max_examples=HEADER_EXAMPLES)
@given(mutated_header())
def test_mutated_headers_only_raise_header_parse_error(text: str) -> None:
    _parse(text)


_EXPRESSION = st.text(alphabet="0123456789xXabcdefuUlL()+-*/%<>|&^~ _WINTUN", max_size=40)


@settings(FUZZ, max_examples=HEADER_EXAMPLES)
@given(
    _EXPRESSION,
    st.sampled_from(
        [
            "#define WINTUN_X {}\n",
            "typedef enum {{ WINTUN_A = {} }} WINTUN_E;\n",
            "typedef struct {{ BYTE Data[{}]; }} WINTUN_S;\n",
        ]
    ),
)
def test_constant_expressions_only_raise_header_parse_error(expression: str, shape: str) -> None:
    _parse(shape.format(expression))


@pytest.mark.parametrize("path", SEED_HEADERS, ids=lambda p: p.name)
def test_seed_headers(path: Path) -> None:
    _parse(path.read_text())


@pytest.mark.parametrize("path", OUR_HEADERS, ids=lambda p: p.name)
def test_our_headers_still_parse(path: Path) -> None:
    assert wintun_header.parse_header(path.read_text(), path.name).functions


# -- the emulator's ring reader ------------------------------------------------------------


_Test = TypeVar("_Test", bound=Callable[..., None])


def _with_corpus(test: _Test) -> _Test:
    """The seed ring images as explicit examples."""
    for case in corpus_cases():
        test = example(case)(test)
    return test


@settings(FUZZ, max_examples=RING_EXAMPLES)
@given(ring_cases())
@_with_corpus
def test_emulator_reader_survives_any_ring(case: RingCase) -> None:
    check_emulator_reader(case)


def test_corpus_is_there() -> None:
    assert len(corpus_cases()) >= 5 and len(SEED_HEADERS) >= 3


# -- the native ring reader -----------------------------------------------------------------


@pytest.fixture(scope="module")
def native_reader(tmp_path_factory: pytest.TempPathFactory) -> NativeReader:
    if not double_available():
        pytest.skip(NO_DOUBLE)
    # A library of its own: no DoubleKernel hooks, so no emulated driver touches the ring.
    path = build_double("0.14", tmp_path_factory.mktemp("fuzz-double"))
    return NativeReader(str(path))


@settings(FUZZ, max_examples=NATIVE_EXAMPLES)
@given(ring_cases())
@_with_corpus
def test_native_reader_survives_any_ring(native_reader: NativeReader, case: RingCase) -> None:
    native_reader.check(case)


@pytest.fixture(scope="module")
def sanitized(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Runs ``python -m tests.reliability.ringfuzz <asan double> ARG`` under AddressSanitizer."""
    if not double_available():
        pytest.skip(NO_DOUBLE)
    runtime = asan_runtime()
    if runtime is None:
        pytest.skip("no AddressSanitizer runtime (libasan.so): Linux builds with one only")
    path = build_double("0.14", tmp_path_factory.mktemp("asan-double"), sanitize=True)
    env = dict(os.environ, LD_PRELOAD=str(runtime), ASAN_OPTIONS="detect_leaks=0")

    def run(argument: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tests.reliability.ringfuzz", str(path), argument],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def test_address_sanitizer_is_watching(
    sanitized: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    done = sanitized("read-past-ring")
    assert done.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in done.stderr, done.stderr[-4000:]


def test_native_reader_under_address_sanitizer(
    sanitized: Callable[[str], subprocess.CompletedProcess[str]],
) -> None:
    done = sanitized(str(ASAN_EXAMPLES))
    assert "AddressSanitizer" not in done.stderr, done.stderr[-4000:]
    assert done.returncode == 0, done.stderr[-4000:]
    tried = int(done.stdout.split("native ring reader: ")[1].split()[0])
    assert tried >= ASAN_EXAMPLES
