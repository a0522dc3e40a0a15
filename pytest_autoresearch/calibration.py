"""A/A calibration: what one commit measured against itself says about the noise of this host.

``autoresearch calibrate N`` has ``pytest --autoresearch --autoresearch-calibrate N`` run the
branch's best commit N times in pairs, in a random balanced order, through the very path a paired
verdict takes (``rerun.BarRerun`` in a temporary worktree: same runner, device lease, budget and
frozen scorer). Starting pytest rather than copying its run path keeps one path to trust; the
ledger rows it writes (``extra.calibration``) are the only channel back. This module is the pure
part: from those rows, the noise of one draw and of a paired difference, the order effect (first
against second draw of a pair), the drift over the calibration, and how many of N no-change
candidates the settings the calibration ran under would have kept.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import paired
from .covariate import COVARIATE, MIN_DOF, MIN_T, Adjustment, fit, reading
from .ledger import Entry
from .noise import Noise, required_delta

KEY = "calibration"  # the extra field naming the calibration a ledger row belongs to
MIN_PAIRS = 2  # the fewest pairs a report can be made of (a spread needs two)


@dataclass(frozen=True)
class Rule:
    """The verdict's settings the calibration ran under, as its rows recorded them."""

    min_delta: float | str  # "auto" or a fixed margin
    noise_k: float
    paired: str  # auto, always, never
    pairs: int  # pairs a paired verdict runs

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> Rule:
        rule = extra.get("rule") or {}
        fixed = rule.get("min_delta", "auto")
        return cls(fixed if fixed == "auto" else float(fixed), float(rule.get("noise_k", 2.0)),
                   str(rule.get("paired", paired.AUTO)), int(rule.get("pairs", paired.DEFAULT_PAIRS)))

    def text(self) -> str:
        margin = "min_delta auto" if self.min_delta == "auto" else f"min_delta {self.min_delta:g}"
        return f"{margin}, noise_k {self.noise_k:g}, paired {self.paired} ({self.pairs} pairs)"


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float

    @property
    def z(self) -> float:
        return self.value / self.se if self.se > 0 else math.copysign(math.inf, self.value) if self.value else 0.0


@dataclass(frozen=True)
class Report:
    """What one calibration measured (one benchmark, one commit, one host)."""

    calibration: str
    test: str
    metric: str
    goal: str
    commit: str
    sha: str
    which: str  # why this commit: the best kept one, or the last judged one when none is kept
    host: str
    pairs: int
    crashed: int  # draws that gave no value
    sigma: float  # the noise of one draw: standard deviation of every draw
    sigma_pair: float  # the noise of a paired difference (B - A): about sigma * sqrt(2) without order effect
    order: Estimate  # second draw of a pair minus the first, averaged: an order effect if far from 0
    drift: Estimate  # least-squares slope of the value per draw, in the order they ran
    kept: int  # of ``pairs`` no-change candidates, kept under ``rule``
    kept_unpaired: int  # ... kept had no verdict been paired
    rule: Rule
    loaded: int = 0  # draws with a machine-load reading (covariate.py)
    adjustment: Adjustment | None = None  # the load correction these draws alone support, if any

    @property
    def drift_total(self) -> float:
        """How far the drift moved the value from the first draw to the last."""
        return self.drift.value * (2 * self.pairs - 1)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(adjustment=asdict(self.adjustment) if self.adjustment is not None else None,
                   order={**asdict(self.order), "z": _finite(self.order.z)},
                   drift={**asdict(self.drift), "z": _finite(self.drift.z), "total": self.drift_total})
        return out

    def lines(self) -> list[str]:
        order, drift = self.order, self.drift
        return [
            f"calibration of {self.test} {self.metric} on {self.host}: {self.commit} ({self.which}) against itself, "
            f"{self.pairs} pairs in a random order" + (f"; {self.crashed} draws crashed" if self.crashed else ""),
            f"  one draw:          sigma {self.sigma:.4g}",
            f"  paired difference: sigma {self.sigma_pair:.4g} (sigma * sqrt 2 = {self.sigma * math.sqrt(2):.4g} "
            "with no order effect)",
            f"  order effect:      second - first {order.value:+.4g} +/- {order.se:.2g} ({_z(order)})",
            f"  drift:             {drift.value:+.4g} per draw +/- {drift.se:.2g} ({_z(drift)}), "
            f"{self.drift_total:+.4g} over the calibration",
            f"  no-change candidates kept: {self.kept} of {self.pairs} under {self.rule.text()}; "
            f"{self.kept_unpaired} of {self.pairs} unpaired",
            f"  load-adjusted:     {self._load()}",
        ]

    def _load(self) -> str:
        a = self.adjustment
        if a is None:
            return (f"not used ({self.loaded} draws with a load reading; the verdict corrects for load once draws "
                    f"of one commit give {MIN_DOF} degrees of freedom and theta {MIN_T:g} standard errors from 0)")
        return (f"sigma {a.sigma:.4g} (theta {a.theta:+.4g} per unit of the {COVARIATE} reading, "
                f"{a.theta / a.se:+.1f} standard errors, around {a.reference:.3g})")


