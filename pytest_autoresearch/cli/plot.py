"""The progress chart: every judged run of a series, the kept ones labelled, the running best.

Drawn like the chart in Karpathy's autoresearch notebook: discarded runs as faint dots,
kept runs as prominent dots with their commit subjects, the running best (``history.running_best``,
the verdict's bar as it stood at each run) as a step line, crashes left out. The y-range holds every
kept run, the running best, the baseline and every discard that beat its bar; only discards worse
than all of those fall off the scale (arrows at the edge). A pytest-benchmark suite's verdicts get a
panel of their own above its members': each verdict's geomean against its bar (``history.suites``).
matplotlib comes from the ``plot`` extra and is imported only here, on the Agg canvas
(no pyplot, no display), so the chart draws the same on a headless server.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..history import RecordedSuite, beats_by, running_best
from ..ledger import Entry
from ..noise import Noise
from .stats import REMEASURED, Series, draws, finished, finite, remeasured

INSTALL = "pip install 'pytest-autoresearch[plot]'"
LABEL_CHARS = 40


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: the message carries the install line."""


@dataclass(frozen=True)
class Panel:
    """One series to draw, with its goal and how many runs of it came from other identities."""

    series: Series
    goal: str
    left_out: int = 0
    floor: Noise | None = None  # the noise floor: error bars on commits measured more than once


def best_so_far(runs: Sequence[Entry], goal: str) -> list[float | None]:
    """At each run, the bar as it stood then: :func:`history.running_best`'s mean."""
    return [None if b is None else b.value for b in running_best(runs, goal)]


def y_range(must_show: Sequence[float], spread: float) -> tuple[float, float]:
    """Every value in ``must_show`` inside the axes, with room above for labels; a margin even
    when they are all equal."""
    low, high = min(must_show), max(must_show)
    pad = (high - low) * 0.08 or abs(high) * 0.02 or spread * 0.1 or 1.0
    return low - pad, high + 2 * pad


def must_show(runs: Sequence[Entry], goal: str) -> list[float]:
    """The values the axes must hold: kept runs, the running best, and discards that beat their bar."""
    out = [float(r.value) for r in runs if r.status == "keep" and r.value is not None and finite(r.value)]
    out += [b for b in best_so_far(runs, goal) if b is not None]
    for r in runs:
        bar = r.extra.get("bar")
        if (r.status == "discard" and r.value is not None and finite(r.value)
                and isinstance(bar, (int, float)) and beats_by(r.value, float(bar), goal) > 0):
            out.append(float(r.value))
    return out


def _mark_off_scale(ax: Any, dropped: Sequence[tuple[int, float]], low: float, high: float) -> None:
    """Discarded runs beyond the range still show, as small arrows at the edge they passed."""
    above = [x for x, v in dropped if v > high]
    below = [x for x, v in dropped if v < low]
    margin = (high - low) * 0.015
    if above:
        ax.scatter(above, [high - margin] * len(above), marker="^", s=22, color="#8a8a8a", alpha=0.6,
                   label="discarded, off the scale", zorder=2, clip_on=False)
    if below:
        ax.scatter(below, [low + margin] * len(below), marker="v", s=22, color="#8a8a8a", alpha=0.6,
                   label="discarded, off the scale" if not above else None, zorder=2, clip_on=False)


def title(panel: Panel) -> str:
    tally = draws(panel.series.runs)
    total = finished(tally)
    parts = [f"{total} run{'' if total == 1 else 's'}", f"{tally['keep']} kept", f"{tally['discard']} discarded"]
    if tally[REMEASURED]:
        parts.append(f"{tally[REMEASURED]} re-measured")
    if tally["crash"] or tally["timeout"]:
        parts.append(f"{tally['crash'] + tally['timeout']} crashed or timed out (not shown)")
    head = f"autoresearch: {panel.series.metric} ({panel.goal}) — {panel.series.test}"
    return head + "\n" + ", ".join(parts)


