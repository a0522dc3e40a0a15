"""The ledger's hash chain: ledgers written by the real Ledger, then changed the ways a hand would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_autoresearch import chain
from pytest_autoresearch.ledger import COLUMNS, Entry, Ledger, format_line, sealed_line
from pytest_autoresearch.runner import watchdog

WRITER = """
import sys
from pathlib import Path
from pytest_autoresearch.ledger import Entry, Ledger
ledger = Ledger(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    ledger.append(Entry(run_id=f"{sys.argv[2]}-{i}", status="keep", value=i))
"""


def night(tmp_path: Path) -> Ledger:
    """Three judged runs as the plugin writes them (running, then final), the crash with its log.

    Lines: 1 header, 2-3 run a (keep 1.5), 4-5 run b (discard 1.7), 6-7 run c (crash, log).
    """
    logs = tmp_path / "runs"
    logs.mkdir(parents=True)
    ledger = Ledger(tmp_path / "ledger.tsv", logs=logs)
    for run_id, status, value in (("a", "keep", 1.5), ("b", "discard", 1.7), ("c", "crash", None)):
        running = Entry(run_id=run_id, status="running", commit="abc1234", test="t.py::t", metric="score",
                        extra={"goal": "min", "watchdog": 1})
        ledger.append(running)
        (logs / f"{run_id}.log").write_text(f"step 1\n---\nscore: {value}\n")
        ledger.append(running.finished(status=status, value=value, extra={"goal": "min", "reason": "r"}))
    return ledger


def lines_of(ledger: Ledger) -> list[str]:
    return ledger.path.read_text().splitlines(keepends=True)


def rewrite(ledger: Ledger, lines: list[str]) -> None:
    ledger.path.write_text("".join(lines))


def problems(ledger: Ledger) -> list[tuple[int, str]]:
    return [(p.line, p.kind) for p in chain.verify(ledger.path).problems]


def test_a_ledger_written_by_the_plugin_is_intact(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    report = chain.verify(ledger.path)
    assert report.intact and (report.rows, report.start) == (6, 2)
    assert report.summary() == "6 rows, chain intact since line 2"
    assert report.details() == []
    sealed = json.loads(lines_of(ledger)[6].split("\t")[-1])["chain"]
    assert sealed["log"] == "runs/c.log" and len(sealed["sha256"]) == 64
    assert "log" not in json.loads(lines_of(ledger)[5].split("\t")[-1])["chain"]  # running rows: no log yet


def test_readers_see_the_runs_without_the_seal(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    assert [(r.run_id, r.status, dict(r.extra)) for r in ledger.runs()] == [
        ("a", "keep", {"goal": "min", "reason": "r"}), ("b", "discard", {"goal": "min", "reason": "r"}),
        ("c", "crash", {"goal": "min", "reason": "r"}),
    ]


def test_the_format_stays_what_older_readers_parse(tmp_path: Path) -> None:
    lines = lines_of(night(tmp_path))
    assert lines[0] == "\t".join(COLUMNS) + "\n"
    for line in lines[1:]:
        cells = line.rstrip("\n").split("\t")
        assert len(cells) == len(COLUMNS) and isinstance(json.loads(cells[-1]), dict)


def test_an_edited_value_is_found_on_its_line(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    assert "\t1.7\t" in lines[4]
    lines[4] = lines[4].replace("\t1.7\t", "\t1.2\t")  # the discard made to look like a better result
    rewrite(ledger, lines)
    assert problems(ledger) == [(5, "edited")]


@pytest.mark.parametrize("change", [
    lambda line: line.replace('"reason": "r"', '"reason": "r", "bar": 1.0'),  # a key added to extra
    lambda line: line.replace('"goal": "min"', '"goal":  "min"'),  # bytes only
    lambda line: line.replace('"prev": "', '"prev": "0'),  # the seal itself
    lambda line: line.replace("keep", "discard"),
])
def test_any_byte_changed_is_an_edit(tmp_path: Path, change: object) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    assert callable(change)
    lines[2] = change(lines[2])
    rewrite(ledger, lines)
    assert problems(ledger) == [(3, "edited")]


def test_a_deleted_line_is_found_where_the_link_breaks(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    del lines[4]  # run b's discard
    rewrite(ledger, lines)
    [problem] = chain.verify(ledger.path).problems
    assert (problem.line, problem.kind) == (5, "deleted")
    assert "rows deleted before it" in problem.detail


def test_deleting_the_first_chained_rows_shows(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    rewrite(ledger, lines[:1] + lines[3:])
    assert problems(ledger) == [(2, "deleted")]


def test_an_inserted_hand_made_line_is_named(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    fake = format_line(Entry(run_id="x", status="keep", commit="abc1234", value=0.5, test="t.py::t", metric="score"))
    rewrite(ledger, lines[:4] + [fake] + lines[4:])
    [problem] = chain.verify(ledger.path).problems
    assert (problem.line, problem.kind) == (5, "inserted")
    assert problem.detail == "line 5 not written by the plugin: line 6 was written right after line 4"


def test_an_inserted_line_sealed_like_the_plugin_still_breaks_the_next_link(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    prev = chain.hash_of(lines[3].rstrip("\n").split("\t")[-1])
    forged, _ = sealed_line(Entry(run_id="x", status="keep", value=0.5), prev)
    rewrite(ledger, lines[:4] + [forged] + lines[4:])
    assert problems(ledger) == [(5, "inserted")]


def test_a_changed_run_log_is_found(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    log = tmp_path / "runs" / "c.log"
    log.write_text(log.read_text() + "score: 0.1\n")
    [problem] = chain.verify(ledger.path).problems
    assert (problem.line, problem.kind) == (7, "log changed")
    assert chain.verify(ledger.path, check_logs=False).intact


def test_a_run_log_gone_is_said_but_not_a_break(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    (tmp_path / "runs" / "c.log").unlink()  # pruned
    report = chain.verify(ledger.path)
    assert report.intact and report.logs_gone == [7]
    assert report.details() == ["1 run log(s) no longer on disk, not checked (lines 7)"]


def test_a_moved_ledger_folder_still_verifies(tmp_path: Path) -> None:
    night(tmp_path / "here")
    (tmp_path / "here").rename(tmp_path / "there")
    assert chain.verify(tmp_path / "there" / "ledger.tsv").details() == []


def old_ledger(path: Path, runs: int) -> None:
    """A ledger written before the chain: the same lines, no seal."""
    with open(path, "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        for i in range(runs):
            fh.write(format_line(Entry(run_id=f"old{i}", status="keep", value=2.0 - i / 10, extra={"goal": "min"})))


def test_an_old_ledger_is_unchained_history_and_the_chain_starts_after_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tsv"
    old_ledger(path, 3)
    assert chain.verify(path).summary() == "3 rows, none chained yet (written before the hash chain)"
    ledger = Ledger(path)
    ledger.append(Entry(run_id="new", status="keep", value=1.0))
    ledger.append(Entry(run_id="newer", status="keep", value=0.9))
    report = chain.verify(path)
    assert report.intact and report.start == 5
    assert report.summary() == "5 rows, chain intact since line 5"
    assert report.details() == ["lines 2-4: unchained history (written before the hash chain), not checked"]
    assert [r.run_id for r in ledger.runs()] == ["old0", "old1", "old2", "new", "newer"]


def test_an_unchained_row_after_the_chain_started_is_one_problem(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    with open(ledger.path, "a") as fh:  # a plugin older than the chain, in another worktree
        fh.write(format_line(Entry(run_id="old", status="keep", value=1.0)))
    ledger.append(Entry(run_id="next", status="keep", value=0.9))  # chains on from it
    assert problems(ledger) == [(8, "unchained")]


def test_a_torn_line_is_one_problem_and_the_chain_goes_on(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    with open(ledger.path, "a") as fh:
        fh.write("abc1234\t0.99\t")  # a writer died mid-line
    assert chain.verify(ledger.path).intact  # a last line still being written is not judged
    ledger.append(Entry(run_id="next", status="keep", value=0.9))
    with pytest.warns(match="corrupt line skipped"):
        assert [r.run_id for r in ledger.runs()][-1] == "next"
    assert problems(ledger) == [(8, "corrupt")]


def test_a_last_line_longer_than_the_tail_read_still_links(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="a", status="keep", description="x" * 50_000))
    ledger.append(Entry(run_id="b", status="keep"))
    ledger.append(Entry(run_id="c", status="keep", extra={"note": "y" * 20_000}))
    ledger.append(Entry(run_id="d", status="keep"))
    assert chain.verify(ledger.path).details() == []


@pytest.mark.parametrize("extra", [{}, {"a": 1}, {"zz": 1}, {"a": 1, "zz": "chain"}, {"log": "x.log"}])
def test_the_seal_is_cut_out_wherever_its_key_sorts(tmp_path: Path, extra: dict[str, object]) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="a", status="keep", extra=extra), Entry(run_id="b", status="keep", extra=extra))
    assert chain.verify(ledger.path).intact
    assert [dict(r.extra) for r in ledger.runs()] == [extra, extra]


def test_a_seal_handed_in_is_replaced(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.append(Entry(run_id="a", status="keep", extra={"chain": {"sha256": "0" * 64, "prev": ""}}))
    assert chain.verify(ledger.path).intact


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tsv"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{w}", "50"]) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    report = chain.verify(path)
    assert report.intact and report.rows == 200


def test_the_watchdog_rows_are_sealed_with_their_log(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    running = Entry(run_id="d", status="running", extra={"goal": "min", "watchdog": 1})
    ledger.append(running)
    (tmp_path / "runs" / "d.log").write_text("step 1\n")
    spec = {"ledger": str(ledger.path), "logs": str(tmp_path / "runs")}
    scope = {"deadline": None, "start": 0.0}
    watchdog.watch(io.StringIO(json.dumps(spec) + "\n" + "open 1 " + json.dumps(scope) + "\n"
                               + "run 1 " + json.dumps(format_line(running)) + "\n"))
    assert [r.status for r in ledger.runs()][-1] == "crash"
    report = chain.verify(ledger.path)
    assert report.intact and report.rows == 8
    assert json.loads(lines_of(ledger)[-1].split("\t")[-1])["chain"]["log"] == "runs/d.log"


def test_problems_read_as_one_line_each(tmp_path: Path) -> None:
    ledger = night(tmp_path)
    lines = lines_of(ledger)
    lines[2] = lines[2].replace("\t1.5\t", "\t1.1\t")
    rewrite(ledger, lines)
    report = chain.verify(ledger.path)
    assert report.summary() == "6 rows, the hash chain is broken in 1 place"
    assert report.details() == ["line 3: edited: its cells no longer match its seal"]
    assert report.to_json()["problems"] == [
        {"line": 3, "kind": "edited", "detail": "its cells no longer match its seal"}]


def test_entries_sealed_in_one_append_chain_in_order(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    draws = [Entry(run_id=f"d{i}", status="discard", value=1.0 + i) for i in range(3)]
    ledger.append(*draws)
    ledger.append(*(replace(d, status="keep") for d in draws))
    assert chain.verify(ledger.path).details() == []
