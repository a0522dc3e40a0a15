"""Paired re-measurement: a verdict in doubt runs the bar commit again beside the candidate.

The fake target's value drifts with a clock the test controls (a file: one tick per run, and
the agent's time between commits as more ticks), while its code does not change; its noise is
a seeded function of the tick, so every run of these tests draws the same values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Project, all_gone, pids_in, run_cli

SIGMA = 0.01  # the noise of one draw
# One tick per run; the value falls by DRIFT per tick whatever the code: later draws look better.
DRIFTING = """
import os
import random
import time
from pathlib import Path
GAIN = {gain}  # what this commit's code really gains
NEEDS = {needs!r}  # a file this code reads, if any
clock = Path(os.environ["DRIFT_CLOCK"])
tick = int(clock.read_text())
clock.write_text(str(tick + 1))
if NEEDS and not Path(NEEDS).exists():
    if os.environ.get("HANG_WITHOUT"):
        Path(os.environ["HANG_WITHOUT"]).write_text(str(os.getpid()))
        time.sleep(600)
    raise SystemExit(f"{{NEEDS}} is missing")
first_of_pair = tick % 2 == 1 and os.environ.get("FIRST_SLOWER") == "1"
value = 1.0 - GAIN - {drift} * tick + random.Random(tick).gauss(0, {sigma}) + (3 * {sigma} if first_of_pair else 0)
print("---")
print("score:", value)
"""
BETWEEN_COMMITS = 20  # ticks the agent spends thinking between two commits: the machine drifts meanwhile
DRIFT = SIGMA / 40  # per tick: half a noise floor between two commits, ten over a session of twenty


class Clock:
    """The target's clock: a file of ticks the test moves forward between commits."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        path.write_text("0")
        monkeypatch.setenv("DRIFT_CLOCK", str(path))

    @property
    def tick(self) -> int:
        return int(self.path.read_text())

    def think(self) -> None:
        """The agent's time before the next run; the next run starts on an even tick, so in each
        pair that follows its first draw, the first of the pair runs on an odd tick."""
        tick = self.tick + BETWEEN_COMMITS
        self.path.write_text(str(tick + tick % 2))


