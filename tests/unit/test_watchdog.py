"""One watchdog process per session: each judged test a scope of it, ended by the watchdog only if
pytest left it open (a scope closed by pytest is forgotten), as a timeout past its deadline."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import all_gone

from pytest_autoresearch.ledger import Entry, Ledger, format_line
from pytest_autoresearch.runner.watchdog import Watchdogs


def orphan() -> int:
    """A process group of its own that this process is not the parent of (no zombie keeps it)."""
    start = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
             "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
    return int(subprocess.run([sys.executable, "-c", start], capture_output=True, text=True, check=True).stdout)


def running(ledger: Ledger, run_id: str, pid: int) -> str:
    entry = Entry(run_id=run_id, status="running", test=f"t_{run_id}", extra={"goal": "min", "watchdog": pid})
    ledger.append(entry)
    return format_line(entry)


def test_one_process_ends_only_the_scopes_left_open(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    process = Watchdogs(ledger.path, tmp_path / "runs")
    done, left, late = process.open(None), process.open(None), process.open(time.time() - 10)
    assert done.pid == left.pid == late.pid == process.pid  # one interpreter for the whole session
    sleeper = orphan()
    for scope, run_id in ((done, "a"), (left, "b"), (late, "c")):
        scope.track(running(ledger, run_id, process.pid))
    left.guard({"runner": "local", "pgid": sleeper})
    ledger.append(Entry(run_id="a", status="keep", test="t_a", value=1.0))  # pytest completed a's row itself
    done.release()
    process.release()  # the session ends with b and c still open, as if pytest had died
    assert {r.run_id: r.status for r in ledger.runs()} == {"a": "keep", "b": "crash", "c": "timeout"}
    assert all_gone([sleeper])  # b's guarded process group was ended
