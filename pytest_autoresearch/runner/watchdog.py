"""A sentinel process that finishes a run's bookkeeping if pytest dies without doing it.

pytest-timeout's ``thread`` method ends pytest with ``os._exit`` and a SIGKILL runs no code
at all, so neither finalizers nor ``finally`` blocks can be trusted to stop the target or
complete its ledger row. The watchdog runs in its own session, reads instructions from a
pipe, and when the pipe closes without a ``done`` it kills the target's process group and
appends the run's final ``timeout`` or ``crash`` line. It ends each run through the module of
the runner that started it (``reap``), so a run on another machine is ended the same way.
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


class Watchdog:
    """The pytest side of the pipe: one watchdog per judged test, covering all its runs."""

    def __init__(self, ledger: Path | None, deadline: float | None, logs: Path | None = None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_autoresearch.runner.watchdog"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, text=True,
        )
        self.pid = self._proc.pid
        spec = {"ledger": str(ledger) if ledger else None, "deadline": deadline, "start": time.time(),
                "logs": str(logs) if logs else None}
        self._send(json.dumps(spec))

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def track(self, running_line: str) -> None:
        """Complete this ``running`` ledger line if pytest dies before it does."""
        self._send("run " + json.dumps(running_line))

    def guard(self, token: dict[str, Any]) -> None:
        """End this run too if pytest dies (``token``: the run handle's ``orphan_token()``)."""
        self._send("guard " + json.dumps(token))

    def release(self) -> None:
        """pytest finished the runs itself: the watchdog exits without acting."""
        try:
            self._send("done")
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._proc.wait()


REAP_TIMEOUT_S = 60.0


def _reap(token: dict[str, Any]) -> None:
    """End one run through its runner; a cluster that does not answer cannot hold up the ledger row."""
    module = importlib.import_module(f"pytest_autoresearch.runner.{token['runner']}")
    worker = threading.Thread(target=module.reap, args=(token,), daemon=True)
    worker.start()
    worker.join(REAP_TIMEOUT_S)


def watch(stream: IO[str]) -> None:
    spec = json.loads(stream.readline())
    guarded: list[dict[str, Any]] = []
    lines: list[str] = []
    for line in stream:
        if line.startswith("guard "):
            guarded.append(json.loads(line[6:]))
        elif line.startswith("run "):
            lines.append(json.loads(line[4:]))
        elif line.strip() == "done":
            return
    for token in guarded:
        _reap(token)
    if spec["ledger"] is None or not lines:
        return
    from ..ledger import COLUMNS, Ledger, parse_line

    now = time.time()
    timed_out = spec["deadline"] is not None and now >= spec["deadline"] - 1.0
    status = "timeout" if timed_out else "crash"
    reason = "pytest-timeout ended pytest" if timed_out else "pytest ended before the run completed"
    runs = [parse_line(COLUMNS, line) for line in lines]
    logs = spec.get("logs")
    Ledger(Path(spec["ledger"]), logs=Path(logs) if logs else None).append(*(
        run.finished(status=status, duration_s=now - spec["start"], extra={**run.extra, "reason": reason})
        for run in runs
    ))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(sys.stdin)
