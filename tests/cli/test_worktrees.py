"""``autoresearch worktrees K``: a round of K parallel experiments judged against one bar."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Project, run_cli


def test_a_round_of_two_in_parallel(project: Project) -> None:
    project.bench()
    project.train(1.5, "baseline")
    project.repo.git.checkout("-b", "autoresearch/nov25")
    project.run().assert_outcomes(passed=1)
    done = run_cli(project.path, "worktrees", "2")
    assert done.returncode == 0, done.stderr
    base = project.repo.head.commit.hexsha
    lines = done.stdout.splitlines()
    assert lines[0] == f"autoresearch: 2 worktrees from {base[:7]}, one idea each; they share the ledger and the device leases"
    paths = [Path(line.split()[0]) for line in lines[1:3]]
    assert [p.name for p in paths] == [f"{project.path.name}-nov25-1", f"{project.path.name}-nov25-2"]
    assert "re-measure the best green one" in done.stdout
    try:
        pytests = []
        for path, value in zip(paths, ("1.2", "1.3")):
            (path / "train.py").write_text(f"print('---'); print('score: {value}')\n")
            subprocess.run(["git", "commit", "-qam", f"try: {value}"], cwd=path, check=True)
            pytests.append(subprocess.Popen([sys.executable, "-m", "pytest", "--autoresearch", "-q",
                                             "-p", "no:cacheprovider"], cwd=path, stdout=subprocess.DEVNULL))
        assert [p.wait(timeout=120) for p in pytests] == [0, 0], "both beat the shared bar 1.5"
        standings = run_cli(project.path, "status", "--all-branches").stdout
        rows = [line.split()[:2] for line in standings.splitlines() if line.strip().startswith("autoresearch/")]
        assert rows == [["autoresearch/nov25-1", "1.2"], ["autoresearch/nov25-2", "1.3"], ["autoresearch/nov25", "1.5"]]
        again = run_cli(project.path, "worktrees", "2")
        assert again.returncode == 1 and "already exists" in again.stderr
    finally:
        for path in paths:
            project.repo.git.worktree("remove", "--force", str(path))
