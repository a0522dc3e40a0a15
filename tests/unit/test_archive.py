"""The archive: judged commits survive reset and gc, prune deletes exactly what it says, and the
ledger's night cost (near misses are history's: tests/unit/test_history.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import git
import pytest

from pytest_autoresearch.archive import (
    judged_refs,
    keep_ref,
    mutable_diff,
    night_cost,
    parse_duration,
    prune,
)
from pytest_autoresearch.ledger import Entry

DAY = 86400
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


class Repo:
    """A real repository; each commit's committer date is set so ages are known."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "Test Agent")
            cw.set_value("user", "email", "agent@example.com")

    def commit(self, files: dict[str, str], message: str = "try", days_ago: float = 0) -> str:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        self.repo.git.add("-A")
        date = f"{int(NOW.timestamp() - days_ago * DAY)} +0000"
        self.repo.git.commit("-m", message, "--allow-empty", env={"GIT_COMMITTER_DATE": date})
        return self.repo.head.commit.hexsha

    def has_object(self, sha: str) -> bool:
        try:
            self.repo.git.cat_file("-e", sha)
        except git.GitCommandError:
            return False
        return True


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    made = Repo(tmp_path / "repo")
    yield made
    made.repo.close()


def test_a_discarded_idea_survives_reset_and_gc(repo: Repo) -> None:
    repo.commit({"train.py": "lr = 0.1\n", "prepare.py": "data = 1\n"}, "baseline")
    kept = repo.commit({"train.py": "lr = 0.2\n"}, "try: double lr")
    keep_ref(repo.repo, "run0001", kept)
    repo.repo.git.reset("--hard", "HEAD~1")
    lost = repo.commit({"train.py": "lr = 0.3\n"}, "try: triple lr (not archived)")
    repo.repo.git.reset("--hard", "HEAD~1")
    repo.repo.git.reflog("expire", "--expire=now", "--all")  # the reflog would shelter both
    repo.repo.git.gc("--prune=now", "--quiet")

    assert not repo.has_object(lost)  # what an unarchived discard comes to
    assert [(k.run_id, k.sha) for k in judged_refs(repo.repo)] == [("run0001", kept)]
    diff = mutable_diff(repo.repo, kept, ["train.py"], ".")
    assert "-lr = 0.1" in diff and "+lr = 0.2" in diff


def test_keep_ref_is_idempotent_and_never_moves(repo: Repo) -> None:
    first = repo.commit({"train.py": "a\n"})
    second = repo.commit({"train.py": "b\n"})
    assert keep_ref(repo.repo, "abc123", first[:7]) == "refs/autoresearch/runs/abc123"
    assert keep_ref(repo.repo, "abc123", first) == "refs/autoresearch/runs/abc123"
    with pytest.raises(ValueError, match=f"already holds {first[:7]}, not {second[:7]}"):
        keep_ref(repo.repo, "abc123", second)
    with pytest.raises(ValueError, match="'deadbeef' is not a commit"):
        keep_ref(repo.repo, "abc124", "deadbeef")
    with pytest.raises(ValueError, match="is not a commit"):
        mutable_diff(repo.repo, "HEAD~5", ["train.py"], ".")
    for bad in ("", "../heads/main", "a b", "x.lock", "-rf"):
        with pytest.raises(ValueError, match="cannot name a ref"):
            keep_ref(repo.repo, bad, first)


def test_refs_are_shared_by_every_worktree(repo: Repo, tmp_path: Path) -> None:
    base = repo.commit({"train.py": "a\n"})
    repo.repo.git.worktree("add", "-b", "other", str(tmp_path / "wt"))
    linked = git.Repo(tmp_path / "wt")
    try:
        keep_ref(linked, "fromwt", base)
    finally:
        linked.close()
    assert [k.ref for k in judged_refs(repo.repo)] == ["refs/autoresearch/runs/fromwt"]


def test_judged_refs_carry_the_committer_date(repo: Repo) -> None:
    old = repo.commit({"train.py": "a\n"}, days_ago=40)
    new = repo.commit({"train.py": "b\n"}, days_ago=1)
    keep_ref(repo.repo, "new", new)
    keep_ref(repo.repo, "old", old)
    refs = judged_refs(repo.repo)
    assert [(k.run_id, k.sha) for k in refs] == [("old", old), ("new", new)]  # oldest first
    assert [k.committed for k in refs] == [NOW - timedelta(days=40), NOW - timedelta(days=1)]


@pytest.fixture
def archived(repo: Repo) -> dict[str, str]:
    """Four runs: r1 and r2 of a commit 40 days old, r3 (10 days), r4 (1 day)."""
    shas = [repo.commit({"train.py": f"v{i}\n"}, days_ago=days) for i, days in enumerate((40, 10, 1))]
    runs = {"r1": shas[0], "r2": shas[0], "r3": shas[1], "r4": shas[2]}
    for run_id, sha in runs.items():
        keep_ref(repo.repo, run_id, sha)
    return runs


