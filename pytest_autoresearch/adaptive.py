"""Adaptive repeats: run a commit again only while its verdict could still go either way.

``--autoresearch-repeat auto:N`` (N = 5 by default) runs a commit at most N times and asks
``next_step`` after each run. The verdict itself is always the one ``verdict.judge`` gives
the mean of the runs so far with ``min_delta = auto`` (k standard errors of the difference
of the two means); the rule only decides when more runs stop being worth their cost.

The rule (predictive stopping, with a futility bound): with sigma known and n of N runs
done, the mean after all N runs is predicted, under a flat prior on the commit's true
value, as normal around the mean so far with standard deviation sigma * sqrt((N-n)/(N*n)).
Stop and discard once P(keep after N runs) <= 3%; stop and keep once P(keep after N runs)
>= 99.5% and the n runs already pass the bar; otherwise run again, and after N runs judge.
The keep side is stricter on purpose: a false keep raises the bar for every later commit,
while a missed idea stays in the archive (``history.near_misses``) to be tried again.

Error rates (tests/unit/test_adaptive.py: k = 2, N = 5, seeded normal noise, bars from 1 to
5 runs, the same draws given to both rules): pure noise is kept 2.18% of the time against
2.23% with 5 fixed runs, a true improvement of 3 sigma 93.5% against 93.7%, using 2.03 runs
on pure noise and 2.58 on the improvement instead of 5. No rule that stops early can beat
the fixed N-run test on both error rates at once (Neyman-Pearson: the fixed test is the most
powerful at its level); this one trades a little power for no more false keeps.

Without a noise floor the rule cannot tell doubt from difference: one run, judged as it is.
Without a bar (the first result of a leaderboard) every run sharpens the bar the next
commits meet and the noise floor itself, so the baseline runs all N times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean
from typing import Literal

from .noise import CALIBRATE, Noise, required_delta
from .settings import DEFAULT_NOISE_K
from .verdict import GOALS, improves

DEFAULT_MAX_RUNS = 5
KEEP_RISK = 0.005  # stop early with keep only when P(keep after N runs) >= 1 - KEEP_RISK
DISCARD_RISK = 0.03  # stop early with discard once P(keep after N runs) <= DISCARD_RISK
AUTO = "auto"

Action = Literal["keep", "discard", "again"]
_NORMAL = NormalDist()


@dataclass(frozen=True)
class RepeatPlan:
    """How often to run each commit: exactly ``max_runs`` times, or adaptively up to it."""

    max_runs: int
    adaptive: bool = False

    def __str__(self) -> str:
        return f"{AUTO}:{self.max_runs}" if self.adaptive else str(self.max_runs)


@dataclass(frozen=True)
class Step:
    """What to do after the runs so far: stop with a verdict, or run the commit again."""

    action: Action
    reason: str
    p_keep: float | None = None  # predicted probability that all max_runs runs would keep

    @property
    def stop(self) -> bool:
        return self.action != "again"


def parse_repeat(text: str, where: str) -> RepeatPlan:
    """``"3"`` (three runs), ``"auto"`` (adaptive, at most 5) or ``"auto:8"`` (at most 8)."""
    word = text.strip().lower()
    fix = f'write a whole number such as 3, or "{AUTO}" / "{AUTO}:{DEFAULT_MAX_RUNS}" for adaptive repeats'
    if word == AUTO:
        return RepeatPlan(DEFAULT_MAX_RUNS, adaptive=True)
    adaptive = word.startswith(AUTO + ":")
    count = word[len(AUTO) + 1:] if adaptive else word
    try:
        runs = int(count)
    except ValueError:
        raise ValueError(f"{where}: {fix}, got {text!r}") from None
    least = 2 if adaptive else 1
    if runs < least:
        need = "adaptive repeats need a maximum of 2 runs or more" if adaptive else "at least 1 run"
        raise ValueError(f"{where}: {need}: {fix}, got {text!r}")
    return RepeatPlan(runs, adaptive)


def next_step(
    draws: Sequence[float],
    *,
    bar: float | None,
    n_bar: int,
    goal: str,
    sigma: float | None,
    max_runs: int = DEFAULT_MAX_RUNS,
    k: float = DEFAULT_NOISE_K,
    min_delta: float | None = None,
) -> Step:
    """Stop with keep or discard, or run again, after ``draws`` (the new commit's values so far).

    ``bar`` is the mean of ``n_bar`` runs of the best kept ancestor (None: no bar yet),
    ``sigma`` the per-run noise floor (``noise.Noise.sigma``; None: unknown). The margin to
    beat is ``k * sigma * sqrt(1/n + 1/n_bar)`` as under ``min_delta = auto``, or the fixed
    ``min_delta`` when one is given.
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {GOALS}, not {goal!r}")
    if max_runs < 1 or (bar is not None and n_bar < 1):
        raise ValueError(f"need max_runs >= 1 and, with a bar, n_bar >= 1: got {max_runs}, {n_bar}")
    n = len(draws)
    if n == 0:
        return Step("again", "no run yet")
    if not all(math.isfinite(v) for v in draws):
        return Step("discard", f"run {n} gave {draws[-1]!r}: a value that is not finite is never kept")
    if bar is None:
        if n < max_runs:
            return Step("again", f"run {n} of {max_runs}: no bar yet, so every run sharpens the baseline")
        return Step("keep", f"all {max_runs} runs of the baseline done")
    mean = fmean(draws)

    def passes(runs: int) -> bool:
        return improves(mean, bar, goal, _margin(sigma or 0.0, runs, n_bar, k, min_delta))

    verdict: Action = "keep" if passes(n) else "discard"
    if sigma is None:
        return Step(verdict, f"noise floor unknown: one run, judged as it is (measure the floor with {CALIBRATE})")
    if n >= max_runs:
        return Step(verdict, f"all {max_runs} runs done")
    if sigma == 0:
        return Step(verdict, "no noise (repeated runs agree exactly): more runs cannot change the verdict")
    gain = bar - mean if goal == "min" else mean - bar
    spread = sigma * math.sqrt((max_runs - n) / (max_runs * n))
    p_keep = _NORMAL.cdf((gain - _margin(sigma, max_runs, n_bar, k, min_delta)) / spread)
    odds = f"P(keep after {max_runs} runs) = {p_keep:.1%}"
    if p_keep <= DISCARD_RISK:
        return Step("discard", f"stopped after {n} of {max_runs} runs: {odds}", p_keep)
    if p_keep >= 1 - KEEP_RISK and verdict == "keep":
        return Step("keep", f"stopped after {n} of {max_runs} runs: {odds}", p_keep)
    return Step("again", f"run {n} of {max_runs}: the verdict could still go either way ({odds})", p_keep)


def _margin(sigma: float, n: int, n_bar: int, k: float, min_delta: float | None) -> float:
    """The improvement n runs must show: ``noise.required_delta``, the verdict's own margin."""
    if min_delta is not None:
        return min_delta
    return required_delta(Noise(sigma, dof=0, groups=0), n, n_bar, k)  # only sigma enters the margin