def require() -> None:
    """Fail early, before any ledger is read, when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable(f"plot needs matplotlib: {INSTALL}") from exc


def draw(panels: Sequence[Panel], path: Path, width: int, height: int, dpi: int,
         suites: Sequence[RecordedSuite] = ()) -> None:
    """Write the chart as a PNG of exactly ``width`` x ``height`` pixels."""
    fig = figure(panels, width, height, dpi, suites)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")


def figure(panels: Sequence[Panel], width: int, height: int, dpi: int, suites: Sequence[RecordedSuite] = ()) -> Any:
    """The chart as a matplotlib ``Figure``: a pytest-benchmark suite's verdicts first when there
    are any, then one axes per panel (tests read its limits)."""
    require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(len(panels) + bool(suites), 1, squeeze=False)[:, 0])
    if suites:
        _draw_suite(axes.pop(0), suites)
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel)
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def suite_title(found: Sequence[RecordedSuite]) -> str:
    newest = found[-1].summary
    kept = sum(1 for s in found if s.summary.status == "keep")
    return (f"autoresearch: suite[{newest.size} benchmarks] {newest.statistic}, geomean of each benchmark's ratio "
            f"to its bar\n{len(found)} verdict{'' if len(found) == 1 else 's'}, {kept} kept")


def _draw_suite(ax: Any, found: Sequence[RecordedSuite]) -> None:
    """Each suite verdict's geomean against its bar (below 1: faster), ± one standard error; kept
    verdicts green and labelled, discarded faint; first results (no bar yet) are left out."""
    points = [(x, s.summary.verdict, s) for x, s in enumerate(found, start=1) if s.summary.verdict.geomean is not None]
    ax.axhline(1.0, color="#8a8a8a", linewidth=0.9, linestyle="--", label="the bar (ratio 1)", zorder=1)
    for kept, style in ((False, {"s": 18, "color": "#8a8a8a", "alpha": 0.5, "label": "discarded"}),
                        (True, {"s": 46, "color": "#1a9850", "edgecolors": "#0b4d27", "label": "kept"})):
        chosen = [(x, v) for x, v, s in points if (s.summary.status == "keep") is kept]
        if chosen:
            ax.scatter([x for x, _ in chosen], [v.geomean for _, v in chosen], zorder=3 + kept, **style)
    bars = [(x, v) for x, v, _ in points if v.sigma and v.geomean is not None]
    if bars:
        low = [v.geomean - v.geomean * math.exp(-v.sigma) for _, v in bars if v.geomean and v.sigma]
        high = [v.geomean * math.exp(v.sigma) - v.geomean for _, v in bars if v.geomean and v.sigma]
        ax.errorbar([x for x, _ in bars], [v.geomean for _, v in bars], yerr=[low, high], fmt="none",
                    color="#0b4d27", capsize=3, linewidth=0.9, zorder=2, label="± one standard error")
    for x, _, s in points:
        if s.summary.status == "keep":
            text = s.last.description
            text = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
            ax.annotate(text, (x, s.summary.verdict.geomean), xytext=(4, 6), textcoords="offset points", fontsize=7,
                        rotation=20, color="#0b4d27", zorder=5, annotation_clip=False)
    ax.set_title(suite_title(found), fontsize=10)
    ax.set_xlabel("suite verdict (first results, with no bar, left out)")
    ax.set_ylabel("geomean of ratios (lower is faster)")
    ax.grid(True, alpha=0.25)
    ax.set_xlim(0.5, len(found) + 0.5)
    ax.legend(loc="upper left", fontsize=8)


def _draw_panel(ax: Any, panel: Panel) -> None:
    goal = panel.goal
    shown = [r for r in panel.series.runs if r.status in ("keep", "discard") and finite(r.value)]
    xs = list(range(1, len(shown) + 1))
    values = [float(r.value or 0.0) for r in shown]
    first = {r.sha: i for i, r in reversed(list(enumerate(shown)))}  # each commit's first draw
    later_draws = [i for i, r in enumerate(shown) if remeasured(r) or first[r.sha] != i]
    later = set(later_draws)
    kept = [(x, v, r) for i, (x, v, r) in enumerate(zip(xs, values, shown)) if r.status == "keep" and i not in later]
    again = [(xs[i], values[i]) for i in later_draws]
    dropped = [(x, v) for i, (x, v, r) in enumerate(zip(xs, values, shown)) if r.status != "keep" and i not in later]
    if dropped:
        ax.scatter([x for x, _ in dropped], [v for _, v in dropped], s=18, color="#8a8a8a",
                   alpha=0.5, label="discarded", zorder=2)
    if again:
        ax.scatter([x for x, _ in again], [v for _, v in again], s=22, facecolors="none",
                   edgecolors="#1a9850", linewidths=0.9, label="another draw of a commit drawn before", zorder=3)
    if kept:
        ax.scatter([x for x, _, _ in kept], [v for _, v, _ in kept], s=46, color="#1a9850",
                   edgecolors="#0b4d27", linewidths=0.6, label="kept", zorder=4)
        steps = [(x, b) for x, b in zip(xs, best_so_far(shown, goal)) if b is not None]
        ax.step([x for x, _ in steps] + [xs[-1] + 0.5], [b for _, b in steps] + [steps[-1][1]],
                where="post", color="#1a9850", linewidth=1.8, label="best (mean of its draws)", zorder=3)
        for x, v, r in kept:
            text = r.description if len(r.description) <= LABEL_CHARS else r.description[: LABEL_CHARS - 1] + "…"
            ax.annotate(text, (x, v), xytext=(4, 6), textcoords="offset points", fontsize=7,
                        rotation=20, color="#0b4d27", zorder=5, annotation_clip=False)
        low, high = y_range(must_show(shown, goal), max(values) - min(values))
        ax.set_ylim(low, high)
        _mark_off_scale(ax, dropped, low, high)
        _error_bars(ax, shown, panel.floor)
    ax.set_title(title(panel), fontsize=10)
    ax.set_xlabel("run (crashes left out)" if panel.left_out == 0
                  else f"run (crashes and {panel.left_out} runs under an earlier evaluation left out)")
    ax.set_ylabel(f"{panel.series.metric} ({'lower' if goal == 'min' else 'higher'} is better)")
    ax.grid(True, alpha=0.25)
    if xs:
        ax.set_xlim(0.5, xs[-1] + 0.5)
        # the best runs towards the bottom right (min) or top right (max): the legend goes opposite
        ax.legend(loc="lower left" if goal == "min" else "upper left", fontsize=8)


def _error_bars(ax: Any, shown: Sequence[Entry], floor: Noise | None) -> None:
    """On each commit measured more than once, at its last draw: its mean, ± the noise of that mean."""
    if floor is None:
        return
    last: dict[str, tuple[int, list[float]]] = {}
    for x, r in enumerate(shown, start=1):
        values = last.get(r.sha, (x, []))[1]
        last[r.sha] = (x, [*values, float(r.value or 0.0)])
    points = [(x, statistics.fmean(v), floor.sigma / len(v) ** 0.5) for x, v in last.values() if len(v) > 1]
    if points:
        ax.errorbar([x for x, _, _ in points], [m for _, m, _ in points], yerr=[e for _, _, e in points],
                    fmt="_", color="#0b4d27", capsize=3, linewidth=0.9, zorder=4,
                    label="mean of a commit's draws ± noise")
