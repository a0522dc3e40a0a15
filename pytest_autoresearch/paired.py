"""Paired re-measurement: a verdict in doubt is settled by running the bar commit beside the candidate.

A machine's speed drifts between moments (a neighbour's job, heat, another host); a verdict that
compares the candidate measured now with the bar measured an hour ago judges the drift too. Two
draws made side by side share their moment, so their difference cancels it. This module is the
pure part: when a verdict is in doubt, the order of each pair, and the margin paired differences
must beat. ``trial.py`` runs the pairs; ``bar.py`` judges them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from statistics import NormalDist

from .ledger import Entry
from .noise import Noise

AUTO, ALWAYS, NEVER = "auto", "always", "never"
MODES = (AUTO, ALWAYS, NEVER)
DEFAULT_PAIRS = 3  # the fewest pairs a paired verdict runs
MAX_BAR_AGE = timedelta(hours=2)  # bar draws older than this are measured again beside the candidate


def parse_mode(text: str, where: str) -> str:
    """``auto`` (pair a verdict in doubt), ``always`` or ``never``."""
    word = text.strip().lower()
    if word not in MODES:
        raise ValueError(f"{where}: expected one of {', '.join(MODES)}, got {text!r}")
    return word


def pairs_for(repeat: int) -> int:
    """How many pairs settle a verdict: the repeat budget (``--autoresearch-repeat``), at least three."""
    return max(repeat, DEFAULT_PAIRS)


def doubt(
    mode: str,
    *,
    gain: float,
    margin: float,
    se: float | None,
    k: float,
    bar_runs: Sequence[Entry],
    host: str,
    device: str | None,
    now: datetime | None = None,
) -> str:
    """Why the verdict on this candidate must be paired, or "" when its unpaired draws decide.

    ``gain`` is how much the candidate's mean beats the bar's (positive: better), ``margin`` what
    it must beat, ``se`` the standard error of the difference from the noise floor (None:
    unknown). Under ``auto`` a verdict is in doubt when the bar's draws were all measured on
    another host or device, when the newest is older than :data:`MAX_BAR_AGE`, or when the
    candidate keeps or comes within ``k`` standard errors of keeping: a keep raises the bar for
    every later commit, so it must hold beside the bar, not only against a bar measured earlier.
    """
    if mode == NEVER or not bar_runs:
        return ""
    if mode == ALWAYS:
        return "autoresearch_paired = always"
    here = [r for r in bar_runs if r.host == host]
    if not here:
        return f"the bar was measured on another host ({bar_runs[-1].host})"
    if device is not None and not any(str(r.extra.get("device", "")) == device for r in here):
        return f"the bar was measured on another device than {device}"
    newest = max(_stamp(r) for r in bar_runs)
    age = (now or datetime.now(timezone.utc)) - newest
    if age > MAX_BAR_AGE:
        return f"the bar's newest draw is {age.total_seconds() / 3600:.1f} h old"
    if se is not None and se > 0 and gain > margin - k * se:
        return f"within the noise of the bar ({gain / se:+.1f}σ of gain, {margin / se:.1f}σ needed)"
    return ""


def _stamp(run: Entry) -> datetime:
    try:
        stamp = datetime.fromisoformat(run.timestamp)
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def order(pairs: int, *seed: object) -> list[bool]:
    """For each pair, whether the bar runs first: half of the pairs each way, shuffled.

    Balanced, so a fixed-order effect (the first draw of a pair always slower) cancels in the
    mean instead of leaning every difference one way; shuffled, so it does not line up with a
    drift either. The generator is seeded by ``seed`` (the two commits and the draws already
    made): a verdict can be replayed, and every re-run draws a new order.
    """
    rng = random.Random(hashlib.sha256(repr(seed).encode()).digest())
    firsts = [True] * (pairs // 2) + [False] * (pairs // 2)
    if pairs % 2:
        firsts.append(rng.random() < 0.5)
    rng.shuffle(firsts)
    return firsts


@dataclass(frozen=True)
class Pairs:
    """Draws of the bar commit and of the candidate, made side by side: pair i is (bar[i], candidate[i])."""

    bar: tuple[float, ...]
    candidate: tuple[float, ...]
    bar_load: tuple[float | None, ...] = ()  # each draw's covariate (covariate.py), when it was measured
    candidate_load: tuple[float | None, ...] = ()

    @property
    def differences(self) -> list[float]:
        """candidate - bar, per pair: the delta with the drift of the moment taken out."""
        return [c - b for b, c in zip(self.bar, self.candidate)]

    @property
    def n(self) -> int:
        return len(self.differences)


@dataclass(frozen=True)
class Paired:
    """What the paired differences say: their mean, its standard error and the margin to beat."""

    delta: float  # mean of candidate - bar
    se: float  # standard error of that mean
    dof: int  # degrees of freedom behind se
    margin: float  # the gain needed for a keep: max(min_delta, t quantile * se)
    n: int

    def text(self) -> str:
        """What the ``-q`` line and the red message say: ``paired: 3 pairs, delta -0.0042 +/- 0.0011``."""
        return f"paired: {self.n} pairs, delta {self.delta:+.4g} +/- {self.se:.2g}"


def judge(pairs: Pairs, *, k: float, min_delta: float, floor: Noise | None) -> Paired:
    """The mean paired difference and the margin it must beat (in the goal's direction).

    The variance of one difference is estimated from the pairs themselves, pooled with the
    noise floor when one is known (a difference of two draws has twice a draw's variance), so
    that three pairs do not judge on two degrees of freedom alone. The margin is the Student t
    quantile at the confidence ``k`` standard errors give under a known sigma (one-sided P(Z > k),
    2.3% at k = 2) times the standard error: the same false keep rate as ``min_delta = auto``.
    A fixed ``min_delta`` larger than that still applies.
    """
    diffs = pairs.differences
    if len(diffs) < 2:
        raise ValueError(f"a paired verdict needs at least 2 pairs, got {len(diffs)}")
    squares, dof = statistics.variance(diffs) * (len(diffs) - 1), len(diffs) - 1
    if floor is not None:
        squares += 2 * floor.sigma**2 * floor.dof
        dof += floor.dof
    se = math.sqrt(squares / dof / len(diffs))
    margin = max(min_delta, t_quantile(NormalDist().cdf(k), dof) * se)
    return Paired(statistics.fmean(diffs), se, dof, margin, len(diffs))


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, dof: int) -> float:
    """The Student t quantile at ``p`` (0.5 < p < 1) for ``dof`` degrees of freedom.

    By bisection on the distribution function, integrated with Simpson's rule: exact to far
    better than a verdict needs, with no statistics library.
    """
    if not 0.5 < p < 1 or dof < 1:
        raise ValueError(f"need 0.5 < p < 1 and dof >= 1, got {p}, {dof}")
    if dof > 1000:
        return NormalDist().inv_cdf(p)
    low, high = 0.0, 1.0
    while _t_cdf(high, dof) < p:
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, dof) < p else (low, mid)
    return (low + high) / 2


def _t_cdf(x: float, dof: int, steps: int = 400) -> float:
    scale = math.exp(math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2)) / math.sqrt(dof * math.pi)

    def density(t: float) -> float:
        return scale * math.pow(1 + t * t / dof, -(dof + 1) / 2)

    h = x / steps
    inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 + h / 3 * (density(0.0) + inner + density(x))
