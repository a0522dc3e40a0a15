"""What git says about the tree being measured: commit, branch, cleanliness, ancestry, diffs.

Everything goes through GitPython. Paths are scoped to the project folder (pytest's
rootdir) so one repository can hold several projects, and the ancestry of HEAD comes from
a single ``git rev-list`` however long the history is.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import git

CONFIG_NAMES = frozenset({"conftest.py", "pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"})


@dataclass(frozen=True)
class Head:
    sha: str
    short: str
    branch: str | None
    subject: str


def open_repo(path: Path) -> git.Repo | None:
    """The repository containing ``path``, or None outside any repository (or without git)."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        return None


def common_dir(repo: git.Repo) -> Path:
    """The git directory shared by every worktree: untouched by reset, clean and stash."""
    return Path(repo.common_dir).resolve()


def run_folder(repo: git.Repo) -> Path:
    """Where the ledger, run logs and device leases live: shared by every worktree, untouched by git."""
    return common_dir(repo) / "autoresearch"


def scope_of(repo: git.Repo, folder: Path) -> str:
    """``folder`` relative to the work tree, as git pathspec ('.' for the top)."""
    rel = folder.resolve().relative_to(Path(repo.working_tree_dir or ".").resolve())
    return rel.as_posix() or "."


def head(repo: git.Repo) -> Head | None:
    """HEAD's commit, or None in a repository with no commit yet."""
    try:
        commit = repo.head.commit
    except ValueError:
        return None
    branch = None if repo.head.is_detached else repo.active_branch.name
    message = commit.message if isinstance(commit.message, str) else commit.message.decode()
    subject = message.strip().splitlines()[0] if message.strip() else ""
    return Head(commit.hexsha, repo.git.rev_parse(commit.hexsha, short=7), branch, subject)


def dirty_files(repo: git.Repo, scope: str) -> list[str]:
    """Tracked files in ``scope`` whose content differs from HEAD (staged or not)."""
    out = repo.git.status("--porcelain", "--untracked-files=no", "--", scope)
    return sorted(line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip())


def untracked_python(repo: git.Repo, scope: str) -> list[str]:
    """Untracked, unignored files that pytest or Python would load (they change what is measured)."""
    names = repo.git.ls_files("--others", "--exclude-standard", "--", scope).splitlines()
    return sorted(n for n in names if n.endswith(".py") or Path(n).name in CONFIG_NAMES)


def lineage(repo: git.Repo, sha: str) -> list[str]:
    """``sha`` and every commit it builds on, newest first (one ``git rev-list``)."""
    return list(repo.git.rev_list(sha).split())


def changed_files(repo: git.Repo, base: str, sha: str, scope: str) -> list[str]:
    """Files in ``scope`` that differ between two commits."""
    out = repo.git.diff("--name-only", "--no-renames", base, sha, "--", scope)
    return sorted(out.split("\n")) if out else []


def tracked_blobs(repo: git.Repo, sha: str, scope: str) -> list[tuple[str, str]]:
    """(path, blob id) of every file tracked at ``sha`` in ``scope``: a content hash of the tree."""
    out = repo.git.ls_tree("-r", "--full-tree", sha, "--", scope)
    blobs = []
    for line in out.splitlines():
        meta, path = line.split("\t", 1)
        blobs.append((path, meta.split()[2]))
    return sorted(blobs)


def matches_any(path: str, patterns: Sequence[str], scope: str) -> bool:
    """Whether a repository path matches a mutable-file pattern given relative to ``scope``."""
    rel = path if scope == "." else path[len(scope) + 1 :] if path.startswith(scope + "/") else path
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(Path(rel).name, p) for p in patterns)


def frozen(paths: Iterable[str], patterns: Sequence[str], scope: str) -> list[str]:
    """The paths that are not declared mutable."""
    return [p for p in paths if not matches_any(p, patterns, scope)]
