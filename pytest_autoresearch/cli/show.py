"""``autoresearch show RUN|COMMIT``: one judged run as the agent needs it before its next idea.

The verdict and why, the value against its bar, what the idea changed (the mutable files'
diff against the commit it was tried on, read from the run's ref even after ``git reset
--hard`` and ``git gc``) and the tail of its log. Pure lookups over ledger runs and git;
``commands`` prints the text or the JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from .. import archive, gitstate, history
from ..ledger import Entry
from ..outcome import fmt, fmt_delta, jsonable
from . import stats, suites

DEFAULT_TAIL = 50


class NotFound(Exception):
    """The run or commit asked for is not in the ledger (the message says what is)."""


def find_run(runs: Sequence[Entry], target: str, repo: git.Repo | None) -> Entry:
    """A run id or a unique prefix of one; else a commit (sha prefix, or any revision git knows): its latest run."""
    key = target.strip().lower()
    if not key:
        raise NotFound("give a run id (autoresearch log lists them) or a commit")
    exact = [r for r in runs if r.run_id.lower() == key]
    if exact:
        return exact[-1]
    by_id = list({r.run_id: r for r in runs if r.run_id.lower().startswith(key)}.values())
    shas = list(dict.fromkeys(r.sha for r in runs if r.sha and r.sha.lower().startswith(key)))
    if len(by_id) + len(shas) > 1:
        names = [f"run {r.run_id}" for r in by_id[:5]] + [f"commit {s[:12]}" for s in shas[:5]]
        raise NotFound(f"{target!r} matches {', '.join(names)}: give more characters")
    if by_id:
        return by_id[0]
    if not shas and repo is not None:
        try:  # HEAD, HEAD~1, a branch or tag name
            shas = [repo.git.rev_parse("--verify", "--quiet", "--end-of-options", target + "^{commit}")]
        except git.GitCommandError:
            pass
    mine = [r for r in runs if shas and r.sha == shas[0]]
    judged = [r for r in mine if r.status != "accepted"]
    if not mine:
        what = f"commit {shas[0][:7]} has no run" if shas else f"no run or commit matches {target!r}"
        raise NotFound(f"{what} in the ledger (autoresearch log lists the runs)")
    return (judged or mine)[-1]


@dataclass(frozen=True)
class Shown:
    """Everything ``show`` says about one run; :meth:`to_json` is the ``--json`` object."""

    run: Entry
    draws: tuple[float | None, ...]  # every run of its measurement (a repeat group), this one included
    judged: tuple[float, int] | None  # the mean and draw count the verdict judged (history.judged_mean)
    ref: str | None  # the run ref that keeps its commit, if any
    mutable: tuple[str, ...]
    parent: str | None  # the commit it was tried on: the diff's base
    diff: str | None
    diff_error: str | None
    log: Path | None
    log_tail: str | None
    suite: history.RecordedSuite | None = None  # the suite verdict it shared, for a pytest-benchmark member

    @property
    def mean(self) -> float | None:
        return self.judged[0] if self.judged else None

    @property
    def n(self) -> int:
        return self.judged[1] if self.judged else len(self.draws)

    @property
    def bar(self) -> float | None:
        bar = self.run.extra.get("bar")
        return float(bar) if isinstance(bar, (int, float)) and not isinstance(bar, bool) else None

    @property
    def delta(self) -> float | None:
        recorded = self.run.extra.get("delta")
        if isinstance(recorded, (int, float)) and not isinstance(recorded, bool):
            return float(recorded)
        mean, bar = self.mean, self.bar
        return mean - bar if mean is not None and bar is not None and math.isfinite(mean) else None

    @property
    def sigma(self) -> float | None:
        """The verdict's standard error of the delta, as its row recorded it."""
        sigma = self.run.extra.get("sigma")
        return float(sigma) if isinstance(sigma, (int, float)) and not isinstance(sigma, bool) else None

    def to_json(self) -> dict[str, Any]:
        r, extra = self.run, self.run.extra
        fields: dict[str, Any] = {
            "run_id": r.run_id, "measurement": r.measurement, "commit": r.commit, "sha": r.sha,
            "branch": r.branch, "description": r.description, "test": r.test, "metric": r.metric,
            "goal": extra.get("goal"), "status": r.status, "reason": extra.get("reason"),
            "value": r.value, "draws": list(self.draws), "n": self.n, "mean": self.mean,
            "bar": self.bar, "bar_commit": extra.get("bar_commit"), "bar_n": extra.get("bar_n"),
            "delta": self.delta, "sigma": self.sigma, "min_delta": extra.get("min_delta"), "adaptive": extra.get("adaptive"),
            "paired": extra.get("paired"), "paired_with": extra.get("paired_with"),
            "timestamp": r.timestamp, "duration_s": r.duration_s, "memory_gb": r.memory_gb,
            "identity": r.identity, "ref": self.ref, "mutable": list(self.mutable), "parent": self.parent,
            "diff": self.diff, "diff_error": self.diff_error,
            "log": None if self.log is None else str(self.log), "log_tail": self.log_tail,
            "extra": dict(extra), "suite": suites.to_json(self.suite) if self.suite is not None else None,
        }
        return {k: jsonable(v) for k, v in fields.items()}


