"""The verdict of a benchmark suite: a pure function of its members' values, bars and noise.

A change to shared code moves many benchmarks a little, each within its own noise, so the suite is
judged as one: the geometric mean of every member's ratio to its bar (a ratio, so benchmarks of
microseconds and of seconds weigh the same; geometric, so a 2x gain and a 2x loss cancel) must be
below 1 by more than k standard errors of its noise, no threshold broken, and no protected member
slower than its bar beyond its own noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One benchmark of the suite (goal min: seconds)."""

    test: str
    value: float
    bar: float | None  # its best kept value on the branch
    sigma: float | None = None  # standard error of value - bar, from its noise floor
    threshold: float | None = None
    protected: bool = False
    min_delta: float = 0.0  # a protected member's own tolerance, in seconds, beside its noise
    already_kept: bool = False  # this commit was kept before: a re-measurement

    @property
    def ratio(self) -> float | None:
        return self.value / self.bar if self.bar else None


@dataclass(frozen=True)
class SuiteVerdict:
    keep: bool
    reason: str
    geomean: float | None = None  # of the ratios of the members that have a bar
    sigma: float | None = None  # standard error of log(geomean); None when a member's noise is unknown
    compared: int = 0  # members with a bar

    @property
    def status(self) -> str:
        return "keep" if self.keep else "discard"

    @property
    def sigmas(self) -> float | None:
        """How many standard errors the geomean lies from 1 (negative: faster)."""
        if self.geomean is None or not self.sigma:
            return None
        return math.log(self.geomean) / self.sigma


def judge(members: Sequence[Member], k: float, beyond_noise: bool) -> SuiteVerdict:
    """Keep or discard the suite; ``beyond_noise`` (min_delta auto) asks for k standard errors."""
    if not members:
        return SuiteVerdict(False, "no benchmark measured")
    bad = [m for m in members if not math.isfinite(m.value) or m.value <= 0]
    if bad:
        return SuiteVerdict(False, f"{bad[0].test}: value {bad[0].value!r} is not a positive time")
    for m in members:
        if m.threshold is not None and m.value > m.threshold:
            return SuiteVerdict(False, f"threshold not met: {m.test} needs at most {m.threshold:g}")
    compared = [m for m in members if m.bar]
    if not compared:
        return SuiteVerdict(True, "first result: no earlier kept result to beat")
    logs = [math.log(m.value / m.bar) for m in compared if m.bar]
    geomean = math.exp(sum(logs) / len(logs))
    known = all(m.sigma is not None for m in compared)
    sigma = math.sqrt(sum((m.sigma / m.bar) ** 2 for m in compared if m.sigma and m.bar)) / len(compared) if known else None

    def verdict(keep: bool, reason: str) -> SuiteVerdict:
        return SuiteVerdict(keep, reason, geomean, sigma, len(compared))

    for m in compared:
        if m.protected and m.bar and m.value - m.bar > max(m.min_delta, k * (m.sigma or 0.0)):
            noise = f"{k:g}σ = {k * m.sigma:.3g} s" if m.sigma else "noise unknown: judged strictly"
            return verdict(False, f"protected {m.test} regressed: {m.value:.6g} s against {m.bar:.6g} s "
                                  f"(x{m.value / m.bar:.3f}; allowed {noise})")
    if all(m.already_kept for m in members):
        return verdict(True, "re-measurement of a kept commit")
    need = k * sigma if beyond_noise and sigma else 0.0
    if math.log(geomean) < -need:
        return verdict(True, "improved")
    by = f"by more than {k:g} standard errors ({math.exp(-need):.3f})" if need else "strictly"
    return verdict(False, f"geomean not below 1 {by}")


def line(verdict: SuiteVerdict, members: int, commit: str, tail: Sequence[str] = ()) -> str:
    """The suite's line an agent greps: 'autoresearch: keep suite[12 benchmarks] geomean=0.931 (-2.8σ) commit=...'."""
    geomean = f" geomean={verdict.geomean:.3f}" if verdict.geomean is not None else ""
    sigmas = f" ({verdict.sigmas:+.1f}σ)" if verdict.sigmas is not None else ""
    at = f" commit={commit}" if commit else ""
    head = f"autoresearch: {verdict.status} suite[{members} benchmark{'s' if members != 1 else ''}]{geomean}{sigmas}{at}"
    return " | ".join([head, *([] if verdict.keep else [verdict.reason]), *tail])
