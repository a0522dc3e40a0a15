"""Keep or discard: a pure function of the new value, the threshold and the recorded best.

A threshold is a limit (met when the value is at most / at least it); the recorded best is
a bar to beat strictly, by more than ``min_delta``. A value that is not finite is never kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GOALS = ("min", "max")


@dataclass(frozen=True)
class Best:
    """A kept commit's result as a bar: the mean of its ``n`` draws."""

    value: float
    commit: str  # short sha, as people read it
    n: int = 1
    sha: str = ""
    description: str = ""


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str
    best: Best | None = None
    delta: float | None = None

    @property
    def status(self) -> str:
        return "keep" if self.keep else "discard"


def better(a: float, b: float, goal: str) -> bool:
    """Whether ``a`` is strictly better than ``b`` under ``goal``."""
    return a < b if goal == "min" else a > b


def improves(value: float, bar: float, goal: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``bar`` by more than ``min_delta``."""
    return better(value, bar - min_delta if goal == "min" else bar + min_delta, goal)


def meets_threshold(value: float, threshold: float, goal: str) -> bool:
    return value <= threshold if goal == "min" else value >= threshold


def judge(
    value: float | None,
    *,
    goal: str,
    threshold: float | None = None,
    best: Best | None = None,
    min_delta: float = 0.0,
    already_kept: bool = False,
) -> Verdict:
    """Judge one measurement.

    ``already_kept`` means this very commit has a kept result: the run is another
    measurement of it and stays kept, so re-running a commit never resets one's own best.
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {GOALS}, not {goal!r}")
    if value is None or not math.isfinite(value):
        return Verdict(False, f"value is {value!r}, not a finite number", best)
    if threshold is not None and not meets_threshold(value, threshold, goal):
        word = "at most" if goal == "min" else "at least"
        return Verdict(False, f"threshold not met: need {word} {threshold:g}", best)
    if already_kept:
        note = "re-measurement of a kept commit"
        delta = None if best is None else value - best.value
        if best is not None and not improves(value, best.value, goal, min_delta):
            note += " (its mean no longer beats the bar: a lucky first draw?)"
        return Verdict(True, note, best, delta)
    if best is None:
        return Verdict(True, "first result: no earlier kept result to beat")
    delta = value - best.value
    if improves(value, best.value, goal, min_delta):
        return Verdict(True, "improved", best, delta)
    need = f"by more than {min_delta:g}" if min_delta else "strictly"
    return Verdict(False, f"not better than the best {need}", best, delta)
