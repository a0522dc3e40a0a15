"""The pure statistics behind ``status`` and ``plot``: goal, best, counts, lucky draws, standings."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_autoresearch import history
from pytest_autoresearch.cli import stats
from pytest_autoresearch.cli.plot import best_so_far, must_show, y_range
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


def test_ideas_and_draws_count_apart() -> None:
    """Five draws of a baseline are one idea; a re-measured keep stays one kept idea."""
    runs = [run("a", 1.0, measurement="m"), run("a", 1.01, measurement="m"), run("a", 0.99, measurement="m"),
            run("b", 0.9), run("b", 0.95, remeasure=True), run("c", 1.2, "discard"), run("d", None, "crash"),
            run("e", 1.3, "discard"), run("e", 0.8, "keep", remeasure=True), run("f", None, "running"),
            run("g", None, "accepted")]
    ideas, draws = stats.ideas(runs), stats.draws(runs)
    assert (ideas["keep"], ideas["discard"], ideas["crash"], stats.finished(ideas)) == (3, 1, 1, 5)
    assert (draws["keep"], draws["discard"], draws["crash"], draws["running"]) == (6, 2, 1, 1)
    assert (draws[stats.REMEASURED], draws["accepted"], stats.finished(draws)) == (2, 0, 9)
    assert stats.keep_rate(ideas) == pytest.approx(3 / 5)


def test_keep_rate() -> None:
    assert stats.keep_rate(Counter(keep=1, discard=2, crash=1, running=3)) == 0.25
    assert stats.keep_rate(Counter(running=1)) is None


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
    low, high = y_range([1.0, 2.0], spread=5.0)
    assert low < 1.0 < 2.0 < high and high - low < 1.5  # the outliers (spread 5) are cut off
    low, high = y_range([0.0], spread=0.0)
    assert low < 0.0 < high


def test_the_axes_must_show_kept_runs_the_running_best_and_discards_that_beat_their_bar() -> None:
    runs = [run("a", 2.0), run("b", 1.5, bar=2.0), run("c", 1.7, "discard", bar=1.5),
            run("d", 1.45, "discard", bar=1.5), run("e", 9.0, "discard", bar=1.5)]
    shown = must_show(runs, "min")
    assert {2.0, 1.5, 1.45} <= set(shown) and 9.0 not in shown and 1.7 not in shown
