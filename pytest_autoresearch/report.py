"""The text people and agents read: failure messages, summary lines and the JSON report.

A :class:`Outcome` is one judged benchmark as plain data, so it can travel in
``user_properties`` from an xdist worker to the controller and into junit-xml.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REVERT = "git reset --hard HEAD~1"
PROPERTY = "autoresearch"


@dataclass(frozen=True)
class Outcome:
    test: str
    metric: str
    goal: str
    status: str
    value: float | None
    reason: str
    commit: str = ""
    identity: str = ""
    threshold: float | None = None
    best: float | None = None
    best_commit: str = ""
    best_n: int = 0
    delta: float | None = None
    n: int = 1  # runs behind value (their mean)
    spread: float | None = None  # standard deviation of those runs
    sigma: float | None = None  # noise: standard error of the delta
    duration: float | None = None
    memory_gb: float | None = None
    log: str = ""
    note: str = ""

    @property
    def green(self) -> bool:
        return self.status == "keep"

    def to_json(self) -> str:
        return json.dumps({k: _jsonable(v) for k, v in asdict(self).items()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        return cls(**{k: _from_jsonable(v) for k, v in json.loads(text).items()})


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _from_jsonable(value: Any) -> Any:
    return float(value) if value in ("nan", "inf", "-inf") else value


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def fmt_delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.6g}"


def value_text(o: Outcome) -> str:
    """The value, and for a repeated measurement its spread (two significant digits, as an
    uncertainty is written) and sample count."""
    if o.n > 1:
        spread = "-" if o.spread is None else f"{o.spread:.2g}"
        return f"{fmt(o.value)} ± {spread} (mean of {o.n})"
    return fmt(o.value)


def delta_text(o: Outcome) -> str:
    """The delta, in units of the noise floor when it is known: '-0.0012 = -3.1σ'."""
    if o.delta is None:
        return "-"
    if o.sigma:
        return f"{fmt_delta(o.delta)} = {o.delta / o.sigma:+.1f}σ"
    return fmt_delta(o.delta)


def bar_text(o: Outcome) -> str:
    parts = []
    if o.best is not None:
        runs = f" (mean of {o.best_n})" if o.best_n > 1 else ""
        parts.append(f"best {fmt(o.best)} at {o.best_commit}{runs}")
    if o.threshold is not None:
        parts.append(f"threshold {fmt(o.threshold)}")
    return ", ".join(parts) or "none"


def failure_message(o: Outcome, tail: str = "", revertable: bool = True) -> str:
    """The whole red message: what, the bar and where it came from, and how to undo."""
    lines = [f"autoresearch: {o.status.upper()} {o.metric} = {value_text(o)} ({o.goal}) — {o.reason}"]
    if o.status not in ("crash", "timeout"):
        lines.append(f"  bar:    {bar_text(o)}; delta {delta_text(o)}")
    if o.note:
        lines.append(f"  note:   {o.note}")
    if o.commit:
        lines.append(f"  commit: {o.commit}")
    if o.log:
        lines.append(f"  log:    {o.log}")
    if o.commit and revertable:
        lines.append(f"  revert: {REVERT}")
    if tail:
        lines += ["", "---- last lines of the log ----", tail]
    return "\n".join(lines)


def verdict_line(o: Outcome) -> str:
    """One line per benchmark, for agents (``-q``) and the summary."""
    n = f" n={o.n}" if o.n > 1 else ""
    bar = f" best={fmt(o.best)}@{o.best_commit}" if o.best is not None else ""
    thr = f" threshold={fmt(o.threshold)}" if o.threshold is not None else ""
    delta = f" delta={fmt_delta(o.delta)}" if o.delta is not None else ""
    sigmas = f" ({o.delta / o.sigma:+.1f}σ)" if o.sigma and o.delta is not None else ""
    commit = f" commit={o.commit}" if o.commit else ""
    return f"autoresearch: {o.status} {o.test} {o.metric}={fmt(o.value)}{n}{bar}{thr}{delta}{sigmas}{commit}"


def summary_table(outcomes: list[Outcome]) -> list[str]:
    header = ("test", "metric", "value", "best before", "delta", "verdict", "commit")
    rows = [header] + [
        (
            o.test, o.metric, value_text(o),
            f"{fmt(o.best)} @ {o.best_commit}" if o.best is not None else "-",
            delta_text(o), o.status, o.commit or "-",
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def write_json(path: Path, outcomes: list[Outcome]) -> None:
    """The session's verdicts for CI systems."""
    payload = {
        "verdicts": [
            {
                "test": o.test, "metric": o.metric, "goal": o.goal, "value": _jsonable(o.value),
                "bar": _jsonable(o.best), "bar_commit": o.best_commit or None,
                "threshold": o.threshold, "delta": o.delta, "status": o.status,
                "commit": o.commit or None, "identity": o.identity or None,
                "duration": o.duration, "reason": o.reason,
            }
            for o in outcomes
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
