"""``autoresearch show``: a judged run's verdict, bar, diff and log, even after reset and gc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import night, run_cli

from conftest import Project
from pytest_autoresearch.ledger import Entry, Ledger


def forget_everything_but_refs(project: Project) -> None:
    """What a long night does to a reset commit: no reflog holds it, and gc runs for real."""
    project.repo.git.reflog("expire", "--expire=now", "--all")
    project.repo.git.gc("--prune=now", "--quiet")


def test_a_discarded_idea_survives_reset_and_gc(project: Project) -> None:
    shas = night(project)  # "wider mlp" was discarded and reset with git reset --hard HEAD~1
    forget_everything_but_refs(project)
    [run] = [r for r in project.runs() if r.sha == shas["wider mlp"]]
    done = run_cli(project.path, "show", shas["wider mlp"][:7])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"autoresearch show: run {run.run_id}, commit {shas['wider mlp'][:7]} "
                               "on autoresearch/nov25, ")
    assert lines[1:6] == [
        "  idea      wider mlp",
        "  test      test_bench.py::test_train  score (lower is better)",
        "  verdict   discard: not better than the best strictly",
        f"  value     1.3 against the bar 1.2 at {shas['halve lr'][:7]}: delta +0.1",
        f"  kept by   refs/autoresearch/runs/{run.run_id}",
    ]
    assert lines[6].startswith("  machine   others ")  # what the machine gave the run, as the gauge read it
    diff = lines.index(f"diff of train.py against {shas['halve lr'][:7]}, the commit it was tried on:")
    assert '-print("score: 1.2")' in lines[diff:] and '+print("score: 1.3")' in lines[diff:]
    log = lines.index(f"log: {project.path}/.git/autoresearch/runs/{run.run_id}.log (last 50 lines)")
    assert lines[log + 1:] == ["step 1 ...", "---", "score: 1.3", "peak_vram_mb: 512.0"]


def test_without_its_ref_gc_takes_the_idea(project: Project) -> None:
    """The control: what the ref is for. Pruned, the discarded commit goes at the next gc."""
    shas = night(project)
    assert run_cli(project.path, "prune", "--status", "discard").returncode == 0
    forget_everything_but_refs(project)
    done = run_cli(project.path, "show", shas["wider mlp"][:7])
    assert done.returncode == 0, done.stderr
    assert "  kept by   no run ref (git gc may remove the commit)" in done.stdout
    assert (f"diff of train.py: commit {shas['wider mlp'][:7]} is no longer in the repository "
            "(judged before runs were kept under refs/autoresearch/runs, or pruned since)") in done.stdout


def test_json_carries_every_field(project: Project) -> None:
    shas = night(project)
    forget_everything_but_refs(project)
    [run] = [r for r in project.runs() if r.sha == shas["wider mlp"]]
    done = run_cli(project.path, "show", run.run_id[:6], "--json")  # a unique run id prefix
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    parent = project.repo.commit(shas["wider mlp"]).parents[0].hexsha
    log = f"{project.path}/.git/autoresearch/runs/{run.run_id}.log"
    diff = shown.pop("diff")
    assert diff.startswith("diff --git a/train.py b/train.py\n") and '+print("score: 1.3")' in diff
    assert shown == {
        "run_id": run.run_id, "measurement": run.measurement, "commit": shas["wider mlp"][:7],
        "sha": shas["wider mlp"], "branch": "autoresearch/nov25", "description": "wider mlp",
        "test": "test_bench.py::test_train", "metric": "score", "goal": "min", "status": "discard",
        "reason": "not better than the best strictly", "value": 1.3, "draws": [1.3], "n": 1, "mean": 1.3,
        "bar": 1.2, "bar_commit": shas["halve lr"][:7], "bar_n": 1, "delta": pytest.approx(0.1),
        "sigma": None, "min_delta": None, "adaptive": None, "paired": None, "paired_with": None,
        "timestamp": run.timestamp, "duration_s": run.duration_s,
        "memory_gb": 0.5, "identity": run.identity, "ref": f"refs/autoresearch/runs/{run.run_id}",
        "mutable": ["train.py"], "parent": parent, "diff_error": None, "log": log,
        "log_tail": "step 1 ...\n---\nscore: 1.3\npeak_vram_mb: 512.0", "extra": dict(run.extra),
        "suite": None,  # a pytest-benchmark suite's verdict, for its members
    }


def test_a_crash_shows_its_log_tail(project: Project) -> None:
    project.bench()
    project.train(1.5, "baseline")
    project.run().assert_outcomes(passed=1)
    crashed = project.train(None, "typo", body="print('loading')\nprint('NameError: name oops')\nraise SystemExit(3)\n")
    project.run().assert_outcomes(failed=1)
    project.repo.git.reset("--hard", "HEAD~1")
    forget_everything_but_refs(project)
    done = run_cli(project.path, "show", crashed[:9], "--tail", "1")
    assert done.returncode == 0, done.stderr
    assert "  verdict   crash: train.py exited with code 3" in done.stdout
    assert "  value     -" in done.stdout
    assert done.stdout.endswith("(last 1 lines)\nNameError: name oops\n")
    shown = json.loads(run_cli(project.path, "show", crashed[:9], "--json").stdout)
    assert shown["log"] == project.runs()[-1].extra["log"]
    assert shown["log_tail"] == "loading\nNameError: name oops"


def test_a_commit_shows_its_latest_run_and_head_works(project: Project) -> None:
    shas = night(project)
    project.run().assert_outcomes(passed=1)  # warmdown 0.5 measured again
    latest = project.runs()[-1]
    assert latest.sha == shas["warmdown 0.5"]
    for target in (shas["warmdown 0.5"][:7], "HEAD"):
        shown = json.loads(run_cli(project.path, "show", target, "--json").stdout)
        assert shown["run_id"] == latest.run_id


def test_mutable_globs_choose_the_diff(project: Project) -> None:
    shas = night(project)
    done = run_cli(project.path, "show", shas["wider mlp"][:7], "--mutable", "*.md", "--mutable", "prepare.py")
    assert "diff of *.md, prepare.py: no change to the mutable files" in done.stdout
    shown = json.loads(run_cli(project.path, "show", shas["wider mlp"][:7], "--mutable", "*.md", "--json").stdout)
    assert (shown["mutable"], shown["diff"]) == (["*.md"], "")
    assert "autoresearch_mutable from the project's ini file" in " ".join(run_cli(project.path, "show", "--help").stdout.split())


def test_unknown_targets_say_where_to_look(project: Project) -> None:
    night(project)
    project.repo.git.checkout("-b", "side")
    never = project.commit("never run")
    done = run_cli(project.path, "show", "zzzz")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "autoresearch: no run or commit matches 'zzzz' in the ledger (autoresearch log lists the runs)\n"
    done = run_cli(project.path, "show", "side")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"autoresearch: commit {never[:7]} has no run in the ledger (autoresearch log lists the runs)\n"


def test_an_ambiguous_prefix_asks_for_more(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.tsv"
    Ledger(ledger).append(*(Entry(run_id, "discard", sha=sha, commit=sha[:7], measurement=run_id, value=1.0)
                            for run_id, sha in (("abc1", "f" * 40), ("abc2", "e" * 40), ("fed", "d" * 40))))
    done = run_cli(tmp_path, "show", "abc", "--ledger", str(ledger))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "autoresearch: 'abc' matches run abc1, run abc2: give more characters\n"
    done = run_cli(tmp_path, "show", "f", "--ledger", str(ledger))
    assert done.stderr == "autoresearch: 'f' matches run fed, commit ffffffffffff: give more characters\n"
    shown = json.loads(run_cli(tmp_path, "show", "abc2", "--ledger", str(ledger), "--json").stdout)
    assert (shown["run_id"], shown["diff"], shown["diff_error"]) == ("abc2", None, "not inside a git repository")
    assert (shown["log"], shown["log_tail"], shown["ref"]) == (None, None, None)
