"""What a night taught and cost, for ``autoresearch status``: noise, near misses, lucky draws, cost, JSON.

Every number is the verdict's own: the noise floor is ``history.noise_floor`` over HEAD's lineage
on this host (as ``bar.judge`` reads it; other hosts' floors are only mentioned), the margin an
idea needs is ``noise.margins`` with the rule the rows recorded (``extra.noise_k`` under auto,
else ``extra.min_delta``; the project's ini for older rows), near misses and lucky draws are ``history``'s. The cost is ``archive.night_cost``.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import archive, history, noise
from ..ledger import Entry
from ..noise import Noise
from ..outcome import fmt, fmt_delta, jsonable
from ..settings import AUTO
from ..verdict import Best
from . import stats
from .project import Project
from .views import plural

RETEST = "git cherry-pick {sha} && pytest --autoresearch --autoresearch-repeat auto"
REMEASURE = "git checkout {sha} && pytest --autoresearch --autoresearch-repeat 3; git checkout -"
NEED_AT = (1, 3)  # the draw counts the noise line gives the margin for
NEAR_SHOWN = 10  # near misses the text lists, most promising first (--json lists them all)


@dataclass(frozen=True)
class Benchmark:
    """One test and metric of the branch: its series, goal, best, noise floor, near misses, lucky draws."""

    series: stats.Series
    goal: str
    best: Best | None
    floor: Noise | None
    near: tuple[history.NearMiss, ...]
    lucky: tuple[history.Lucky, ...]
    elsewhere: dict[str, Noise] = field(default_factory=dict)  # other hosts' floors: said, never used here


def benchmarks(here: Sequence[Entry], everything: Sequence[Entry], goal: str | None,
               lineage: Sequence[str] | None) -> list[Benchmark]:
    """``lineage``: HEAD and the commits it builds on, as the verdict reads the noise floor; None
    outside git, where every commit of the runs counts."""
    out = []
    for s in stats.series(here):
        g = stats.goal_of(everything, s, goal)
        floor = floor_of(s, lineage)
        out.append(Benchmark(s, g, history.best(s.runs, g), floor, tuple(history.near_misses(s.runs, floor, g)),
                             tuple(history.lucky_draws(s.runs, g)), floors_elsewhere(s, lineage)))
    return out


def floor_of(s: stats.Series, lineage: Sequence[str] | None) -> Noise | None:
    """The noise floor the verdict reads for HEAD (``lineage``) on this host, else over every commit of the series."""
    return history.noise_floor(s.runs, _commits(s, lineage), host=socket.gethostname())


def floors_elsewhere(s: stats.Series, lineage: Sequence[str] | None) -> dict[str, Noise]:
    """The floors other hosts measured: said beside this host's, never used by its verdicts."""
    return history.floors_elsewhere(s.runs, _commits(s, lineage), socket.gethostname())


def _commits(s: stats.Series, lineage: Sequence[str] | None) -> Sequence[str]:
    return lineage if lineage is not None else list(dict.fromkeys(r.sha for r in reversed(s.runs)))


def margin_rule(runs: Sequence[Entry], project: Project) -> float | str:
    """How the verdict sets the margin: ``"auto"`` (k standard errors) or a fixed ``min_delta``, as
    the latest judged row recorded it; the project's ini for rows written before they did."""
    latest = next((r for r in reversed(runs) if r.status in history.JUDGED and "mean" in r.extra), None)
    if latest is None:
        return project.min_delta
    if "noise_k" in latest.extra:
        return AUTO
    fixed = latest.extra.get("min_delta", 0.0)
    return float(fixed) if isinstance(fixed, (int, float)) and not isinstance(fixed, bool) else 0.0


def noise_k(runs: Sequence[Entry], project: Project) -> float:
    recorded = next((r.extra["noise_k"] for r in reversed(runs) if "noise_k" in r.extra), None)
    return float(recorded) if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) else project.noise_k


