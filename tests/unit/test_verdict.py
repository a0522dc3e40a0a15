"""verdict.judge as a table: goal, threshold, bar, min_delta, re-measurement, non-finite values."""

from __future__ import annotations

import math

import pytest

from pytest_autoresearch.verdict import Best, judge

BAR = Best(1.0, "abc1234")


@pytest.mark.parametrize(("value", "goal", "threshold", "best", "min_delta", "keep", "reason"), [
    (1.5, "min", None, None, 0.0, True, "first result"),
    (0.9, "min", None, BAR, 0.0, True, "improved"),
    (1.0, "min", None, BAR, 0.0, False, "not better than the best strictly"),
    (1.1, "min", None, BAR, 0.0, False, "not better"),
    (0.95, "min", None, BAR, 0.1, False, "by more than 0.1"),
    (0.85, "min", None, BAR, 0.1, True, "improved"),
    (1.1, "max", None, BAR, 0.0, True, "improved"),
    (0.9, "max", None, BAR, 0.0, False, "not better"),
    (1.2, "min", 1.2, None, 0.0, True, "first result"),  # a threshold is a limit: equal meets it
    (1.3, "min", 1.2, None, 0.0, False, "need at most 1.2"),
    (0.8, "max", 0.9, None, 0.0, False, "need at least 0.9"),
    (0.5, "min", 0.4, BAR, 0.0, False, "threshold not met"),  # beats the bar, misses the threshold
    (math.nan, "min", None, None, 0.0, False, "not a finite number"),
    (math.inf, "max", None, BAR, 0.0, False, "not a finite number"),
    (None, "min", None, BAR, 0.0, False, "not a finite number"),
])
def test_judge(value: float | None, goal: str, threshold: float | None, best: Best | None,
               min_delta: float, keep: bool, reason: str) -> None:
    verdict = judge(value, goal=goal, threshold=threshold, best=best, min_delta=min_delta)
    assert verdict.keep is keep
    assert reason in verdict.reason


def test_delta_is_value_minus_best() -> None:
    assert judge(0.9, goal="min", best=BAR).delta == pytest.approx(-0.1)


@pytest.mark.parametrize(("value", "lucky"), [(0.9, False), (1.1, True)])
def test_remeasuring_a_kept_commit_stays_kept(value: float, lucky: bool) -> None:
    verdict = judge(value, goal="min", best=BAR, already_kept=True)
    assert verdict.keep and verdict.reason.startswith("re-measurement")
    assert ("lucky first draw" in verdict.reason) is lucky


def test_remeasuring_still_fails_a_threshold() -> None:
    assert not judge(2.0, goal="min", threshold=1.5, already_kept=True).keep
