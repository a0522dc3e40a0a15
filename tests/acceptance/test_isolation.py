"""Sealed runs: on by default, recorded in every row, said when off, refused plainly when impossible."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Project, all_gone
from tests.cli.cli_helpers import run_cli

# Says where its HOME and TMPDIR are, and that it can read its own work tree.
WHERE = """
import os
print("NOTE: home=" + os.environ["HOME"] + " tmp=" + os.environ["TMPDIR"])
open(os.path.join(os.environ["TMPDIR"], "scratch"), "w").write("fine")
print("---")
print("score:", float(len(open("train.py").read()) > 0))
"""


def test_runs_are_sealed_by_default_in_a_fresh_folder_that_goes_with_the_run(project: Project) -> None:
    project.bench()
    project.train(None, "where am I", body=WHERE)
    result = project.run("-q")
    result.assert_outcomes(passed=1)
    [line] = [line for line in result.outlines if line.startswith("autoresearch: ")]
    assert "unsealed" not in line
    [run] = project.runs()
    assert run.extra["isolation"] == "sandbox"
    note = run.extra["target_note"]
    home, tmp = (Path(part.split("=")[1]) for part in note.removeprefix("train.py: ").split())
    assert home.parent == tmp.parent and home.parent != project.path
    assert not home.parent.exists(), "the run folder outlived its run"


def test_an_unsealed_run_says_so_in_the_verdict_and_the_row(project: Project) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_isolation = none\n")
    project.train(1.0)
    result = project.run("-q")
    result.assert_outcomes(passed=1)
    [line] = [line for line in result.outlines if line.startswith("autoresearch: ")]
    assert line.startswith("autoresearch: keep test_bench.py::test_train score=1 ") and "unsealed" in line
    assert project.runs()[0].extra["isolation"] == "none"


def test_the_command_line_beats_the_ini(project: Project) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_isolation = none\n")
    project.train(1.0)
    project.run("--autoresearch-isolation", "sandbox").assert_outcomes(passed=1)
    assert project.runs()[0].extra["isolation"] == "sandbox"


@pytest.mark.parametrize("where", ["ini", "option"])
def test_a_bad_isolation_is_a_usage_error(project: Project, where: str) -> None:
    project.bench()
    project.train(1.0)
    if where == "ini":
        project.pytester.makeini("[pytest]\nautoresearch_isolation = docker\n")
        project.commit("ini")
        result = project.run()
    else:
        result = project.run("--autoresearch-isolation", "docker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*isolation*expected one of sandbox, none*'docker'*"])


# Counts the runs that found the compile cache warm, and tries to leave a note in it for later runs.
COMPILE = """
import os
cache = os.environ["TORCHINDUCTOR_CACHE_DIR"]
warm = os.path.exists(os.path.join(cache, "kernel"))
carried = os.path.exists(os.path.join(cache, "state"))
open(os.path.join(cache, "kernel" if not warm else "state"), "w").write("x")
print("NOTE: warm=%s carried=%s" % (warm, carried))
print("---")
print("score: 1.0")
"""


def test_the_compile_cache_is_warm_for_the_same_code_and_carries_nothing(project: Project) -> None:
    project.bench()
    project.train(None, "compile", body=COMPILE)
    notes = []
    for _ in range(3):
        project.run()
        notes.append(project.runs()[-1].extra["target_note"])
    assert notes == ["train.py: warm=False carried=False", "train.py: warm=True carried=False",
                     "train.py: warm=True carried=False"], "later runs write only their own copy"
    project.train(None, "other code", body=COMPILE + "\n# another idea\n")
    project.run()
    assert project.runs()[-1].extra["target_note"] == "train.py: warm=False carried=False", "another idea's cache"


# Builds one C++ kernel with $CXX, as inductor does on a CPU, and scores what the kernel returns.
KERNEL = """
import ctypes, os, subprocess
source = os.path.join(os.environ["TMPDIR"], "k.cpp")
open(source, "w").write('extern "C" int answer() {{ return 3; }}\\n')
subprocess.run(["g++", source, "-O2", "-shared", "-fPIC", "-o", source[:-4] + ".so"], check=True)
print("---")
print("score:", ctypes.CDLL(source[:-4] + ".so").answer() / {scale})
"""


def test_a_commit_that_changes_no_kernel_finds_it_built(project: Project) -> None:
    project.bench()
    project.train(None, "a kernel", body=KERNEL.format(scale=2))
    project.run().assert_outcomes(passed=1)
    project.train(None, "another idea, the same kernel", body=KERNEL.format(scale=3))
    project.run().assert_outcomes(passed=1)
    first, second = [r for r in project.runs() if r.status != "running"]
    assert (first.value, second.value) == (1.5, 1.0)
    assert first.extra["kernels"] == {"built": 1, "found": 0, "failed": 0, "refused": 0}
    assert second.extra["kernels"] == {"built": 0, "found": 1, "failed": 0, "refused": 0}


# Starts a grandchild, prints both pids, then hangs: a sealed run is ended with everything it started.
HANGER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("pids", os.getpid(), child.pid, flush=True)
time.sleep(300)
"""


def test_a_sealed_run_that_hangs_leaves_no_process(project: Project) -> None:
    project.bench()
    project.train(None, "hangs", body=HANGER)
    result = project.run_subprocess("--autoresearch-timeout", "3")
    result.assert_outcomes(failed=1)
    [log] = (project.path / ".git" / "autoresearch" / "runs").glob("*.log")
    [pids] = [line.split()[1:] for line in log.read_text().splitlines() if line.startswith("pids ")]
    assert all_gone([int(p) for p in pids])
    assert project.runs()[0].status == "timeout"


def test_the_target_cannot_read_the_ledger_or_earlier_logs(project: Project) -> None:
    project.bench()
    project.train(1.0, "baseline")
    project.run().assert_outcomes(passed=1)
    ledger = project.ledger.path
    peek = f"print('---'); print('score:', len(open({str(ledger)!r}).read()) * 0 + 0.5)\n"
    project.train(None, "read the ledger", body=peek)
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CRASH*Permission denied*ledger.tsv*refused by the seal*"])
    assert os.access(ledger, os.R_OK)


def test_status_says_which_runs_were_unsealed(project: Project) -> None:
    project.bench()
    project.train(2.0, "sealed baseline")
    project.run().assert_outcomes(passed=1)
    project.train(1.0, "unsealed gain")
    project.run("--autoresearch-isolation", "none").assert_outcomes(passed=1)
    out = run_cli(project.path, "status").stdout
    assert [line for line in out.splitlines() if line.startswith("  best ")][0].split()[:3] == ["best", "1", "unsealed"]
    assert "  unsealed: 1 run outside the sandbox (autoresearch_isolation = none)" in out


def test_where_no_seal_can_start_the_session_stops_and_names_the_opt_out(project: Project,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_isolation = sandbox\n")
    project.train(1.0)
    monkeypatch.setattr("sys.platform", "darwin")  # a machine without Landlock
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot seal script runs: sealed runs need Linux's Landlock; darwin*"
                                 "autoresearch_isolation = none*"])
    assert project.statuses() == [], "nothing ran unsealed"