def gather(run: Entry, runs: Sequence[Entry], repo: git.Repo | None, mutable: Sequence[str],
           logs: Sequence[Path], tail: int, root: Path | None = None) -> Shown:
    """Read the run's measurement from the ledger, its diff from git and its log tail from disk.

    ``root``: the folder the ``mutable`` globs are relative to (the ini's), else the working folder.
    """
    draws = tuple(r.value for r in runs if r.measurement == run.measurement and r.sha == run.sha) or (run.value,)
    ref, parent, diff, error = None, None, None, None
    if repo is None:
        error = "not inside a git repository"
    elif not run.sha:
        error = "the run recorded no commit"
    else:
        held = {k.run_id: k for k in archive.judged_refs(repo)}
        kept = held.get(run.run_id) or held.get(run.measurement)
        ref = kept.ref if kept is not None else None
        try:
            commit = repo.commit(run.sha)
            parent = commit.parents[0].hexsha if commit.parents else None
            diff = archive.mutable_diff(repo, run.sha, mutable, _scope(repo, root or Path.cwd()))
        except (ValueError, git.BadName, git.GitCommandError):
            error = (f"commit {run.commit or run.sha[:7]} is no longer in the repository "
                     "(judged before runs were kept under refs/autoresearch/runs, or pruned since)")
    log = _log_path(run, logs)
    return Shown(run, draws, history.judged_mean(run, runs), ref, tuple(mutable), parent, diff, error, log,
                 _tail(log, tail), suites.member_of(run, history.suites(runs)))


def log_places(repo: git.Repo | None, ledger: Path) -> list[Path]:
    """Folders that may hold run logs: the run folder's ``runs/``, beside the ledger, under the cwd."""
    places = [gitstate.run_folder(repo) / "runs"] if repo is not None else []
    return [*places, ledger.parent / "runs", Path.cwd() / ".autoresearch" / "runs"]


def _log_path(run: Entry, logs: Sequence[Path]) -> Path | None:
    recorded = run.extra.get("log") if run.status == "crash" else None
    candidates = [Path(recorded)] if isinstance(recorded, str) and recorded else []
    candidates += [folder / f"{run.run_id}.log" for folder in logs]
    return next((p for p in candidates if p.is_file()), None)


def _tail(log: Path | None, lines: int) -> str | None:
    if log is None:
        return None
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return "\n".join(text.splitlines()[-lines:])


def _scope(repo: git.Repo, folder: Path) -> str:
    """The project folder: the mutable globs are relative to it, as the plugin's are to its rootdir."""
    try:
        return gitstate.scope_of(repo, folder)
    except ValueError:  # run from outside the work tree (e.g. inside .git)
        return "."


def lines(shown: Shown, tail: int) -> list[str]:
    """The text of ``autoresearch show``."""
    r, extra = shown.run, shown.run.extra
    when = stats.parse_time(r.timestamp)
    stamp = when.strftime("%Y-%m-%d %H:%M UTC") if when else r.timestamp
    goal = extra.get("goal")
    direction = " (lower is better)" if goal == "min" else " (higher is better)" if goal == "max" else ""
    out = [f"autoresearch show: run {r.run_id}, commit {r.commit or '-'} on {r.branch or '-'}, {stamp}",
           f"  idea      {r.description or '-'}",
           f"  test      {r.test}  {r.metric}{direction}",
           f"  verdict   {r.status}" + (f": {extra['reason']}" if extra.get("reason") else "")]
    value = fmt(r.value)
    if shown.n > 1:
        value = f"{fmt(shown.mean)} (mean of {shown.n} draws of the commit, as judged; this one {fmt(r.value)})"
    if shown.bar is not None:
        n = extra.get("bar_n", 1)
        sigmas = f" ({shown.delta / shown.sigma:+.1f}σ)" if shown.sigma and shown.delta is not None else ""
        value += (f" against the bar {fmt(shown.bar)} at {extra.get('bar_commit', '?')}"
                  + (f" (mean of {n})" if isinstance(n, int) and n > 1 else "")
                  + f": delta {fmt_delta(shown.delta)}{sigmas}")
    out.append(f"  value     {value}")
    if extra.get("adaptive"):
        out.append(f"  repeats   {extra['adaptive']}")
    if shown.suite is not None:  # a member of a pytest-benchmark suite: the suite's verdict was its verdict
        out += suites.show_lines(r, shown.suite)
    if extra.get("paired"):  # the pairs' delta, or "not paired: ..." when the bar could not run again
        beside = "" if str(extra["paired"]).startswith("not paired") else " (the bar ran again beside it)"
        out.append(f"  pairs     {extra['paired']}{beside}")
    if extra.get("paired_with"):
        out.append(f"  pairs     a re-run of this bar beside measurement {extra['paired_with']}")
    if extra.get("adjustment"):  # the values it judged were corrected for machine load; the row keeps the raw one
        out.append(f"  load      {extra['adjustment']} (this draw {fmt(r.value)} raw, {fmt(extra.get('adjusted'))} adjusted)")
    out.append(f"  kept by   {shown.ref}" if shown.ref else "  kept by   no run ref (git gc may remove the commit)")
    machine = extra.get("machine")
    if isinstance(machine, dict) and machine:  # what the machine gave the run (covariate.Gauge)
        out.append("  machine   " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(machine.items())
                                              if isinstance(v, (int, float))))
    files = ", ".join(shown.mutable)
    if shown.diff_error is not None:
        out += ["", f"diff of {files}: {shown.diff_error}"]
    elif shown.diff:
        base = f"{shown.parent[:7]}, the commit it was tried on" if shown.parent else "nothing (a root commit)"
        out += ["", f"diff of {files} against {base}:", *shown.diff.splitlines()]
    else:
        out += ["", f"diff of {files}: no change to the mutable files"]
    if shown.log is None:
        out += ["", "log: none on disk (a value recorded in-process, or the log was removed)"]
    else:
        body = (shown.log_tail or "").splitlines() or ["(empty: the script printed nothing)"]
        out += ["", f"log: {shown.log} (last {tail} lines)", *body]
    return out
