"""Starting a session: ``init`` makes the session branch, ``worktrees`` a round of parallel ones.

Both start from a commit and keep the loop's own files (run folder, logs, chart) out of git.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import git

from .. import gitstate
from ..ledger import Ledger
from . import project
from .views import NEXT, PROG
from .where import CliError

BRANCH_PREFIX = "autoresearch/"
IGNORED = (".autoresearch/", "results.tsv", "run.log", "calibrate.log", "progress.png")


def cmd_init(args: argparse.Namespace) -> int:
    """Start a session: a fresh branch from HEAD, the run files kept out of git."""
    repo = gitstate.open_repo(Path.cwd())
    if repo is None:
        raise CliError("not inside a git repository: run git init and commit your project first")
    head = gitstate.head(repo)
    if head is None:
        raise CliError("the repository has no commit yet: commit your project first")
    name = BRANCH_PREFIX + args.tag
    try:
        repo.git.check_ref_format("--branch", name)
    except git.GitCommandError:
        raise CliError(f"{args.tag!r} does not make a valid branch name ({name}); try a tag like nov25") from None
    if name in {h.name for h in repo.heads}:
        raise CliError(f"branch {name} already exists: pick another tag, or resume it with git checkout {name}")
    dirty = gitstate.dirty_files(repo, ".")
    if dirty:
        raise CliError(
            "uncommitted changes to " + ", ".join(dirty)
            + ": a session starts from a commit; commit or stash them first"
        )
    repo.git.checkout("-b", name)
    repo.git.commit("--allow-empty", "--no-verify", "-m", f"baseline: {args.tag}")
    exclude = gitstate.common_dir(repo) / "info" / "exclude"
    added = ensure_excluded(exclude, IGNORED)
    print(f"{PROG}: on new branch {name} from {head.short} ({head.subject})")
    print(f"  first commit: baseline: {args.tag} (empty; the first result is recorded under this name)")
    print(f"  git ignores {', '.join(IGNORED)} via {exclude}" + ("" if added else " (already there)"))
    print(f"  ledger: {Ledger.default_path(gitstate.run_folder(repo))} (shared by every branch and worktree)")
    untracked = gitstate.untracked_python(repo, ".")
    if untracked:
        print(f"  note: untracked {', '.join(untracked)} would stop pytest --autoresearch: commit or ignore them")
    print(f"next: {NEXT}")
    print(f"  (records the baseline; then edit {project.read().files}, git commit -am 'try: ...' and run it again:"
          " exit 0 keeps the commit, exit 1 prints the revert command to run)")
    return 0


def ensure_excluded(exclude: Path, patterns: Sequence[str]) -> list[str]:
    """Add missing patterns to a git exclude file (never a tracked file); returns those added."""
    try:
        text = exclude.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    present = {line.strip() for line in text.splitlines()}
    missing = [p for p in patterns if p not in present]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        lead = "" if not text or text.endswith("\n") else "\n"
        block = "# pytest-autoresearch: run logs and results files\n" + "".join(p + "\n" for p in missing)
        exclude.write_text(text + lead + block, encoding="utf-8")
    return missing


def cmd_worktrees(args: argparse.Namespace) -> int:
    """A round of parallel experiments: K worktrees on K branches, all from one commit."""
    repo = gitstate.open_repo(Path.cwd())
    if repo is None or repo.working_tree_dir is None:
        raise CliError("not inside a git repository: run it in the session's project folder")
    head = gitstate.head(repo)
    if head is None:
        raise CliError("the repository has no commit yet: commit your project first")
    base = repo.git.rev_parse("--verify", "--quiet", f"{args.base}^{{commit}}") if args.base else head.sha
    tag = args.tag or (head.branch.removeprefix(BRANCH_PREFIX) if head.branch else "round")
    top = Path(repo.working_tree_dir)
    scope = gitstate.scope_of(repo, Path.cwd())
    made = []
    for i in range(1, args.count + 1):
        name, path = f"{BRANCH_PREFIX}{tag}-{i}", top.parent / f"{top.name}-{tag}-{i}"
        if name in {h.name for h in repo.heads}:
            raise CliError(f"branch {name} already exists: pick another --tag, or remove the old round "
                           f"(git worktree remove {path}; git branch -D {name})")
        if path.exists():
            raise CliError(f"{path} already exists: pick another --tag")
        repo.git.worktree("add", "-b", name, str(path), base)
        made.append((name, path if scope == "." else path / scope))
    short = repo.git.rev_parse(base, short=7)
    print(f"{PROG}: {len(made)} worktrees from {short}, one idea each; they share the ledger and the device leases")
    for name, path in made:
        print(f"  {path}  ({name})")
    print(f"next, in each: edit {project.read().files}, git commit -am 'try: ...', {NEXT}")
    print("then: autoresearch status --all-branches; re-measure the best green one before adopting it "
          "(pytest --autoresearch --autoresearch-repeat 3 in its worktree), and move the session branch "
          "there: git merge --ff-only <branch>")
    return 0
