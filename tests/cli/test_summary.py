"""The pure summaries behind ``status`` and ``plot``: goal inference, best, lucky draws, standings."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_autoresearch import summary
from pytest_autoresearch.ledger import Entry
from pytest_autoresearch.plot import running_best, y_range


def run(sha: str, value: float | None, status: str = "keep", measurement: str = "", branch: str = "s",
        **extra: Any) -> Entry:
    return Entry(run_id=f"{sha}-{measurement}-{value}", status=status, sha=sha * 8, commit=sha * 7,
                 value=value, description=f"idea {sha}", test="t.py::test", metric="m",
                 branch=branch, measurement=measurement or f"{sha}-{value}", extra=extra)


@pytest.mark.parametrize(("runs", "goal", "how", "ambiguous"), [
    ([run("a", 1.0, goal="max")], "max", "recorded", False),
    ([run("a", 1.0), run("b", 0.9, bar=1.0, reason="improved")], "min", "inferred from the kept results", False),
    ([run("a", 1.0), run("b", 1.1, bar=1.0, reason="improved")], "max", "inferred from the kept results", False),
    # a re-measurement may land on either side of its bar: it says nothing about the goal
    ([run("a", 1.0), run("b", 0.9, bar=1.0, reason="improved"),
      run("b", 1.2, bar=1.0, reason="re-measurement of a kept commit")], "min", "inferred from the kept results", False),
    # repeated draws of one measurement vote once, by their mean
    ([run("a", 1.0), run("b", 1.1, "keep", "m1", bar=1.0, reason="improved"),
      run("b", 0.8, "keep", "m1", bar=1.0, reason="improved")], "min", "inferred from the kept results", False),
    # no bars recorded: the order of the kept values tells
    ([run("a", 3.0), run("b", 2.0), run("c", 1.0)], "min", "inferred from the kept results", False),
    ([run("a", 1.0), run("b", 2.0), run("c", 1.5)], "max", "inferred, but the kept results disagree", True),
    ([run("a", 1.0), run("b", 2.0, "discard")], "min", "assumed: too few kept results to tell", True),
    ([], "min", "assumed: too few kept results to tell", True),
])
def test_infer_goal(runs: list[Entry], goal: str, how: str, ambiguous: bool) -> None:
    assert summary.infer_goal(runs) == summary.Goal(goal, how, ambiguous)


def test_given_goal_wins() -> None:
    assert summary.infer_goal([run("a", 1.0, goal="max")], "min") == summary.Goal("min", "given")


def test_best_counts_repeated_draws_as_their_mean() -> None:
    runs = [run("a", 1.0), run("b", 0.7, "keep", "x"), run("b", 0.9, "keep", "x"), run("c", 0.85),
            run("d", 0.1, "discard")]
    best = summary.best(runs, "min")
    assert best == summary.Result(0.8, "bbbbbbb", "idea b", 2, "b" * 8)
    assert summary.best(runs, "max") == summary.Result(1.0, "aaaaaaa", "idea a", 1, "a" * 8)
    assert summary.baseline(runs) == summary.Result(1.0, "aaaaaaa", "idea a", 1, "a" * 8)
    assert summary.best([run("a", None, "crash")], "min") is None


def test_keep_rate() -> None:
    assert summary.keep_rate(Counter(keep=1, discard=2, crash=1, running=3)) == 0.25
    assert summary.keep_rate(Counter(running=1)) is None


def test_lucky_draws() -> None:
    runs = [run("a", 1.5), run("b", 1.2, bar=1.5, reason="improved"),
            run("b", 1.9, bar=1.5), run("c", 1.1, bar=1.2, reason="improved"), run("c", 1.15, bar=1.2)]
    [lucky] = summary.lucky_draws(runs, "min")
    assert lucky == summary.Lucky("bbbbbbb", "idea b", 1.5, 1.2, (1.2 + 1.9) / 2, 2)
    assert summary.lucky_draws(runs[:2], "min") == []  # one draw is not evidence of luck


def test_standings_best_first_unkept_last() -> None:
    runs = [run("a", 1.0, branch="x"), run("b", 0.5, branch="y"), run("c", 0.7, "discard", branch="z"),
            run("d", 0.9, branch="x")]
    assert [s.branch for s in summary.standings(runs, "min")] == ["y", "x", "z"]
    assert [s.branch for s in summary.standings(runs, "max")] == ["x", "y", "z"]


def test_series_keeps_the_latest_identity() -> None:
    old, new = replace(run("a", 1.0), identity="old"), replace(run("b", 2.0), identity="new")
    [only] = summary.series([old, new])
    assert (only.identity, only.runs) == ("new", (new,))
    assert summary.earlier_identity_runs([old, new], only) == 1
    assert [s.identity for s in summary.series([old, new], latest_identity_only=False)] == ["old", "new"]


@pytest.mark.parametrize(("stamp", "text"), [
    ("2026-11-25T12:00:00+00:00", "0s ago"), ("2026-11-25T11:59:15+00:00", "45s ago"),
    ("2026-11-25T11:47:00+00:00", "13m ago"), ("2026-11-25T09:55:00+00:00", "2h 05m ago"),
    ("2026-11-21T09:00:00+00:00", "4d 3h ago"), ("garbage", "?"),
])
def test_ago(stamp: str, text: str) -> None:
    assert summary.ago(stamp, datetime(2026, 11, 25, 12, tzinfo=timezone.utc)) == text


def test_running_best_and_y_range() -> None:
    assert running_best([None, 3.0, None, 2.0, 2.5], "min") == [None, 3.0, 3.0, 2.0, 2.0]
    assert running_best([1.0, 3.0, 2.0], "max") == [1.0, 3.0, 3.0]
    low, high = y_range(best=1.0, baseline=2.0, spread=5.0)
    assert low < 1.0 < 2.0 < high and high - low < 1.5  # the outliers (spread 5) are cut off
    low, high = y_range(best=0.0, baseline=0.0, spread=0.0)
    assert low < 0.0 < high