@pytest.mark.parametrize(("run_ids", "older_than", "deleted"), [
    ({"r2", "r4"}, None, ["r2", "r4"]),
    (None, timedelta(days=30), ["r1", "r2"]),
    (None, timedelta(days=5), ["r1", "r2", "r3"]),
    ({"r1", "r4"}, timedelta(days=5), ["r1"]),  # both given: both must hold
    ({"nope"}, None, []),
    (set(), timedelta(days=5), []),
    (None, timedelta(days=100), []),
])
def test_prune_deletes_exactly_what_it_returns(repo: Repo, archived: dict[str, str], run_ids: set[str] | None,
                                               older_than: timedelta | None, deleted: list[str]) -> None:
    before = {k.run_id: k for k in judged_refs(repo.repo)}
    gone = prune(repo.repo, run_ids=run_ids, older_than=older_than, now=NOW)
    assert sorted(k.run_id for k in gone) == deleted
    assert {k.run_id: k for k in judged_refs(repo.repo)} == {r: k for r, k in before.items() if r not in deleted}
    assert all(repo.has_object(sha) for sha in archived.values())  # refs go; gc decides on objects


def test_prune_refuses_to_delete_everything_unasked(repo: Repo, archived: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="run_ids, older_than, or both"):
        prune(repo.repo)
    assert len(judged_refs(repo.repo)) == 4


def test_mutable_diff_shows_only_mutable_files_in_scope(repo: Repo) -> None:
    root = repo.commit({"proj/train.py": "x = 1\n", "proj/prepare.py": "p = 1\n", "other/train.py": "o = 1\n"})
    idea = repo.commit({"proj/train.py": "x = 2\n", "proj/prepare.py": "p = 2\n", "other/train.py": "o = 2\n",
                        "proj/model/block.py": "b = 1\n"})
    diff = mutable_diff(repo.repo, idea, ["train.py", "model/*.py"], "proj")
    assert "+x = 2" in diff and "+b = 1" in diff
    assert "p = 2" not in diff and "o = 2" not in diff
    assert mutable_diff(repo.repo, idea, ["nothing.py"], "proj") == ""
    first = mutable_diff(repo.repo, root, ["train.py"], "proj")  # a root commit: all of it is new
    assert "+x = 1" in first and "o = 1" not in first


def test_mutable_diff_of_a_file_with_an_odd_name(repo: Repo) -> None:
    repo.commit({"train v2.py": "a\n", ":weird.py": "a\n"})
    sha = repo.commit({"train v2.py": "b\n", ":weird.py": "b\n"})
    diff = mutable_diff(repo.repo, sha, ["*.py"], ".")
    assert "train v2.py" in diff and ":weird.py" in diff


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)),
    ("12h", timedelta(hours=12)),
    ("90m", timedelta(minutes=90)),
    ("2w", timedelta(weeks=2)),
    (" 1.5D ", timedelta(hours=36)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("30", "such as 30d, 12h or 90m"),
    ("d", "such as 30d"),
    ("30s", "then m, h, d or w"),
    ("-3d", "such as 30d"),
    ("0h", "more than zero"),
    ("", "got ''"),
])
def test_parse_duration_says_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert says in str(info.value)


# --- the ledger's view ------------------------------------------------------------------------


def run(run_id: str, value: float | None, status: str = "discard", *, bar: float | None = 1.0, bar_n: int = 1,
        measurement: str = "", duration_s: float | None = None, timestamp: str = "2026-11-27T00:00:00+00:00",
        **extra: Any) -> Entry:
    info: dict[str, Any] = dict(extra)
    if bar is not None:
        info.update(bar=bar, bar_n=bar_n)
    return Entry(run_id=run_id, status=status, sha=f"sha-{measurement or run_id}", value=value,
                 measurement=measurement, duration_s=duration_s, timestamp=timestamp, extra=info)


def test_night_cost() -> None:
    runs = [
        run("k", 0.9, "keep", duration_s=600, timestamp="2026-11-27T00:10:00+00:00", device="cuda:0"),
        run("d1", 1.1, duration_s=300, timestamp="2026-11-27T00:15:00+00:00", device="cuda:1"),
        run("d2", 1.1, duration_s=300, timestamp="2026-11-27T00:20:00+00:00", device="cuda:0"),
        run("c", None, "crash", duration_s=60, timestamp="2026-11-27T00:31:00+00:00"),
        run("t", None, "timeout", duration_s=1800, timestamp="2026-11-27T02:00:00+00:00", device="cuda:1"),
        run("orphan", None, "crash", timestamp="2026-11-27T01:00:00+00:00"),  # never completed
        run("b", None, "baseline", duration_s=999),  # a marker, not a run
    ]
    cost = night_cost(runs)
    assert cost["runs"] == 6
    assert cost["hours"] == pytest.approx(2.0)  # 00:00 (first start) to 02:00 (last end)
    assert cost["runs_per_hour"] == pytest.approx(3.0)
    assert cost["wall_s"] == {"keep": 600, "discard": 600, "crash": 60, "timeout": 1800}
    assert cost["device_hours"] == pytest.approx(3000 / 3600)
    assert cost["device_hours_by_device"] == pytest.approx({"cuda:0": 900 / 3600, "cuda:1": 2100 / 3600})


def test_night_cost_of_nothing() -> None:
    cost = night_cost([])
    assert (cost["runs"], cost["hours"], cost["runs_per_hour"], cost["device_hours"]) == (0, 0.0, None, 0.0)
