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
from typing import Any

from .paired import ALWAYS, NEVER

NOT_PAIRED = ("not paired: a suite is judged on this commit's own draws against the bars measured earlier "
              "(its bar commit is not re-run beside it)")
REMEASURED = "re-measurement of a kept commit"


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
    regressed: str = ""  # the protected member that regressed beyond its noise, if one did
    unpaired: str = ""  # NOT_PAIRED when a single benchmark's verdict this close would have been paired

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

    def verdict(keep: bool, reason: str, regressed: str = "") -> SuiteVerdict:
        return SuiteVerdict(keep, reason, geomean, sigma, len(compared), regressed)

    for m in compared:
        if m.protected and m.bar and m.value - m.bar > max(m.min_delta, k * (m.sigma or 0.0)):
            noise = f"{k:g}σ = {k * m.sigma:.3g} s" if m.sigma else "noise unknown: judged strictly"
            return verdict(False, f"protected {m.test} regressed: {m.value:.6g} s against {m.bar:.6g} s "
                                  f"(x{m.value / m.bar:.3f}; allowed {noise})", m.test)
    if all(m.already_kept for m in members):
        return verdict(True, REMEASURED)
    need = k * sigma if beyond_noise and sigma else 0.0
    if math.log(geomean) < -need:
        return verdict(True, "improved")
    by = f"by more than {k:g} standard errors ({math.exp(-need):.3f})" if need else "strictly"
    return verdict(False, f"geomean not below 1 {by}")


def unpaired(verdict: SuiteVerdict, mode: str, k: float, beyond_noise: bool) -> str:
    """:data:`NOT_PAIRED` where a single benchmark's verdict would have been paired (``mode``
    ``always``; ``auto``: a keep, or a geomean within k standard errors of keeping, as
    :func:`paired.doubt` asks), else "".

    A suite is not paired: its bar is one commit per member, and re-running each member's bar beside
    the candidate, in fresh pytest processes of a checkout, is a verdict of its own still to build.
    """
    if mode == NEVER or verdict.geomean is None or not verdict.compared or verdict.reason == REMEASURED:
        return ""
    if mode == ALWAYS or verdict.keep:
        return NOT_PAIRED
    sigmas = verdict.sigmas  # the margin is k of them under min_delta auto, else none
    return NOT_PAIRED if sigmas is not None and sigmas < (0.0 if beyond_noise else k) else ""


@dataclass(frozen=True)
class Ratio:
    """A member as a suite's reports show it: its judged value against its bar."""

    test: str
    value: float | None  # the mean of its draws the verdict judged
    bar: float | None
    ratio: float | None


@dataclass(frozen=True)
class Summary:
    """One suite verdict as every report shows it: the plugin's ``-q`` line and ``--json``, and
    ``autoresearch status``, ``log``, ``show`` and ``plot`` (read back by :func:`history.suites`)."""

    id: str
    status: str  # keep, discard, or crash (interrupted)
    statistic: str
    size: int  # benchmarks in the suite, failed ones included
    commit: str
    verdict: SuiteVerdict
    members: tuple[Ratio, ...]  # those measured to the end, in the order they ran

    def line(self, tail: Sequence[str] = ()) -> str:
        return line(self.verdict, self.size, self.commit, [*([self.verdict.unpaired] if self.verdict.unpaired else []),
                                                          *tail], self.status)

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        return {"id": self.id, "status": self.status, "benchmarks": self.size, "statistic": self.statistic,
                "commit": self.commit or None, "geomean": v.geomean, "sigma_log": v.sigma, "sigmas": v.sigmas,
                "reason": v.reason, "regressed": v.regressed or None, "paired": v.unpaired or None,
                "members": [m.test for m in self.members],
                "ratios": {m.test: m.ratio for m in self.members},
                "line": self.line()}


def line(verdict: SuiteVerdict, members: int, commit: str, tail: Sequence[str] = (), status: str = "") -> str:
    """The suite's line an agent greps: 'autoresearch: keep suite[12 benchmarks] geomean=0.931 (-2.8σ) commit=...'."""
    geomean = f" geomean={verdict.geomean:.3f}" if verdict.geomean is not None else ""
    sigmas = f" ({verdict.sigmas:+.1f}σ)" if verdict.sigmas is not None else ""
    at = f" commit={commit}" if commit else ""
    head = (f"autoresearch: {status or verdict.status} suite[{members} benchmark{'s' if members != 1 else ''}]"
            f"{geomean}{sigmas}{at}")
    return " | ".join([head, *([] if verdict.keep else [verdict.reason]), *tail])