def _z(e: Estimate) -> str:
    z = e.z
    if not math.isfinite(z):
        return "no spread"
    return f"{z:+.1f} standard errors" + (": real" if abs(z) >= 3 else ": within chance")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def report(rows: Sequence[Entry]) -> Report:
    """The report of one calibration's completed rows (one ``extra.calibration`` id), in the order they ran."""
    first = rows[0]
    done = sorted((r for r in rows if isinstance(r.extra.get("draw"), int)), key=lambda r: r.extra["draw"])
    values = {(r.extra["pair"], r.extra["side"]): r.value for r in done
              if r.status in ("keep", "discard") and r.value is not None and math.isfinite(r.value)}
    complete = sorted({p for p, _ in values if (p, "a") in values and (p, "b") in values})
    if len(complete) < MIN_PAIRS:
        raise ValueError(f"{len(complete)} complete pairs: a calibration needs at least {MIN_PAIRS}")
    a = [values[(p, "a")] for p in complete]
    b = [values[(p, "b")] for p in complete]
    firsts = {r.extra["pair"]: r.extra["side"] for r in done if r.extra.get("first")}
    order = [values[(p, "b")] - values[(p, "a")] if firsts.get(p) == "a" else values[(p, "a")] - values[(p, "b")]
             for p in complete]
    timeline = [v for v in (values.get((r.extra["pair"], r.extra["side"])) for r in done) if v is not None]
    rule = Rule.from_extra(first.extra)
    goal = str(first.extra.get("goal", "min"))
    sigma = statistics.stdev(timeline)
    floor = Noise(sigma, len(timeline) - 1, 1)
    loaded = [(r.value, x) for r in done if r.status in ("keep", "discard") and r.value is not None
              and math.isfinite(r.value) and (x := reading(r.extra)) is not None]
    kept, unpaired = keeps(a, b, goal, rule, floor)
    return Report(
        calibration=str(first.extra[KEY]), test=first.test, metric=first.metric, goal=goal, commit=first.commit,
        sha=first.sha, which=str(first.extra.get("calibrated", "")), host=first.host, pairs=len(complete),
        crashed=sum(r.status in ("crash", "timeout") for r in rows), sigma=sigma,
        sigma_pair=statistics.stdev([y - x for x, y in zip(a, b)]),
        order=Estimate(statistics.fmean(order), statistics.stdev(order) / math.sqrt(len(order))),
        drift=slope(timeline), kept=kept, kept_unpaired=unpaired, rule=rule,
        loaded=len(loaded), adjustment=fit([loaded]),
    )


def slope(values: Sequence[float]) -> Estimate:
    """Least-squares slope of ``values`` against their position, with its standard error."""
    n = len(values)
    xs = range(n)
    mx, my = (n - 1) / 2, statistics.fmean(values)
    sxx = sum((x - mx) ** 2 for x in xs)
    beta = sum((x - mx) * (y - my) for x, y in zip(xs, values)) / sxx
    if n < 3:
        return Estimate(beta, math.inf)
    residual = sum((y - my - beta * (x - mx)) ** 2 for x, y in zip(xs, values)) / (n - 2)
    return Estimate(beta, math.sqrt(residual / sxx))


def keeps(a: Sequence[float], b: Sequence[float], goal: str, rule: Rule, floor: Noise) -> tuple[int, int]:
    """How many of the no-change candidates B_i the settings keep, paired as ``rule`` says and unpaired.

    Candidate i is draw B_i judged against the bar of every A draw, with the floor this calibration
    measured. Unpaired, it is kept when it beats that bar by the margin (``min_delta``, or under auto k
    standard errors of the difference). Paired (``always``, or ``auto`` when in doubt: within k
    standard errors of keeping), the ``rule.pairs`` pairs from i on (cyclically) are judged as
    ``paired.judge`` judges a verdict's pairs.
    """
    n = len(a)
    bar = statistics.fmean(a)
    sign = 1.0 if goal == "min" else -1.0
    se = floor.of_difference(1, n)
    margin = required_delta(floor, 1, n, rule.noise_k) if rule.min_delta == "auto" else float(rule.min_delta)
    fixed = 0.0 if rule.min_delta == "auto" else float(rule.min_delta)
    kept = unpaired = 0
    count = min(max(rule.pairs, MIN_PAIRS), n)
    for i, candidate in enumerate(b):
        gain = sign * (bar - candidate)
        unpaired += gain > margin
        doubt = rule.paired == paired.ALWAYS or (
            rule.paired == paired.AUTO and se > 0 and gain > margin - rule.noise_k * se)
        if not doubt:  # under auto, out of doubt means short of the margin by k standard errors
            kept += gain > margin
            continue
        window = [(i + j) % n for j in range(count)]
        judged = paired.judge(paired.Pairs(tuple(a[j] for j in window), tuple(b[j] for j in window)),
                              k=rule.noise_k, min_delta=fixed, floor=floor)
        kept += -sign * judged.delta > judged.margin
    return kept, unpaired


def reports(rows: Sequence[Entry], ids: Sequence[str]) -> list[Report]:
    """One report per calibration id, from the ledger's runs (completed lines only)."""
    out = []
    for cal in ids:
        mine = [r for r in rows if r.extra.get(KEY) == cal]
        if mine:
            out.append(report(mine))
    return out
