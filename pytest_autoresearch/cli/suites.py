"""A pytest-benchmark suite's verdicts in ``status``, ``log`` and ``show``: text and JSON.

Each verdict is :func:`pytest_autoresearch.history.suites`' reading of its members' rows, and its
line is the plugin's own ``-q`` line (:class:`pytest_autoresearch.suite.Summary`), so no report
words a suite's verdict differently from the verdict itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..history import RecordedSuite
from ..ledger import Entry
from ..outcome import fmt, jsonable
from .views import plural, table

LINE_PREFIX = "autoresearch: "


def to_json(recorded: RecordedSuite) -> dict[str, Any]:
    """The plugin's ``--autoresearch-json`` suite object, with where and when it was judged and
    each member's judged value against its bar."""
    last = recorded.last
    members = [{"test": m.test, "value": m.value, "bar": m.bar, "ratio": m.ratio} for m in recorded.summary.members]
    fields = {**recorded.summary.to_json(), "sha": last.sha, "branch": last.branch, "description": last.description,
              "timestamp": last.timestamp, "runs": [r.run_id for r in recorded.rows], "member_values": members}
    return {k: jsonable(v) for k, v in fields.items()}


def verdict_text(recorded: RecordedSuite) -> str:
    """'keep suite[3 benchmarks] geomean=0.931 (-2.8σ) commit=abc1234 | ...': the ``-q`` line, unprefixed."""
    return recorded.summary.line().removeprefix(LINE_PREFIX)


def members_text(recorded: RecordedSuite) -> str:
    """'test_a x0.812, test_b x1.020 (regressed, protected)': each member's ratio to its bar."""
    regressed = recorded.summary.verdict.regressed
    parts = []
    for m in recorded.summary.members:
        ratio = f" x{m.ratio:.3f}" if m.ratio is not None else f" {fmt(m.value)} (no bar)"
        parts.append(f"{m.test.rsplit('::', 1)[-1]}{ratio}{' (protected: regressed)' if m.test == regressed else ''}")
    return ", ".join(parts)


def status_lines(found: Sequence[RecordedSuite], last: int) -> list[str]:
    """The suite block of ``status``: its verdicts counted, the latest ``last`` of them, the newest's members."""
    if not found:
        return []
    newest = found[-1].summary
    kept = sum(1 for s in found if s.summary.status == "keep")
    lines = ["", f"suite of {plural(newest.size, 'benchmark')} ({newest.statistic}, pytest-benchmark): "
                 f"{plural(len(found), 'verdict')}, {kept} kept"]
    rows = [(s.last.commit or "-", verdict_text(s).split(" | ")[0].split(" commit=")[0], s.last.description or "-")
            for s in found[-last:]]
    lines += ["  " + line for line in table(rows)]
    lines.append(f"  last verdict: {verdict_text(found[-1])}")
    lines.append(f"  its members: {members_text(found[-1])}")
    return lines


def log_lines(runs: Sequence[Entry], table_lines: Sequence[str], found: Sequence[RecordedSuite]) -> list[str]:
    """``log``'s table with each suite's verdict under the last of its rows shown."""
    ends = {s.rows[-1].run_id: s for s in found}
    shown = {r.run_id for r in runs}
    for s in found:  # a suite whose last row is filtered out is said under its last row shown
        if s.rows[-1].run_id not in shown:
            mine = [r.run_id for r in s.rows if r.run_id in shown]
            if mine:
                ends[mine[-1]] = s
    out = [table_lines[0]] if table_lines else []
    for run, line in zip(runs, table_lines[1:]):
        out.append(line)
        if run.run_id in ends:
            out.append(f"  └ suite: {verdict_text(ends[run.run_id])}")
    return out


def member_of(run: Entry, found: Sequence[RecordedSuite]) -> RecordedSuite | None:
    """The suite verdict a run's row belongs to, if any."""
    return next((s for s in found if any(r.run_id == run.run_id for r in s.rows)), None)


def show_lines(run: Entry, recorded: RecordedSuite) -> list[str]:
    """``show``'s suite lines: the verdict it shared, its own ratio, the members."""
    own = next((m for m in recorded.summary.members if m.test == run.test), None)
    ratio = f"; this benchmark x{own.ratio:.3f} its bar" if own is not None and own.ratio is not None else ""
    lines = [f"  suite     {verdict_text(recorded)}{ratio}",
             f"  members   {members_text(recorded)}"]
    return lines
