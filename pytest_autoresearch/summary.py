"""What a night of runs adds up to: best, baseline, counts, lucky draws, branch standings.

Pure functions over ledger runs (oldest first), shared by ``autoresearch status`` and
``autoresearch plot``. The goal (min or max) is not a ledger column, so it is inferred
from the rows themselves; a best is computed the way the plugin computes the bar: the
best kept commit, repeated measurements of one commit counting as their mean.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from .history import measurements
from .ledger import Entry
from .verdict import GOALS, better

COUNTED = ("keep", "discard", "crash", "timeout")


@dataclass(frozen=True)
class Goal:
    """The goal of one series and how it was found, for the reader to judge."""

    goal: str
    how: str
    ambiguous: bool = False


@dataclass(frozen=True)
class Result:
    """A commit's kept value (the mean of its measurements) as a status line shows it."""

    value: float
    commit: str
    description: str
    draws: int
    sha: str


@dataclass(frozen=True)
class Series:
    """The runs of one (test, metric) under one evaluation identity, oldest first."""

    test: str
    metric: str
    identity: str
    runs: tuple[Entry, ...]


@dataclass(frozen=True)
class Lucky:
    """A kept commit whose later draws pulled its mean back behind the bar it once beat."""

    commit: str
    description: str
    bar: float
    first: float
    mean: float
    draws: int


@dataclass(frozen=True)
class Standing:
    """One branch's line in ``status --all-branches``."""

    branch: str
    best: Result | None
    counts: Counter[str]
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
        if run.status == "baseline":
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
               and r.identity != s.identity and r.status != "baseline")


def infer_goal(runs: Sequence[Entry], override: str | None = None) -> Goal:
    """min or max: stated on a row, else how kept values beat their bars, else their order."""
    if override is not None:
        return Goal(override, "given")
    stated = [r.extra["goal"] for r in runs if r.extra.get("goal") in GOALS]
    if stated:
        return Goal(str(stated[-1]), "recorded")
    votes: Counter[str] = Counter()
    beat: dict[tuple[str, str], tuple[float, list[float]]] = {}
    for r in runs:  # a fresh keep over a bar: its measurement (the mean of its draws) beat the bar
        bar = r.extra.get("bar")
        if (r.status == "keep" and not str(r.extra.get("reason", "")).startswith("re-measurement")
                and isinstance(bar, (int, float)) and r.value is not None and finite(r.value)):
            beat.setdefault((r.sha, r.measurement or r.run_id), (float(bar), []))[1].append(r.value)
    for bar, values in beat.values():
        mean = sum(values) / len(values)
        if mean != bar:
            votes["min" if mean < bar else "max"] += 1
    if not votes:
        firsts = [v for _, v in _first_keeps(runs)]
        for a, b in zip(firsts, firsts[1:]):
            if a != b:
                votes["min" if b < a else "max"] += 1
    if not votes:
        return Goal("min", "assumed: too few kept results to tell", ambiguous=True)
    if len(votes) > 1:
        goal = votes.most_common(1)[0][0]
        return Goal(goal, "inferred, but the kept results disagree", ambiguous=True)
    return Goal(next(iter(votes)), "inferred from the kept results")


def goal_of(runs: Sequence[Entry], s: Series, override: str | None = None) -> Goal:
    """The goal of a series, judged from every run of its test and metric, on any branch."""
    return infer_goal([r for r in runs if r.test == s.test and r.metric == s.metric], override)


def _first_keeps(runs: Iterable[Entry]) -> list[tuple[str, float]]:
    """(sha, value) of each commit's first kept finite value, oldest first."""
    seen: dict[str, float] = {}
    for r in runs:
        if r.status == "keep" and finite(r.value) and r.sha not in seen:
            assert r.value is not None
            seen[r.sha] = r.value
    return list(seen.items())


def _descriptions(runs: Iterable[Entry]) -> dict[str, tuple[str, str]]:
    return {r.sha: (r.commit, r.description) for r in runs}


def best(runs: Sequence[Entry], goal: str) -> Result | None:
    """The best kept result: the bar the next commit on top of these runs will face."""
    kept = [r for r in runs if r.status == "keep"]
    names = _descriptions(kept)
    winner: Result | None = None
    for (sha, _), values in measurements(kept).items():
        mean = sum(values) / len(values)
        if winner is None or better(mean, winner.value, goal):
            commit, description = names[sha]
            winner = Result(mean, commit, description, len(values), sha)
    return winner


def baseline(runs: Iterable[Entry]) -> Result | None:
    """The first kept result: where the session started."""
    for r in runs:
        if r.status == "keep" and finite(r.value):
            assert r.value is not None
            return Result(r.value, r.commit, r.description, 1, r.sha)
    return None


def counts(runs: Iterable[Entry]) -> Counter[str]:
    return Counter(r.status for r in runs)


def keep_rate(tally: Counter[str]) -> float | None:
    """Kept runs over judged runs (keep, discard, crash, timeout), or None with none."""
    judged = sum(tally[s] for s in COUNTED)
    return tally["keep"] / judged if judged else None


def lucky_draws(runs: Sequence[Entry], goal: str) -> list[Lucky]:
    """Kept commits whose mean over every finite draw does not beat the bar they were kept over."""
    first_keep: dict[str, Entry] = {}
    draws: dict[str, list[float]] = {}
    for r in runs:
        if r.value is None or not finite(r.value) or r.status not in ("keep", "discard"):
            continue
        draws.setdefault(r.sha, []).append(r.value)
        if r.status == "keep":
            first_keep.setdefault(r.sha, r)
    found = []
    for sha, keep in first_keep.items():
        bar, values = keep.extra.get("bar"), draws[sha]
        if not isinstance(bar, (int, float)) or isinstance(bar, bool) or len(values) < 2:
            continue
        mean = sum(values) / len(values)
        if not better(mean, float(bar), goal):
            assert keep.value is not None
            found.append(Lucky(keep.commit, keep.description, float(bar), keep.value, mean, len(values)))
    return found


def standings(runs: Sequence[Entry], goal: str) -> list[Standing]:
    """One line per branch (the ``branch`` column), best first; branches with no keep last."""
    branches: dict[str, list[Entry]] = {}
    for r in runs:
        branches.setdefault(r.branch or "(none)", []).append(r)
    lines = [Standing(name, best(members, goal), counts(members), members[-1].timestamp)
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
