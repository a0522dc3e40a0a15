"""What the branch's history says: each commit's result, the bar to beat, the commit to go back to.

Pure functions over ledger runs and a lineage (HEAD first, then every commit it builds on, as
one ``git rev-list`` gives it). Every measurement of one commit (a ``--autoresearch-repeat``
group or separate re-runs) counts as one result: the mean of all its draws, with their number.
The plugin's bar and the command line's "best" are the same function, :func:`best`; the reports'
near misses and lucky draws are judged here too, with the verdict's noise (``Noise.of_difference``)
and the margin its rows recorded, so no report re-derives a statistic of its own.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .ledger import Entry
from .noise import Noise, pooled
from .suite import Ratio, Summary, SuiteVerdict
from .verdict import Best, better, improves

JUDGED = ("keep", "discard")
SUITE_REASON = re.compile(r"^suite: (.*?)(?: \(this benchmark x[0-9.]+\))?$")
NEAR_FRACTION = 0.01  # with no noise floor: a discard within 1% of its bar is a near miss


def draws(runs: Iterable[Entry]) -> dict[str, list[float]]:
    """The finite values of every judged run, grouped by commit sha, oldest first."""
    groups: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.status in JUDGED and run.value is not None and math.isfinite(run.value):
            groups[run.sha].append(run.value)
    return groups


def best(runs: Sequence[Entry], goal: str) -> Best | None:
    """The best kept commit among ``runs`` (one test, metric, identity): the mean of all its draws."""
    kept = {r.sha: r for r in runs if r.status == "keep"}
    return _best_of(draws(runs), kept, goal)


def running_best(runs: Sequence[Entry], goal: str) -> list[Best | None]:
    """At each run, :func:`best` of the runs up to it: the bar as it stood then (one pass)."""
    groups: dict[str, list[float]] = defaultdict(list)
    kept: dict[str, Entry] = {}
    out = []
    for run in runs:
        if run.status in JUDGED and run.value is not None and math.isfinite(run.value):
            groups[run.sha].append(run.value)
        if run.status == "keep":
            kept.setdefault(run.sha, run)
        out.append(_best_of(groups, kept, goal))
    return out


def _best_of(groups: Mapping[str, Sequence[float]], kept: Mapping[str, Entry], goal: str) -> Best | None:
    winner: Best | None = None
    for sha, run in kept.items():
        values = groups.get(sha)
        if not values:
            continue
        mean = statistics.fmean(values)
        if winner is None or better(mean, winner.value, goal):
            winner = Best(mean, sha[:7], len(values), sha, run.description)
    return winner


def judged_mean(run: Entry, runs: Sequence[Entry]) -> tuple[float, int] | None:
    """The mean and draw count the verdict judged at ``run``: recorded in its row, else (rows
    written before they recorded it) every draw of its commit up to it, as :mod:`bar` counts them."""
    mean, n = run.extra.get("mean"), run.extra.get("n")
    if isinstance(mean, (int, float)) and isinstance(n, int) and not isinstance(n, bool):
        return float(mean), n
    at = next((i for i, r in enumerate(runs) if r.run_id == run.run_id), len(runs) - 1)
    same = [r for i, r in enumerate(runs) if (i <= at or r.measurement == run.measurement) and r.sha == run.sha
            and (r.test, r.metric, r.identity) == (run.test, run.metric, run.identity)]
    values = draws(same).get(run.sha)
    return (statistics.fmean(values), len(values)) if values else None


def best_before(runs: Sequence[Entry], lineage: Sequence[str], goal: str) -> Best | None:
    """The bar for HEAD: the best kept commit among its proper ancestors."""
    ancestors = set(lineage[1:])
    return best([r for r in runs if r.sha in ancestors], goal)


def noise_floor(runs: Iterable[Entry], lineage: Sequence[str], current: Sequence[float] = (),
                host: str | None = None) -> Noise | None:
    """The noise pooled over every commit on this lineage measured more than once, HEAD's
    draws so far (``current``) included; with ``host``, only the draws made on that machine
    (a floor measured on a GPU box says nothing about a laptop; the device class is already
    part of the evaluation identity)."""
    commits = set(lineage)
    groups = draws(r for r in runs if r.sha in commits and (host is None or r.host == host))
    if lineage:
        groups[lineage[0]] = [*groups.get(lineage[0], []), *current]
    return pooled(groups.values())


def moment_floor(runs: Iterable[Entry], lineage: Sequence[str], current: Sequence[float] = (),
                 host: str | None = None) -> Noise | None:
    """The noise of one moment: pooled over the draws of each measurement (one pytest run of one
    commit) on this lineage, HEAD's draws of this run (``current``) as one more.

    Unlike :func:`noise_floor` it leaves out how a commit's results moved between runs made at
    different times (drift): what paired draws, made side by side, are exposed to.
    """
    commits = set(lineage)
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        if (run.sha in commits and (host is None or run.host == host) and run.status in JUDGED
                and run.value is not None and math.isfinite(run.value)):
            groups[(run.sha, run.measurement or run.run_id)].append(run.value)
    return pooled([*groups.values(), current])


def floors_elsewhere(runs: Iterable[Entry], lineage: Sequence[str], host: str) -> dict[str, Noise]:
    """The noise floor of each other machine that has one: what ``status`` mentions beside this
    host's (rows written before they named a host read as host "")."""
    chosen = [r for r in runs if r.host != host]
    floors = {other: noise_floor(chosen, lineage, host=other) for other in sorted({r.host for r in chosen})}
    return {other or "(unknown host)": floor for other, floor in floors.items() if floor is not None}


