"""Adaptive repeats: the stopping rule as a table, its parser, and a simulation against fixed repeats."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

import pytest

from pytest_autoresearch.adaptive import RepeatPlan, next_step, parse_repeat
from pytest_autoresearch.noise import Noise, required_delta
from pytest_autoresearch.verdict import Best, judge


@pytest.mark.parametrize(("text", "plan"), [
    ("3", RepeatPlan(3)),
    ("1", RepeatPlan(1)),
    (" auto ", RepeatPlan(5, adaptive=True)),
    ("AUTO:8", RepeatPlan(8, adaptive=True)),
    ("auto:2", RepeatPlan(2, adaptive=True)),
])
def test_parse_repeat(text: str, plan: RepeatPlan) -> None:
    assert parse_repeat(text, "--autoresearch-repeat") == plan


@pytest.mark.parametrize(("text", "says"), [
    ("0", "at least 1 run"),
    ("-2", "at least 1 run"),
    ("auto:1", "a maximum of 2 runs or more"),
    ("auto:", "got 'auto:'"),
    ("auto:five", "auto:5"),
    ("2.5", "whole number such as 3"),
    ("", "whole number"),
    ("adaptive", '"auto"'),
])
def test_parse_repeat_names_the_fix(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="ini autoresearch_repeat: ") as info:
        parse_repeat(text, "ini autoresearch_repeat")
    assert says in str(info.value)


def test_plan_reads_back_as_written() -> None:
    assert str(parse_repeat("auto", "x")) == "auto:5" and str(parse_repeat("4", "x")) == "4"


# bar 1.0 from one run, sigma 0.1, k 2, at most 5 runs: a keep after 5 runs needs the mean
# below 1.0 - 2 * 0.1 * sqrt(1/5 + 1) = 0.781; after 1 run below 1.0 - 0.283 = 0.717.
@pytest.mark.parametrize(("draws", "goal", "sigma", "action", "says"), [
    ([], "min", 0.1, "again", "no run yet"),
    ([1.5], "min", 0.1, "discard", "stopped after 1 of 5 runs"),  # far worse: stops at once
    ([1.05], "min", 0.1, "discard", "stopped after 1 of 5 runs"),  # a little worse: no chance left
    ([0.8], "min", 0.1, "again", "could still go either way"),
    ([0.8, 0.7], "min", 0.1, "again", "run 2 of 5"),
    ([0.5], "min", 0.1, "keep", "stopped after 1 of 5 runs"),  # 5 sigma better
    ([0.76, 0.8, 0.79, 0.77, 0.78], "min", 0.1, "keep", "all 5 runs done"),
    ([0.76, 0.8, 0.79, 0.77, 0.80], "min", 0.1, "discard", "all 5 runs done"),
    ([1.5], "max", 0.1, "keep", "stopped after 1 of 5 runs"),  # goal max: higher is better
    ([0.5], "max", 0.1, "discard", "stopped after 1 of 5 runs"),
    ([1.2], "max", 0.1, "again", "either way"),
    ([0.99], "min", None, "keep", "noise floor unknown: one run"),  # judged strictly, as judge does
    ([1.0], "min", None, "discard", "noise floor unknown"),
    ([0.99], "min", 0.0, "keep", "no noise"),
    ([1.0, 1.0], "min", 0.0, "discard", "no noise"),
    ([0.5, math.nan], "min", 0.1, "discard", "not finite"),
])
def test_next_step(draws: list[float], goal: str, sigma: float | None, action: str, says: str) -> None:
    step = next_step(draws, bar=1.0, n_bar=1, goal=goal, sigma=sigma, max_runs=5)
    assert step.action == action, step.reason
    assert says in step.reason
    assert step.stop is (action != "again")


def test_no_bar_runs_the_baseline_every_time() -> None:
    assert next_step([1.0] * 4, bar=None, n_bar=0, goal="min", sigma=0.1, max_runs=5).action == "again"
    assert next_step([1.0] * 5, bar=None, n_bar=0, goal="min", sigma=None, max_runs=5).action == "keep"


def test_fixed_min_delta_replaces_the_noise_margin() -> None:
    # beats the bar by 0.2 >> noise, but a min_delta of 0.5 is out of reach: discard at once
    step = next_step([0.8], bar=1.0, n_bar=5, goal="min", sigma=0.01, min_delta=0.5)
    assert step.action == "discard" and step.p_keep is not None and step.p_keep < 1e-6


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="goal must be one of"):
        next_step([1.0], bar=1.0, n_bar=1, goal="lower", sigma=0.1)
    with pytest.raises(ValueError, match="n_bar >= 1"):
        next_step([1.0], bar=1.0, n_bar=0, goal="min", sigma=0.1)
    with pytest.raises(ValueError, match="max_runs >= 1"):
        next_step([1.0], bar=1.0, n_bar=1, goal="min", sigma=0.1, max_runs=0)


# --- simulation -------------------------------------------------------------------------------

K, MAX_RUNS, TARGETS = 2.0, 5, 20000


@dataclass
class Tally:
    fixed_keeps: int = 0
    adaptive_keeps: int = 0
    adaptive_runs: int = 0


def simulate(effect: float, seed: int) -> Tally:
    """Seeded noisy targets: the bar from 1 to 5 runs of the parent, the commit better by
    ``effect`` sigma; both rules see the same draws (the adaptive rule a prefix of them)."""
    rng = random.Random(seed)
    tally = Tally()
    for _ in range(TARGETS):
        goal = rng.choice(("min", "max"))
        sigma = 10 ** rng.uniform(-4, 0)
        level = rng.uniform(-10, 10)
        n_bar = rng.randint(1, MAX_RUNS)
        better = -effect * sigma if goal == "min" else effect * sigma
        bar = statistics.fmean(rng.gauss(level, sigma) for _ in range(n_bar))
        draws = [rng.gauss(level + better, sigma) for _ in range(MAX_RUNS)]
        tally.fixed_keeps += _judged(draws, bar, n_bar, goal, sigma)
        for n in range(1, MAX_RUNS + 1):
            step = next_step(draws[:n], bar=bar, n_bar=n_bar, goal=goal, sigma=sigma, max_runs=MAX_RUNS, k=K)
            if step.stop:
                break
        # the rule only says when to stop: its verdict is judge's on the runs so far
        assert (step.action == "keep") is _judged(draws[:n], bar, n_bar, goal, sigma), step.reason
        tally.adaptive_keeps += step.action == "keep"
        tally.adaptive_runs += n
    return tally


def _judged(draws: list[float], bar: float, n_bar: int, goal: str, sigma: float) -> bool:
    min_delta = required_delta(Noise(sigma, 1, 1), len(draws), n_bar, K)
    return judge(statistics.fmean(draws), goal=goal, best=Best(bar, "parent", n_bar), min_delta=min_delta).keep


@pytest.fixture(scope="module")
def noise_only() -> Tally:
    return simulate(effect=0.0, seed=13)


@pytest.fixture(scope="module")
def improvement() -> Tally:
    return simulate(effect=3.0, seed=31)


def test_pure_noise_is_kept_no_more_often_than_with_fixed_repeats(noise_only: Tally) -> None:
    # 20000 commits that change nothing: 5 fixed runs keep 445 (2.23%), adaptive 435 (2.18%)
    assert noise_only.adaptive_keeps <= noise_only.fixed_keeps
    assert noise_only.fixed_keeps / TARGETS == pytest.approx(0.0228, abs=0.003)  # P(Z > 2) = 2.28%


def test_a_true_improvement_of_3_sigma_is_kept_nearly_as_often_as_with_fixed_repeats(improvement: Tally) -> None:
    # 20000 commits better by 3 sigma: 5 fixed runs keep 18742 (93.7%), adaptive 18700 (93.5%).
    # "At least as often" cannot hold in expectation together with the test above for any rule
    # that stops early (the fixed test is the most powerful at its level): the rule is tuned
    # to give up a little power rather than keep noise; the loss is bounded here at 1 point.
    assert improvement.adaptive_keeps >= improvement.fixed_keeps - 0.01 * TARGETS


def test_runs_per_commit_are_well_below_the_maximum(noise_only: Tally, improvement: Tally) -> None:
    # mean runs: 2.03 on pure noise, 2.58 on a 3-sigma improvement, instead of 5
    assert noise_only.adaptive_runs / TARGETS < 0.5 * MAX_RUNS
    assert improvement.adaptive_runs / TARGETS < 0.6 * MAX_RUNS
