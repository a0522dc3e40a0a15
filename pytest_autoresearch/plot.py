"""The progress chart: every judged run of a series, the kept ones labelled, the running best.

Drawn like the chart in Karpathy's autoresearch notebook: discarded runs as faint dots,
kept runs as prominent dots with their commit subjects, the running best as a step line,
crashes left out, the y-range from just past the best to just past the baseline.
matplotlib comes from the ``plot`` extra and is imported only here, on the Agg canvas
(no pyplot, no display), so the chart draws the same on a headless server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .summary import Goal, Series, counts, finite

INSTALL = "pip install 'pytest-autoresearch[plot]'"
LABEL_CHARS = 40


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: the message carries the install line."""


@dataclass(frozen=True)
class Panel:
    """One series to draw, with its goal and how many runs of it came from other identities."""

    series: Series
    goal: Goal
    left_out: int = 0


def running_best(values: Sequence[float | None], goal: str) -> list[float | None]:
    """The best kept value so far at each position (None before the first keep)."""
    out: list[float | None] = []
    current: float | None = None
    for v in values:
        if v is not None and (current is None or (v < current if goal == "min" else v > current)):
            current = v
        out.append(current)
    return out


def y_range(best: float, baseline: float, spread: float) -> tuple[float, float]:
    """From just past the best to just past the baseline (room above for labels); a margin
    even when they are equal."""
    low, high = min(best, baseline), max(best, baseline)
    pad = (high - low) * 0.08 or abs(high) * 0.02 or spread * 0.1 or 1.0
    return low - pad, high + 2 * pad


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
    tally = counts(panel.series.runs)
    parts = [f"{sum(tally[s] for s in ('keep', 'discard', 'crash', 'timeout'))} runs",
             f"{tally['keep']} kept", f"{tally['discard']} discarded"]
    if tally["crash"] or tally["timeout"]:
        parts.append(f"{tally['crash'] + tally['timeout']} crashed or timed out (not shown)")
    head = f"autoresearch: {panel.series.metric} ({panel.goal.goal}) — {panel.series.test}"
    return head + "\n" + ", ".join(parts)


def require() -> None:
    """Fail early, before any ledger is read, when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable(f"plot needs matplotlib: {INSTALL}") from exc


def draw(panels: Sequence[Panel], path: Path, width: int, height: int, dpi: int) -> None:
    """Write the chart as a PNG of exactly ``width`` x ``height`` pixels."""
    require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")


def _draw_panel(ax: Any, panel: Panel) -> None:
    goal = panel.goal.goal
    shown = [r for r in panel.series.runs if r.status in ("keep", "discard") and finite(r.value)]
    xs = list(range(1, len(shown) + 1))
    values = [float(r.value or 0.0) for r in shown]
    kept = [(x, v, r) for x, v, r in zip(xs, values, shown) if r.status == "keep"]
    dropped = [(x, v) for x, v, r in zip(xs, values, shown) if r.status != "keep"]
    if dropped:
        ax.scatter([x for x, _ in dropped], [v for _, v in dropped], s=18, color="#8a8a8a",
                   alpha=0.5, label="discarded", zorder=2)
    if kept:
        ax.scatter([x for x, _, _ in kept], [v for _, v, _ in kept], s=46, color="#1a9850",
                   edgecolors="#0b4d27", linewidths=0.6, label="kept", zorder=4)
        best = running_best([v if r.status == "keep" else None for v, r in zip(values, shown)], goal)
        steps = [(x, b) for x, b in zip(xs, best) if b is not None]
        ax.step([x for x, _ in steps] + [xs[-1] + _right_room(xs)], [b for _, b in steps] + [steps[-1][1]],
                where="post", color="#1a9850", linewidth=1.8, label="running best", zorder=3)
        labelled: set[str] = set()
        for x, v, r in kept:
            if r.sha in labelled:  # a re-measurement of a kept commit: one label is enough
                continue
            labelled.add(r.sha)
            text = r.description if len(r.description) <= LABEL_CHARS else r.description[: LABEL_CHARS - 1] + "…"
            ax.annotate(text, (x, v), xytext=(4, 6), textcoords="offset points", fontsize=7,
                        rotation=20, color="#0b4d27", zorder=5)
        low, high = y_range(steps[-1][1], kept[0][1], max(values) - min(values))
        ax.set_ylim(low, high)
        _mark_off_scale(ax, dropped, low, high)
    ax.set_title(title(panel), fontsize=10)
    ax.set_xlabel("run (crashes left out)" if panel.left_out == 0
                  else f"run (crashes and {panel.left_out} runs under an earlier evaluation left out)")
    ax.set_ylabel(f"{panel.series.metric} ({'lower' if goal == 'min' else 'higher'} is better)")
    ax.grid(True, alpha=0.25)
    if xs:
        ax.set_xlim(0.5, xs[-1] + _right_room(xs))
        # the best runs towards the bottom right (min) or top right (max): the legend goes opposite
        ax.legend(loc="lower left" if goal == "min" else "upper left", fontsize=8)


def _right_room(xs: Sequence[int]) -> float:
    """Space after the last run for its label."""
    return max(1.0, 0.1 * len(xs))
