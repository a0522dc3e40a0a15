"""A throttled live progress line while a long script runs; nothing of it in -q output."""

from __future__ import annotations

from conftest import Project

SLOW = """
import time
for step in range(20):
    print(f"step {step:03d} | loss {3.0 - step / 10:.2f}", flush=True)
    time.sleep(0.1)
print("---")
print("score: 1.0")
"""


def test_progress_lines_show_elapsed_limit_and_the_scripts_last_line(project: Project) -> None:
    project.bench()
    project.train(None, "slow", body=SLOW)
    result = project.run_subprocess("--autoresearch-progress", "0.5", "--autoresearch-timeout", "60")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["autoresearch: test_train *s / 60s  step 0* | loss *"])
    progress = [line for line in result.stdout.lines if line.startswith("autoresearch: test_train ")]
    assert 1 <= len(progress) <= 5, progress  # about every 0.5 s of a 2 s run, not every line


def test_quiet_runs_show_no_progress(project: Project) -> None:
    project.bench()
    project.train(None, "slow", body=SLOW)
    result = project.run_subprocess("-q", "--autoresearch-progress", "0.5")
    result.assert_outcomes(passed=1)
    assert not [line for line in result.stdout.lines if "step 0" in line]
