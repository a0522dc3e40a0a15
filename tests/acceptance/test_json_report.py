"""``pytest --autoresearch --autoresearch-json PATH``: the session's verdicts for CI, field by field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from conftest import Project

# the documented fields; more may be added
FIELDS = {"test", "metric", "goal", "value", "bar", "bar_commit", "threshold", "delta", "status",
          "commit", "identity", "duration", "reason", "note"}


def strict(path: Path) -> Any:
    """Parse JSON that CI tools accept: no NaN or Infinity literals."""

    def refuse(literal: str) -> None:
        raise ValueError(f"non-standard JSON literal {literal}")

    return json.loads(path.read_text(), parse_constant=refuse)


def report(project: Project, *args: str) -> list[dict[str, Any]]:
    """Run the benchmarks with a JSON report in out/ (ignored by git, as a CI job would)."""
    with open(project.path / ".gitignore") as ignore:
        assert "out/" in ignore.read().split(), "ignore out/ before the first commit"
    path = project.path / "out" / "verdicts.json"
    project.run("--autoresearch-json", "out/verdicts.json", *args)
    payload = strict(path)
    assert set(payload) == {"session", "verdicts"}
    for verdict in payload["verdicts"]:
        assert FIELDS <= set(verdict), FIELDS - set(verdict)
    verdicts: list[dict[str, Any]] = payload["verdicts"]
    return verdicts


def check_against_ledger(project: Project, verdict: dict[str, Any]) -> None:
    """The report and the ledger row of the same run agree."""
    run = project.runs()[-1]
    assert verdict["commit"] == run.commit == project.repo.head.commit.hexsha[:7]
    assert verdict["identity"] == run.identity and len(run.identity) == 12
    assert verdict["status"] == run.status
    assert verdict["reason"] == run.extra["reason"]
    assert isinstance(verdict["duration"], float) and verdict["duration"] > 0
    assert run.duration_s is not None and verdict["duration"] == pytest.approx(run.duration_s, abs=0.051)


def ignore_out(project: Project) -> None:
    with open(project.path / ".gitignore", "a") as ignore:
        ignore.write("out/\n")


def test_verdicts_field_by_field(project: Project) -> None:
    ignore_out(project)
    project.bench(threshold=1.4)
    base = project.train(1.3, "baseline")
    [first] = report(project)
    assert first == {**first, "test": "test_bench.py::test_train", "metric": "score", "goal": "min",
                     "value": 1.3, "bar": None, "bar_commit": None, "threshold": 1.4, "delta": None,
                     "status": "keep", "reason": "first result: no earlier kept result to beat",
                     "note": "first result for this test on this branch"}
    check_against_ledger(project, first)

    project.train(1.2, "halve lr")
    [better] = report(project)
    assert (better["value"], better["bar"], better["bar_commit"], better["status"], better["reason"]) == (
        1.2, 1.3, base[:7], "keep", "improved")
    assert better["delta"] == pytest.approx(-0.1)
    assert better["identity"] == first["identity"]
    assert better["note"] is None
    check_against_ledger(project, better)

    project.train(1.25, "wider mlp")
    [worse] = report(project)
    assert (worse["value"], worse["bar"], worse["status"]) == (1.25, 1.2, "discard")
    assert worse["delta"] == pytest.approx(0.05)
    assert worse["reason"] == "not better than the best strictly"
    check_against_ledger(project, worse)
    project.repo.git.reset("--hard", "HEAD~1")

    project.train(1.5, "over the threshold")
    [over] = report(project)
    assert (over["status"], over["reason"]) == ("discard", "threshold not met: need at most 1.4")
    assert over["threshold"] == 1.4


def test_crash(project: Project) -> None:
    ignore_out(project)
    project.bench()
    project.train(1.3, "baseline")
    project.run().assert_outcomes(passed=1)
    project.train(None, "typo", body="raise SystemExit(3)\n")
    [crash] = report(project)
    assert (crash["value"], crash["bar"], crash["delta"], crash["status"]) == (None, None, None, "crash")
    assert crash["reason"] == "train.py exited with code 3"
    check_against_ledger(project, crash)


def test_nan_is_written_as_a_string(project: Project) -> None:
    ignore_out(project)
    project.bench()
    project.train("nan")
    [verdict] = report(project)
    assert (verdict["value"], verdict["status"]) == ("nan", "discard")
    assert verdict["reason"] == "value is nan, not a finite number"
    assert math.isnan(float(verdict["value"]))


def test_no_benchmarks_writes_an_empty_list(project: Project) -> None:
    ignore_out(project)
    project.pytester.makepyfile(test_plain="def test_nothing(): pass")
    project.commit("no benchmark")
    assert report(project) == []
