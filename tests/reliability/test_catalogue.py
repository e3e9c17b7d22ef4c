"""Every case of the bad-input catalogue: the exact exception, and nothing changed."""

from __future__ import annotations

import pytest

from .catalogue import CASES, Case, Fresh, main, render


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}: {c.input}" for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(case: Case) -> None:
    fresh = Fresh()
    try:
        before = case.state(fresh)
        with pytest.raises(BaseException) as caught:
            case.act(fresh)
        assert type(caught.value) is case.expected, caught.value
        assert case.state(fresh) == before
    finally:
        fresh.close()


def test_every_case_says_what_it_checked() -> None:
    assert all(case.checked for case in CASES)
    assert len({(case.category, case.input) for case in CASES}) == len(CASES)


def test_rendering_is_deterministic_and_committed() -> None:
    assert render() == render()
    assert main(["--check"]) == 0, "run python -m tests.reliability.catalogue --write"
