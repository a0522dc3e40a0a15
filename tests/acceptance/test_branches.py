"""The bar follows the branch: rewinding rewinds it, parallel branches and worktrees don't interfere."""

from __future__ import annotations

import subprocess
import sys

from conftest import Project


def test_rewinding_the_branch_rewinds_the_bar(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.2, "great idea")
    project.run().assert_outcomes(passed=1)
    project.repo.git.reset("--hard", "HEAD~1")  # a person drops the great idea
    project.train(1.3, "another idea")
    result = project.run()
    result.assert_outcomes(passed=1)  # 1.3 beats 1.5, the bar of this lineage
    result.stdout.fnmatch_lines(["*1.3*1.5 @ *keep*"])


def test_two_branches_keep_separate_bars(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.repo.git.checkout("-b", "autoresearch/a")
    project.train(1.1, "a's idea")
    project.run().assert_outcomes(passed=1)
    project.repo.git.checkout("main")
    project.repo.git.checkout("-b", "autoresearch/b")
    project.train(1.3, "b's idea")
    project.run().assert_outcomes(passed=1)  # judged against 1.5, not a's 1.1
    branches = [r.branch for r in project.runs()]
    assert branches == ["main", "autoresearch/a", "autoresearch/b"]


def test_ledger_survives_reset_clean_and_stash(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.6, "worse")
    project.run().assert_outcomes(failed=1)
    project.repo.git.reset("--hard", "HEAD~1")
    (project.path / "junk.txt").write_text("x")
    project.repo.git.clean("-fdx")
    project.repo.git.stash("-u")
    assert project.statuses() == ["keep", "discard"]


def test_worktrees_share_one_ledger(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    other = project.path.parent / (project.path.name + "-wt")
    project.repo.git.worktree("add", "-b", "autoresearch/parallel", str(other))
    (other / "train.py").write_text("print('---'); print('score: 1.4')\n")
    subprocess.run(["git", "commit", "-qam", "parallel idea"], cwd=other, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--autoresearch", "-p", "no:cacheprovider", "-q"],
        cwd=other, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout
    runs = project.runs()  # read through the main worktree's .git
    assert [(r.branch, r.status, r.value) for r in runs] == [
        ("main", "keep", 1.5), ("autoresearch/parallel", "keep", 1.4),
    ]