def needs(b: Benchmark, project: Project) -> dict[int, float] | None:
    """The delta an idea measured n times must beat the best by, signed as the goal reads it, for
    each n of :data:`NEED_AT`: ``min_delta``, or under ``auto`` k standard errors of the difference."""
    rule = margin_rule(b.series.runs, project)
    if b.best is None or (rule == AUTO and b.floor is None):
        return None
    sign = -1.0 if b.goal == "min" else 1.0
    if rule != AUTO:
        return {n: sign * float(rule) for n in NEED_AT}
    assert b.floor is not None
    return {n: sign * m for n, m in zip(NEED_AT, noise.margins(b.floor, b.best.n, noise_k(b.series.runs, project),
                                                               NEED_AT))}


def noise_line(b: Benchmark, project: Project) -> str:
    """'noise: sigma 0.043 from 6 draws of 3 commits; an idea needs -0.052 at one draw, -0.030 at three'."""
    if b.floor is None:
        return (f"  noise: unknown on this host ({socket.gethostname()}), no commit measured twice here "
                f"({noise.CALIBRATE})")
    f = b.floor
    line = (f"  noise on this host: sigma {fmt(f.sigma)} from {plural(f.dof + f.groups, 'draw')} of "
            f"{plural(f.groups, 'commit')}")
    margins = needs(b, project)
    if margins is None:
        return line
    rule = margin_rule(b.series.runs, project)
    if rule == AUTO:
        at = ", ".join(f"{fmt_delta(m)} at {_count_word(n)}" for n, m in margins.items())
        k = noise_k(b.series.runs, project)
        return f"{line}; an idea needs {at} (min_delta auto: {k:g} standard errors of the difference)"
    if not rule:
        return f"{line}; an idea needs any improvement on the best (min_delta 0: judged strictly)"
    return f"{line}; an idea needs beyond {fmt_delta(margins[1])} (min_delta {fmt(float(rule))})"


def elsewhere_lines(b: Benchmark) -> list[str]:
    """'other hosts: gpu-box sigma 0.0021 from 8 draws (not this host's floor)'."""
    if not b.elsewhere:
        return []
    each = "; ".join(f"{host} sigma {fmt(f.sigma)} from {plural(f.dof + f.groups, 'draw')}"
                     for host, f in b.elsewhere.items())
    return [f"  other hosts: {each} (not this host's floor)"]


def _count_word(n: int) -> str:
    return {1: "one draw", 2: "two", 3: "three", 5: "five"}.get(n, str(n))


def near_miss_lines(found: Sequence[Benchmark]) -> list[str]:
    rows = []
    for b in found:
        for m in b.near[:NEAR_SHOWN]:
            delta = m.value - m.bar
            scale = (f" ({delta / m.unit:+.1f}σ)" if m.noise and m.unit
                     else f" ({abs(delta) / abs(m.bar):.1%} of the bar, no noise floor yet)" if not m.noise and m.bar
                     else "")
            draws = f" (mean of {m.n})" if m.n > 1 else ""
            rows += [f"  {m.run.commit}  {m.run.description}: {fmt(m.value)}{draws} against the bar {fmt(m.bar)}, "
                     f"delta {fmt_delta(delta)}{scale}",
                     f"      retest: {RETEST.format(sha=m.run.commit)}"]
        if len(b.near) > NEAR_SHOWN:
            rows.append(f"  ... and {len(b.near) - NEAR_SHOWN} more of {b.series.metric}: autoresearch status --json "
                        "lists them all")
    if not rows:
        return []
    return ["", "near misses (discarded within one standard error of their bar, or beating it by less than the "
                "margin; most promising first; autoresearch show COMMIT gives the diff):", *rows]


