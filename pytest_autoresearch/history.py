"""What the branch's history says: each commit's result, the bar to beat, the commit to go back to.

Pure functions over ledger runs and a lineage (HEAD first, then every commit it builds on, as
one ``git rev-list`` gives it). Every measurement of one commit (a ``--autoresearch-repeat``
group or separate re-runs) counts as one result: the mean of all its draws, with their number.
The plugin's bar and the command line's "best" are the same function, :func:`best`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from .ledger import Entry
from .noise import Noise, pooled
from .verdict import Best, better

JUDGED = ("keep", "discard")


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
    winner: Best | None = None
    for sha, values in draws(runs).items():
        if sha not in kept:
            continue
        mean = statistics.fmean(values)
        if winner is None or better(mean, winner.value, goal):
            winner = Best(mean, sha[:7], len(values), sha, kept[sha].description)
    return winner


def best_before(runs: Sequence[Entry], lineage: Sequence[str], goal: str) -> Best | None:
    """The bar for HEAD: the best kept commit among its proper ancestors."""
    ancestors = set(lineage[1:])
    return best([r for r in runs if r.sha in ancestors], goal)


def noise_floor(runs: Iterable[Entry], lineage: Sequence[str], current: Sequence[float] = ()) -> Noise | None:
    """The noise pooled over every commit on this lineage measured more than once, HEAD's
    draws so far (``current``) included."""
    commits = set(lineage)
    groups = draws(r for r in runs if r.sha in commits)
    if lineage:
        groups[lineage[0]] = [*groups.get(lineage[0], []), *current]
    return pooled(groups.values())


def moment_floor(runs: Iterable[Entry], lineage: Sequence[str], current: Sequence[float] = ()) -> Noise | None:
    """The noise of one moment: pooled over the draws of each measurement (one pytest run of one
    commit) on this lineage, HEAD's draws of this run (``current``) as one more.

    Unlike :func:`noise_floor` it leaves out how a commit's results moved between runs made at
    different times (drift): what paired draws, made side by side, are exposed to.
    """
    commits = set(lineage)
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        if run.sha in commits and run.status in JUDGED and run.value is not None and math.isfinite(run.value):
            groups[(run.sha, run.measurement or run.run_id)].append(run.value)
    return pooled([*groups.values(), current])


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
