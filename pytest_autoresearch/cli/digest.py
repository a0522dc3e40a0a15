"""The digest of a night, for ``autoresearch status --since 8h``: what one window of runs did.

Runs by verdict, the best against where the window began, each idea kept in it with the delta
and sigma its verdict recorded, near misses to retest, crashes with their reasons, wall time and
cost. One dictionary (the ``--format json`` object) rendered as text or as Markdown for a chat
message or a pull request; every number is the verdict's (``history``, the rows' recorded fields).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .. import archive, history
from ..ledger import Entry
from ..outcome import fmt, fmt_delta
from . import night, stats
from .views import plural


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``8h``, ``90m``, ``2d`` (that long ago) or a date / time in ISO form (UTC unless it says)."""
    try:
        return (now or datetime.now(timezone.utc)) - archive.parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected an age such as 8h, 90m or 2d, or a date such as 2026-12-01 or "
                         f"2026-12-01T22:00, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def in_window(run: Entry, since: datetime) -> bool:
    when = stats.parse_time(run.timestamp)
    return when is not None and when >= since


def digest(here: Sequence[Entry], found: Sequence[night.Benchmark], since: datetime, scope: str) -> dict[str, Any]:
    """The window's digest as one JSON-ready dictionary."""
    window = [r for r in here if in_window(r, since)]
    items = []
    for b in found:
        s = b.series
        mine = [r for r in s.runs if in_window(r, since)]
        before = history.best([r for r in s.runs if not in_window(r, since)], b.goal)
        kept_before = {r.sha for r in s.runs if r.status == "keep" and not in_window(r, since)}
        kept: list[dict[str, Any]] = []
        for r in mine:
            if r.status == "keep" and r.sha not in kept_before and r.sha not in {k["sha"] for k in kept}:
                kept.append({"commit": r.commit, "sha": r.sha, "description": r.description,
                             "mean": r.extra.get("mean", r.value), "n": r.extra.get("n", 1),
                             "delta": r.extra.get("delta"), "sigma": r.extra.get("sigma")})
        touched = {r.sha for r in mine}
        items.append({
            "test": s.test, "metric": s.metric, "goal": b.goal,
            "best_before": _best(before), "best_now": _best(b.best),
            "change": None if before is None or b.best is None else b.best.value - before.value,
            "ideas": dict(stats.ideas(mine)), "draws": stats.finished(stats.draws(mine)),
            "kept": kept,
            "near_misses": [{"commit": m.run.commit, "description": m.run.description, "value": m.value, "n": m.n,
                             "bar": m.bar, "delta": m.value - m.bar, "retest": night.RETEST.format(sha=m.run.commit)}
                            for m in [m for m in b.near if m.run.sha in touched][:night.NEAR_SHOWN]],
        })
    failed = [{"commit": r.commit, "description": r.description, "status": r.status,
               "reason": str(r.extra.get("reason", ""))} for r in window if r.status in ("crash", "timeout")]
    return {"scope": scope, "since": since.isoformat(timespec="seconds"), "runs": stats.finished(stats.draws(window)),
            "ideas": dict(stats.ideas(window)), "benchmarks": items, "crashes": failed,
            "cost": dict(archive.night_cost(window))}


def _best(best: Any) -> dict[str, Any] | None:
    return None if best is None else {"value": best.value, "n": best.n, "commit": best.commit,
                                      "description": best.description}


def _ideas(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in stats.COUNTED)


def _sigmas(kept: dict[str, Any]) -> str:
    delta, sigma = kept["delta"], kept["sigma"]
    if delta is None:
        return "first result"
    return f"delta {fmt_delta(delta)}" + (f" ({delta / sigma:+.1f}σ)" if sigma else "")


def lines(d: dict[str, Any], markdown: bool = False) -> list[str]:
    """The digest as text, or as Markdown (a heading, bullet lists, commands as code)."""
    def code(text: str) -> str:
        return f"`{text}`" if markdown else text

    bullet = "- " if markdown else "  "
    head = (f"autoresearch digest: {d['scope']}, since {d['since']}: {plural(d['runs'], 'run')} "
            f"of {plural(sum(d['ideas'].get(s, 0) for s in stats.COUNTED), 'idea')} ({_ideas(d['ideas'])})")
    out = [f"### {head}" if markdown else head]
    for b in d["benchmarks"]:
        out += ["", f"**{b['test']}** {b['metric']}" if markdown else f"{b['test']}  {b['metric']}"]
        now, then = b["best_now"], b["best_before"]
        if now is None:
            out.append(f"{bullet}nothing kept yet")
        elif then is None:
            out.append(f"{bullet}best {fmt(now['value'])} at {code(now['commit'])} ({now['description']}): "
                       "the first result")
        else:
            out.append(f"{bullet}best {fmt(now['value'])} at {code(now['commit'])} ({now['description']}), "
                       f"from {fmt(then['value'])} at {code(then['commit'])} when the window began: "
                       f"{fmt_delta(b['change'])}")
        for k in b["kept"]:
            out.append(f"{bullet}kept {code(k['commit'])} {k['description']}: {fmt(k['mean'])}"
                       + (f" (mean of {k['n']})" if k["n"] > 1 else "") + f", {_sigmas(k)}")
        for m in b["near_misses"]:
            out.append(f"{bullet}near miss {code(m['commit'])} {m['description']}: {fmt(m['value'])}"
                       + (f" (mean of {m['n']})" if m["n"] > 1 else "")
                       + f" against {fmt(m['bar'])}; retest: {code(m['retest'])}")
    if d["crashes"]:
        out += ["", "**crashes**" if markdown else "crashes"]
        shown = d["crashes"][-night.NEAR_SHOWN:]
        if len(d["crashes"]) > len(shown):
            out.append(f"{bullet}... {len(d['crashes']) - len(shown)} earlier ones: --format json lists them all")
        out += [f"{bullet}{code(c['commit'])} {c['description']}: {c['status']}: {c['reason']}" for c in shown]
    cost = d["cost"]
    wall = ", ".join(f"{s} {night.duration(cost['wall_s'][s])}" for s in archive.COST_STATUSES)
    out += ["", f"{'**cost**: ' if markdown else 'cost: '}{plural(cost['runs'], 'run')} in {cost['hours']:.2f} h; "
                f"wall time {wall}" + (f"; device-hours {cost['device_hours']:.2f}" if cost["device_hours"] else "")]
    return out

