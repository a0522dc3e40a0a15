"""``autoresearch status``: the noise and the margin, near misses worth another try, what the night cost, ``--json``."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from cli_helpers import run_cli
from test_status import section

from conftest import Project
from pytest_autoresearch.ledger import Entry, Ledger
from pytest_autoresearch.outcome import fmt, fmt_delta

LISTED = """
from pathlib import Path
counter = Path("draws.txt")
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
print("---")
print("score:", {values}[n % 5])
"""
BASELINE = [1.0, 1.02, 1.01, 0.99, 1.03]  # mean 1.01; the noise floor: sigma 0.0158 over 4 dof
SIGMA = statistics.stdev(BASELINE)


def measured_night(project: Project) -> dict[str, str]:
    """A baseline run five times (the noise floor), three discards and a keep."""
    project.bench(min_delta="auto")
    project.unseal()  # the baseline counts its draws in a file
    (project.path / ".gitignore").write_text("__pycache__/\ndraws.txt\n")
    shas = {"baseline": project.train(None, "baseline", body=LISTED.format(values=BASELINE))}
    project.run("--autoresearch-repeat", "5").assert_outcomes(passed=1)
    for value, idea in ((1.015, "close call"), (1.2, "far off"), (1.0, "small gain")):
        shas[idea] = project.train(value, idea)
        project.run("--autoresearch-paired", "never").assert_outcomes(failed=1)  # judged against the bar as measured
        project.repo.git.reset("--hard", "HEAD~1")
    shas["real gain"] = project.train(0.95, "real gain")
    project.run("--autoresearch-paired", "never").assert_outcomes(passed=1)
    return shas


def test_near_misses_most_promising_first_and_the_noise_in_plain_sight(project: Project) -> None:
    shas = measured_night(project)
    done = run_cli(project.path, "status")
    assert done.returncode == 0, done.stderr
    unit = SIGMA * math.sqrt(1 / 1 + 1 / 5)  # one standard error of a 1-run mean against a 5-run bar
    near = section(done.stdout, "near misses (discarded within one standard error of their bar")
    retest = "      retest: git cherry-pick {} && pytest --autoresearch --autoresearch-repeat auto"
    assert near == [  # the one that beat the bar first; "far off" is not near anything
        f"  {shas['small gain'][:7]}  small gain: 1 against the bar 1.01, delta -0.01 ({-0.01 / unit:+.1f}σ)",
        retest.format(shas["small gain"][:7]),
        f"  {shas['close call'][:7]}  close call: 1.015 against the bar 1.01, delta +0.005 ({0.005 / unit:+.1f}σ)",
        retest.format(shas["close call"][:7]),
    ]
    block = section(done.stdout, "test_bench.py::test_train  score")
    one, three = (fmt_delta(-2 * SIGMA * math.sqrt(1 / n + 1 / 1)) for n in (1, 3))  # against the 1-run best
    assert block[5] == (f"  noise on this host: sigma {fmt(SIGMA)} from 5 draws of 1 commit; an idea needs {one} at one draw, "
                        f"{three} at three (min_delta auto: 2 standard errors of the difference)")


def test_status_json_field_by_field(project: Project) -> None:
    shas = measured_night(project)
    runs = project.runs()
    by_sha = {r.sha: r for r in runs}
    done = run_cli(project.path, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert set(status) == {"scope", "branch", "head", "ledger", "runs", "warnings", "ideas", "draws", "benchmarks",
                           "near_misses", "cost", "acceptances", "suites"}
    assert status["acceptances"] == [], "no person accepted anything on this branch"
    assert status["suites"] == [], "no pytest-benchmark suite here"
    assert status["scope"] == f"branch main at {shas['real gain'][:7]}"
    assert (status["branch"], status["head"], status["runs"], status["warnings"]) == ("main", shas["real gain"], 9, [])
    assert status["ledger"] == str(project.path / ".git" / "autoresearch" / "ledger.tsv")
    assert status["ideas"] == {"keep": 2, "discard": 3, "crash": 0, "timeout": 0, "re-measured": 0, "wrong": 0, "running": 0}
    assert status["draws"] == {"keep": 6, "discard": 3, "crash": 0, "timeout": 0, "re-measured": 0, "wrong": 0, "running": 0}

    [bench] = status["benchmarks"]
    assert bench["test"] == "test_bench.py::test_train" and bench["metric"] == "score" and bench["goal"] == "min"
    assert bench["identity"] == runs[0].identity
    assert bench["best"] == {"value": 0.95, "commit": shas["real gain"][:7], "sha": shas["real gain"], "n": 1,
                             "description": "real gain"}
    assert bench["baseline"] == {"value": pytest.approx(1.01), "commit": shas["baseline"][:7], "sha": shas["baseline"],
                                 "n": 5, "description": "baseline"}  # all its draws, as the bar counts them
    assert (bench["ideas"], bench["draws"]) == (status["ideas"], status["draws"])
    assert bench["keep_rate"] == pytest.approx(2 / 5)
    assert bench["noise"] == {"sigma": pytest.approx(SIGMA), "dof": 4, "groups": 1, "draws": 5}
    assert bench["needs"] == {"1": pytest.approx(-2 * SIGMA * math.sqrt(2)),
                              "3": pytest.approx(-2 * SIGMA * math.sqrt(1 / 3 + 1))}
    assert bench["lucky_draws"] == []

    unit = SIGMA * math.sqrt(1 + 1 / 5)
    expected = []
    for idea, value in (("small gain", 1.0), ("close call", 1.015)):
        run = by_sha[shas[idea]]
        delta = value - statistics.fmean(BASELINE)
        expected.append({
            "run_id": run.run_id, "commit": shas[idea][:7], "sha": shas[idea], "description": idea,
            "test": "test_bench.py::test_train", "metric": "score", "value": value, "n": 1,
            "bar": pytest.approx(1.01), "bar_n": 5, "bar_commit": shas["baseline"][:7], "delta": pytest.approx(delta),
            "unit": pytest.approx(unit), "unit_is_noise": True, "score": pytest.approx(-delta / unit),
            "show": f"autoresearch show {shas[idea][:7]}",
            "retest": f"git cherry-pick {shas[idea][:7]} && pytest --autoresearch --autoresearch-repeat auto",
        })
    assert bench["near_misses"] == expected
    assert status["near_misses"] == expected

    cost = status["cost"]
    assert set(cost) == {"runs", "hours", "runs_per_hour", "wall_s", "device_hours", "device_hours_by_device", "paired"}
    assert cost["paired"] == {"verdicts": 0, "bar_runs": 0, "bar_crashes": 0, "runs": 0, "minutes": 0}
    assert cost["runs"] == 9 == status["runs"]
    for outcome in ("keep", "discard", "crash", "timeout"):
        spent = sum(r.duration_s or 0.0 for r in runs if r.status == outcome)
        assert cost["wall_s"][outcome] == pytest.approx(spent)
    # timestamps have whole seconds and fake runs take milliseconds: the night may fit in one second
    assert cost["hours"] >= 0
    assert cost["runs_per_hour"] == (pytest.approx(9 / cost["hours"]) if cost["hours"] > 0 else None)
    assert (cost["device_hours"], cost["device_hours_by_device"]) == (0, {})


def hand_made_night(path: Path) -> None:
    """Six runs with known times and devices: 22:00 to midnight UTC."""
    rows = [  # run id, status, value, seconds, finished, device, bar
        ("r1", "keep", 1.5, 600, "2026-11-26T22:10:00+00:00", "cuda:0", None),
        ("r2", "discard", 1.6, 300, "2026-11-26T22:20:00+00:00", "cuda:1", 1.5),
        ("r3", "crash", None, 60, "2026-11-26T22:30:00+00:00", None, None),
        ("r6", "discard", 1.51, 60, "2026-11-26T22:40:00+00:00", None, 1.5),
        ("r4", "timeout", None, 900, "2026-11-26T23:00:00+00:00", "cuda:0", None),
        ("r5", "keep", 1.4, 1800, "2026-11-27T00:00:00+00:00", "cuda:0", 1.5),
    ]
    entries = []
    for run_id, status, value, seconds, stamp, device, bar in rows:
        extra: dict[str, object] = {"goal": "min", **({"device": device} if device else {}),
                                    **({"bar": bar, "bar_n": 1, "bar_commit": "aaaaaaa"} if bar else {})}
        entries.append(Entry(run_id, status, commit=run_id * 3, sha=run_id * 20, value=value, duration_s=seconds,
                             timestamp=stamp, measurement=run_id, description=f"idea {run_id}", extra=extra,
                             metric="score", test="test_x.py::test_x", branch="main", identity="id1"))
    Ledger(path).append(*entries)


def test_cost_and_near_misses_without_a_noise_floor(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.tsv"
    hand_made_night(ledger)
    done = run_cli(tmp_path, "status", "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    assert section(done.stdout, "near misses") == [
        "  r6r6r6  idea r6: 1.51 against the bar 1.5, delta +0.01 (0.7% of the bar, no noise floor yet)",
        "      retest: git cherry-pick r6r6r6 && pytest --autoresearch --autoresearch-repeat auto",
    ]
    assert section(done.stdout, "cost: ") == ["  device-hours 1.00 (cuda:0 0.92, cuda:1 0.08)"]
    assert ("cost: 6 runs in 2.00 h (3.0 runs/hour); wall time keep 40m, discard 6m, crash 1m, timeout 15m"
            in done.stdout.splitlines())
    status = json.loads(run_cli(tmp_path, "status", "--ledger", str(ledger), "--json").stdout)
    assert status["cost"] == {
        "runs": 6, "hours": pytest.approx(2.0), "runs_per_hour": pytest.approx(3.0),
        "wall_s": {"keep": 2400.0, "discard": 360.0, "crash": 60.0, "timeout": 900.0},
        "device_hours": pytest.approx(1.0),
        "device_hours_by_device": {"cuda:0": pytest.approx(3300 / 3600), "cuda:1": pytest.approx(300 / 3600)},
        "paired": {"verdicts": 0, "bar_runs": 0, "bar_crashes": 0, "runs": 0, "minutes": 0.0},
    }
    assert [m["run_id"] for m in status["near_misses"]] == ["r6"]
    assert status["near_misses"][0]["unit"] == pytest.approx(0.015)
    assert status["benchmarks"][0]["noise"] is None
    assert (status["branch"], status["head"], status["scope"]) == (None, None, "every run (not a git repository)")


def test_the_text_lists_the_ten_most_promising_near_misses(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.tsv"
    base = Entry("base", "keep", commit="b" * 7, sha="b" * 40, value=2.0, measurement="base", metric="score",
                 test="test_x.py::test_x", identity="id1", extra={"goal": "min"})
    misses = [Entry(f"m{i:02d}", "discard", commit=f"{i:07d}", sha=f"{i:040d}", value=2.0 - i / 1000,
                    measurement=f"m{i:02d}", description=f"idea {i}", metric="score", test="test_x.py::test_x",
                    identity="id1", extra={"goal": "min", "bar": 2.0, "bar_n": 1}) for i in range(12)]
    Ledger(ledger).append(base, *misses)
    near = section(run_cli(tmp_path, "status", "--ledger", str(ledger)).stdout, "near misses")
    assert [line.split()[0] for line in near[:20:2]] == [f"{i:07d}" for i in range(11, 1, -1)]  # best first
    assert near[20:] == ["  ... and 2 more of score: autoresearch status --json lists them all"]
    status = json.loads(run_cli(tmp_path, "status", "--ledger", str(ledger), "--json").stdout)
    assert len(status["near_misses"]) == 12
