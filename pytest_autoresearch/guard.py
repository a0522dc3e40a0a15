"""Preconditions of a run and the frozen surface: what must hold before anything is measured.

A result is tied to a commit, so the tree must be committed; and only the declared mutable files
may differ from the last kept commit, because everything else defines the evaluation. A dirty
tree stops the whole session (a usage error); a frozen change fails each benchmark, and a changed
pytest surface stops the session, unless a person accepts it (recorded in the ledger). A fresh
leaderboard follows only when the evaluation identity changed too.
"""

from __future__ import annotations

import uuid

import git
import pytest

from . import gitstate, trust
from .context import Context
from .ledger import Entry
from .settings import Spec


def require_committed(repo: git.Repo, scope: str) -> None:
    """Refuse to run on uncommitted changes or on untracked files that change what is measured."""
    dirty = gitstate.dirty_files(repo, scope)
    if dirty:
        raise pytest.UsageError(
            "autoresearch: uncommitted changes to " + ", ".join(dirty)
            + "; results are tied to commits: commit first (git commit -am '...')"
        )
    untracked = gitstate.untracked_python(repo, scope)
    if untracked:
        raise pytest.UsageError(
            "autoresearch: untracked files that change what is measured: "
            + ", ".join(untracked) + "; commit them or add them to .gitignore"
        )


def frozen_changes(ctx: Context) -> tuple[str, ...]:
    """The files outside the mutable set that differ between the reference commit and HEAD."""
    if ctx.repo is None or ctx.head is None or ctx.reference in (None, ctx.head.sha):
        return ()
    assert ctx.reference is not None
    changed = gitstate.changed_files(ctx.repo, ctx.reference, ctx.head.sha, ctx.scope)
    return tuple(gitstate.frozen(changed, ctx.settings.mutable, ctx.scope))


def require_same_surface(ctx: Context, marked: list[Entry], tests: list[str]) -> None:
    """Refuse the whole session, before any test runs, when the pytest surface (conftests, ini,
    plugins, -p/-o options) differs from the one the last kept result was judged under
    (``marked``: the lineage's kept and accepted runs, as the session read them).

    A usage error rather than a failed test: code loaded into pytest could rewrite a test's
    report, but not an error raised before the first test. A person accepts it like a frozen
    change; whether the leaderboard goes on after that is the evaluation identity's question.
    """
    if ctx.ledger is None or ctx.reference is None:
        return
    kept = [r for r in marked if r.sha == ctx.reference and r.test in tests]
    if not kept:
        return
    changed = trust.changes(ctx.ledger.identity_parts(str(kept[-1].extra.get("surface", ""))), ctx.surface)
    if not changed:
        return
    if ctx.settings.accept_frozen:
        ctx.frozen_changes += changed
        return
    after = ("how values are measured did not change, so the results stay comparable"
             if kept[-1].identity == ctx.identity else "how values are measured changed too: a new leaderboard")
    raise pytest.UsageError(
        f"autoresearch: the pytest surface changed since {ctx.reference[:7]} (the last kept result on this "
        f"branch): {'; '.join(changed)}; code loaded into pytest judges the run, so it is as frozen as "
        "prepare.py: undo the change, or a person who meant it accepts it with "
        f"pytest --autoresearch --autoresearch-accept-frozen ({after})"
    )


def check_frozen(ctx: Context, test: str, spec: Spec) -> None:
    """In the call phase: fail on a frozen change, or record that a person accepted it (what, and
    who; the row itself says when and on which host)."""
    if not ctx.frozen_changes:
        return
    if not ctx.settings.accept_frozen:
        pytest.fail(frozen_message(ctx), pytrace=False)
    ctx.append(ctx.entry(test, spec, uuid.uuid4().hex[:12], "accepted",
                         description="accepted change to frozen files: " + ", ".join(ctx.frozen_changes),
                         extra=trust.acceptance(ctx.frozen_changes)))


def frozen_message(ctx: Context) -> str:
    """The red message; its first line alone (what an agent greps) says what to run."""
    ref = ctx.reference[:7] if ctx.reference else "?"
    revert = f"; revert: {ctx.revert}" if ctx.revert else ""
    lines = [
        f"autoresearch: FROZEN files changed since {ref} (the last kept result on this branch): "
        f"{', '.join(ctx.frozen_changes)}{revert}",
        f"  only {', '.join(ctx.settings.mutable)} may change (ini autoresearch_mutable)",
    ]
    lines.append("  a person who meant this change accepts it with: pytest --autoresearch --autoresearch-accept-frozen")
    return "\n".join(lines)
