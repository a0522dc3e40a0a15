"""Shared test setup: pytester, and throwaway git repositories holding a benchmark project."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import git
import pytest

from pytest_autoresearch.ledger import Entry, Ledger

pytest_plugins = ["pytester"]

BENCH_TEST = """
import pytest

@pytest.mark.autoresearch(metric="score", goal="{goal}", script="train.py"{extra})
def test_train(experiment):
    assert experiment.returncode == 0
"""

TRAIN = """
print("step 1 ...")
print("---")
print("score: {value}")
print("peak_vram_mb: 512.0")
"""


class Project:
    """A benchmark project in a real git repository: train.py prints the score it is given."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.repo = git.Repo.init(self.path, initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "Test Agent")
            cw.set_value("user", "email", "agent@example.com")
        (self.path / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")

    def bench(self, goal: str = "min", **marker: object) -> None:
        extra = "".join(f", {k}={v!r}" for k, v in marker.items())
        self.pytester.makepyfile(test_bench=BENCH_TEST.format(goal=goal, extra=extra))

    def train(self, value: object, message: str | None = None, body: str | None = None) -> str:
        """Write train.py (printing ``value`` unless ``body`` is given) and commit it."""
        (self.path / "train.py").write_text(body if body is not None else TRAIN.format(value=value))
        return self.commit(message or f"score {value}")

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        self.repo.git.commit("-m", message, "--allow-empty")
        return self.repo.head.commit.hexsha

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("--autoresearch", *args)

    def run_subprocess(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("--autoresearch", *args, timeout=timeout)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.path / ".git" / "autoresearch" / "ledger.tsv")

    def runs(self) -> list[Entry]:
        return self.ledger.runs()

    def statuses(self) -> list[str]:
        return [r.status for r in self.runs()]


@pytest.fixture
def project(pytester: pytest.Pytester) -> Iterator[Project]:
    project = Project(pytester)
    yield project
    project.repo.close()  # its git helper processes must not outlive the test


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


CLI_TIMEOUT_S = 60
PYTHON_M = (sys.executable, "-m", "pytest_autoresearch")


def run_cli(cwd: Path, *args: str, python: Sequence[str] = PYTHON_M) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_autoresearch ARGS`` in ``cwd``, output captured as text."""
    done = subprocess.run([*python, *args], cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert "Traceback" not in done.stderr, done.stderr
    return done
