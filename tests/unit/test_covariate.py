"""The load adjustment (CUPED): theta from within-commit draws, when it is used, what it does to
values, floors and pairs; the gauge on this machine's /proc and without one."""

from __future__ import annotations

import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_autoresearch import covariate
from pytest_autoresearch.covariate import COVARIATE, KEY, MIN_DOF, Adjustment, Gauge, adjusted, fit, fit_runs, reading
from pytest_autoresearch.ledger import Entry
from pytest_autoresearch.noise import Noise, pooled
from pytest_autoresearch.paired import Pairs


def _commit(mean: float, theta: float, loads: list[float], rng: random.Random, noise: float = 0.002) -> list[tuple[float, float]]:
    return [(mean + theta * x + rng.gauss(0, noise), x) for x in loads]


def test_theta_is_recovered_and_the_adjusted_spread_shrinks() -> None:
    rng = random.Random(1)
    groups = [_commit(2.0, 0.3, [rng.random() for _ in range(5)], rng) for _ in range(3)]
    adjustment = fit(groups)
    assert adjustment is not None
    assert adjustment.theta == pytest.approx(0.3, abs=0.02)
    assert adjustment.dof == 12
    assert adjustment.sigma < adjustment.raw_sigma / 5
    raw = [y for y, _ in groups[0]]
    fixed = [adjustment.value(y, x) for y, x in groups[0]]
    assert statistics.stdev(fixed) < statistics.stdev(raw) / 5


def test_theta_comes_from_within_commits_only() -> None:
    # a better commit measured on a busier machine: across commits load "helps", within each it hurts
    rng = random.Random(2)
    groups = [_commit(2.0, 0.1, [0.0, 0.05, 0.1, 0.02, 0.08], rng),
              _commit(1.5, 0.1, [0.6, 0.65, 0.7, 0.62, 0.68], rng)]
    adjustment = fit(groups)
    assert adjustment is not None and adjustment.theta == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize("groups, why", [
    ([[(1.0, 0.1), (1.1, 0.2), (1.2, 0.3)], [(2.0, 0.1), (2.1, 0.2)]], "too few draws"),
    ([[(1.0 + 0.01 * i, 0.5) for i in range(8)]], "the load never varied"),
    ([[(1.0, 0.1)] * 8], "no spread to explain"),
])
def test_no_adjustment_without_enough_draws_or_variation(groups: list[list[tuple[float, float]]], why: str) -> None:
    assert fit(groups) is None, why


def test_no_adjustment_when_load_does_not_explain_the_spread() -> None:
    rng = random.Random(3)
    groups = [[(2.0 + rng.gauss(0, 0.01), rng.random()) for _ in range(10)] for _ in range(2)]
    found = fit(groups)
    assert found is None or abs(found.theta) / found.se >= covariate.MIN_T  # a chance fit is held to the same rule
    assert sum(fit([[(2.0 + rng.gauss(0, 0.01), rng.random()) for _ in range(10)]]) is not None
               for _ in range(500)) < 10  # pure noise passes |t| >= 3 in well under 1% of fits


def test_the_rule_only_passes_fits_that_reduce_the_pooled_variance() -> None:
    rng = random.Random(4)
    for _ in range(300):
        groups = [_commit(2.0, rng.choice([0.0, 0.01, 0.05]), [rng.random() for _ in range(4)], rng, 0.01)
                  for _ in range(3)]
        found = fit(groups)
        if found is not None:
            assert found.sigma < found.raw_sigma


def test_a_draw_without_a_reading_keeps_its_raw_value() -> None:
    adjustment = Adjustment(theta=0.5, reference=0.1, se=0.1, dof=10, raw_sigma=0.1, sigma=0.02)
    assert adjustment.value(2.0, None) == 2.0
    assert adjustment.value(2.0, 0.4) == pytest.approx(1.85)
    assert adjustment.value(2.0, 0.1) == 2.0  # the typical load: nothing to correct


def test_the_floor_of_adjusted_draws_spends_a_degree_of_freedom_on_theta() -> None:
    adjustment = Adjustment(theta=0.5, reference=0.1, se=0.1, dof=10, raw_sigma=0.1, sigma=0.02)
    floor = adjustment.floor(pooled([[1.0, 1.1, 1.2], [2.0, 2.2]]))
    assert floor is not None and floor.dof == 2 and floor.groups == 2
    assert floor.sigma == pytest.approx(math.sqrt((0.01 * 2 + 0.02 * 1) / 2))
    assert adjustment.floor(Noise(0.1, 1, 1)) == Noise(0.1, 1, 1)  # nothing left to spend
    assert adjustment.floor(None) is None