@pytest.fixture
def clock(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Clock:
    # fixed commit dates: the same commits, the same shas, the same pair orders in every run
    for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(name, "2026-12-01T00:00:00+00:00")
    return Clock(tmp_path_factory.mktemp("clock") / "clock", monkeypatch)


def drifting(project: Project, message: str, gain: float = 0.0, needs: str = "") -> str:
    project.unseal()  # the fake target advances the test's clock file
    body = DRIFTING.format(gain=gain, needs=needs, drift=DRIFT, sigma=SIGMA)
    return project.train(None, message, body=f"# {message}\n{body}")


@pytest.fixture
def baseline(project: Project, clock: Clock) -> Project:
    """The baseline measured five times: the noise floor is known, so verdicts in doubt can be told."""
    project.bench(min_delta="auto")
    drifting(project, "baseline")
    project.run("--autoresearch-repeat", "5").assert_outcomes(passed=1)
    return project


def agent_loop(project: Project, clock: Clock, commits: int, *args: str, gain: float = 0.0,
               label: str = "idea") -> list[bool]:
    """Commit ``commits`` ideas in turn as the agent does: keep on green, reset on red."""
    kept, total = [], 0.0
    for i in range(commits):
        clock.think()
        drifting(project, f"{label} {i}", gain=total + gain)
        result = project.run(*args)
        green = result.ret == pytest.ExitCode.OK
        kept.append(green)
        if green:
            total += gain
        else:
            project.repo.git.reset("--hard", "HEAD~1")
    return kept


def test_drift_keeps_no_change_commits_unless_verdicts_are_paired(baseline: Project, clock: Clock) -> None:
    """Twenty commits that change nothing, while the machine gets faster by ten noise floors.

    Judged against the bar as it was measured, drift keeps several of them; with the bar run
    again beside each candidate in doubt, drift keeps none. What is left is the rate at which
    any k-sigma rule keeps pure noise: one-sided P(Z > 2) = 2.3% per verdict at the default
    k = 2, about one in twenty verdicts (0.46 expected), so the test allows one.
    benchmarks/paired_drift.py measures both over more nights (12 of 40 kept unpaired, 1 of 40
    paired).
    """
    start = clock.tick
    unpaired = agent_loop(baseline, clock, 20, "--autoresearch-paired", "never")
    assert DRIFT * (clock.tick - start) > 5 * SIGMA  # the drift over the session: several noise floors
    assert sum(unpaired) >= 3, unpaired
    baseline.repo.git.reset("--hard", baseline.repo.git.rev_list("--max-parents=0", "HEAD"))
    paired = agent_loop(baseline, clock, 20, label="paired idea")
    assert sum(paired) <= 1, paired
    bar_rows = [r for r in baseline.runs() if r.extra.get("paired_with")]
    assert len(bar_rows) >= 3 * 15 and len(bar_rows) % 3 == 0  # three re-runs of the bar per paired verdict
    assert {r.status for r in bar_rows} == {"keep"} and bar_rows[0].description == "baseline"  # the bar's own rows


def test_a_real_gain_under_drift_is_kept_beside_the_bar(baseline: Project, clock: Clock) -> None:
    kept = agent_loop(baseline, clock, 10, gain=3 * SIGMA)
    assert sum(kept) >= 9


def test_the_first_draw_of_a_pair_being_slower_creates_no_keeps(
        baseline: Project, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every first draw of a pair is slower by three noise floors: with the bar always first, every
    candidate looks better (with ``paired.order`` made to return bar-first pairs, all 8 were
    kept); the pairs' balanced random order cancels it."""
    monkeypatch.setenv("FIRST_SLOWER", "1")
    kept = agent_loop(baseline, clock, 8, "--autoresearch-paired", "always")
    assert sum(kept) == 0


def test_the_line_and_the_ledger_say_the_verdict_was_paired(baseline: Project, clock: Clock) -> None:
    clock.think()
    sha = drifting(baseline, "a real gain", gain=5 * SIGMA)
    result = baseline.run("-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([  # said before the pairs run (the wait), then the verdict
        "autoresearch: pairing test_bench.py::test_train: *; running the bar ??????? and this commit 3 times each, "
        "alternating (6 runs, about * s)",
        "autoresearch: keep *score=* n=3 best=* delta=-0.0* (-*σ) commit=* | paired: 3 pairs, delta -0.0* +/- 0.00*"])
    rows = [r for r in baseline.runs() if r.sha == sha]
    assert len(rows) == 1 + 3 and {r.status for r in rows} == {"keep"}
    assert rows[-1].extra["pairs"] == 3 and rows[-1].extra["paired"].startswith("paired: 3 pairs, delta -0.0")
    assert not list((baseline.path / ".git" / "worktrees").glob("*"))  # the bar's worktree is gone


def test_a_discard_says_the_pairs_in_its_red_message(baseline: Project, clock: Clock) -> None:
    clock.think()
    drifting(baseline, "no change")
    result = baseline.run("--autoresearch-paired", "always")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DISCARD score = * (mean of 3)*", "  paired: 3 pairs, delta *", "  note:   paired because autoresearch_paired = always"])


def test_a_bar_that_crashes_on_its_rerun_is_not_blamed_on_the_candidate(project: Project, clock: Clock) -> None:
    """The baseline reads a file git ignores: its fresh checkout lacks it, so only its re-run crashes."""
    project.bench()
    (project.path / ".gitignore").write_text("__pycache__/\nlocal.dat\n")
    (project.path / "local.dat").write_text("")
    bar = drifting(project, "baseline", needs="local.dat")
    project.run().assert_outcomes(passed=1)
    clock.think()
    candidate = drifting(project, "candidate", gain=5 * SIGMA)
    result = project.run("--autoresearch-paired", "always", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["autoresearch: keep *not paired: the bar * failed on its re-run*local.dat is missing*"])
    crashed = [r for r in project.runs() if r.sha == bar and r.status == "crash"]
    assert len(crashed) == 1 and "local.dat is missing" in crashed[0].extra["reason"]
    kept = [r for r in project.runs() if r.sha == candidate][-1]
    shown = run_cli(project.path, "show", kept.run_id).stdout
    assert "  pairs     not paired: the bar" in shown and "ran again beside it" not in shown


def test_a_bar_that_hangs_on_its_rerun_is_ended_and_not_blamed_on_the_candidate(
        project: Project, clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The pairs have a time limit of their own (the per-run limit times their runs): a bar that
    hangs is stopped at it, its row says timeout, and the candidate is judged on its own draws."""
    pid_file = tmp_path_factory.mktemp("hang") / "pid"
    monkeypatch.setenv("HANG_WITHOUT", str(pid_file))
    project.bench()
    (project.path / ".gitignore").write_text("__pycache__/\nlocal.dat\n")
    (project.path / "local.dat").write_text("")
    bar = drifting(project, "baseline", needs="local.dat")
    project.run().assert_outcomes(passed=1)
    clock.think()
    drifting(project, "candidate", gain=5 * SIGMA)
    result = project.run_subprocess("--autoresearch-paired", "always", "--autoresearch-timeout", "2", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["autoresearch: keep *not paired: the bar * failed on its re-run (timed out after *"])
    assert all_gone(pids_in(pid_file))
    [hung] = [r for r in project.runs() if r.sha == bar and r.extra.get("paired_with")]
    assert hung.status == "timeout" and hung.extra["reason"].startswith("paired re-run of the bar timed out after")


def test_status_and_show_say_what_pairing_decided_and_cost(baseline: Project, clock: Clock) -> None:
    clock.think()
    head = drifting(baseline, "a real gain", gain=5 * SIGMA)
    baseline.run().assert_outcomes(passed=1)
    status = json.loads(run_cli(baseline.path, "status", "--json").stdout)
    spent = status["cost"]["paired"]
    assert {k: spent[k] for k in ("verdicts", "bar_runs", "bar_crashes", "runs")} == \
        {"verdicts": 1, "bar_runs": 3, "bar_crashes": 0, "runs": 6}
    rows = baseline.runs()
    candidate_rows = [r for r in rows if r.sha == head]
    added = [r for r in rows if r.extra.get("paired_with")] + candidate_rows[-int(candidate_rows[-1].extra["pairs"]):]
    assert len(added) == 6 and spent["minutes"] == pytest.approx(sum(r.duration_s or 0.0 for r in added) / 60)
    text = run_cli(baseline.path, "status").stdout
    assert "  paired: 1 verdict judged beside a re-run bar; 6 runs added (3 of the bar, 0 crashed)" in text
    candidate = [r for r in baseline.runs() if r.sha == head][-1]
    shown = run_cli(baseline.path, "show", candidate.run_id).stdout
    assert f"  pairs     {candidate.extra['paired']} (the bar ran again beside it)" in shown


def test_pairing_can_be_turned_off_in_the_ini_file(project: Project, clock: Clock) -> None:
    project.pytester.makeini("[pytest]\nautoresearch_paired = never\n")
    baseline = project
    baseline.bench(min_delta="auto")
    drifting(baseline, "baseline")
    baseline.run("--autoresearch-repeat", "5").assert_outcomes(passed=1)
    clock.think()
    head = drifting(baseline, "a real gain", gain=5 * SIGMA)
    baseline.run().assert_outcomes(passed=1)
    assert len([r for r in baseline.runs() if r.sha == head]) == 1
    assert not [r for r in baseline.runs() if r.extra.get("paired_with")]


def test_a_bad_ini_pairing_names_the_key_and_the_choices(project: Project) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_paired = sometimes\n")
    project.train(1.0)
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini autoresearch_paired: expected one of auto, always, never, got 'sometimes'*"])
