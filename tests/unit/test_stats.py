"""The pure statistics behind ``status`` and ``plot``: goal, best, counts, lucky draws, standings."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_autoresearch import history
from pytest_autoresearch.cli import stats
from pytest_autoresearch.cli.plot import best_so_far, y_range
from pytest_autoresearch.ledger import Entry
from pytest_autoresearch.verdict import Best


def run(sha: str, value: float | None, status: str = "keep", measurement: str = "", branch: str = "s",
        **extra: Any) -> Entry:
    return Entry(run_id=f"{sha}-{measurement}-{value}", status=status, sha=sha * 8, commit=sha * 7,
                 value=value, description=f"idea {sha}", test="t.py::test", metric="m",
                 branch=branch, measurement=measurement or f"{sha}-{value}", extra=extra)


def test_goal_is_the_recorded_one_else_given_else_min() -> None:
    [s] = stats.series([run("a", 1.0, goal="max")])
    assert stats.goal_of([run("a", 1.0, goal="max")], s) == "max"
    assert stats.goal_of([run("a", 1.0)], s) == "min"  # a row written before rows recorded the goal
    assert stats.goal_of([run("a", 1.0)], s, "max") == "max"


def test_best_counts_repeated_draws_as_their_mean() -> None:
    runs = [run("a", 1.0), run("b", 0.7, "keep", "x"), run("b", 0.9, "keep", "x"), run("c", 0.85),
            run("d", 0.1, "discard")]
    best = history.best(runs, "min")
    assert best == Best(0.8, "bbbbbbb", 2, "b" * 8, "idea b")
    assert history.best(runs, "max") == Best(1.0, "aaaaaaa", 1, "a" * 8, "idea a")
    assert stats.baseline(runs) == Best(1.0, "aaaaaaa", 1, "a" * 8, "idea a")
    remeasured = [run("a", 1.0), run("a", 1.2, remeasure=True), run("b", 0.9)]
    assert stats.baseline(remeasured) == Best(1.1, "aaaaaaa", 2, "a" * 8, "idea a"), "every draw, as the bar counts"
    assert history.best([run("a", None, "crash")], "min") is None


def test_remeasurements_count_apart_from_new_ideas() -> None:
    runs = [run("a", 1.0), run("b", 0.9), run("b", 0.95, remeasure=True), run("c", 1.2, "discard")]
    tally = stats.counts(runs)
    assert (tally["keep"], tally["discard"], tally[stats.REMEASURED]) == (2, 1, 1)
    assert stats.judged(runs) == 3
    assert stats.keep_rate(tally) == pytest.approx(2 / 3)


def test_keep_rate() -> None:
    assert stats.keep_rate(Counter(keep=1, discard=2, crash=1, running=3)) == 0.25
    assert stats.keep_rate(Counter(running=1)) is None


def test_lucky_draws() -> None:
    runs = [run("a", 1.5), run("b", 1.2, bar=1.5, reason="improved"),
            run("b", 1.9, bar=1.5), run("c", 1.1, bar=1.2, reason="improved"), run("c", 1.15, bar=1.2)]
    [lucky] = stats.lucky_draws(runs, "min")
    assert lucky == stats.Lucky("bbbbbbb", "idea b", 1.5, 1.2, (1.2 + 1.9) / 2, 2)
    assert stats.lucky_draws(runs[:2], "min") == []  # one draw is not evidence of luck


def test_standings_best_first_unkept_last() -> None:
    runs = [run("a", 1.0, branch="x"), run("b", 0.5, branch="y"), run("c", 0.7, "discard", branch="z"),
            run("d", 0.9, branch="x")]
    assert [s.branch for s in stats.standings(runs, "min")] == ["y", "x", "z"]
    assert [s.branch for s in stats.standings(runs, "max")] == ["x", "y", "z"]


def test_series_keeps_the_latest_identity() -> None:
    old, new = replace(run("a", 1.0), identity="old"), replace(run("b", 2.0), identity="new")
    [only] = stats.series([old, new])
    assert (only.identity, only.runs) == ("new", (new,))
    assert stats.earlier_identity_runs([old, new], only) == 1
    assert [s.identity for s in stats.series([old, new], latest_identity_only=False)] == ["old", "new"]


@pytest.mark.parametrize(("stamp", "text"), [
    ("2026-11-25T12:00:00+00:00", "0s ago"), ("2026-11-25T11:59:15+00:00", "45s ago"),
    ("2026-11-25T11:47:00+00:00", "13m ago"), ("2026-11-25T09:55:00+00:00", "2h 05m ago"),
    ("2026-11-21T09:00:00+00:00", "4d 3h ago"), ("garbage", "?"),
])
def test_ago(stamp: str, text: str) -> None:
    assert stats.ago(stamp, datetime(2026, 11, 25, 12, tzinfo=timezone.utc)) == text


def test_best_so_far_and_y_range() -> None:
    runs = [run("a", 3.0, "discard"), run("b", 3.0), run("c", 4.0, "discard"), run("d", 2.0), run("e", 2.5)]
    assert best_so_far(runs, "min") == [None, 3.0, 3.0, 2.0, 2.0]
    assert best_so_far(runs[1:4], "max") == [3.0, 3.0, 3.0]
    lucky = [run("a", 3.0), run("b", 2.0), run("b", 2.8, remeasure=True)]
    assert best_so_far(lucky, "min") == [3.0, 2.0, 2.4], "a re-measurement moves its commit's mean"
    low, high = y_range(best=1.0, baseline=2.0, spread=5.0)
    assert low < 1.0 < 2.0 < high and high - low < 1.5  # the outliers (spread 5) are cut off
    low, high = y_range(best=0.0, baseline=0.0, spread=0.0)
    assert low < 0.0 < high
