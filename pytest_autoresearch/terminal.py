"""Everything pytest prints for autoresearch: the progress line, the verdict lines, the summary, the JSON report.

Outcomes are collected from test reports (``user_properties``), so this works the same in a
plain run and on the xdist controller, which runs no test itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .ledger import clean_text
from .outcome import BASELINE_FAILED, Outcome, delta_text, fmt, jsonable, notes_text, undo_text, value_text, verdict_line
from .settings import Settings

Ticker = Callable[[float, str], None]


class VerdictReporter:
    """Registered beside the session in ``--autoresearch`` mode."""

    def __init__(self, config: pytest.Config, settings: Settings, note: Callable[[], str],
                 outcomes: Callable[[], list[Outcome]], failures: Callable[[], list[str]]) -> None:
        self.config = config
        self.settings = settings
        self.note = note
        self.outcomes = outcomes  # the session's, settled once every result is in
        self.failures = failures  # the session's failed tests
        self.lines: list[str] = []  # said after the verdicts: a benchmark suite's verdict line
        self.suite: dict[str, Any] | None = None  # that suite's verdict, for the JSON report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """At the end: one greppable line per benchmark with -q, else the table and the notes
        (the plugin's, then each target's ``NOTE:`` lines)."""
        note, outcomes = self.note(), self.outcomes()
        if not outcomes and not note:
            return
        if self.config.get_verbosity() < 0:
            for line in [*map(verdict_line, outcomes), *self.lines]:
                terminalreporter.write_line(line)
            return
        terminalreporter.write_sep("=", "autoresearch")
        if note:
            terminalreporter.write_line(f"autoresearch: {note}")
        if outcomes:
            for line in summary_table(outcomes):
                terminalreporter.write_line(line)
            for outcome in outcomes:
                if outcome.note and outcome.note != note:
                    terminalreporter.write_line(f"{outcome.test}: {outcome.note}")
                if outcome.target_note:
                    terminalreporter.write_line(f"{outcome.test}: {outcome.target_note}")
                if outcome.hint:
                    terminalreporter.write_line(f"{outcome.test}: {outcome.hint}")
        for line in self.lines:
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.settings.json_path is not None and not hasattr(self.config, "workerinput"):
            write_json(self.settings.json_path, self.outcomes(), int(exitstatus), self.failures(), self.suite)


def progress_line(
    config: pytest.Config, name: str, limit_s: float | None, every_s: float
) -> tuple[Ticker | None, float]:
    """A ticker for a running script and how often to call it (None: show nothing).

    Rewritten in place on a terminal, one line every few seconds otherwise (a log file an agent
    reads later), and nothing at all with ``-q`` or on an xdist worker, which has no terminal.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or hasattr(config, "workerinput") or config.get_verbosity() < 0:
        return None, 1.0
    tty = bool(reporter.isatty())
    if not tty and every_s == 0:
        return None, 1.0
    limit = f" / {limit_s:.0f}s" if limit_s else ""

    def tick(elapsed: float, last: str) -> None:
        line = f"autoresearch: {name} {elapsed:.0f}s{limit}  {clean_text(last)[:100]}"
        with capman.global_and_fixture_disabled() if capman else _nothing():
            if tty:
                reporter.rewrite(line, erase=True)
            else:
                reporter.ensure_newline()
                reporter.write_line(line)

    return tick, (1.0 if tty else every_s)


def announce(config: pytest.Config, line: str) -> None:
    """Say ``line`` now, while the test runs, even under ``-q``: what the agent reads before a long
    wait (a paired verdict). Nothing on an xdist worker, which has no terminal."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput"):
        return
    capman = config.pluginmanager.get_plugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else _nothing():
        reporter.ensure_newline()
        reporter.write_line(line)


def about(seconds: float) -> str:
    """A duration as people estimate one: 'about 40 s', 'about 7 min'."""
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


def waiting(config: pytest.Config, name: str, every_s: float) -> Callable[[int, int], None] | None:
    """What a run says while every device is leased: 'waiting for a device: 4 of 4 in use'."""
    tick, every = progress_line(config, name, None, every_s)
    if tick is None:
        return None
    start = time.monotonic()
    last = [float("-inf")]

    def on_wait(in_use: int, devices: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            tick(now - start, f"waiting for a device: {in_use} of {devices} in use")

    return on_wait


@contextmanager
def _nothing() -> Generator[None, None, None]:
    yield


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


def write_json(path: Path, outcomes: list[Outcome], exitstatus: int, failed: list[str],
               suite: dict[str, Any] | None = None) -> None:
    """The session's verdicts for CI systems, the session's outcome they agree with, and a benchmark
    suite's verdict when one was judged."""
    payload: dict[str, Any] = {
        "session": {"exitstatus": exitstatus, "failed": failed},
        "verdicts": [
            {
                "test": o.test, "metric": o.metric, "goal": o.goal, "value": jsonable(o.value),
                "bar": jsonable(o.best), "bar_commit": o.best_commit or None,
                "threshold": o.threshold, "delta": o.delta, "n": o.n, "sigma": o.sigma,
                "noise_sigma": o.noise_sigma, "status": o.status,
                "commit": o.commit or None, "identity": o.identity or None,
                "duration": o.duration, "reason": o.reason, "note": notes_text(o) or None,
                "failed": list(o.failed), "revert": None if o.green else o.revert or None,
                "fix": BASELINE_FAILED if undo_text(o).startswith("fix: ") else None,
            }
            for o in outcomes
        ]
    }
    if suite is not None:
        payload["suite"] = {k: jsonable(v) for k, v in suite.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
