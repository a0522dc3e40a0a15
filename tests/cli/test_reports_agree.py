"""Every report tells the verdicts' numbers: a branch with repeats, re-measurements, resets, a crash,
a lucky draw and a near miss, replayed through the plugin; then ``status``, ``show``, ``log``, the
plot's running best and the ``-q`` line are each held to the verdicts the plugin gave."""

from __future__ import annotations

import json
import math
import re

import pytest
from cli_helpers import run_cli

from conftest import Project
from pytest_autoresearch import history
from pytest_autoresearch.cli import stats
from pytest_autoresearch.cli.plot import best_so_far
from pytest_autoresearch.outcome import PROPERTY, Outcome

DRAWS = """
from pathlib import Path
count = Path("count.txt")
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
print("---")
print("score:", Path("draws.txt").read_text().split()[n])
"""


def judge(project: Project, draws: list[float], *args: str) -> Outcome:
    """One ``pytest --autoresearch`` of HEAD whose runs give ``draws`` in turn: the verdict it gave."""
    (project.path / "draws.txt").write_text(" ".join(map(str, draws)))
    (project.path / "count.txt").unlink(missing_ok=True)
    result = project.run("-q", *args)
    [report] = [r for r in result.reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    [text] = [v for k, v in report.user_properties if k == PROPERTY]
    outcome = Outcome.from_json(str(text))
    line = next(x for x in result.outlines if x.startswith("autoresearch: "))
    if outcome.delta is not None and outcome.sigma:  # the -q line: the verdict's delta and its sigmas
        assert f"delta={outcome.delta:+.6g} ({outcome.delta / outcome.sigma:+.1f}σ)" in line
    return outcome


def replay(project: Project) -> dict[str, Outcome]:
    """The trial's branch in miniature, min_delta auto; returns each commit's latest verdict by idea."""
    project.bench(min_delta="auto")
    project.unseal()  # its fake target counts its draws in a file
    project.options += ("--autoresearch-paired=never",)  # each verdict on its own draws, as the trial's were
    (project.path / ".gitignore").write_text("__pycache__/\ndraws.txt\ncount.txt\n")
    latest: dict[str, Outcome] = {}
    project.train(None, "baseline", body=DRAWS)
    latest["baseline"] = judge(project, [1.0, 1.02, 0.98], "--autoresearch-repeat", "3")
    project.commit("close idea")
    latest["close idea"] = judge(project, [0.99])
    latest["close idea"] = judge(project, [0.97])  # re-measured before the reset: one mean of two draws
    project.repo.git.reset("--hard", "HEAD~1")
    project.commit("lucky idea")
    latest["lucky idea"] = judge(project, [0.9])
    latest["lucky idea"] = judge(project, [1.02])  # the re-run pulls its mean back inside the margin
    project.train(None, "typo", body="raise SystemExit(3)\n")
    latest["typo"] = judge(project, [])
    project.repo.git.reset("--hard", "HEAD~1")
    project.commit("beats the bar, not the margin")
    latest["beats the bar, not the margin"] = judge(project, [0.95])
    project.repo.git.reset("--hard", "HEAD~1")
    return latest


def test_every_report_tells_the_verdicts_numbers(project: Project) -> None:
    verdicts = replay(project)
    assert [verdicts[i].status for i in verdicts] == ["keep", "discard", "keep", "crash", "discard"]
    runs = project.runs()
    sha = {r.description: r.sha for r in runs}

    # the ledger rows: each row of a measurement holds the numbers its verdict judged
    for idea, outcome in verdicts.items():
        row = [r for r in runs if r.sha == sha[idea]][-1]
        if outcome.status == "crash":
            assert "mean" not in row.extra
            continue
        assert (row.extra["mean"], row.extra["n"]) == (pytest.approx(outcome.value), outcome.n)
        assert row.extra.get("delta") == (None if outcome.delta is None else pytest.approx(outcome.delta))
        assert row.extra.get("sigma") == (None if outcome.sigma is None else pytest.approx(outcome.sigma))
        assert history.judged_mean(row, runs) == (pytest.approx(outcome.value), outcome.n)

    # status --json: the best is the bar the last verdict faced; the noise is the one it used (its
    # single draw adds nothing to the floor, and its commit was reset away: HEAD's lineage is the same)
    status = json.loads(run_cli(project.path, "status", "--json").stdout)
    [bench] = status["benchmarks"]
    last = verdicts["beats the bar, not the margin"]
    assert (bench["best"]["value"], bench["best"]["n"], bench["best"]["commit"]) == (
        pytest.approx(last.best), last.best_n, last.best_commit)
    noise = bench["noise"]
    assert last.sigma == pytest.approx(noise["sigma"] * math.sqrt(1 / last.n + 1 / last.best_n))

    # near misses: each at its commit's judged mean and count, against the bar of its verdict
    near = {m["description"]: m for m in bench["near_misses"]}
    assert list(near) == ["close idea", "beats the bar, not the margin"]  # most promising first
    assert near["close idea"]["score"] > near["beats the bar, not the margin"]["score"] > 0
    for idea, m in near.items():
        outcome = verdicts[idea]
        assert (m["value"], m["n"], m["bar"], m["bar_n"]) == (
            pytest.approx(outcome.value), outcome.n, pytest.approx(outcome.best), outcome.best_n)
        assert m["delta"] == pytest.approx(outcome.delta)
        assert m["unit"] == pytest.approx(noise["sigma"] * math.sqrt(1 / m["n"] + 1 / m["bar_n"]))

    # lucky draws: exactly the kept commits whose latest verdict said their mean no longer passes
    said = {idea for idea, o in verdicts.items() if o.status == "keep" and "no longer beats the bar" in o.reason}
    assert said == {"lucky idea"}
    assert {luck["description"] for luck in bench["lucky_draws"]} == said

    # ideas and draws: five commits; 3 + 2 + 2 + 1 + 1 runs
    assert bench["ideas"] == {"keep": 2, "discard": 2, "crash": 1, "timeout": 0, "re-measured": 0, "wrong": 0, "running": 0}
    assert stats.finished(stats.draws(runs)) == 9 == status["runs"] == status["cost"]["runs"]

    # show: the mean, n, delta and sigma of the verdict at that run
    for idea, outcome in verdicts.items():
        if outcome.status == "crash":
            continue
        shown = json.loads(run_cli(project.path, "show", sha[idea][:7], "--json").stdout)
        assert (shown["mean"], shown["n"]) == (pytest.approx(outcome.value), outcome.n)
        assert shown["delta"] == (None if outcome.delta is None else pytest.approx(outcome.delta))
        assert shown["sigma"] == (None if outcome.sigma is None else pytest.approx(outcome.sigma))

    # log --json carries the same row fields; the plot's running best ends on status's best
    logged = {r["run_id"]: r["extra"] for r in json.loads(run_cli(project.path, "log", "--json").stdout)}
    assert all(logged[r.run_id].get("mean") == r.extra.get("mean") for r in runs)
    [series] = stats.series(runs)
    assert best_so_far(series.runs, "min")[-1] == pytest.approx(bench["best"]["value"])

    # the status text: the same noise, the same near misses
    text = run_cli(project.path, "status").stdout
    assert re.search(r"  noise on this host: sigma [0-9.]+ from 5 draws of 2 commits; an idea needs -", text)
