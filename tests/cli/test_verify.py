"""``autoresearch verify`` and the status warning: a ledger the plugin wrote, then a row by hand."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli

from conftest import Project, two_kept_runs

HAND_MADE = "\t".join([
    "abc1234", "0.9", "", "keep", "a result nobody measured", "score", "test_bench.py::test_train",
    "main", "", "hand01", "hand01", "abc1234" + "0" * 33, "1.0", "2026-11-26T00:00:00+00:00", "h", "", '{"goal": "min"}',
]) + "\n"


def test_a_ledger_the_plugin_wrote_verifies(project: Project) -> None:
    ledger = two_kept_runs(project)
    done = run_cli(project.path, "verify")
    assert (done.returncode, done.stdout, done.stderr) == (0, "autoresearch verify: 4 rows, chain intact since line 2\n", "")
    final = json.loads(ledger.read_text().splitlines()[-1].split("\t")[-1])
    run_id = ledger.read_text().splitlines()[-1].split("\t")[9]
    assert final["chain"]["log"] == f"runs/{run_id}.log"  # the run's log is sealed with its row
    assert "warning" not in run_cli(project.path, "status").stdout


def test_a_row_written_by_hand_is_named_and_status_warns(project: Project) -> None:
    ledger = two_kept_runs(project)
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:3] + [HAND_MADE] + lines[3:]))
    assert [r.value for r in project.runs()] == [1.5, 0.9, 1.2]  # every reader takes it for a run

    done = run_cli(project.path, "verify")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "autoresearch verify: 5 rows, the hash chain is broken in 1 place",
        "  line 4: inserted: line 4 not written by the plugin: line 5 was written right after line 3",
    ]
    status = run_cli(project.path, "status")
    assert status.returncode == 0
    assert "warning: the ledger's hash chain is broken at line 4 (inserted): autoresearch verify" in status.stdout.splitlines()
    everywhere = run_cli(project.path, "status", "--all-branches").stdout.splitlines()
    assert everywhere[2].startswith("warning: the ledger's hash chain is broken at line 4")

    report = json.loads(run_cli(project.path, "verify", "--json").stdout)
    assert (report["intact"], report["rows"], report["chain_starts_at"]) == (False, 5, 2)
    assert report["problems"] == [{"line": 4, "kind": "inserted", "detail": done.stdout.splitlines()[1].split(": ", 2)[2]}]

    project.train(1.1, "warmdown")  # the plugin goes on sealing after the break
    project.run().assert_outcomes(passed=1)
    again = run_cli(project.path, "verify")
    assert again.returncode == 1 and again.stdout.splitlines()[0] == "autoresearch verify: 7 rows, the hash chain is broken in 1 place"


def test_an_edited_value_and_a_changed_log(project: Project) -> None:
    ledger = two_kept_runs(project)
    lines = ledger.read_text().splitlines(keepends=True)
    run_id = lines[4].split("\t")[9]
    log = ledger.parent / "runs" / f"{run_id}.log"
    log.write_text(log.read_text().replace("score: 1.2", "score: 1.0"))
    done = run_cli(project.path, "verify")
    assert done.returncode == 1
    assert done.stdout.splitlines()[1] == f"  line 5: log changed: its run log runs/{run_id}.log differs from the one sealed"
    assert "warning" not in run_cli(project.path, "status").stdout  # status leaves run logs to verify

    lines[2] = lines[2].replace("\t1.5\t", "\t1.4\t")
    ledger.write_text("".join(lines))
    done = run_cli(project.path, "verify")
    assert [line.split(":")[0:2] for line in done.stdout.splitlines()[1:]] == [
        ["  line 3", " edited"], ["  line 5", " log changed"]]


def test_a_ledger_from_before_the_chain(project: Project) -> None:
    project.train(1.5)
    path = project.path / "results.tsv"
    path.write_text("\t".join(["run_id", "status", "value", "extra"]) + "\na\tkeep\t1.5\t\n")
    done = run_cli(project.path, "verify", "--ledger", "results.tsv")
    assert (done.returncode, done.stdout) == (0, "autoresearch verify: 1 row, none chained yet (written before the hash chain)\n")


@pytest.mark.parametrize("ledger", [[], ["--ledger", "nowhere.tsv"]])
def test_no_ledger_to_verify(project: Project, ledger: list[str]) -> None:
    project.train(1.5)
    done = run_cli(project.path, "verify", *ledger)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("autoresearch: no ledger at ")