def lucky_lines(found: Sequence[Benchmark]) -> list[str]:
    rows = []
    for b in found:
        for luck in b.lucky:
            need = f" by more than {fmt(luck.margin)}" if luck.margin else ""
            rows += [f"  {luck.run.commit}  {luck.run.description}: kept at {fmt(luck.first)}, but the mean of "
                     f"{luck.draws} draws is {fmt(luck.mean)}, not beating the bar {fmt(luck.bar)}{need}",
                     f"      re-measure: {REMEASURE.format(sha=luck.run.commit)}"]
    if not rows:
        return []
    return ["", "suspected lucky draws (kept, but the mean of every draw no longer passes the verdict's test):", *rows]


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
                branch: str | None, head: str | None, warnings: Sequence[str], project: Project) -> dict[str, Any]:
    """The ``status --json`` object: per benchmark best, baseline, ideas and draws, noise and the
    margin, near misses and lucky draws; the cost."""
    items: list[dict[str, Any]] = []
    near: list[dict[str, Any]] = []
    for b in found:
        s = b.series
        ideas = stats.ideas(s.runs)
        f = b.floor
        items.append({
            "test": s.test, "metric": s.metric, "identity": s.identity, "goal": b.goal,
            "best": _best(b.best), "baseline": _best(stats.baseline(s.runs)),
            "ideas": _counts(ideas), "draws": _counts(stats.draws(s.runs)), "keep_rate": stats.keep_rate(ideas),
            "noise": None if f is None else {"sigma": f.sigma, "dof": f.dof, "groups": f.groups,
                                             "draws": f.dof + f.groups},
            "host": socket.gethostname(),
            "noise_elsewhere": {host: {"sigma": e.sigma, "dof": e.dof, "groups": e.groups, "draws": e.dof + e.groups}
                                for host, e in b.elsewhere.items()},
            "needs": {str(n): m for n, m in (needs(b, project) or {}).items()} or None,
            "near_misses": [_near(m, b) for m in b.near],
            "lucky_draws": [{"commit": luck.run.commit, "sha": luck.run.sha, "description": luck.run.description,
                             "bar": luck.bar, "margin": luck.margin, "first": luck.first, "mean": luck.mean,
                             "draws": luck.draws, "remeasure": REMEASURE.format(sha=luck.run.commit)}
                            for luck in b.lucky],
        })
        near += items[-1]["near_misses"]
    near.sort(key=lambda m: -float(m["score"]))
    result: dict[str, Any] = strict({
        "scope": scope, "branch": branch, "head": head, "ledger": str(ledger),
        "runs": stats.finished(stats.draws(here)), "warnings": list(warnings),
        "ideas": _counts(stats.ideas(here)), "draws": _counts(stats.draws(here)), "benchmarks": items,
        "near_misses": near, "cost": dict(archive.night_cost(here)),
    })
    return result


def _counts(tally: Any) -> dict[str, int]:
    keys = [*stats.COUNTED, stats.REMEASURED, stats.WRONG, "running"]
    return {k: int(tally[k]) for k in keys}


def _best(best: Best | None) -> dict[str, Any] | None:
    if best is None:
        return None
    return {"value": best.value, "commit": best.commit, "sha": best.sha, "n": best.n, "description": best.description}


def _near(m: history.NearMiss, b: Benchmark) -> dict[str, Any]:
    return {
        "run_id": m.run.run_id, "commit": m.run.commit, "sha": m.run.sha, "description": m.run.description,
        "test": b.series.test, "metric": b.series.metric, "value": m.value, "n": m.n, "bar": m.bar, "bar_n": m.bar_n,
        "bar_commit": m.run.extra.get("bar_commit"), "delta": m.value - m.bar, "unit": m.unit,
        "unit_is_noise": m.noise, "score": m.score(b.goal),
        "show": f"autoresearch show {m.run.commit}", "retest": RETEST.format(sha=m.run.commit),
    }


def strict(value: Any) -> Any:
    """Non-finite numbers as strings, all the way down, so ``json.dumps(allow_nan=False)`` holds."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict(v) for v in value]
    return jsonable(value)
