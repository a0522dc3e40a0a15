"""Every command meets a missing, empty or corrupt ledger, no repository, a detached HEAD:
one clear line, the right exit code, never a traceback (``run_cli`` asserts that)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from cli_helpers import night, run_cli

from conftest import Project
from pytest_autoresearch.cli.views import NEXT

# without matplotlib, plot stops at the install line before it reads anything (test_plot.py)
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
READERS = [["status"], ["status", "--all-branches"], ["log"], ["log", "--json"]] + [["plot"]] * HAS_MATPLOTLIB


@pytest.mark.parametrize("command", [c for c in READERS if c[0] != "status"])
def test_missing_ledger(project: Project, command: list[str]) -> None:
    project.train(1.5)
    done = run_cli(project.path, *command)
    assert done.returncode == 1
    assert done.stderr.startswith("autoresearch: no ledger at ")
    assert done.stderr.endswith("ledger.tsv: nothing recorded yet, run pytest --autoresearch first\n")
    assert done.stdout == ""


def test_missing_ledger_points_at_a_results_tsv_here(project: Project) -> None:
    project.train(1.5)
    (project.path / "results.tsv").write_text("")
    done = run_cli(project.path, "log")
    assert done.stderr.endswith("(pass --ledger results.tsv to read the one here)\n")


@pytest.mark.parametrize(("command", "code", "stdout"), [
    (["log"], 0, ""), (["log", "--json"], 0, "[]\n"), *[(["plot"], 1, "")] * HAS_MATPLOTLIB,
])
def test_empty_ledger(project: Project, command: list[str], code: int, stdout: str) -> None:
    project.train(1.5)
    ledger = project.path / ".git" / "autoresearch" / "ledger.tsv"
    ledger.parent.mkdir()
    ledger.write_text("")
    done = run_cli(project.path, *command)
    assert (done.returncode, done.stdout) == (code, stdout)
    if command != ["log", "--json"]:
        assert done.stderr == f"autoresearch: the ledger {ledger} has no runs yet" + (
            "\n" if command[0] == "log" else ": run pytest --autoresearch first\n")


def test_corrupt_lines_are_warned_and_skipped(project: Project) -> None:
    night(project)
    ledger = project.path / ".git" / "autoresearch" / "ledger.tsv"
    lines = ledger.read_text().splitlines(keepends=True)
    lines.insert(3, "garbage\tline\n")
    ledger.write_text("".join(lines) + "abc\tt")  # and a torn last line
    for command in READERS:
        done = run_cli(project.path, *command)
        assert done.returncode == 0, (command, done.stderr)
        warnings = done.stderr.splitlines()
        assert f"autoresearch: warning: {ledger}: last line is truncated (skipped)" in warnings
        assert f"autoresearch: warning: {ledger}:4: corrupt line skipped (expected 17 fields, found 2)" in warnings
    assert len(run_cli(project.path, "log").stdout.splitlines()) == 6  # the header and all five runs


@pytest.mark.parametrize("command", [*READERS, ["init", "nov25"]])
def test_outside_a_repository(pytester: pytest.Pytester, command: list[str]) -> None:
    done = run_cli(pytester.path, *command)
    assert done.returncode == 1
    assert done.stdout == ""
    if command[0] == "init":
        assert done.stderr == "autoresearch: not inside a git repository: run git init and commit your project first\n"
    else:
        assert done.stderr.startswith("autoresearch: not inside a git repository, so there is no default ledger; pass --ledger PATH")


def test_a_ledger_given_outside_a_repository(project: Project, pytester: pytest.Pytester) -> None:
    """A copied results file is readable anywhere; with no HEAD to follow, every run counts."""
    night(project)
    elsewhere = pytester.mkdir("elsewhere")
    shutil.copy(project.path / ".git" / "autoresearch" / "ledger.tsv", elsewhere / "results.tsv")
    shutil.rmtree(project.path / ".git")
    status = run_cli(elsewhere, "status", "--ledger", "results.tsv")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("autoresearch status: every run (not a git repository), 5 runs")
    assert len(run_cli(elsewhere, "log", "--ledger", "results.tsv").stdout.splitlines()) == 6


def test_detached_head(project: Project) -> None:
    night(project)
    project.repo.git.checkout("HEAD~1")
    for command in READERS:
        done = run_cli(project.path, *command)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout


def test_no_runs_on_this_branch(project: Project) -> None:
    night(project)
    project.repo.git.checkout("-b", "elsewhere", "HEAD")
    project.train(1.0, "unrelated")
    project.repo.git.checkout("--orphan", "fresh")
    project.commit("fresh start")
    if HAS_MATPLOTLIB:
        done = run_cli(project.path, "plot")
        assert done.returncode == 1
        assert done.stderr.startswith("autoresearch: no runs ")
    status = run_cli(project.path, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0] == (
        "autoresearch status: branch fresh at " + project.repo.head.commit.hexsha[:7] + ", no runs yet "
        "(5 runs on 1 other branch: autoresearch status --all-branches)")


@pytest.mark.parametrize("ledger", ["missing", "empty"])
@pytest.mark.parametrize("command", [["status"], ["status", "--all-branches"], ["status", "--json"]])
def test_status_before_the_first_run_says_what_to_run(project: Project, ledger: str, command: list[str]) -> None:
    """A fresh project (``autoresearch init`` made the branch, nothing ran yet) is not an error."""
    project.train(1.5)
    project.repo.git.checkout("-b", "autoresearch/nov25")
    path = project.path / ".git" / "autoresearch" / "ledger.tsv"
    if ledger == "empty":
        path.parent.mkdir()
        path.write_text("")
    done = run_cli(project.path, *command)
    assert (done.returncode, done.stderr) == (0, "")
    head = project.repo.head.commit.hexsha
    if "--json" in command:
        assert json.loads(done.stdout) == {
            "scope": f"branch autoresearch/nov25 at {head[:7]}", "branch": "autoresearch/nov25", "head": head,
            "ledger": str(path), "runs": 0, "next": NEXT}
    else:
        assert done.stdout.splitlines() == [f"autoresearch status: branch autoresearch/nov25 at {head[:7]}, no runs yet",
                                            f"  ledger: {path}", f"  next: {NEXT}"]


def test_no_command_prints_help(project: Project) -> None:
    done = run_cli(project.path)
    assert done.returncode == 2
    assert "init" in done.stderr and "status" in done.stderr and "plot" in done.stderr


def test_ledger_that_is_a_folder(project: Project) -> None:
    done = run_cli(project.path, "log", "--ledger", ".git")
    assert (done.returncode, done.stderr) == (1, "autoresearch: .git is not a file; pass --ledger with the ledger's path\n")
