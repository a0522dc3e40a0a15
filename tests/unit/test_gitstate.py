"""What git says about the measured tree, on real repositories."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from pytest_autoresearch import gitstate


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "T")
        cw.set_value("user", "email", "t@example.com")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "train.py").write_text("x = 1\n")
    (tmp_path / "proj" / "prepare.py").write_text("y = 1\n")
    (tmp_path / "other.py").write_text("z = 1\n")
    repo.git.add("-A")
    repo.git.commit("-m", "first")
    yield repo
    repo.close()


def test_head_scope_and_lineage(repo: git.Repo, tmp_path: Path) -> None:
    head = gitstate.head(repo)
    assert head is not None and (head.branch, head.subject, len(head.short)) == ("main", "first", 7)
    assert gitstate.scope_of(repo, tmp_path / "proj") == "proj"
    assert gitstate.scope_of(repo, tmp_path) == "."
    (tmp_path / "proj" / "train.py").write_text("x = 2\n")
    repo.git.commit("-am", "second")
    second = gitstate.head(repo)
    assert second is not None
    assert gitstate.lineage(repo, second.sha) == [second.sha, head.sha]
    assert gitstate.changed_files(repo, head.sha, second.sha, "proj") == ["proj/train.py"]
    assert gitstate.run_folder(repo) == Path(repo.common_dir).resolve() / "autoresearch"


def test_dirty_and_untracked_are_scoped(repo: git.Repo, tmp_path: Path) -> None:
    (tmp_path / "other.py").write_text("z = 2\n")
    (tmp_path / "scratch.py").write_text("")
    assert gitstate.dirty_files(repo, "proj") == [] and gitstate.untracked_python(repo, "proj") == []
    (tmp_path / "proj" / "train.py").write_text("x = 3\n")
    (tmp_path / "proj" / "conftest.py").write_text("")
    (tmp_path / "proj" / "notes.txt").write_text("")
    assert gitstate.dirty_files(repo, "proj") == ["proj/train.py"]
    assert gitstate.untracked_python(repo, "proj") == ["proj/conftest.py"], "text files change nothing measured"


@pytest.mark.parametrize(("path", "patterns", "scope", "mutable"), [
    ("proj/train.py", ["train.py"], "proj", True),
    ("proj/prepare.py", ["train.py"], "proj", False),
    ("proj/models/net.py", ["models/*.py"], "proj", True),
    ("proj/deep/train.py", ["train.py"], "proj", True),  # a bare name matches at any depth
    ("train.py", ["train.py"], ".", True),
])
def test_mutable_patterns(path: str, patterns: list[str], scope: str, mutable: bool) -> None:
    assert gitstate.matches_any(path, patterns, scope) is mutable
    assert gitstate.frozen([path], patterns, scope) == ([] if mutable else [path])


def test_tracked_blobs_change_with_content(repo: git.Repo, tmp_path: Path) -> None:
    before = gitstate.tracked_blobs(repo, repo.head.commit.hexsha, "proj")
    assert [p for p, _ in before] == ["proj/prepare.py", "proj/train.py"]
    (tmp_path / "proj" / "prepare.py").write_text("y = 2\n")
    repo.git.commit("-am", "edit")
    after = gitstate.tracked_blobs(repo, repo.head.commit.hexsha, "proj")
    assert before[1] == after[1] and before[0] != after[0]


def test_no_repository_and_no_commit(tmp_path: Path) -> None:
    assert gitstate.open_repo(tmp_path / "nowhere") is None
    empty = git.Repo.init(tmp_path / "empty")
    assert gitstate.head(empty) is None
    empty.close()
