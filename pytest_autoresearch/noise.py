"""The noise floor: how much a result moves when nothing but chance changes.

Draws of one commit (a repeat group or separate re-runs) differ only by noise. Their spread,
pooled over every commit measured more than once, estimates the per-run standard deviation
sigma. Assumptions: runs are independent draws, and the noise has the
same sigma for every commit measured under one evaluation identity on one host (the floor is
kept per host: ``history.noise_floor``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CALIBRATE = "autoresearch calibrate"  # the one command that measures a floor: every hint names it

@dataclass(frozen=True)
class Noise:
    sigma: float  # per-run standard deviation
    dof: int  # degrees of freedom behind it: sum of (runs - 1) over repeated measurements
    groups: int  # how many repeated measurements it pools

    def of_difference(self, n_new: int, n_bar: int) -> float:
        """Standard error of (mean of n_new runs) - (mean of n_bar runs)."""
        return self.sigma * math.sqrt(1 / n_new + 1 / n_bar)


def pooled(groups: Iterable[Sequence[float]]) -> Noise | None:
    """Pooled standard deviation over groups of repeated runs; None without any repeats."""
    squares, dof, count = 0.0, 0, 0
    for values in groups:
        if len(values) < 2:
            continue
        squares += statistics.variance(values) * (len(values) - 1)
        dof += len(values) - 1
        count += 1
    if dof == 0:
        return None
    return Noise(math.sqrt(squares / dof), dof, count)


def required_delta(noise: Noise, n_new: int, n_bar: int, k: float) -> float:
    """The improvement a result must exceed to be kept under ``min_delta = "auto"``.

    k standard errors of the difference of the two means: for pure noise with a known sigma,
    a one-sided false keep rate of P(Z > k), 2.3% at k = 2.
    """
    return k * noise.of_difference(n_new, n_bar)


def margins(noise: Noise, n_bar: int, k: float, at: Sequence[int] = (1, 3)) -> tuple[float, ...]:
    """What an idea measured n times must beat a bar of ``n_bar`` draws by, for each n in ``at``."""
    return tuple(required_delta(noise, n, n_bar, k) for n in at)


def spread(values: Sequence[float]) -> float | None:
    """Sample standard deviation of one measurement's runs (None for a single run)."""
    return statistics.stdev(values) if len(values) > 1 else None
