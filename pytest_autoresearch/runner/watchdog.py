"""A sentinel process that finishes a run's bookkeeping if pytest dies without doing it.

pytest-timeout's ``thread`` method ends pytest with ``os._exit`` and a SIGKILL runs no code
at all, so neither finalizers nor ``finally`` blocks can be trusted to stop the target or
complete its ledger row. The watchdog runs in its own session, reads instructions from a
pipe, and when the pipe closes it kills the process groups of every judged test still open
and appends their runs' final ``timeout`` or ``crash`` lines. It ends each run through the
module of the runner that started it (``reap``), so a run on another machine is ended the same way.

One watchdog process serves the whole pytest session, started when the first judged test needs it
(an interpreter per test was most of the plugin's added time on a suite of quick benchmarks); each
judged test is a scope of it, opened with its own deadline and closed when the test completed its rows.
"""

from __future__ import annotations

import importlib
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any


class Watchdogs:
    """The pytest side of the pipe: the session's one watchdog process."""

    def __init__(self, ledger: Path | None, logs: Path | None = None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_autoresearch.runner.watchdog"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, text=True,
        )
        self.pid = self._proc.pid
        self._scopes = itertools.count(1)
        self.send(json.dumps({"ledger": str(ledger) if ledger else None, "logs": str(logs) if logs else None}))

    def send(self, line: str) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()

    def open(self, deadline: float | None) -> Watchdog:
        """The watchdog of one judged test, whose rows are a timeout after ``deadline`` (else a crash)."""
        scope = next(self._scopes)
        self.send(f"open {scope} " + json.dumps({"deadline": deadline, "start": time.time()}))
        return Watchdog(self, scope)

    def release(self) -> None:
        """The session is over: the watchdog ends what is still open (nothing, normally) and exits."""
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._proc.wait()


class Watchdog:
    """One judged test's scope of the session's watchdog, covering all its runs."""

    def __init__(self, process: Watchdogs, scope: int) -> None:
        self._process, self._scope = process, scope
        self.pid = process.pid

    def track(self, running_line: str) -> None:
        """Complete this ``running`` ledger line if pytest dies before it does."""
        self._process.send(f"run {self._scope} " + json.dumps(running_line))

    def guard(self, token: dict[str, Any]) -> None:
        """End this run too if pytest dies (``token``: the run handle's ``orphan_token()``)."""
        self._process.send(f"guard {self._scope} " + json.dumps(token))

    def release(self) -> None:
        """pytest finished this test's runs itself: the watchdog forgets them."""
        try:
            self._process.send(f"close {self._scope}")
        except (BrokenPipeError, OSError):
            pass


REAP_TIMEOUT_S = 60.0


def _reap(token: dict[str, Any]) -> None:
    """End one run through its runner; a cluster that does not answer cannot hold up the ledger row."""
    module = importlib.import_module(f"pytest_autoresearch.runner.{token['runner']}")
    worker = threading.Thread(target=module.reap, args=(token,), daemon=True)
    worker.start()
    worker.join(REAP_TIMEOUT_S)


def watch(stream: IO[str]) -> None:
    """Follow the pipe until it closes, then end every scope still open."""
    spec = json.loads(stream.readline())
    scopes: dict[str, dict[str, Any]] = {}
    for line in stream:
        kind, _, rest = line.rstrip("\n").partition(" ")
        scope, _, body = rest.partition(" ")
        if kind == "open":
            scopes[scope] = {**json.loads(body), "guarded": [], "lines": []}
        elif kind == "close":
            scopes.pop(scope, None)
        elif kind in ("guard", "run") and scope in scopes:
            scopes[scope]["guarded" if kind == "guard" else "lines"].append(json.loads(body))
    for open_scope in scopes.values():
        _end(spec, open_scope)


def _end(spec: dict[str, Any], scope: dict[str, Any]) -> None:
    """End a judged test pytest left open: its runs stopped, its rows a timeout (past its deadline) or a crash."""
    for token in scope["guarded"]:
        _reap(token)
    if spec["ledger"] is None or not scope["lines"]:
        return
    from ..ledger import COLUMNS, Ledger, parse_line

    now = time.time()
    timed_out = scope["deadline"] is not None and now >= scope["deadline"] - 1.0
    status = "timeout" if timed_out else "crash"
    reason = "pytest-timeout ended pytest" if timed_out else "pytest ended before the run completed"
    runs = [parse_line(COLUMNS, line) for line in scope["lines"]]
    logs = spec.get("logs")
    Ledger(Path(spec["ledger"]), logs=Path(logs) if logs else None).append(*(
        run.finished(status=status, duration_s=now - scope["start"], extra={**run.extra, "reason": reason})
        for run in runs
    ))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(sys.stdin)
