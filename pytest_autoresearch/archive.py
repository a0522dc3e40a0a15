"""Nothing an experiment taught is lost: judged commits kept under refs, and what the ledger says.

Every judged commit gets a ref of its own, ``refs/autoresearch/runs/<run id>``, so neither
``git reset --hard`` nor ``git gc --prune=now`` can lose a discarded idea's code. The refs
sit in the common git directory (every worktree sees them) and outside ``refs/heads`` and
``refs/tags``: a normal ``git push`` or ``clone`` leaves them behind (``--mirror`` does not).
The second half reads ledger runs: what a night of runs cost.
"""

from __future__ import annotations

import re
import tempfile
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TypedDict

import git
from pytest import PytestWarning

from .gitstate import matches_any
from .ledger import Entry

REF_PREFIX = "refs/autoresearch/runs/"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", re.IGNORECASE)
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
COST_STATUSES = ("keep", "discard", "crash", "timeout")
_EPOCH = datetime.fromtimestamp(0, timezone.utc)


class ArchiveWarning(PytestWarning):
    """A judged commit could not be kept under its run ref: the verdict stands, its code may not."""


@dataclass(frozen=True)
class KeptRef:
    """A judged commit kept reachable: its run, commit, ref and committer date (UTC)."""

    run_id: str
    sha: str
    ref: str
    committed: datetime


def keep_ref(repo: git.Repo, run_id: str, sha: str) -> str:
    """Keep ``sha`` reachable under ``refs/autoresearch/runs/<run_id>``; returns the ref name.

    Idempotent for the same commit; a run id already kept for another commit is an error
    (run ids are unique, and moving the ref would drop the commit it holds).
    """
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} cannot name a ref: letters, digits, '-' and '_' only")
    try:  # a fresh git process: after Ctrl-C, GitPython's long-lived helpers may be gone
        full = repo.git.rev_parse("--verify", "--quiet", "--end-of-options", sha + "^{commit}")
    except git.GitCommandError:
        raise ValueError(f"{sha!r} is not a commit in {repo.working_tree_dir or repo.git_dir}") from None
    ref = REF_PREFIX + run_id
    try:
        repo.git.update_ref(ref, full, "0" * len(full))  # create only, never move
    except git.GitCommandError as exc:
        held = next((k.sha for k in judged_refs(repo) if k.ref == ref), None)
        if held is None:
            raise  # not a clash with an existing ref: git's own error says what went wrong
        if held != full:
            raise ValueError(f"{ref} already holds {held[:7]}, not {full[:7]}") from exc
    return ref


def keep_judged(repo: git.Repo, run_id: str, sha: str) -> str:
    """:func:`keep_ref` for a run just judged: returns what went wrong ("" when kept), never raises
    on git's account (a run interrupted with Ctrl-C, a read-only repository): the verdict stands."""
    try:
        keep_ref(repo, run_id, sha)
    except (git.GitCommandError, OSError, ValueError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, git.GitCommandError) and isinstance(exc.stderr, str) else exc
        return f"commit {sha[:7]} not kept under {REF_PREFIX}{run_id} (git reset and gc may lose it): {detail}"
    return ""


def judged_refs(repo: git.Repo) -> list[KeptRef]:
    """Every kept run ref, oldest commit first (one ``git for-each-ref``)."""
    out = repo.git.for_each_ref("--format=%(refname)%09%(objectname)%09%(committerdate:raw)", REF_PREFIX)
    kept = []
    for line in out.splitlines():
        ref, sha, date = line.split("\t")
        stamp = datetime.fromtimestamp(int(date.split()[0]), timezone.utc) if date else _EPOCH
        kept.append(KeptRef(ref[len(REF_PREFIX):], sha, ref, stamp))
    return sorted(kept, key=lambda k: (k.committed, k.run_id))