def kept_at(runs: Iterable[Entry], sha: str) -> bool:
    """Whether this very commit already has a kept result (``runs``: one test, metric, identity)."""
    return any(r.status == "keep" and r.sha == sha for r in runs)


def last_kept(runs: Iterable[Entry], lineage: Sequence[str], tests: Iterable[str]) -> str | None:
    """The newest commit of ``lineage`` with a kept or accepted result for one of ``tests``.

    With HEAD's whole lineage it is the reference the frozen files are compared with; with its
    proper ancestors it is where a red run goes back to.
    """
    wanted = set(tests)
    marked = {r.sha for r in runs if r.status in ("keep", "accepted") and r.test in wanted}
    return next((sha for sha in lineage if sha in marked), None)


def beats_by(value: float, bar: float, goal: str) -> float:
    """How far ``value`` beats ``bar`` (positive: better, under ``goal``)."""
    return bar - value if goal == "min" else value - bar


def _bar(run: Entry) -> tuple[float, int] | None:
    bar, n = run.extra.get("bar"), run.extra.get("bar_n", 1)
    if not isinstance(bar, (int, float)) or isinstance(bar, bool) or not isinstance(n, int) or n < 1:
        return None
    return float(bar), n


@dataclass(frozen=True)
class NearMiss:
    """A discarded commit that came within the noise of its bar, or beat it by less than the margin."""

    run: Entry  # its latest judged run: commit, description, the bar it was judged against
    value: float  # the mean of every draw of the commit
    n: int
    bar: float
    bar_n: int
    unit: float  # the noise between the two means (Noise.of_difference), else a fraction of the bar
    noise: bool  # whether ``unit`` is the noise floor's (else the fraction's)

    @property
    def gap(self) -> float:
        return abs(self.value - self.bar)

    def score(self, goal: str) -> float:
        """How far it beats the bar in units of the noise: the most promising is the highest."""
        gain = beats_by(self.value, self.bar, goal)
        if not self.unit:  # no noise at all: beating the bar is all that counts
            return math.copysign(math.inf, gain) if gain else 0.0
        return gain / self.unit


def near_misses(runs: Sequence[Entry], floor: Noise | None, goal: str,
                fraction: float = NEAR_FRACTION) -> list[NearMiss]:
    """Discarded commits whose mean over every draw beats their bar, or falls short of it by at
    most one standard error of the difference (``floor.of_difference``); without a noise floor,
    by at most ``fraction`` of the bar. Most promising first: by how far they beat the bar, in
    units of the noise. ``runs``: one test, metric and identity; a commit ever kept is no miss."""
    groups = draws(runs)
    kept = {r.sha for r in runs if r.status == "keep"}
    latest: dict[str, Entry] = {}
    for run in runs:
        if run.status == "discard" and run.sha not in kept and run.sha in groups and "bar" in run.extra:
            latest[run.sha] = run
    found = []
    for sha, run in latest.items():
        bar = _bar(run)
        if bar is None:
            continue
        values = groups[sha]
        unit = floor.of_difference(len(values), bar[1]) if floor else fraction * abs(bar[0])
        miss = NearMiss(run, statistics.fmean(values), len(values), bar[0], bar[1], unit, floor is not None)
        if miss.score(goal) >= -1:
            found.append(miss)
    return sorted(found, key=lambda m: -m.score(goal))


