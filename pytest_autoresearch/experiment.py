"""A target script as the ``experiment`` fixture sees it: run through a runner, its metrics and notes read.

The script's output goes to a log file on disk (the failure shows only its tail). Whatever
ends the wait (normal exit, a pytest-timeout signal, Ctrl-C), the run is cancelled before
``run`` returns or raises; the watchdog covers the exits that run no Python code at all.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .covariate import Gauge
from .runner import Exit, Launch, Runner
from .runner.sandbox import Sealing
from .runner.watchdog import Watchdog

TAIL_LINES = 50
POLL_S = 0.02
_TRACEBACK = "Traceback (most recent call last):"
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)"
_KEY_VALUE = re.compile(rf"^\s*([A-Za-z_][\w.\-/]*)\s*:\s*({_NUMBER})\s*$", re.IGNORECASE)
_METRIC_LINE = re.compile(rf"^\s*METRIC\s+([A-Za-z_][\w.\-/]*)\s*=\s*({_NUMBER})\s*$", re.IGNORECASE)
_BARE_NUMBER = re.compile(rf"^\s*({_NUMBER})\s*$", re.IGNORECASE)
_NOTE_LINE = re.compile(r"^NOTE:[ \t]*(\S.*?)\s*$")
MAX_NOTES = 3  # notes a run may pass on: its output is untrusted and must not flood the verdict
NOTE_CHARS = 300  # each clipped to this many characters


def parse_metrics(text: str, default_name: str) -> dict[str, float]:
    """Metrics from a script's output, in every format in use today.

    - Karpathy's summary: ``key: value`` lines after the last line that is exactly ``---``;
    - ``METRIC name=value`` lines anywhere;
    - a last line that is a bare number (named ``default_name``) or a JSON object.
    """
    lines = [segment for line in text.splitlines() for segment in line.split("\r")[-1:]]
    metrics: dict[str, float] = {}
    separators = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if separators:
        for line in lines[separators[-1] + 1 :]:
            if m := _KEY_VALUE.match(line):
                metrics[m.group(1)] = float(m.group(2))
    for line in lines:
        if m := _METRIC_LINE.match(line):
            metrics[m.group(1)] = float(m.group(2))
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    if m := _BARE_NUMBER.match(last):
        metrics.setdefault(default_name, float(m.group(1)))
    elif last.startswith("{"):
        try:
            obj = json.loads(last)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            for key, value in obj.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics[str(key)] = float(value)
    return metrics


def parse_notes(text: str) -> list[str]:
    """What a script asks to be said beside its verdict: ``NOTE: text`` lines anywhere.

    Informational only: a note never decides a verdict (the output is the target's word).
    Repeats are said once, at most :data:`MAX_NOTES` of them, each clipped to one short line
    without the ``|`` that separates the fields of the verdict line.
    """
    notes: list[str] = []
    for line in text.splitlines():
        if (m := _NOTE_LINE.match(line.split("\r")[-1])) and len(notes) < MAX_NOTES:
            printable = "".join(c for c in m.group(1) if c.isprintable() or c == "\t").replace("|", "/")
            note = " ".join(printable.split())[:NOTE_CHARS]  # no "|": the -q line is split on it
            if note not in notes:
                notes.append(note)
    return notes


def last_error(log: str) -> str:
    """The line that says why a script failed: the last line of its last traceback, else its
    last line of output ("NameError: name 'WARMDOWN_RATO' is not defined")."""
    lines = [line.split("\r")[-1].strip() for line in log.splitlines()]
    if _TRACEBACK in lines:
        lines = lines[len(lines) - 1 - lines[::-1].index(_TRACEBACK):]
    return next((line for line in reversed(lines) if line), "")


def tail(path: Path, n: int = TAIL_LINES) -> str:
    """The last ``n`` lines of a log, carriage-return progress collapsed to its final state."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    lines = [line.split("\r")[-1] for line in text.splitlines()]
    return "\n".join(lines[-n:])


@dataclass
class Experiment:
    """A target script and, once run, what it produced.

    The ``experiment`` fixture hands this to the test; the plugin runs it in the call phase
    before the test body, so ``metrics`` is filled when the body reads it.
    """

    script: Path
    log_path: Path
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    metric: str = ""
    scored: bool = False  # a frozen scorer gives the value: the script need not print it
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # its NOTE: lines, said beside the verdict
    returncode: int | None = None
    duration: float | None = None
    peak_memory_mb: float | None = None
    where: Mapping[str, str] = field(default_factory=dict)
    ended: float | None = None  # time.monotonic() when the plugin saw the script exit
    machine: dict[str, float] = field(default_factory=dict)  # what the machine gave the run (covariate.Gauge)

    @property
    def crashed(self) -> bool:
        """Ran, and either exited non-zero or printed no line with the metric (when it must print one)."""
        return self.returncode is not None and (self.returncode != 0 or not self.scored and self.metric not in self.metrics)

    def tail(self, n: int = TAIL_LINES) -> str:
        return tail(self.log_path, n)

    def error(self) -> str:
        """Why the run failed, in one line of its own output."""
        try:
            return last_error(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def run(
        self,
        runner: Runner,
        watchdog: Watchdog | None = None,
        on_tick: Callable[[float, str], None] | None = None,
        tick_s: float = 1.0,
        *,
        worktree: Path | None = None,
        commit: str | None = None,
        artifact: Path | None = None,
        sealing: Sealing | None = None,
        env: Mapping[str, str] | None = None,
        on_start: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Run the script to completion (`env` on top of its own); the run never outlives this call.

        ``on_start`` hears where the run is (the runner's orphan token) once it has started."""
        launch = Launch(self.script, tuple(self.args), {**self.env, **(env or {})}, self.log_path, worktree, commit,
                        artifact, sealing)
        gauge = Gauge() if runner.name == "local" else None  # another node's load is not this machine's
        handle = runner.start(launch)
        if watchdog is not None:
            watchdog.guard(handle.orphan_token())
        start = time.monotonic()
        next_tick = start + tick_s
        try:
            if on_start is not None:
                on_start(handle.orphan_token())
            while (done := handle.poll()) is None:
                now = time.monotonic()
                if on_tick is not None and now >= next_tick:
                    on_tick(now - start, handle.last_output)
                    next_tick = now + tick_s
                if gauge is not None:
                    gauge.sample()
                time.sleep(POLL_S)
            self.ended = time.monotonic()
        finally:
            handle.cancel()
        self.machine = gauge.stop() if gauge is not None else {}
        self._read(done)

    def _read(self, done: Exit) -> None:
        self.returncode, self.duration, self.where = done.returncode, done.duration, done.where
        output = self.log_path.read_text(errors="replace")
        self.metrics = parse_metrics(output, self.metric)
        self.notes = parse_notes(output)
        reported = self.metrics.get("peak_vram_mb")  # the script's own figure beats the process's RSS
        self.peak_memory_mb = float(reported) if reported is not None and math.isfinite(reported) else done.peak_memory_mb
