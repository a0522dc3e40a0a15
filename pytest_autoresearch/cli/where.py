"""Where the ``autoresearch`` command reads: the repository around the working folder, its ledger.

Every expected problem is a :class:`CliError`: one ``autoresearch: ...`` line, exit code 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import git

from .. import gitstate
from ..ledger import Entry, Ledger
from .views import PROG


class CliError(Exception):
    """An expected problem: printed as one line, exit code 1."""


@dataclass(frozen=True)
class Where:
    """What the command reads: the repository (if any) and the ledger in it or given."""

    repo: git.Repo | None
    ledger: Path
    head: gitstate.Head | None


def locate(ledger: Path | None) -> Where:
    """The repository around the working directory and the ledger to read."""
    repo = gitstate.open_repo(Path.cwd())
    head = gitstate.head(repo) if repo is not None else None
    if ledger is not None:
        return Where(repo, ledger, head)
    if repo is None:
        raise CliError(
            "not inside a git repository, so there is no default ledger; "
            "pass --ledger PATH (the file given to pytest --autoresearch-ledger)"
        )
    return Where(repo, Ledger.default_path(gitstate.run_folder(repo)), head)


def read_runs(path: Path) -> list[Entry]:
    """The ledger's runs; corrupt lines are reported on stderr and skipped, never fatal."""
    if not path.exists():
        hint = " (pass --ledger results.tsv to read the one here)" if Path("results.tsv").is_file() else ""
        raise CliError(f"no ledger at {path}: nothing recorded yet, run pytest --autoresearch first{hint}")
    if not path.is_file():
        raise CliError(f"{path} is not a file; pass --ledger with the ledger's path")
    try:
        return Ledger(path, warn=lambda message: print(f"{PROG}: warning: {message}", file=sys.stderr)).runs()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def on_head(where: Where, runs: list[Entry]) -> tuple[list[Entry], str]:
    """This branch's runs, and what that is.

    The commits HEAD builds on hold its kept results, whatever the branch was called then;
    discarded and crashed commits were reset away, so those are found by branch name.
    """
    if where.repo is None:
        return runs, "every run (not a git repository)"
    if where.head is None:
        raise CliError("the repository has no commit yet: commit, then run pytest --autoresearch")
    lineage = set(gitstate.lineage(where.repo, where.head.sha))
    branch = where.head.branch
    here = [r for r in runs if r.sha in lineage or (branch is not None and r.branch == branch)]
    if branch is None:
        return here, f"detached HEAD at {where.head.short} (only runs of commits it builds on)"
    return here, f"branch {branch} at {where.head.short}"


def empty(path: Path) -> CliError:
    return CliError(f"the ledger {path} has no runs yet: run pytest --autoresearch first")
