"""A sentinel process that finishes a run's bookkeeping if pytest dies without doing it.

pytest-timeout's ``thread`` method ends pytest with ``os._exit`` and a SIGKILL runs no code
at all, so neither finalizers nor ``finally`` blocks can be trusted to stop the target or
complete its ledger row. The watchdog runs in its own session, reads instructions from a
pipe, and when the pipe closes without a ``done`` it kills the target's process group and
appends the run's final ``timeout`` or ``crash`` line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

GRACE_S = 3.0


class Watchdog:
    """The pytest side of the pipe: one watchdog per judged test, covering all its runs."""

    def __init__(self, ledger: Path | None, deadline: float | None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_autoresearch.watchdog"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, text=True,
        )
        self.pid = self._proc.pid
        spec = {"ledger": str(ledger) if ledger else None, "deadline": deadline, "start": time.time()}
        self._send(json.dumps(spec))

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def track(self, running_line: str) -> None:
        """Complete this ``running`` ledger line if pytest dies before it does."""
        self._send("run " + json.dumps(running_line))

    def guard(self, pgid: int) -> None:
        """Kill this process group too if pytest dies."""
        self._send(f"pgid {pgid}")

    def release(self) -> None:
        """pytest finished the runs itself: the watchdog exits without acting."""
        try:
            self._send("done")
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._proc.wait()


def _kill(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def watch(stream: IO[str]) -> None:
    spec = json.loads(stream.readline())
    groups: list[int] = []
    lines: list[str] = []
    for line in stream:
        if line.startswith("pgid "):
            groups.append(int(line.split()[1]))
        elif line.startswith("run "):
            lines.append(json.loads(line[4:]))
        elif line.strip() == "done":
            return
    for pgid in groups:
        _kill(pgid)
    if spec["ledger"] is None or not lines:
        return
    from .ledger import COLUMNS, Ledger, parse_line

    now = time.time()
    timed_out = spec["deadline"] is not None and now >= spec["deadline"] - 1.0
    status = "timeout" if timed_out else "crash"
    reason = "pytest-timeout ended pytest" if timed_out else "pytest ended before the run completed"
    runs = [parse_line(COLUMNS, line) for line in lines]
    Ledger(Path(spec["ledger"])).append(*(
        run.finished(status=status, duration_s=now - spec["start"], extra={**run.extra, "reason": reason})
        for run in runs
    ))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(sys.stdin)
