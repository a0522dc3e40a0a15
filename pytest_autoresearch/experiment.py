"""Run a target script in its own process group and read the metrics it prints.

The script's output goes to a log file on disk (the failure shows only its tail). Whatever
ends the wait (normal exit, a pytest-timeout signal, Ctrl-C), the whole process group is
killed before ``run`` returns or raises; the watchdog covers the exits that run no Python
code at all (``os._exit``, SIGKILL).
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .watchdog import Watchdog

TAIL_LINES = 50
KILL_GRACE_S = 3.0
POLL_S = 0.02
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)"
_KEY_VALUE = re.compile(rf"^\s*([A-Za-z_][\w.\-/]*)\s*:\s*({_NUMBER})\s*$", re.IGNORECASE)
_METRIC_LINE = re.compile(rf"^\s*METRIC\s+([A-Za-z_][\w.\-/]*)\s*=\s*({_NUMBER})\s*$", re.IGNORECASE)
_BARE_NUMBER = re.compile(rf"^\s*({_NUMBER})\s*$", re.IGNORECASE)


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
    metrics: dict[str, float] = field(default_factory=dict)
    returncode: int | None = None
    duration: float | None = None
    peak_memory_mb: float | None = None
    last_output: str = ""

    @property
    def crashed(self) -> bool:
        """Ran, and either exited non-zero or printed no line with the metric."""
        return self.returncode is not None and (self.returncode != 0 or self.metric not in self.metrics)

    def tail(self, n: int = TAIL_LINES) -> str:
        return tail(self.log_path, n)

    def run(
        self,
        watchdog: Watchdog | None = None,
        on_tick: Callable[[float, str], None] | None = None,
        tick_s: float = 1.0,
    ) -> None:
        """Run the script to completion; the process group never outlives this call."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-u", str(self.script), *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        start = time.monotonic()
        with open(self.log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=self.script.parent, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
            if watchdog is not None:
                watchdog.guard(proc.pid)
            assert proc.stdout is not None
            copier = threading.Thread(target=self._copy, args=(proc.stdout, log), daemon=True)
            copier.start()
            try:
                status, rusage = self._wait(proc, start, on_tick, tick_s)
            finally:
                _kill_group(proc)
                copier.join(timeout=KILL_GRACE_S)
                proc.stdout.close()
        self.duration = time.monotonic() - start
        self.returncode = os.waitstatus_to_exitcode(status)
        self.metrics = parse_metrics(self.log_path.read_text(errors="replace"), self.metric)
        self.peak_memory_mb = self._peak_memory(rusage)

    def _copy(self, pipe: BinaryIO, log: BinaryIO) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
            log.write(chunk)
            log.flush()
            text = chunk.decode(errors="replace").replace("\r", "\n").strip().splitlines()
            if text:
                self.last_output = text[-1].strip()

    def _wait(
        self,
        proc: subprocess.Popen[bytes],
        start: float,
        on_tick: Callable[[float, str], None] | None,
        tick_s: float,
    ) -> tuple[int, resource.struct_rusage] | tuple[int, None]:
        next_tick = start + tick_s
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return status, rusage
            now = time.monotonic()
            if on_tick is not None and now >= next_tick:
                on_tick(now - start, self.last_output)
                next_tick = now + tick_s
            time.sleep(POLL_S)

    def _peak_memory(self, rusage: resource.struct_rusage | None) -> float | None:
        """The script's own ``peak_vram_mb`` if it reports one, else the child's peak RSS."""
        reported = self.metrics.get("peak_vram_mb")
        if reported is not None and math.isfinite(reported):
            return float(reported)
        if rusage is None or rusage.ru_maxrss <= 0:
            return None
        divisor = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes vs KiB
        return rusage.ru_maxrss / divisor


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End the script's process group: SIGTERM, a grace period, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader once it exits, or the group never empties
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(POLL_S)
