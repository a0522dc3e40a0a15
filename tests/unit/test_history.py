"""The bar is the best kept result among proper ancestors; every draw of one commit counts in its mean;
near misses, lucky draws and the running bar are judged with the verdict's noise and margin."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_autoresearch.history import (
    best,
    best_before,
    judged_mean,
    kept_at,
    last_kept,
    lucky_draws,
    near_misses,
    running_best,
    suites,
)
from pytest_autoresearch.ledger import Entry
from pytest_autoresearch.noise import Noise

LINEAGE = ["c3", "c2", "c1", "c0"]  # HEAD first


def run(sha: str, value: float | None, status: str = "keep", measurement: str = "", test: str = "t") -> Entry:
    return Entry(run_id=f"{sha}-{value}-{measurement}", status=status, sha=sha, value=value,
                 measurement=measurement, test=test)


def test_best_among_proper_ancestors_only() -> None:
    runs = [run("c0", 1.5), run("c1", 1.2), run("c2", 1.3, "discard"), run("c3", 1.0), run("x9", 0.1)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.commit) == (1.2, "c1")


def test_goal_max_and_no_history() -> None:
    runs = [run("c0", 0.5), run("c1", 0.7)]
    best = best_before(runs, LINEAGE, "max")
    assert best is not None and best.value == 0.7
    assert best_before([], LINEAGE, "max") is None


def test_repeats_count_as_their_mean() -> None:
    runs = [run("c1", 1.0, measurement="m"), run("c1", 1.4, measurement="m"), run("c2", 1.25)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.commit) == (1.2, "c1")


def test_kept_at_and_last_kept() -> None:
    runs = [run("c1", 1.0), run("c2", None, "accepted"), run("c3", 2.0, "discard")]
    assert kept_at(runs, "c1") and not kept_at(runs, "c3")
    assert last_kept(runs, LINEAGE, ["t"]) == "c2"
    assert last_kept(runs, LINEAGE, ["other"]) is None


def test_separate_reruns_of_one_commit_pool_into_one_mean() -> None:
    runs = [run("c1", 1.0, measurement="a"), run("c1", 1.4, measurement="b"), run("c2", 1.25)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.commit, best.n) == (1.2, "c1", 2)


def test_a_kept_commit_pools_its_discarded_draws_too() -> None:
    runs = [run("c1", 1.0, "discard", "a"), run("c1", 1.2, "keep", "b"), run("c2", 1.15)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.n) == (1.1, 2)


# --- what the reports read: near misses, lucky draws, the running bar, the judged mean ----------


def judged(sha: str, value: float, status: str = "discard", *, bar: float | None = 1.0, bar_n: int = 1,
           measurement: str = "", **extra: Any) -> Entry:
    info: dict[str, Any] = dict(extra, **({} if bar is None else {"bar": bar, "bar_n": bar_n}))
    return Entry(run_id=f"{sha}-{value}-{measurement}", status=status, sha=sha, commit=sha[:7], value=value,
                 measurement=measurement or f"{sha}-{value}", extra=info)


def test_near_misses_are_commits_at_their_full_mean_most_promising_first() -> None:
    floor = Noise(0.01, dof=4, groups=1)  # one draw against a one-draw bar: one unit is 0.01 * sqrt(2)
    runs = [
        judged("close", 1.005),  # -0.35 units
        judged("edge", 1.014),  # -0.99 units
        judged("far", 1.02),  # -1.4 units: not near
        judged("better", 0.985),  # beat the bar by +1.06 units, not by the margin: the most promising
        judged("kept", 1.001, "keep"),  # kept: no miss
        judged("nobar", 1.0, bar=None),  # judged without a bar (a threshold): near nothing
        judged("again", 1.03, measurement="m1"),  # two measurements of one commit count as one mean, 1.0:
        judged("again", 0.97, measurement="m2", bar_n=5),  # 0 units of 0.01 * sqrt(1/2 + 1/5), its latest bar
    ]
    misses = near_misses(runs, floor, "min")
    assert [m.run.sha for m in misses] == ["better", "again", "close", "edge"]
    again = misses[1]
    assert (again.value, again.n, again.bar_n) == (pytest.approx(1.0), 2, 5)
    assert again.unit == pytest.approx(floor.of_difference(2, 5))
    assert misses[0].score("min") == pytest.approx(0.015 / floor.of_difference(1, 1))
    assert [m.run.sha for m in near_misses(runs, floor, "max")] == ["far", "edge", "close", "again"]


def test_near_misses_without_a_noise_floor_use_a_fraction_of_the_bar() -> None:
    runs = [judged("one", 2.03, bar=2.0), judged("two", 1.99, bar=2.0), judged("three", 2.01, bar=2.0)]
    assert [m.run.sha for m in near_misses(runs, None, "min")] == ["two", "three"]  # within 1% = 0.02
    assert [m.run.sha for m in near_misses(runs, None, "min", fraction=0.05)] == ["two", "three", "one"]
    assert not any(m.noise for m in near_misses(runs, None, "min"))


def test_lucky_draws_by_the_margin_the_verdict_applied() -> None:
    # kept at 1.2 over the bar 1.5; re-measured at 1.45: mean 1.325 beats 1.5 strictly, not by 0.2
    runs = [judged("base", 1.5, "keep", bar=None), judged("b", 1.2, "keep", bar=1.5, min_delta=0.25),
            judged("b", 1.45, "keep", bar=1.5, min_delta=0.2)]
    [lucky] = lucky_draws(runs, "min")
    assert (lucky.run.sha, lucky.first, lucky.mean, lucky.draws, lucky.bar, lucky.margin) == (
        "b", 1.2, pytest.approx(1.325), 2, 1.5, 0.2)
    strict = [*runs[:2], judged("b", 1.45, "keep", bar=1.5)]  # min_delta 0: strictly better is enough
    assert lucky_draws(strict, "min") == []
    assert lucky_draws(runs[:2], "min") == []  # one draw is not evidence of luck
    assert lucky_draws([judged("base", 1.5, "keep", bar=None), judged("base", 1.9, "keep", bar=None)], "min") == []


def test_running_best_is_best_of_every_prefix() -> None:
    runs = [run("c0", 3.0, "discard"), run("c1", 3.0), run("c2", 4.0, "discard"), run("c3", 2.0),
            run("c3", 3.2, "keep", "again"), run("c4", 2.5), run("c1", 2.0, "discard", "x")]
    for goal in ("min", "max"):
        assert running_best(runs, goal) == [best(runs[: i + 1], goal) for i in range(len(runs))]


def test_judged_mean_is_the_recorded_one_else_every_draw_so_far() -> None:
    first, second = run("c1", 1.0, measurement="a"), run("c1", 1.4, measurement="b")
    later = run("c1", 1.6, measurement="c")
    assert judged_mean(second, [first, second, later]) == (pytest.approx(1.2), 2)
    recorded = Entry(run_id="r", status="keep", sha="c1", value=1.4, extra={"mean": 1.3, "n": 3})
    assert judged_mean(recorded, [first, recorded]) == (1.3, 3)


def member(sha: str, test: str, measurement: str, said: str, status: str = "keep", **extra: Any) -> Entry:
    reason = {"reason": f"suite: improved (this benchmark x{extra.get('ratio', 1.0):.3f})"}
    return Entry(run_id=f"{measurement}-{len(extra)}-{said}", status=status, sha=sha, value=0.01, metric="median",
                 test=test, measurement=measurement, commit=sha[:7], extra={"suite": said, **reason, **extra})


def test_suites_read_back_by_id_and_from_rows_written_before_ids() -> None:
    old = [member("c1", "a", "m1", "keep of 2", ratio=0.5, suite_geomean=0.7),
           member("c1", "b", "m2", "keep of 2", ratio=0.98, suite_geomean=0.7),
           member("c1", "a", "m3", "keep of 2", ratio=1.0),  # the same commit judged again: another verdict
           member("c1", "b", "m4", "keep of 2", ratio=1.0)]
    new = [member("c2", "a", "m5", "discard of 2", "discard", suite_id="s1", suite_regressed="b", ratio=1.0),
           member("c2", "b", "m6", "discard of 2", "discard", suite_id="s1", suite_regressed="b", ratio=1.2)]
    found = suites([*old, run("c2", 1.0), *new])
    assert [(s.summary.id, s.summary.status, s.summary.size) for s in found] == [
        ("m1", "keep", 2), ("m3", "keep", 2), ("s1", "discard", 2)]
    first = found[0].summary
    assert first.verdict.geomean == 0.7 and first.verdict.reason == "improved" and first.verdict.compared == 2
    assert [(m.test, m.ratio) for m in first.members] == [("a", 0.5), ("b", 0.98)]
    assert found[2].summary.verdict.regressed == "b" and not found[2].summary.verdict.keep
    assert found[2].summary.line() == "autoresearch: discard suite[2 benchmarks] commit=c2 | improved"
