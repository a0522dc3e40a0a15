"""What a night taught and cost, for ``autoresearch status``: near misses, cost, the JSON object.

Near misses are discards that came within the noise of their bar (``archive.near_misses``),
the noise floor pooled over every repeated measurement of the branch's runs: ideas worth
re-measuring or combining. The cost is ``archive.night_cost`` over the same runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import archive, history
from ..ledger import Entry
from ..noise import Noise
from ..outcome import fmt, jsonable
from ..verdict import Best
from . import stats
from .views import plural


@dataclass(frozen=True)
class Benchmark:
    """One test and metric of the branch: its series, goal, noise floor and near misses."""

    series: stats.Series
    goal: str
    floor: Noise | None
    near: tuple[archive.NearMiss, ...]


def benchmarks(here: Sequence[Entry], everything: Sequence[Entry], goal: str | None) -> list[Benchmark]:
    out = []
    for s in stats.series(here):
        # every commit of the branch counts, reset ones too: their repeats measure the same noise
        floor = history.noise_floor(s.runs, list(dict.fromkeys(r.sha for r in s.runs)))
        near = archive.near_misses(s.runs, floor.sigma if floor else None)
        out.append(Benchmark(s, stats.goal_of(everything, s, goal), floor, tuple(near)))
    return out


def near_miss_lines(found: Sequence[Benchmark]) -> list[str]:
    rows = []
    for b in found:
        for m in b.near:
            within = (f"within {fmt(m.allowed)} (one standard error)" if b.floor is not None
                      else f"within {archive.NEAR_FRACTION:.0%} of the bar (no noise floor yet)")
            draws = f" (mean of {m.n})" if m.n > 1 else ""
            rows.append(f"  {m.run.run_id}  {m.run.commit}  {m.run.description}: {fmt(m.value)}{draws} against "
                        f"the bar {fmt(m.bar)}, {within}")
    if not rows:
        return []
    return ["", "near misses (discarded within the noise of their bar: re-measure, or combine them; "
                "autoresearch show RUN gives the diff):", *rows]


def duration(seconds: float) -> str:
    """'42s', '17m', '3h 05m'."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def cost_lines(cost: archive.NightCost) -> list[str]:
    rate = "-" if cost.get("runs_per_hour") is None else f"{cost['runs_per_hour']:.1f}"
    wall = ", ".join(f"{status} {duration(cost['wall_s'][status])}" for status in archive.COST_STATUSES)
    lines = ["", f"cost: {plural(cost['runs'], 'run')} in {cost['hours']:.2f} h ({rate} runs/hour); "
                 f"wall time {wall}"]
    if cost["device_hours_by_device"]:
        each = ", ".join(f"{d} {h:.2f}" for d, h in sorted(cost["device_hours_by_device"].items()))
        lines.append(f"  device-hours {cost['device_hours']:.2f} ({each})")
    paired = cost["paired"]
    if paired["verdicts"] or paired["bar_runs"]:
        lines.append(f"  paired: {plural(paired['verdicts'], 'verdict')} judged beside a re-run bar; "
                     f"{plural(paired['runs'], 'run')} added ({paired['bar_runs']} of the bar, "
                     f"{paired['bar_crashes']} crashed), {duration(paired['minutes'] * 60)}")
    return lines


def status_json(here: Sequence[Entry], found: Sequence[Benchmark], scope: str, ledger: Path,
                branch: str | None, head: str | None, warnings: Sequence[str]) -> dict[str, Any]:
    """The ``status --json`` object: per benchmark best, baseline, counts, noise and near misses; the cost."""
    items: list[dict[str, Any]] = []
    near: list[dict[str, Any]] = []
    for b in found:
        s = b.series
        tally = stats.counts(s.runs)
        items.append({
            "test": s.test, "metric": s.metric, "identity": s.identity, "goal": b.goal,
            "best": _best(history.best(s.runs, b.goal)), "baseline": _best(stats.baseline(s.runs)),
            "counts": _counts(tally), "keep_rate": stats.keep_rate(tally),
            "noise": None if b.floor is None else {"sigma": b.floor.sigma, "dof": b.floor.dof, "groups": b.floor.groups},
            "near_misses": [_near(m, s) for m in b.near],
            "lucky_draws": [{"commit": luck.commit, "description": luck.description, "bar": luck.bar,
                             "first": luck.first, "mean": luck.mean, "draws": luck.draws}
                            for luck in stats.lucky_draws(s.runs, b.goal)],
        })
        near += items[-1]["near_misses"]
    near.sort(key=lambda m: float(m["closeness"]))
    result: dict[str, Any] = _strict({
        "scope": scope, "branch": branch, "head": head, "ledger": str(ledger), "runs": len(here),
        "warnings": list(warnings), "counts": _counts(stats.counts(here)), "benchmarks": items,
        "near_misses": near, "cost": dict(archive.night_cost(here)),
    })
    return result


def _counts(tally: Any) -> dict[str, int]:
    keys = [*stats.COUNTED, stats.REMEASURED, "running"]
    return {k: int(tally[k]) for k in keys}


def _best(best: Best | None) -> dict[str, Any] | None:
    if best is None:
        return None
    return {"value": best.value, "commit": best.commit, "sha": best.sha, "n": best.n, "description": best.description}


def _near(m: archive.NearMiss, s: stats.Series) -> dict[str, Any]:
    return {
        "run_id": m.run.run_id, "measurement": m.run.measurement, "commit": m.run.commit, "sha": m.run.sha,
        "description": m.run.description, "test": s.test, "metric": s.metric, "value": m.value, "n": m.n,
        "bar": m.bar, "bar_commit": m.run.extra.get("bar_commit"), "gap": m.gap, "allowed": m.allowed,
        "closeness": m.closeness, "show": f"autoresearch show {m.run.run_id}",
    }


def _strict(value: Any) -> Any:
    """Non-finite numbers as strings, all the way down, so ``json.dumps(allow_nan=False)`` holds."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return jsonable(value)
