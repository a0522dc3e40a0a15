"""The ledger: whole rows under concurrency, corrupt lines skipped with a warning, orphans resolved."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_autoresearch import identity
from pytest_autoresearch.ledger import COLUMNS, Entry, Ledger, LedgerWarning

WRITER = """
import sys
from pathlib import Path
from pytest_autoresearch.ledger import Entry, Ledger
ledger = Ledger(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    ledger.append(Entry(run_id=f"{sys.argv[2]}-{i}", status="keep", value=i, description="x" * 300))
"""


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    entry = Entry(run_id="r1", status="keep", commit="abc1234", sha="abc1234" + "0" * 33, value=0.9979,
                  memory_gb=44.0, description="tabs\tand\nnewlines", metric="val_bpb", test="t.py::t",
                  branch="autoresearch/nov25", identity="id", measurement="r1", duration_s=300.0,
                  extra={"reason": "improved"})
    ledger.append(entry)
    [back] = ledger.runs()
    assert back.description == "tabs and newlines"
    assert (back.value, back.memory_gb, back.extra) == (0.9979, 44.0, {"reason": "improved"})
    header = (tmp_path / "ledger.tsv").read_text().splitlines()[0].split("\t")
    assert header[:5] == ["commit", "value", "memory_gb", "status", "description"]


def test_missing_values_are_empty_and_nan_stays_nan(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="a", status="crash"), Entry(run_id="b", status="discard", value=math.nan))
    line_a = (tmp_path / "ledger.tsv").read_text().splitlines()[1].split("\t")
    assert line_a[1] == "" and line_a[2] == ""
    a, b = ledger.runs()
    assert a.value is None and a.memory_gb is None
    assert b.value is not None and math.isnan(b.value)


def test_running_line_completed_later_folds_into_one_run(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    running = Entry(run_id="r", status="running")
    ledger.append(running)
    assert [r.status for r in ledger.runs()] == ["running"]  # this process is alive
    ledger.append(running.finished(status="keep", value=1.0))
    assert [(r.status, r.value) for r in ledger.runs()] == [("keep", 1.0)]


def test_running_line_of_a_dead_process_reads_as_crash(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="r", status="running", pid=int(dead)))
    [run] = ledger.runs()
    assert run.status == "crash" and run.extra["reason"] == "never completed"


@pytest.mark.parametrize("bad", [
    "only\tthree\tfields",
    "\t".join(["abc"] * len(COLUMNS)),  # unknown status
    "\t".join(["abc", "fast", "", "keep"] + ["x"] * (len(COLUMNS) - 4)),  # value not a number
])
def test_corrupt_line_is_skipped_with_a_warning(tmp_path: Path, bad: str) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="a", status="keep", value=1.0))
    with open(ledger.path, "a") as fh:
        fh.write(bad + "\n")
    ledger.append(Entry(run_id="b", status="keep", value=2.0))
    with pytest.warns(LedgerWarning, match=r"ledger.tsv:3: corrupt line skipped"):
        runs = ledger.runs()
    assert [r.run_id for r in runs] == ["a", "b"]


def test_torn_last_line_is_skipped_and_the_next_append_starts_clean(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="a", status="keep", value=1.0))
    with open(ledger.path, "a") as fh:
        fh.write("abc1234\t0.99\t")  # a writer died mid-line
    with pytest.warns(LedgerWarning, match="truncated"):
        assert [r.run_id for r in ledger.runs()] == ["a"]
    ledger.append(Entry(run_id="b", status="keep", value=2.0))
    with pytest.warns(LedgerWarning, match="corrupt line skipped"):
        assert [r.run_id for r in ledger.runs()] == ["a", "b"]


def test_concurrent_writers_lose_and_tear_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tsv"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{w}", "200"]) for w in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 8 * 200
    runs = Ledger(path).runs()
    assert len({r.run_id for r in runs}) == 1600
    assert all(len(r.description) == 300 for r in runs)


def test_identity_parts_are_remembered(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.register_identity("abc", {"device": "cpu: x", "frozen": "123"})
    ledger.register_identity("abc", {"device": "ignored, already known"})
    assert ledger.identity_parts("abc") == {"device": "cpu: x", "frozen": "123"}
    assert ledger.identity_parts("other") == {}


def test_rows_written_before_the_surface_left_the_identity_read_as_rows_of_now(tmp_path: Path) -> None:
    """An identity recorded with the pytest surface in it stands for the measurement without it,
    and its rows carry that surface apart: an upgraded ledger keeps its leaderboard and its trust."""
    measured = {"device": "cpu: x", "frozen": "123"}
    surface = {"pytest conftests": "none", "pytest ini": "pytest.ini:aaa", "pytest plugins": "p==1", "pytest options": "none"}
    old = identity.digest({**measured, **surface})
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.register_identity(old, {**measured, **surface})
    ledger.append(Entry("old", "keep", sha="s1", value=1.0, identity=old),
                  Entry("new", "keep", sha="s2", value=0.9, identity=identity.digest(measured)),
                  Entry("else", "keep", sha="s3", value=0.8, identity="another"))
    now = ledger.runs(identity=identity.digest(measured))
    assert [r.run_id for r in now] == ["old", "new"]
    assert {r.identity for r in now} == {identity.digest(measured)}
    assert now[0].extra["surface"] == identity.digest(surface)
    assert ledger.identity_parts(identity.digest(measured)) == measured
    assert ledger.identity_parts(identity.digest(surface)) == surface
    assert ledger.runs(identity=old) == [], "the old digest no longer names a leaderboard of its own"


def test_an_older_identity_continues_as_the_one_now_said_to_be_the_same(tmp_path: Path) -> None:
    """Before 0.3 the frozen files were hashed with their judging settings: the session says which
    new identity such a measurement continues, and only an identity recorded then can be continued."""
    surface = {"pytest conftests": "none", "pytest ini": "none", "pytest plugins": "p==1", "pytest options": "none"}
    whole, now = {"device": "cpu: x", "frozen": "with-max-seconds"}, identity.digest({"device": "cpu: x", "frozen": "cut"})
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.register_identity(identity.digest({**whole, **surface}), {**whole, **surface})
    ledger.append(Entry("old", "keep", sha="s1", value=1.0, identity=identity.digest({**whole, **surface})))
    assert ledger.runs(identity=now) == []
    ledger.register_same(identity.digest(whole), now)
    ledger.register_same(identity.digest(whole), now)
    ledger.register_same(identity.digest({"device": "never recorded"}), now)
    assert [r.run_id for r in ledger.runs(identity=now)] == ["old"]
    assert len(ledger.identities_path.read_text().splitlines()) == 2, "one record of the continuation, none for the unknown"


def test_runs_are_selected_by_status_commit_and_columns(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(
        Entry(run_id="a", status="keep", sha="s1", test="t", value=1.0),
        Entry(run_id="b", status="running", sha="s2", test="t"),
        Entry(run_id="b", status="discard", sha="s2", test="t", value=2.0),  # completes b
        Entry(run_id="c", status="keep", sha="s3", test="t", value=3.0),
        Entry(run_id="d", status="keep", sha="s1", test="other", value=4.0),
    )
    assert [r.run_id for r in ledger.runs(("keep",))] == ["a", "c", "d"]
    assert [r.run_id for r in ledger.runs(("keep", "discard"), shas={"s1", "s2"})] == ["a", "b", "d"]
    assert [r.run_id for r in ledger.runs(("keep", "discard"), shas={"s1", "s2"}, test="t")] == ["a", "b"]
    assert [r.run_id for r in ledger.runs(shas=set())] == []


def test_a_ledger_without_some_columns_reads_them_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tsv"
    path.write_text("run_id\tstatus\tvalue\ttest\na\tkeep\t1.5\tt\n")
    [run] = Ledger(path).runs(("keep",), shas={""}, test="t")
    assert (run.run_id, run.value, run.sha, run.metric) == ("a", 1.5, "", "")