def test_pairs_are_adjusted_draw_by_draw() -> None:
    adjustment = Adjustment(theta=1.0, reference=0.0, se=0.1, dof=10, raw_sigma=0.1, sigma=0.02)
    pairs = adjustment.pairs(Pairs((2.0, 2.5), (2.2, 2.1), (0.0, 0.5), (0.1, None)))
    assert pairs.bar == (2.0, 2.0) and pairs.candidate == pytest.approx((2.1, 2.1))
    assert adjustment.pairs(Pairs((2.0,), (2.1,))) == Pairs((2.0,), (2.1,))  # no readings: raw


def _row(sha: str, value: float, load: float | None, host: str = "box", status: str = "keep") -> Entry:
    extra = {KEY: {"others": 0.5, COVARIATE: load}} if load is not None else {}
    return Entry(run_id=f"{sha}{value}", commit=sha[:7], sha=sha, branch="b", description="d", test="t", metric="m",
                 value=value, status=status, host=host, extra=extra)


def test_rows_fit_on_this_host_and_lineage_and_keep_their_raw_values() -> None:
    rng = random.Random(5)
    rows = [_row("a" * 40, y, x) for y, x in _commit(2.0, 0.4, [rng.random() for _ in range(6)], rng)]
    rows += [_row("a" * 40, 9.0 + 5 * i, 0.1 * i, host="other") for i in range(6)]  # another machine: not pooled
    rows += [_row("c" * 40, 5.0 + 5 * i, 0.1 * i) for i in range(6)]  # not on the lineage
    rows.append(_row("a" * 40, 2.1, None))  # written before the gauge
    current = [(2.0 + 0.4 * 0.9, 0.9), (2.0, 0.0), (2.0, None)]
    adjustment = fit_runs(rows, ["b" * 40, "a" * 40], "box", current, head="b" * 40)
    assert adjustment is not None and adjustment.theta == pytest.approx(0.4, abs=0.05)
    assert adjustment.dof == MIN_DOF == 5 + 1  # 6 draws of a here, 2 of HEAD with a reading
    fixed = adjusted(rows, adjustment)
    assert [r.value for r in rows][:6] != [r.value for r in fixed][:6]
    assert fixed[-1].value == 2.1 and rows[0].value is not None and reading(rows[0].extra) is not None


def test_the_gauge_counts_this_process_tree_as_its_own() -> None:
    gauge = Gauge()
    own = covariate._own_ticks("/proc")
    subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                    "while time.process_time() < end: pass"], check=True)
    after = covariate._own_ticks("/proc")
    readings = gauge.stop()
    assert own is not None and after is not None
    assert after - own >= 0.4 * os.sysconf("SC_CLK_TCK")  # the child's half second, reaped, is ours
    assert set(readings) == {"others", "steal", "reference"}  # too short a run for a "competing" sample
    assert 0 <= readings["others"] <= 1 and 0 <= readings["steal"] <= 1 and readings["reference"] > 0


def test_without_proc_the_gauge_records_no_load(tmp_path: Path) -> None:
    readings = Gauge(proc=str(tmp_path / "no-proc")).stop()
    assert set(readings) == {"reference"}  # the shares need /proc; the reference workload needs nothing
    assert reading({KEY: readings}) == readings["reference"] > 0
    assert reading({KEY: readings}, "others") is None


def test_a_busy_process_outside_this_tree_competes() -> None:
    outside = int(subprocess.run(["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                                 capture_output=True, text=True, check=True).stdout)  # orphaned: not our child
    try:
        time.sleep(0.3)
        counts = [covariate._competing("/proc") for _ in range(5)]
        assert all(c is not None and c >= 0.9 for c in counts)  # at least the orphan, at our nice level: weight 1
        gauge = Gauge()
        gauge.next_sample = 0.0  # due now
        gauge.sample()
        assert gauge.stop()["competing"] >= 0.9
    finally:
        os.kill(outside, signal.SIGKILL)
