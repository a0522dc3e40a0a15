"""The text of the ledger views: a branch's status, branches side by side, the runs table.

Pure rendering of :mod:`pytest_autoresearch.cli.stats` results into lines; ``commands``
decides which runs to show and prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import archive
from ..ledger import Entry
from ..outcome import BASELINE_FAILED, fmt, fmt_delta, jsonable
from ..runner.sandbox import UNSEALED
from . import stats

if TYPE_CHECKING:
    from .night import Benchmark
    from .project import Project

PROG = "autoresearch"
NEXT = 'pytest --autoresearch -q > run.log 2>&1; echo "exit $?"; grep "^autoresearch: " run.log'  # one run of the loop
ENDED = {"discard": "a discarded", "crash": "a crashed", "timeout": "a timed-out"}


def plural(count: int, word: str, suffix: str = "s") -> str:
    return f"{count} {word}{'' if count == 1 else suffix}"


def heading(s: stats.Series, goal: str, extra: str = "") -> str:
    direction = "lower is better" if goal == "min" else "higher is better"
    return f"{s.test}  {s.metric}: {direction}{extra}"


def head_state(here: Sequence[Entry], head_sha: str, head_short: str, last_kept: str | None) -> list[str]:
    """A warning when HEAD is a commit the loop should have reset: red, and not kept since."""
    mine = [r for r in here if r.sha == head_sha and r.status in ENDED.keys() | {"keep"}]
    if not mine or any(r.status == "keep" for r in mine):
        return []
    back = f"the last kept commit is {last_kept[:7]}: git reset --hard {last_kept[:7]}" if last_kept else BASELINE_FAILED
    return [f"HEAD {head_short} is {ENDED[mine[-1].status]} commit; {back}"]


def no_runs(runs: Sequence[Entry], scope: str, ledger: Path) -> list[str]:
    """Status before this branch's first run: nothing to show yet, and the command that makes the first."""
    others = len({r.branch for r in runs})
    elsewhere = (f" ({plural(len(runs), 'run')} on {plural(others, 'other branch', 'es')}: "
                 f"{PROG} status --all-branches)") if runs else ""
    return [f"{PROG} status: {scope}, no runs yet{elsewhere}", f"  ledger: {ledger}",
            f"  next: {NEXT}"]


def header(runs: Sequence[Entry], scope: str) -> str:
    """'autoresearch status: branch x at abc1234, 21 runs, last 3m ago': runs as ``cost:`` counts them."""
    tally = stats.draws(runs)
    running = f" and {tally['running']} running" if tally["running"] else ""
    return f"{PROG} status: {scope}, {plural(stats.finished(tally), 'run')}{running}, last {stats.ago(runs[-1].timestamp)}"


def counts_lines(runs: Sequence[Entry]) -> list[str]:
    """Ideas (commits, each once) and draws (runs) counted apart: five draws of a baseline are one idea."""
    ideas, draws = stats.ideas(runs), stats.draws(runs)
    rate = stats.keep_rate(ideas)
    per = ", ".join(f"{name} {ideas[name]}" for name in stats.COUNTED)
    per += f" (wrong {ideas[stats.WRONG]}: tests failed)" if ideas[stats.WRONG] else ""
    each = ", ".join(f"{name} {draws[name]}" for name in stats.COUNTED)
    each += f" (wrong {draws[stats.WRONG]})" if draws[stats.WRONG] else ""
    more = "".join(f", {name} {draws[name]}" for name in (stats.REMEASURED, "interrupted", "running") if draws[name])
    return [f"  ideas: {per}; keep rate {'-' if rate is None else f'{rate:.0%}'} "
            f"({plural(stats.finished(ideas), 'commit')})",
            f"  draws: {each}{more} ({plural(stats.finished(draws), 'run')})"]


