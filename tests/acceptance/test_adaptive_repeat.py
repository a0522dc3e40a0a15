"""``--autoresearch-repeat auto:N``: run a commit again only while its verdict is in doubt."""

from __future__ import annotations

import pytest

from conftest import Project

# Each run prints the next value of a list (the counter file is ignored by git).
LISTED = """
from pathlib import Path
counter = Path("draws.txt")
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
print("---")
print("score:", {values}[n % {count}])
"""
BASELINE = [1.0, 1.02, 1.01, 0.99, 1.03]  # mean 1.01, sigma 0.0158
UNPAIRED = ("--autoresearch-paired", "never")  # adaptive repeats of the candidate alone (paired: test_paired.py)


def listed(project: Project, values: list[float], message: str) -> str:
    (project.path / "draws.txt").unlink(missing_ok=True)
    project.unseal()
    return project.train(None, message, body=LISTED.format(values=values, count=len(values)))


@pytest.fixture
def measured(project: Project) -> Project:
    """A baseline with no bar yet: adaptive repeats run it all five times (the noise floor)."""
    project.bench(min_delta="auto")
    (project.path / ".gitignore").write_text("__pycache__/\ndraws.txt\n")
    listed(project, BASELINE, "baseline")
    result = project.run("--autoresearch-repeat", "auto:5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mean of 5*keep*"])
    runs = project.runs()
    assert [r.value for r in runs] == BASELINE
    assert runs[-1].extra["adaptive"] == "all 5 runs of the baseline done"
    return project


def draws_of(project: Project, sha: str) -> list[float | None]:
    return [r.value for r in project.runs() if r.sha == sha]


def test_a_clearly_worse_commit_stops_after_one_run(measured: Project) -> None:
    sha = listed(measured, [1.5], "clearly worse")
    result = measured.run("--autoresearch-repeat", "auto:5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DISCARD score = 1.5*"])
    assert draws_of(measured, sha) == [1.5]
    [run] = [r for r in measured.runs() if r.sha == sha]
    assert run.status == "discard"
    assert run.extra["adaptive"] == "stopped after 1 of 5 runs: P(keep after 5 runs) = 0.0%"


def test_a_commit_in_doubt_runs_again_up_to_the_maximum(measured: Project) -> None:
    doubtful = [0.99, 1.0, 0.98, 0.99, 0.985]  # mean 0.989 against 1.01: about 2 standard errors
    sha = listed(measured, doubtful, "maybe better")
    measured.run("--autoresearch-repeat", "auto:5", *UNPAIRED).assert_outcomes(passed=1)
    assert draws_of(measured, sha) == doubtful
    assert {r.extra["adaptive"] for r in measured.runs() if r.sha == sha} == {"all 5 runs done"}


def test_a_clear_gain_stops_early_with_keep(measured: Project) -> None:
    sha = listed(measured, [0.98, 0.99, 0.985, 0.975, 0.99], "better")
    result = measured.run("--autoresearch-repeat", "auto", *UNPAIRED)  # auto is auto:5
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mean of 4*keep*"])
    assert draws_of(measured, sha) == [0.98, 0.99, 0.985, 0.975]


def test_the_time_limit_covers_the_maximum_number_of_runs(project: Project) -> None:
    project.bench()
    project.train(1.0)
    items, _ = project.pytester.inline_genitems(
        "--autoresearch", "--autoresearch-repeat", "auto:3", "--autoresearch-timeout", "7")
    mark = items[0].get_closest_marker("timeout")
    assert mark is not None and mark.args == (21.0,)


def test_repeat_can_be_set_in_the_ini_file(project: Project) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_repeat = auto:4\n")
    (project.path / ".gitignore").write_text("__pycache__/\ndraws.txt\n")
    sha = listed(project, BASELINE, "baseline")
    project.run().assert_outcomes(passed=1)
    assert draws_of(project, sha) == BASELINE[:4]


def test_a_bad_ini_repeat_names_the_key(project: Project) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_repeat = sometimes\n")
    project.train(1.0)
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini autoresearch_repeat*auto*sometimes*"])
