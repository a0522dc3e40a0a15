"""A crashing, hanging or interrupted target: red, a ledger row, the log tail, no orphan process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from pathlib import Path

from pytest_autoresearch import chain

from conftest import Project, all_gone, pids_in, run_cli

CRASHER = """
for i in range(80):
    print(f"line {i}")
raise SystemExit("out of memory, pretend")
"""

SILENT = """
print("training went fine but printed no metric")
"""

# Starts a grandchild that would outlive a careless runner, records both pids, then hangs.
HANGER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open("pids.txt", "w").write(f"{os.getpid()} {child.pid}")
print("hanging", flush=True)
time.sleep(300)
"""


# Counts its draws in a file outside the project; the second hangs, as a run does when Ctrl-C comes.
SECOND_DRAW_HANGS = """
import os, time
from pathlib import Path
count = Path(os.environ["DRAWS"])
draw = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(draw))
if draw == 2:
    Path(os.environ["PIDS"]).write_text(str(os.getpid()))
    time.sleep(300)
print("---")
print("score: 1.25")
"""


def _pids(project: Project) -> list[int]:
    return pids_in(project.path / "pids.txt", within=5.0)


def _ignore_pids(project: Project) -> None:
    """The target writes its pids into the project: an unsealed run (a sealed one could not write there)."""
    (project.path / ".gitignore").write_text("__pycache__/\npids.txt\n")
    project.pytester.makeini("[pytest]\nautoresearch_isolation = none\n")


def test_crash_is_red_with_the_log_tail(project: Project) -> None:
    project.bench()
    project.train(None, "crashing idea", body=CRASHER)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*CRASH score = - (min)*train.py exited with code 1*",
        "*log:*.log",
        "*last lines of the log*",
        "line 79",
        "out of memory, pretend",
    ])
    out = result.stdout.str()
    assert "line 29\n" not in out, "only the last 50 lines belong in the failure"
    [run] = project.runs()
    assert run.status == "crash" and run.value is None
    assert [line.split("\t")[3] for line in project.ledger.path.read_text().splitlines()[1:]] == ["running", "crash"]
    assert sum(line.startswith("CRASH score") for line in result.stdout.lines) == 1
    assert "train.py exited with code 1: out of memory, pretend" in run.extra["reason"]
    assert run.extra["log"] == out.split("log:")[1].split()[0]
    log = out.split("log:")[1].split()[0]
    assert "line 0\n" in Path(log).read_text(), "the full log stays on disk"


def test_no_metric_line_is_a_crash(project: Project) -> None:
    project.bench()
    project.train(None, "quiet", body=SILENT)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CRASH*train.py printed no score line*"])
    assert project.statuses() == ["crash"]


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_timeout_kills_the_whole_process_group(project: Project, method: str) -> None:
    project.bench()
    _ignore_pids(project)
    project.train(None, "hangs", body=HANGER)
    started = time.monotonic()
    result = project.run_subprocess("--autoresearch-timeout", "3", "-o", f"timeout_method={method}")
    assert time.monotonic() - started < 60
    pids = _pids(project)
    assert all_gone(pids), f"processes left running after a {method} timeout: {pids}"
    assert (project.path / "pids.txt").exists()
    if method == "signal":
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*Timeout (>3.0s) from pytest-timeout*"])
    else:
        assert result.ret != 0  # the thread method dumps stacks and ends pytest with os._exit
        result.stdout.fnmatch_lines(["*+ Timeout +*"])
    for _ in range(100):  # the watchdog completes the row after pytest is gone
        if project.statuses() != ["running"]:
            break
        time.sleep(0.1)
    [run] = project.runs()
    assert run.status == "timeout"
    if method == "signal":  # the wall limit, not the budget: what the agent must do differs
        assert run.extra["reason"] == ("over the wall limit: Timeout (>3.0s) from pytest-timeout (autoresearch_timeout): "
                                       "the run hung, or set-up and compilation took too long")
    assert chain.verify(project.ledger.path).details() == []  # the watchdog's row, too, is sealed with its log


def _start_pytest(project: Project, *args: str) -> subprocess.Popen[bytes]:
    """pytest in its own session, as a terminal would run it in the foreground.

    SIGINT is reset to its default: a suite started in the background (`cmd &`, nohup) passes
    SIGINT ignored to its children, and Python then never turns Ctrl-C into KeyboardInterrupt.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--autoresearch", "-p", "no:cacheprovider", *args],
        cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_leaves_no_process_and_an_interrupted_row(project: Project) -> None:
    project.bench()
    _ignore_pids(project)
    project.train(None, "hangs", body=HANGER)
    proc = _start_pytest(project)
    pids = _pids(project)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out.decode()
    assert all_gone(pids)
    [run] = project.runs()
    assert run.status == "interrupted" and run.extra["reason"].startswith("interrupted (Ctrl-C) during draw 1: ")


def test_ctrl_c_in_the_second_draw_keeps_the_first_and_says_there_is_no_verdict(
        project: Project, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finished draws are measurements: their values stay in the ledger. The interrupted draw is
    neither a crash of the code nor a verdict, and the -q line says so (no keep, no revert)."""
    folder = tmp_path_factory.mktemp("draws")
    monkeypatch.setenv("DRAWS", str(folder / "draws"))
    monkeypatch.setenv("PIDS", str(folder / "pids"))
    project.bench()
    sha = project.train(None, "hangs in its second draw", body=SECOND_DRAW_HANGS)
    proc = _start_pytest(project, "-q", "--autoresearch-repeat", "3", "--autoresearch-isolation=none")
    pids = pids_in(folder / "pids")
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out.decode()
    assert all_gone(pids)
    first, second = project.runs()
    assert (first.status, first.value, second.status, second.value) == ("interrupted", 1.25, "interrupted", None)
    assert first.measurement == second.measurement and first.sha == second.sha == sha
    [line] = [x for x in out.decode().splitlines() if x.startswith("autoresearch: ")]
    assert line.startswith(f"autoresearch: interrupted test_bench.py::test_train score=1.25 commit={sha[:7]} unsealed | "
                           "interrupted (Ctrl-C) during draw 2: no verdict, nothing kept or discarded; "
                           "run again to judge this commit | log: ")
    assert "revert" not in line and "fix:" not in line
    status = run_cli(project.path, "status")
    assert status.returncode == 0, status.stderr
    assert "  draws: keep 0, discard 0, crash 0, timeout 0, interrupted 2 (0 runs)" in status.stdout.splitlines()


def test_sigkilled_pytest_leaves_no_process_and_a_crash_row(project: Project) -> None:
    project.bench()
    _ignore_pids(project)
    project.train(None, "hangs", body=HANGER)
    proc = _start_pytest(project)
    pids = _pids(project)
    assert project.statuses() == ["running"]
    proc.kill()
    proc.communicate(timeout=60)
    assert all_gone(pids)
    for _ in range(100):
        if project.statuses() != ["running"]:
            break
        time.sleep(0.1)
    [run] = project.runs()
    assert run.status == "crash"