def branch_status(here: list[Entry], found: Sequence[Benchmark], scope: str, ledger: Path, last: int,
                  project: Project, warning: Sequence[str] = (), more: Sequence[str] = ()) -> list[str]:
    """The status of one branch: a block per test and metric (``night.Benchmark``), ``more``
    (lucky draws, near misses, cost), the last runs."""
    from .night import elsewhere_lines, noise_line  # here: night imports this module

    lines = [header(here, scope), f"  ledger: {ledger}", *warning]
    for b in found:
        s = b.series
        lines += ["", heading(s, b.goal)]
        best, base = b.best, stats.baseline(s.runs)
        unsealed = [r for r in s.runs if r.extra.get("isolation") == UNSEALED]  # the target ran outside the sandbox
        rows: list[tuple[str, ...]] = []
        if best is not None:
            draws = f" (mean of {best.n})" if best.n > 1 else ""
            mark = " unsealed" if any(r.sha == best.sha for r in unsealed) else ""
            rows.append(("best", fmt(best.value) + draws + mark, best.commit, best.description))
        if base is not None:
            rows.append(("baseline", fmt(base.value) + (f" (mean of {base.n})" if base.n > 1 else ""),
                         base.commit, base.description))
        lines += ["  " + line for line in table(rows)]
        if best is not None and base is not None:
            change = best.value - base.value
            pct = f" ({change / abs(base.value):+.1%})" if base.value else ""
            steps = len({r.sha for r in s.runs if r.status == "keep"} - {base.sha})
            lines.append(f"  improvement {fmt_delta(change)}{pct} in {plural(steps, 'kept change')} since the baseline")
        elif best is None:
            lines.append("  nothing kept yet")
        lines += counts_lines(s.runs)
        lines.append(noise_line(b, project))
        lines += elsewhere_lines(b)
        if unsealed:
            lines.append(f"  unsealed: {plural(len(unsealed), 'run')} outside the sandbox (autoresearch_isolation = none)")
        earlier = stats.earlier_identity_runs(here, s)
        if earlier:
            lines.append(f"  ({plural(earlier, 'earlier run')} under another evaluation identity not compared)")
    lines += more
    lines += ["", f"last {min(last, len(here))} runs:"]
    lines += ["  " + line for line in log_table(here[-last:], verbose=False)]
    return lines


def all_branches(runs: list[Entry], goal: str | None, ledger: Path) -> list[str]:
    """One line per branch for each test and metric, best first."""
    branches = {r.branch for r in runs}
    lines = [f"{PROG} status: {plural(stats.finished(stats.draws(runs)), 'run')} on {plural(len(branches), 'branch', 'es')}",
             f"  ledger: {ledger}"]
    everything = stats.series(runs, latest_identity_only=False)
    for s in everything:
        g = stats.goal_of(runs, s, goal)
        several = sum(1 for o in everything if (o.test, o.metric) == (s.test, s.metric)) > 1
        lines += ["", heading(s, g, f"  identity {s.identity}" if several else "")]
        rows: list[tuple[str, ...]] = [("branch", "best", "commit", "ideas", "kept", "rate", "last run", "description")]
        for st in stats.standings(s.runs, g):
            rate = stats.keep_rate(st.ideas)
            rows.append((
                st.branch, fmt(st.best.value) if st.best else "-", st.best.commit if st.best else "-",
                str(stats.finished(st.ideas)), str(st.ideas["keep"]),
                "-" if rate is None else f"{rate:.0%}", stats.ago(st.last),
                st.best.description if st.best else "",
            ))
        lines += ["  " + line for line in table(rows)]
    return lines


def run_json(run: Entry) -> dict[str, Any]:
    """Every ledger field of a run; non-finite numbers as strings, so the JSON stays strict."""
    fields = asdict(run)
    fields["extra"] = dict(run.extra)
    return {k: jsonable(v) for k, v in fields.items()}


def log_table(runs: Sequence[Entry], verbose: bool) -> list[str]:
    """Runs as aligned rows, newest last; test and metric columns only where they vary."""
    many_tests = verbose or len({(r.test, r.metric) for r in runs}) > 1
    devices = any(r.extra.get("device") for r in runs)
    header = ["finished (UTC)", "commit", "branch", "value", "mem_gb", "status", "secs", "run"]
    header += ["device"] if devices else []
    header += ["test", "metric"] if many_tests else []
    header += ["description"] + (["reason"] if verbose else [])
    rows: list[tuple[str, ...]] = [tuple(header)]
    for r in runs:
        when = stats.parse_time(r.timestamp)
        cells = [
            when.strftime("%Y-%m-%d %H:%M") if when else r.timestamp or "?",
            r.commit or "-", r.branch or "-", fmt(r.value),
            "-" if r.memory_gb is None else f"{r.memory_gb:.1f}",
            f"{r.status} ({stats.REMEASURED})" if stats.remeasured(r) else r.status,
            "-" if r.duration_s is None else f"{archive.wall_s(r):.0f}", r.run_id[:12],
        ]
        cells += [str(r.extra.get("device") or "-")] if devices else []
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
