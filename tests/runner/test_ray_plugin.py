"""pytest --autoresearch --autoresearch-runner ray, end to end on a real local Ray cluster.

The pytest process stays the controller (repository, ledger, verdict); each run executes as a
Ray actor on the committed tree, its output streamed back into the local log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IGNORED, Project, all_gone, pids_in
from pytest_autoresearch.dataserver import WARMUP_BATCHES

# Writes its pid and a grandchild's where the test can read them, then hangs.
HANGER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open(os.environ["PIDS"], "w").write(f"{os.getpid()} {child.pid}")
print("hanging", flush=True)
time.sleep(300)
"""

# Reads an ignored file if it is there: it is in the work tree, never in the commit.
PEEK = """
import os
import re
print("---")
print("score:", open("secret.txt").read() if os.path.exists("secret.txt") else 1.0)
"""


def ray_args(address: str) -> tuple[str, ...]:
    # unsealed: some targets here leave their pids outside their run folder (sealing on a node: tests/unit/test_sandbox.py)
    return ("--autoresearch-runner", "ray", "--autoresearch-ray-address", address, "-p", "no:cacheprovider",
            "--autoresearch-isolation", "none")


# Trains on the data server's batches until its own clock says TIME_BUDGET, then idles OVERRUN more
# seconds (as a train.py replaying cached batches would) before it writes its artifact.
ON_SERVED_BATCHES = """
import os, time
from pytest_autoresearch.dataserver import receive
TIME_BUDGET, OVERRUN = {budget}, {overrun}
print("socket", os.environ["AUTORESEARCH_DATA_SOCKET"], flush=True)
served = 0
for step, (tokens, _) in enumerate(receive(os.environ["AUTORESEARCH_DATA_SOCKET"], {{}})):
    if step == {warmup}:
        started = time.monotonic()
    served += tokens
    time.sleep(0.01)
    if step > {warmup} and time.monotonic() - started >= TIME_BUDGET:
        break
time.sleep(OVERRUN)
open(os.environ["AUTORESEARCH_ARTIFACT"], "w").write(str(served))
"""


def test_a_run_on_a_node_is_timed_by_the_data_server_here(project: Project, ray_address: str) -> None:
    """Sealed on the node, its batches through the relay: the budget is kept by frozen code on this machine."""
    budget = 3.0
    (project.path / "batches.py").write_text("def serve(request):\n    while True:\n        yield bytes(8), 8\n")
    (project.path / "scorer.py").write_text("def score(artifact):\n    return {'score': 1.0}\n")
    project.bench(scorer="scorer:score", artifact="model.txt", data_server="batches:serve", budget=budget,
                  export_allowance=3.0)
    args = ("--autoresearch-runner", "ray", "--autoresearch-ray-address", ray_address, "-p", "no:cacheprovider")

    def train(message: str, overrun: float) -> None:
        project.train(None, message, body=ON_SERVED_BATCHES.format(budget=budget, overrun=overrun,
                                                                   warmup=WARMUP_BATCHES))
    train("baseline", overrun=0)
    project.run_subprocess(*args).assert_outcomes(passed=1)
    train("trains twice as long", overrun=2 * budget)
    result = project.run_subprocess(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*over budget: trained * s, budget {budget:g} s (measured by the data server*"])
    honest, long = project.runs()
    assert honest.status == "keep" and honest.extra["isolation"] != "none" and honest.extra["runner"] == "ray"
    assert budget - 0.5 < float(honest.extra["trained_s"]) < 2 * budget
    assert int(honest.extra["served_tokens"]) > 8 * WARMUP_BATCHES
    assert long.status == "timeout" and float(long.extra["trained_s"]) >= 3 * budget - 0.5
    log = project.path / ".git" / "autoresearch" / "runs" / f"{honest.run_id}.log"
    assert re.search(r"^socket \S*/autoresearch-run-", log.read_text(), re.M)  # the node's socket, not pytest's


def test_keep_discard_and_where_it_ran(project: Project, ray_address: str) -> None:
    project.bench()
    project.train(1.5, "baseline")
    project.run_subprocess(*ray_args(ray_address)).assert_outcomes(passed=1)
    project.train(1.7, "worse")
    result = project.run_subprocess(*ray_args(ray_address))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["DISCARD score = 1.7 (min)*"])
    runs = project.runs()
    assert [r.status for r in runs] == ["keep", "discard"]
    assert {r.extra["runner"] for r in runs} == {"ray"} and all(r.extra["node"] for r in runs)
    assert {r.extra["device"] for r in runs} == {"cpu"}


def test_a_crash_shows_the_remote_log_tail(project: Project, ray_address: str) -> None:
    project.bench()
    project.train(None, "typo", body="print('about to fail')\nprint(UNDEFINED)\n")
    result = project.run_subprocess(*ray_args(ray_address))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["CRASH score = - (min) — train.py exited with code 1: NameError: *UNDEFINED*",
                                 "*last lines of the log*", "about to fail"])
    [run] = project.runs()
    assert "about to fail" in Path(run.extra["log"]).read_text(), "the log came back while it ran"


def test_the_dirty_work_tree_is_never_shipped(project: Project, ray_address: str) -> None:
    project.bench()
    (project.path / ".gitignore").write_text(IGNORED + "secret.txt\n")
    (project.path / "secret.txt").write_text("0.001")
    project.train(None, "peek", body=PEEK)
    assert project.run().outlines, "locally the ignored file is read"
    assert project.runs()[-1].value == 0.001
    project.repo.git.commit("--allow-empty", "-m", "the same code, run remotely")
    project.run_subprocess(*ray_args(ray_address))
    assert project.runs()[-1].value == 1.0, "only the committed tree reached the node"


def test_a_timeout_ends_the_remote_run(project: Project, ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    pids = tmp_path_factory.mktemp("pids") / "pids.txt"
    project.bench(env={"PIDS": str(pids)})
    project.train(None, "hangs", body=HANGER)
    result = project.run_subprocess(*ray_args(ray_address), "--autoresearch-timeout", "8", timeout=120)
    result.assert_outcomes(failed=1)
    assert all_gone(pids_in(pids), within=20.0), "the remote target and its child outlived the timeout"
    assert project.statuses() == ["timeout"]


def test_ctrl_c_ends_the_remote_run(project: Project, ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    pids = tmp_path_factory.mktemp("pids") / "pids.txt"
    project.bench(env={"PIDS": str(pids)})
    project.train(None, "hangs", body=HANGER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--autoresearch", *ray_args(ray_address)], cwd=project.path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    running = pids_in(pids)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 2, out.decode()
    assert all_gone(running, within=20.0)
    [run] = project.runs()
    assert run.status == "interrupted" and run.extra["reason"].startswith("interrupted (Ctrl-C) during draw 1: ")


def test_two_sessions_share_the_cluster_and_the_ledger(project: Project, ray_address: str) -> None:
    project.bench()
    project.train(1.5, "baseline")
    other = project.path.parent / f"{project.path.name}-other"
    project.repo.git.worktree("add", "-b", "autoresearch/other", str(other))
    command = [sys.executable, "-m", "pytest", "--autoresearch", *ray_args(ray_address)]
    both = [subprocess.Popen(command, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for where in (project.path, other)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    runs = project.runs()
    assert sorted(r.branch for r in runs) == ["autoresearch/other", "main"]
    assert {r.status for r in runs} == {"keep"}
