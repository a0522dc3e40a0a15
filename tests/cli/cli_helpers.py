"""Helpers for the CLI tests: a night of real plugin runs (the command itself: ``conftest.run_cli``).

A plain module, not a conftest: the root ``conftest.py`` owns the module name ``conftest``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import git

from conftest import PYTHON_M, Project, run_cli

__all__ = ["PYTHON_M", "night", "run_cli"]


_recorded: list[tuple[Path, dict[str, str]]] = []  # the first night's repository copy and shas


def night(project: Project) -> dict[str, str]:
    """A short session on branch autoresearch/nov25, every run judged by the plugin.

    baseline 1.5 keep, 1.2 keep, 1.3 discard (reset), a crash (reset), 1.1 keep.
    Returns each commit's sha by its description. The first call in a process runs it; later
    calls copy that repository (git, ledger and all) into the project: same runs, no waiting.
    """
    if _recorded:
        [(saved, shas)] = _recorded
        project.repo.close()
        shutil.rmtree(project.path / ".git")
        shutil.copytree(saved, project.path, dirs_exist_ok=True)
        project.repo = git.Repo(project.path)
        return dict(shas)
    shas = _run_night(project)
    saved = Path(tempfile.mkdtemp(prefix="autoresearch-night-"))
    atexit.register(shutil.rmtree, saved, True)
    shutil.copytree(project.path, saved, dirs_exist_ok=True)
    _recorded.append((saved, dict(shas)))
    return shas


def _run_night(project: Project) -> dict[str, str]:
    project.bench()
    shas = {"baseline": project.train(1.5, "baseline")}
    project.repo.git.checkout("-b", "autoresearch/nov25")
    project.run().assert_outcomes(passed=1)
    shas["halve lr"] = project.train(1.2, "halve lr")
    project.run().assert_outcomes(passed=1)
    shas["wider mlp"] = project.train(1.3, "wider mlp")
    project.run().assert_outcomes(failed=1)
    project.repo.git.reset("--hard", "HEAD~1")
    shas["typo"] = project.train(None, "typo", body="raise SystemExit(3)\n")
    project.run().assert_outcomes(failed=1)
    project.repo.git.reset("--hard", "HEAD~1")
    shas["warmdown 0.5"] = project.train(1.1, "warmdown 0.5")
    project.run().assert_outcomes(passed=1)
    return shas
