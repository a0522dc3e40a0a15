"""The loop as an agent lives it: grep one line, run the command it gives, re-run, fix a crash.

Every test follows ``program.md`` literally: ``pytest --autoresearch -q > run.log``, then
``grep "^autoresearch: " run.log``, then exactly the command that line names.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import Project, run_cli
from pytest_autoresearch.outcome import BASELINE_FAILED

DRAW = "print('---'); print('score:', open('draw.txt').read())\n"
TYPO = """
WARMDOWN_RATIO = 0.5
print("---")
print("score:", WARMDOWN_RATO)
"""


def verdict_lines(project: Project, *args: str) -> list[str]:
    """What the agent greps from its run log."""
    result = project.run("-q", *args)
    return [line for line in result.outlines if line.startswith("autoresearch: ")]


def follow(project: Project, line: str) -> None:
    """Run the revert command a red verdict line names, as the agent does."""
    [command] = re.findall(r"revert: (git reset --hard \w+)", line)
    project.repo.git.reset("--hard", command.split()[-1])


def test_fixing_a_crash_then_reverting_lands_on_the_best_commit(project: Project) -> None:
    project.bench()
    best = project.train(1.5, "baseline")
    [line] = verdict_lines(project)
    assert line.startswith("autoresearch: keep ")
    project.train(None, "try: shorter warmdown", body=TYPO)
    [crash] = verdict_lines(project)
    assert crash.startswith("autoresearch: crash ")
    assert "train.py exited with code 1: NameError: name 'WARMDOWN_RATO' is not defined" in crash
    assert f"revert: git reset --hard {best[:7]}" in crash
    status = run_cli(project.path, "status").stdout
    crashed = project.repo.head.commit.hexsha[:7]
    assert f"HEAD {crashed} is a crashed commit; the last kept commit is {best[:7]}: git reset --hard {best[:7]}" in status
    # program.md: a dumb crash → fix, commit, run again; the fix turns out worse
    project.train(1.6, "fix the typo")
    [red] = verdict_lines(project)
    assert red.startswith("autoresearch: discard ")
    assert f"revert: git reset --hard {best[:7]}" in red, "not HEAD~1: that is the crashed commit"
    follow(project, red)
    assert project.repo.head.commit.hexsha == best
    assert "is a crashed commit" not in run_cli(project.path, "status").stdout


def test_amending_the_fix_ends_on_the_best_commit_too(project: Project) -> None:
    project.bench()
    best = project.train(1.5, "baseline")
    verdict_lines(project)
    project.train(None, "try: shorter warmdown", body=TYPO)
    verdict_lines(project)
    (project.path / "train.py").write_text("print('---'); print('score: 1.7')\n")
    project.repo.git.commit("--amend", "-a", "--no-edit")
    [red] = verdict_lines(project)
    follow(project, red)
    assert project.repo.head.commit.hexsha == best


def test_one_line_per_benchmark_carries_everything_to_act_on(project: Project) -> None:
    project.bench()
    project.train(1.5, "baseline")
    [first] = verdict_lines(project)
    assert first.startswith("autoresearch: keep test_bench.py::test_train score=1.5 ")
    assert first.endswith("| noise unknown on this host: autoresearch calibrate")
    kept = project.train(1.2, "halve lr")
    [keep] = verdict_lines(project)
    assert re.match(rf"autoresearch: keep test_bench.py::test_train score=1\.2 best=1\.5@\w{{7}} delta=-0\.3 "
                    rf"commit={kept[:7]} \| noise unknown", keep)
    project.train(1.3, "worse idea")
    [discard] = verdict_lines(project)
    assert " | not better than the best strictly | " in discard
    assert f"best=1.2@{kept[:7]}" in discard and "delta=+0.1" in discard
    assert f"revert: git reset --hard {kept[:7]}" in discard


def measured_twice(project: Project) -> tuple[str, str]:
    """A baseline at 1.5, then one commit drawn twice (1.2, then 1.4): its sha and the re-run's line."""
    project.bench()
    with open(project.path / ".gitignore", "a") as ignore:
        ignore.write("draw.txt\n")
    project.train(1.5, "baseline")
    verdict_lines(project)
    (project.path / "draw.txt").write_text("1.2")
    noisy = project.train(None, "noisy idea", body=DRAW)
    verdict_lines(project)
    (project.path / "draw.txt").write_text("1.4")
    [again] = verdict_lines(project)
    return noisy, again


