"""What the branch's history says: the bar to beat and the commit the guard compares with.

Pure functions over ledger runs and a lineage (HEAD first, then every commit it builds
on, as one ``git rev-list`` gives it). Repeated measurements of one commit (runs that
share a ``measurement`` id) count as one result: their mean.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from .ledger import Entry
from .noise import Noise, pooled
from .verdict import Best, better


def measurements(runs: Iterable[Entry]) -> dict[tuple[str, str], list[float]]:
    """Finite values grouped by (commit sha, measurement id)."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        if run.value is not None and math.isfinite(run.value):
            groups[(run.sha, run.measurement or run.run_id)].append(run.value)
    return groups


def best_before(
    runs: Iterable[Entry], lineage: Sequence[str], goal: str
) -> Best | None:
    """The best kept result among HEAD's proper ancestors (``runs``: one test, metric, identity)."""
    ancestors = set(lineage[1:])
    kept = [r for r in runs if r.status == "keep" and r.sha in ancestors]
    best: Best | None = None
    for (sha, _), values in measurements(kept).items():
        mean = statistics.fmean(values)
        if best is None or better(mean, best.value, goal):
            best = Best(mean, sha[:7], len(values))
    return best


def noise_floor(runs: Iterable[Entry], lineage: Sequence[str], current: Sequence[float] = ()) -> Noise | None:
    """The noise pooled from repeated measurements on this lineage, plus the current one."""
    commits = set(lineage)
    on_branch = [r for r in runs if r.sha in commits and r.status in ("keep", "discard")]
    return pooled([*measurements(on_branch).values(), list(current)])


def kept_at(runs: Iterable[Entry], sha: str) -> bool:
    """Whether this very commit already has a kept result (``runs``: one test, metric, identity)."""
    return any(r.status == "keep" and r.sha == sha for r in runs)


def reference_commit(runs: Iterable[Entry], lineage: Sequence[str], tests: Iterable[str]) -> str | None:
    """The newest commit in the lineage (HEAD included) with a kept or accepted baseline result.

    Only declared mutable files may differ from it: the rest defines the evaluation.
    """
    wanted = set(tests)
    marked = {r.sha for r in runs if r.status in ("keep", "baseline") and r.test in wanted}
    return next((sha for sha in lineage if sha in marked), None)