def prune(
    repo: git.Repo,
    *,
    run_ids: Collection[str] | None = None,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> list[KeptRef]:
    """Delete the run refs selected by both conditions given; returns exactly what it deleted.

    ``run_ids``: the runs to drop (the caller picks them by ledger status, e.g. discards).
    ``older_than``: refs whose commit was made longer ago than this. Age is the commit's
    committer date: the agent commits an idea moments before the run judges it, so it is the
    idea's age, readable from the commit itself with no reflog (git keeps none for refs
    outside refs/heads) and nothing else stored. A commit measured again later counts as old
    as its code. Deleting a ref loses the commit only once no branch or other ref holds it.
    """
    if run_ids is None and older_than is None:
        raise ValueError("prune needs run_ids, older_than, or both: it never deletes every ref unasked")
    cutoff = None if older_than is None else (now or datetime.now(timezone.utc)) - older_than
    wanted = None if run_ids is None else set(run_ids)
    doomed = [k for k in judged_refs(repo)
              if (wanted is None or k.run_id in wanted) and (cutoff is None or k.committed < cutoff)]
    if doomed:
        # One transaction: every ref is deleted only if it still holds the commit we listed.
        with tempfile.TemporaryFile() as script:
            script.write("".join(f"delete {k.ref} {k.sha}\n" for k in doomed).encode())
            script.seek(0)
            repo.git.update_ref("--stdin", istream=script)
    return doomed


def mutable_diff(repo: git.Repo, sha: str, patterns: Sequence[str], scope: str) -> str:
    """What the idea changed: the diff of the mutable files between ``sha``'s first parent and it."""
    commit = _commit(repo, sha)
    base = commit.parents[0].hexsha if commit.parents else None
    options = ("--no-color", "--no-ext-diff", "--no-renames")
    if base is None:  # a root commit: everything it holds is new
        names = repo.git.ls_tree("-r", "-z", "--name-only", "--full-tree", commit.hexsha, "--", scope)
    else:
        names = repo.git.diff("--name-only", "-z", "--no-renames", base, commit.hexsha, "--", scope)
    paths = [p for p in names.split("\0") if p and matches_any(p, patterns, scope)]
    if not paths:
        return ""
    pathspecs = [":(top,literal)" + p for p in paths]
    if base is None:
        return str(repo.git.diff_tree("-p", "--root", *options, commit.hexsha, "--", *pathspecs))
    return str(repo.git.diff(*options, base, commit.hexsha, "--", *pathspecs))


def _commit(repo: git.Repo, sha: str) -> git.Commit:
    try:
        return repo.commit(sha)
    except (git.BadName, ValueError):
        raise ValueError(f"{sha!r} is not a commit in {repo.working_tree_dir or repo.git_dir}") from None


def parse_duration(text: str) -> timedelta:
    """``"90m"``, ``"12h"``, ``"30d"`` or ``"2w"`` as a timedelta (more than zero)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a duration such as 30d, 12h or 90m (a number, then m, h, d or w), got {text!r}")
    amount = float(match.group(1))
    if amount <= 0:
        raise ValueError(f"a duration must be more than zero, got {text!r}")
    return amount * _UNITS[match.group(2).lower()]


# --- what the ledger says -----------------------------------------------------------------------


class PairingCost(TypedDict):
    """What paired re-measurement cost: the verdicts it decided and the runs it added."""

    verdicts: int  # measurements judged on paired differences
    bar_runs: int  # re-runs of a bar beside a candidate
    bar_crashes: int  # of those, the ones that crashed (the verdict was then not paired)
    runs: int  # runs pairing added: the bar's re-runs and the candidates' paired draws
    minutes: float  # their wall time


def pairing_cost(runs: Iterable[Entry]) -> PairingCost:
    """The verdicts pairing decided and what it cost (``extra.pairs`` on a paired measurement's
    rows, ``extra.paired_with`` on a bar's re-runs); a candidate's paired draws are the last
    ``pairs`` of its measurement, the draws before them would have run anyway."""
    measurements: dict[str, list[Entry]] = defaultdict(list)
    bar_runs, crashes, seconds = 0, 0, 0.0
    for run in runs:
        if run.extra.get("paired_with"):
            bar_runs += 1
            crashes += run.status == "crash"
            seconds += run.duration_s or 0.0
        elif isinstance(run.extra.get("pairs"), int):
            measurements[run.measurement or run.run_id].append(run)
    added = bar_runs
    for members in measurements.values():
        paired = members[-int(members[0].extra["pairs"]):]
        added += len(paired)
        seconds += sum(r.duration_s or 0.0 for r in paired)
    return PairingCost(verdicts=len(measurements), bar_runs=bar_runs, bar_crashes=crashes, runs=added,
                       minutes=seconds / 60)


class NightCost(TypedDict):
    """What a set of runs cost: rate, wall time by outcome, device time, pairing."""

    runs: int
    hours: float  # from the first run's start to the last run's end
    runs_per_hour: float | None  # None when the runs span no time
    wall_s: dict[str, float]  # status -> seconds, for keep, discard, crash, timeout
    device_hours: float  # run time of runs that held a device (extra["device"])
    device_hours_by_device: dict[str, float]
    paired: PairingCost


def wall_s(run: Entry) -> float:
    """The wall time a run cost: the target's run and the frozen scorer's (``extra.scoring_s``)."""
    scoring = run.extra.get("scoring_s")
    extra = float(scoring) if isinstance(scoring, (int, float)) and not isinstance(scoring, bool) else 0.0
    return (run.duration_s or 0.0) + extra


def night_cost(runs: Iterable[Entry]) -> NightCost:
    """Runs per hour, wall seconds per outcome and device-hours of finished runs (:func:`wall_s`).

    A run that never completed has no duration: it counts as a run but adds no time.
    """
    runs = list(runs)
    wall = dict.fromkeys(COST_STATUSES, 0.0)
    by_device: dict[str, float] = defaultdict(float)
    starts, ends, count = [], [], 0
    for run in runs:
        if run.status not in wall:
            continue
        count += 1
        seconds = wall_s(run)
        wall[run.status] += seconds
        device = run.extra.get("device")
        if device:
            by_device[str(device)] += seconds / 3600
        try:
            end = datetime.fromisoformat(run.timestamp)
        except ValueError:
            continue
        if end.tzinfo is None:
            end = end.replace(tzinfo=timezone.utc)  # the ledger writes UTC
        ends.append(end)
        starts.append(end - timedelta(seconds=seconds))
    hours = (max(ends) - min(starts)).total_seconds() / 3600 if ends else 0.0
    return NightCost(
        runs=count, hours=hours, runs_per_hour=count / hours if hours > 0 else None, wall_s=wall,
        device_hours=sum(by_device.values()), device_hours_by_device=dict(by_device),
        paired=pairing_cost(runs),
    )