def test_a_rerun_says_it_is_a_remeasurement_with_both_draws(project: Project) -> None:
    noisy, again = measured_twice(project)
    assert again.startswith(f"autoresearch: keep test_bench.py::test_train score=1.3 n=2 "
                            "(re-measured: earlier 1.2; now 1.4) best=1.5@")
    assert f"commit={noisy[:7]}" in again
    last = project.runs()[-1]
    assert (last.status, last.extra["remeasure"]) == ("keep", True)
    log = run_cli(project.path, "log").stdout.splitlines()
    assert "keep (re-measured)" in log[-1] and "keep (re-measured)" not in log[-2]
    status = run_cli(project.path, "status").stdout
    assert "  ideas: keep 2, discard 0, crash 0, timeout 0; keep rate 100% (2 commits)" in status
    assert "  draws: keep 3, discard 0, crash 0, timeout 0, re-measured 1 (3 runs)" in status
    assert "  improvement -0.2 (-13.3%) in 1 kept change since the baseline" in status


def test_the_bar_after_separate_reruns_is_their_mean(project: Project) -> None:
    noisy, _ = measured_twice(project)
    head = project.train(1.25, "between the draws")
    [keep] = verdict_lines(project, "--autoresearch-paired", "never",
                             "--autoresearch-min-delta", "0")  # strict, unpaired: the bar, not the noise, is tested here
    assert f"best=1.3@{noisy[:7]}" in keep and keep.startswith("autoresearch: keep "), \
        "1.25 beats the mean of 1.2 and 1.4, not the luckier draw"
    assert [r for r in project.runs() if r.sha == head][-1].extra["bar_n"] == 2


def test_the_noise_hint_goes_once_the_floor_is_measured(project: Project) -> None:
    project.bench()
    with open(project.path / ".gitignore", "a") as ignore:
        ignore.write("draw.txt\n")
    (project.path / "draw.txt").write_text("1.5")
    project.train(None, "baseline", body=DRAW)
    project.run("--autoresearch-repeat", "2").assert_outcomes(passed=1)  # two equal draws: sigma 0
    (project.path / "draw.txt").write_text("1.4")
    project.repo.git.commit("--allow-empty", "-m", "same code, other data file")
    [line] = verdict_lines(project)
    assert "noise unknown" not in line


def test_a_failed_baseline_says_fix_it_not_revert_it(project: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The branch's first run fails (a typo in the project, as `autoresearch init` found it): with no
    kept commit before it, resetting would delete the baseline, so the line says to fix it, and the
    JSON report and `status` agree."""
    project.bench()
    project.train(None, "the project", body=TYPO)
    project.repo.git.checkout("-b", "autoresearch/nov25")
    baseline = project.commit("baseline: nov25")  # what autoresearch init makes
    report = tmp_path_factory.mktemp("out") / "verdicts.json"
    [crash] = verdict_lines(project, "--autoresearch-json", str(report))
    assert crash.startswith("autoresearch: crash ")
    assert "revert:" not in crash
    assert crash.endswith(f" | fix: {BASELINE_FAILED}")
    [verdict] = json.loads(report.read_text())["verdicts"]
    assert (verdict["revert"], verdict["fix"]) == (None, BASELINE_FAILED)
    status = run_cli(project.path, "status")
    assert status.returncode == 0
    assert f"HEAD {baseline[:7]} is a crashed commit; {BASELINE_FAILED}" in status.stdout.splitlines()
    # fixed and amended, as the line says: the baseline is kept, and the next red line has a revert again
    (project.path / "train.py").write_text("print('---'); print('score: 1.5')\n")
    project.repo.git.commit("--amend", "-a", "--no-edit")
    [kept] = verdict_lines(project)
    assert kept.startswith("autoresearch: keep ")
    project.train(1.6, "try: worse")
    [red] = verdict_lines(project)
    assert f"revert: git reset --hard {project.repo.head.commit.parents[0].hexsha[:7]}" in red and "fix:" not in red
