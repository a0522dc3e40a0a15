"""The text of the ledger views: a branch's status, branches side by side, the runs table.

Pure rendering of :mod:`pytest_autoresearch.summary` results into lines; ``cli.py`` decides
which runs to show and prints them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import summary
from .ledger import Entry
from .report import fmt, fmt_delta

PROG = "autoresearch"


def plural(count: int, word: str, suffix: str = "s") -> str:
    return f"{count} {word}{'' if count == 1 else suffix}"


def heading(s: summary.Series, goal: summary.Goal, extra: str = "") -> str:
    direction = "lower is better" if goal.goal == "min" else "higher is better"
    return f"{s.test}  {s.metric}: {direction}{extra}"


def branch_status(here: list[Entry], everything: list[Entry], scope: str, ledger: Path,
                  goal: str | None, last: int) -> list[str]:
    """The status of one branch: a block per test and metric, lucky draws, the last runs."""
    lines = [f"{PROG} status: {scope}, {len(here)} runs, last {summary.ago(here[-1].timestamp)}",
             f"  ledger: {ledger}"]
    lucky: list[str] = []
    for s in summary.series(here):
        g = summary.goal_of(everything, s, goal)
        how = f"{g.how}; pass --goal if wrong" if g.ambiguous else g.how
        lines += ["", heading(s, g, f" ({how})")]
        best, base = summary.best(s.runs, g.goal), summary.baseline(s.runs)
        rows: list[tuple[str, ...]] = []
        if best is not None:
            draws = f" (mean of {best.draws})" if best.draws > 1 else ""
            rows.append(("best", fmt(best.value) + draws, best.commit, best.description))
        if base is not None:
            rows.append(("baseline", fmt(base.value), base.commit, base.description))
        lines += ["  " + line for line in table(rows)]
        if best is not None and base is not None:
            change = best.value - base.value
            pct = f" ({change / abs(base.value):+.1%})" if base.value else ""
            steps = len({r.sha for r in s.runs if r.status == "keep"} - {base.sha})
            lines.append(f"  improvement {fmt_delta(change)}{pct} in {plural(steps, 'kept change')} since the baseline")
        elif best is None:
            lines.append("  nothing kept yet")
        tally = summary.counts(s.runs)
        rate = summary.keep_rate(tally)
        counted = ", ".join(f"{name} {tally[name]}" for name in summary.COUNTED)
        running = f", running {tally['running']}" if tally["running"] else ""
        lines.append(f"  runs: {counted}{running}; keep rate {'-' if rate is None else f'{rate:.0%}'}")
        earlier = summary.earlier_identity_runs(here, s)
        if earlier:
            lines.append(f"  ({earlier} earlier runs under another evaluation identity are not compared)")
        for luck in summary.lucky_draws(s.runs, g.goal):
            lucky.append(
                f"  {luck.commit}  {luck.description}: kept at {fmt(luck.first)} over the bar "
                f"{fmt(luck.bar)}, but the mean of {luck.draws} draws is {fmt(luck.mean)}"
            )
    if lucky:
        lines += ["", "suspected lucky draws (the mean no longer beats the bar they were kept over):", *lucky]
    lines += ["", f"last {min(last, len(here))} runs:"]
    lines += ["  " + line for line in log_table(here[-last:], verbose=False)]
    return lines


def all_branches(runs: list[Entry], goal: str | None, ledger: Path) -> list[str]:
    """One line per branch for each test and metric, best first."""
    branches = {r.branch for r in runs}
    lines = [f"{PROG} status: {len(runs)} runs on {plural(len(branches), 'branch', 'es')}",
             f"  ledger: {ledger}"]
    everything = summary.series(runs, latest_identity_only=False)
    for s in everything:
        g = summary.goal_of(runs, s, goal)
        several = sum(1 for o in everything if (o.test, o.metric) == (s.test, s.metric)) > 1
        lines += ["", heading(s, g, f"  identity {s.identity}" if several else "")]
        rows: list[tuple[str, ...]] = [("branch", "best", "commit", "runs", "keep", "rate", "last run", "description")]
        for st in summary.standings(s.runs, g.goal):
            rate = summary.keep_rate(st.counts)
            rows.append((
                st.branch, fmt(st.best.value) if st.best else "-", st.best.commit if st.best else "-",
                str(sum(st.counts.values())), str(st.counts["keep"]),
                "-" if rate is None else f"{rate:.0%}", summary.ago(st.last),
                st.best.description if st.best else "",
            ))
        lines += ["  " + line for line in table(rows)]
    return lines


def run_json(run: Entry) -> dict[str, Any]:
    """Every ledger field of a run; non-finite numbers as strings, so the JSON stays strict."""
    fields = asdict(run)
    fields["extra"] = dict(run.extra)
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in fields.items()}


def log_table(runs: Sequence[Entry], verbose: bool) -> list[str]:
    """Runs as aligned rows, newest last; test and metric columns only where they vary."""
    many_tests = verbose or len({(r.test, r.metric) for r in runs}) > 1
    header = ["finished (UTC)", "commit", "branch", "value", "mem_gb", "status", "secs"]
    header += ["test", "metric"] if many_tests else []
    header += ["description"] + (["reason"] if verbose else [])
    rows: list[tuple[str, ...]] = [tuple(header)]
    for r in runs:
        when = summary.parse_time(r.timestamp)
        cells = [
            when.strftime("%Y-%m-%d %H:%M") if when else r.timestamp or "?",
            r.commit or "-", r.branch or "-", fmt(r.value),
            "-" if r.memory_gb is None else f"{r.memory_gb:.1f}", r.status,
            "-" if r.duration_s is None else f"{r.duration_s:.0f}",
        ]
        cells += [r.test, r.metric] if many_tests else []
        cells += [r.description or "-"] + ([str(r.extra.get("reason", "-"))] if verbose else [])
        rows.append(tuple(cells))
    return table(rows)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
