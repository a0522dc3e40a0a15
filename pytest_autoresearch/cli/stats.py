"""What a night of runs adds up to: best, baseline, ideas and draws counted, branch standings.

Pure functions over ledger runs (oldest first), shared by ``autoresearch status`` and
``autoresearch plot``. The best is :func:`pytest_autoresearch.history.best`, the plugin's own
bar; the goal is the one each row recorded (``--goal`` reads ledgers written before rows did).
An idea is a commit, a draw is one run of it: a baseline measured five times is one idea.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from ..history import best
from ..ledger import Entry
from ..verdict import GOALS, Best

COUNTED = ("keep", "discard", "crash", "timeout")
REMEASURED = "re-measured"
WRONG = "wrong"  # of the discards: tests failed (correct first)


@dataclass(frozen=True)
class Series:
    """The runs of one (test, metric) under one evaluation identity, oldest first."""

    test: str
    metric: str
    identity: str
    runs: tuple[Entry, ...]


@dataclass(frozen=True)
class Standing:
    """One branch's line in ``status --all-branches``."""

    branch: str
    best: Best | None
    ideas: Counter[str]
    last: str


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def series(runs: Iterable[Entry], latest_identity_only: bool = True) -> list[Series]:
    """Split runs by (test, metric) in order of first appearance.

    With ``latest_identity_only`` each (test, metric) keeps only the runs measured like
    its latest run: results under another evaluation identity are not comparable.
    """
    groups: dict[tuple[str, str], list[Entry]] = {}
    for run in runs:
        if run.status == "accepted":
            continue
        groups.setdefault((run.test, run.metric), []).append(run)
    out = []
    for (test, metric), members in groups.items():
        identities = list(dict.fromkeys(r.identity for r in members))
        if latest_identity_only:
            identities = [members[-1].identity]
        for ident in identities:
            out.append(Series(test, metric, ident, tuple(r for r in members if r.identity == ident)))
    return out


def earlier_identity_runs(runs: Iterable[Entry], s: Series) -> int:
    """How many runs of the same (test, metric) were measured under another identity."""
    return sum(1 for r in runs if r.test == s.test and r.metric == s.metric
               and r.identity != s.identity and r.status != "accepted")


def goal_of(runs: Sequence[Entry], s: Series, override: str | None = None) -> str:
    """The goal of a series: given, else the one its rows recorded, else min."""
    if override is not None:
        return override
    recorded = [r.extra["goal"] for r in runs
                if r.test == s.test and r.metric == s.metric and r.extra.get("goal") in GOALS]
    return str(recorded[-1]) if recorded else "min"


def baseline(runs: Sequence[Entry]) -> Best | None:
    """The first kept commit, as the bar counts it: the mean of all its draws, where the session started."""
    first = next((r for r in runs if r.status == "keep" and finite(r.value)), None)
    if first is None:
        return None
    return best([r for r in runs if r.sha == first.sha], "min")


def remeasured(run: Entry) -> bool:
    """A run of a commit measured before: another draw of an old idea, not a new one."""
    return bool(run.extra.get("remeasure"))


def wrong(run: Entry) -> bool:
    """A discard because tests failed (correct first), not because the value fell short: the change was wrong."""
    return run.status == "discard" and bool(run.extra.get("failed"))


def draws(runs: Sequence[Entry]) -> Counter[str]:
    """Runs by status (a repeat group's every draw counted), how many were re-measurements, how many wrong."""
    tally = Counter(r.status for r in runs if r.status != "accepted")
    tally[REMEASURED] = sum(1 for r in runs if remeasured(r))
    tally[WRONG] = sum(1 for r in runs if wrong(r))
    return +tally


def ideas(runs: Iterable[Entry]) -> Counter[str]:
    """Commits by their verdict: keep once kept (a later re-measurement keeps it kept), else the latest;
    and how many of the discarded were wrong."""
    latest: dict[str, Entry] = {}
    for r in runs:
        if r.status in COUNTED and (r.sha not in latest or latest[r.sha].status != "keep"):
            latest[r.sha] = r
    tally = Counter(r.status for r in latest.values())
    tally[WRONG] = sum(1 for r in latest.values() if wrong(r))
    return +tally  # only what happened: no zero counts


def finished(tally: Counter[str]) -> int:
    """How many ended (kept, discarded, crashed or timed out), of ideas or of draws."""
    return sum(tally[s] for s in COUNTED)


def keep_rate(tally: Counter[str]) -> float | None:
    """Kept over finished (keep, discard, crash, timeout), or None with none: of ``ideas``, the share of ideas that worked."""
    total = finished(tally)
    return tally["keep"] / total if total else None


def standings(runs: Sequence[Entry], goal: str) -> list[Standing]:
    """One line per branch (the ``branch`` column), best first; branches with no keep last."""
    branches: dict[str, list[Entry]] = {}
    for r in runs:
        branches.setdefault(r.branch or "(none)", []).append(r)
    lines = [Standing(name, best(members, goal), ideas(members), members[-1].timestamp)
             for name, members in branches.items()]
    sign = 1.0 if goal == "min" else -1.0
    return sorted(lines, key=lambda s: (s.best is None, sign * s.best.value if s.best else 0.0))


def parse_time(stamp: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def ago(stamp: str, now: datetime | None = None) -> str:
    """'3m ago', '2h 05m ago', '4d 3h ago'; '?' for an unreadable timestamp."""
    when = parse_time(stamp)
    if when is None:
        return "?"
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - when).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds}s ago"
    if hours == 0:
        return f"{minutes}m ago"
    if days == 0:
        return f"{hours}h {minutes % 60:02d}m ago"
    return f"{days}d {hours % 24}h ago"