@dataclass(frozen=True)
class Lucky:
    """A kept commit whose mean over every draw no longer beats its bar by the verdict's margin."""

    run: Entry  # its first kept run
    first: float  # the draw it was kept on
    mean: float
    draws: int
    bar: float
    margin: float  # the min_delta the verdict applied at its latest judgement


def lucky_draws(runs: Sequence[Entry], goal: str) -> list[Lucky]:
    """Kept commits measured more than once whose mean over every draw fails the test the verdict
    applied at its latest judgement: beat that bar by more than that ``min_delta`` (under
    ``auto``, k standard errors of the difference)."""
    groups = draws(runs)
    first: dict[str, Entry] = {}
    latest: dict[str, Entry] = {}
    for run in runs:
        if run.status == "keep" and run.value is not None:
            first.setdefault(run.sha, run)
        if run.status in JUDGED and "bar" in run.extra:
            latest[run.sha] = run
    found = []
    for sha, keep in first.items():
        values, judged = groups.get(sha, []), latest.get(sha)
        bar = _bar(judged) if judged is not None else None
        if len(values) < 2 or judged is None or bar is None:
            continue
        margin = judged.extra.get("min_delta", 0.0)
        margin = float(margin) if isinstance(margin, (int, float)) and not isinstance(margin, bool) else 0.0
        mean = statistics.fmean(values)
        if not improves(mean, bar[0], goal, margin):
            assert keep.value is not None
            found.append(Lucky(keep, keep.value, mean, len(values), bar[0], margin))
    return found


@dataclass(frozen=True)
class RecordedSuite:
    """A suite verdict read back from its members' rows: what every report shows of it."""

    summary: Summary
    rows: tuple[Entry, ...]  # every member's rows, in ledger order

    @property
    def last(self) -> Entry:
        return self.rows[-1]


def suites(runs: Iterable[Entry]) -> list[RecordedSuite]:
    """Every pytest-benchmark suite verdict among ``runs``, oldest first.

    The members' rows of one verdict share its ``suite_id``; rows written before suites had an id
    are grouped by commit and verdict, a test met again (another session) starting the next one.
    """
    groups: dict[str, list[Entry]] = {}
    open_key = ""
    for run in runs:
        if run.status not in (*JUDGED, "crash") or not isinstance(run.extra.get("suite"), str):
            open_key = ""
            continue
        key = run.extra.get("suite_id")
        if not isinstance(key, str):
            current = groups.get(open_key, [])
            same = (current and (current[0].sha, current[0].extra["suite"]) == (run.sha, run.extra["suite"])
                    and not any(r.test == run.test and r.measurement != run.measurement for r in current))
            key = open_key if same else run.measurement or run.run_id
            open_key = key
        groups.setdefault(key, []).append(run)
    return [_recorded(key, rows) for key, rows in groups.items()]


def _recorded(key: str, rows: list[Entry]) -> RecordedSuite:
    first, extra = rows[0], rows[0].extra
    said = str(extra["suite"]).split(" of ")
    size = int(said[1]) if len(said) == 2 and said[1].isdigit() else len({r.test for r in rows})
    members: dict[str, Ratio] = {}
    for run in rows:
        judged = judged_mean(run, rows)
        members.setdefault(run.test, Ratio(run.test, judged[0] if judged else None, _number(run.extra.get("bar")),
                                           _number(run.extra.get("ratio"))))
    reason = SUITE_REASON.match(str(extra.get("reason", "")))
    verdict = SuiteVerdict(
        first.status == "keep", reason.group(1) if reason else str(extra.get("reason", "")),
        _number(extra.get("suite_geomean")), _number(extra.get("suite_sigma")),
        sum(1 for m in members.values() if m.ratio is not None),
        str(extra.get("suite_regressed", "")), str(extra.get("suite_paired", "")))
    summary = Summary(key, first.status, first.metric, size, first.commit, verdict, tuple(members.values()))
    return RecordedSuite(summary, tuple(rows))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
