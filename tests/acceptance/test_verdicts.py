"""Keep or discard against the branch's best, end to end in a real git repository."""

from __future__ import annotations

import pytest

from conftest import Project


def test_first_run_is_the_baseline_and_is_kept(project: Project) -> None:
    project.bench()
    project.train(1.5)
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*autoresearch*", "*test_train*score*1.5*keep*"])
    [run] = project.runs()
    assert (run.status, run.value, run.metric, run.description) == ("keep", 1.5, "score", "score 1.5")
    assert run.memory_gb == 0.5
    assert run.test == "test_bench.py::test_train"


def test_improvement_is_kept_and_regression_discarded(project: Project) -> None:
    project.bench()
    base = project.train(1.5)
    project.run().assert_outcomes(passed=1)
    kept = project.train(1.2)
    project.run().assert_outcomes(passed=1)
    project.train(1.3, "worse idea")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*DISCARD score = 1.3 (min)*not better than the best*",
        "*bar:*best 1.2 at*delta +0.1*",
        f"*revert: git reset --hard {kept[:7]}*",
    ])
    assert project.statuses() == ["keep", "keep", "discard"]
    assert base[:7] not in result.stdout.str().split("bar:")[1].splitlines()[0]


def test_tie_is_discarded(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.5, "same again")
    project.run().assert_outcomes(failed=1)
    assert project.statuses() == ["keep", "discard"]


def test_rerunning_a_kept_commit_stays_green(project: Project) -> None:
    """A second, worse draw of the same kept commit is another measurement, not a reset."""
    project.bench()
    with open(project.path / ".gitignore", "a") as ignore:
        ignore.write("draw.txt\n")
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    draw = "print('---'); print('score:', open('draw.txt').read())\n"
    (project.path / "draw.txt").write_text("1.2")  # ignored data, not code: allowed
    project.train(None, "noisy idea", body=draw)
    project.run().assert_outcomes(passed=1)
    (project.path / "draw.txt").write_text("1.9")  # the commit's mean is now 1.55: behind the bar 1.5
    result = project.run()
    result.assert_outcomes(passed=1)
    assert project.statuses() == ["keep", "keep", "keep"]
    assert "re-measurement of a kept commit" in project.runs()[-1].extra["reason"]
    assert "lucky first draw" in project.runs()[-1].extra["reason"]


def test_min_delta_from_marker(project: Project) -> None:
    project.bench(min_delta=0.1)
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.45, "small gain")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not better than the best by more than 0.1*"])
    project.train(1.3, "big gain")
    project.run().assert_outcomes(passed=1)


def test_min_delta_from_command_line(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.45, "small gain")
    project.run("--autoresearch-min-delta", "0.1").assert_outcomes(failed=1)


def test_goal_max(project: Project) -> None:
    project.bench(goal="max")
    project.train(0.8)
    project.run().assert_outcomes(passed=1)
    project.train(0.7, "lower accuracy")
    project.run().assert_outcomes(failed=1)
    project.train(0.9, "higher accuracy")
    project.run().assert_outcomes(passed=1)
    assert project.statuses() == ["keep", "discard", "keep"]


@pytest.mark.parametrize(("value", "outcome"), [(1.0, "passed"), (1.2, "passed"), (1.3, "failed")])
def test_threshold_alone_judges_a_fresh_clone(project: Project, value: float, outcome: str) -> None:
    """The CI case: no earlier results, so only the threshold in the test decides."""
    project.bench(threshold=1.2)
    project.train(value)
    result = project.run()
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*threshold not met: need at most 1.2*"])


def test_nan_is_red_and_never_kept(project: Project) -> None:
    project.bench()
    project.train("nan")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DISCARD score = nan*not a finite number*"])
    [run] = project.runs()
    assert run.status == "discard"


def test_skipped_without_the_flag(project: Project) -> None:
    project.bench()
    project.train(1.5)
    result = project.pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*run with pytest --autoresearch*"])
    assert project.runs() == []
