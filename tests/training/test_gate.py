"""The promotion gate's verdicts (`training.gate.decide`), each with the reason it gives."""

from __future__ import annotations

import pytest

from training.gate import decide
from training.metrics import MIN_USERS, Paired

M = "ndcg"


def _paired(users: int, low: float) -> Paired:
    return Paired(users=users, difference=low + 0.01, low=low, high=low + 0.02)


@pytest.mark.parametrize(
    ("candidate", "popularity", "production", "evidence", "passed", "said"),
    [
        # Better than both: approved, and the reason names both.
        (0.3, 0.1, 0.2, {}, True, "beats popularity-count (0.1000) and production v1 (0.2000)"),
        # Not better than production: production stays.
        (0.3, 0.1, 0.3, {}, False, "does not beat production v1's 0.3000 on the same holdout"),
        # Better than production, on a thin sample, within noise: production stays.
        (0.3, 0.1, 0.2, {"production": _paired(MIN_USERS - 1, -0.01)}, False,
         "too thin a sample to judge on"),
        # Better beyond the interval, even on a thin sample: approved, with a warning.
        (0.3, 0.1, 0.2, {"production": _paired(MIN_USERS - 1, 0.01)}, True,
         "a thin sample (at least"),
        # Kept for popularity, but what production's comparison found is said all the same.
        (0.3, 0.4, 0.2, {}, False, "beats production v1's 0.2000"),
    ],
)  # fmt: skip
def test_each_verdict_says_why(
    candidate: float,
    popularity: float,
    production: float,
    evidence: dict[str, Paired],
    passed: bool,
    said: str,
) -> None:
    result = decide(M, {M: candidate}, {M: popularity}, {M: production}, "v1", evidence=evidence)
    assert result.passed is passed
    assert any(said in reason for reason in result.reasons), result.reasons


def test_without_production_the_reason_says_so() -> None:
    result = decide(M, {M: 0.3}, {M: 0.1}, None, None)
    assert result.passed
    assert result.reasons[-1].endswith("; no model is in production yet")


def test_a_candidate_letting_own_items_back_must_beat_replaying_them() -> None:
    result = decide(M, {M: 0.3}, {M: 0.1}, None, None, own_history={M: 0.35})
    assert not result.passed
    assert "does not beat own history, then popular (0.3500)" in result.reasons[0]
