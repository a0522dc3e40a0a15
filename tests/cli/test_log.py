"""``autoresearch log``: every run as an aligned table or as JSON, with filters."""

from __future__ import annotations

import json

from cli_helpers import night, run_cli

from conftest import Project


def test_table_is_aligned_newest_last(project: Project) -> None:
    shas = night(project)
    done = run_cli(project.path, "log")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["finished", "(UTC)", "commit", "branch", "value", "mem_gb", "status", "secs", "run",
                              "description"]
    assert [r.split()[8] for r in rows] == [r.run_id for r in project.runs()]  # what autoresearch show takes
    assert [r.split()[2] for r in rows] == [sha[:7] for sha in shas.values()]
    assert [(r.split()[4], r.split()[6]) for r in rows] == [
        ("1.5", "keep"), ("1.2", "keep"), ("1.3", "discard"), ("-", "crash"), ("1.1", "keep"),
    ]
    assert [r.split()[5] for r in rows if "crash" not in r] == ["0.5"] * 4  # peak_vram_mb 512
    for column in ("commit", "branch", "value", "status", "run", "description"):
        at = header.index(column)
        assert all(r[at - 2 : at] == "  " and r[at] != " " for r in rows), f"{column} is not aligned"


def test_filters(project: Project) -> None:
    shas = night(project)
    kept = run_cli(project.path, "log", "--status", "keep").stdout.splitlines()[1:]
    assert [r.split()[2] for r in kept] == [shas[d][:7] for d in ("baseline", "halve lr", "warmdown 0.5")]
    failed = run_cli(project.path, "log", "--status", "crash,discard").stdout.splitlines()[1:]
    assert [r.split()[6] for r in failed] == ["discard", "crash"]
    assert len(run_cli(project.path, "log", "--status", "crash", "--status", "discard").stdout.splitlines()) == 3
    last = run_cli(project.path, "log", "--last", "1").stdout.splitlines()
    assert len(last) == 2 and last[1].endswith("warmdown 0.5")
    assert len(run_cli(project.path, "log", "--test", "test_train").stdout.splitlines()) == 6
    assert len(run_cli(project.path, "log", "--branch", "autoresearch/nov25").stdout.splitlines()) == 6
    none = run_cli(project.path, "log", "--branch", "main")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "autoresearch: no runs match\n")


def test_verbose_adds_test_metric_and_reason(project: Project) -> None:
    night(project)
    rows = run_cli(project.path, "log", "-v").stdout.splitlines()
    assert rows[0].split()[-4:] == ["test", "metric", "description", "reason"]
    assert rows[3].endswith("wider mlp     not better than the best strictly")
    assert "test_bench.py::test_train  score" in rows[4]
    assert rows[4].endswith("train.py exited with code 3")


def test_json_carries_every_field(project: Project) -> None:
    shas = night(project)
    done = run_cli(project.path, "log", "--json")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    ledger = project.runs()
    assert len(runs) == len(ledger) == 5
    for row, entry in zip(runs, ledger):
        assert set(row) == {
            "run_id", "status", "commit", "sha", "value", "memory_gb", "description", "metric", "test",
            "branch", "identity", "measurement", "duration_s", "timestamp", "host", "pid", "extra",
        }
        assert (row["run_id"], row["sha"], row["identity"]) == (entry.run_id, entry.sha, entry.identity)
    assert [r["sha"] for r in runs] == list(shas.values())
    assert [r["value"] for r in runs] == [1.5, 1.2, 1.3, None, 1.1]
    assert runs[2]["extra"] == {**runs[2]["extra"], "bar": 1.2, "bar_commit": shas["halve lr"][:7],
                                "reason": "not better than the best strictly"}
    assert runs[3]["status"] == "crash" and runs[3]["test"] == "test_bench.py::test_train"
    assert json.loads(run_cli(project.path, "log", "--json", "--status", "timeout").stdout) == []


def test_nan_stays_valid_json(project: Project) -> None:
    project.bench()
    project.train("nan")
    project.run().assert_outcomes(failed=1)
    [row] = json.loads(run_cli(project.path, "log", "--json").stdout)
    assert (row["value"], row["status"]) == ("nan", "discard")
    assert run_cli(project.path, "log").stdout.splitlines()[1].split()[4:7] == ["nan", "0.5", "discard"]
