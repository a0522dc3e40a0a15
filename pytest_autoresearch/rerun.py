"""A judged commit run again: checked out in a temporary worktree, run like the candidate.

Paired re-measurement (``paired.py``) needs the bar's draws of this moment; A/A calibration
(``calibration.py``) needs draws of one commit against itself. The code comes from its commit (a
judged commit stays reachable under its archive ref), the run goes through the same runner,
device lease, budget and frozen scorer as the candidate's, and every draw is a ledger row of that
commit. A commit that fails to run is its own crash row, with its log: the candidate is never
blamed for it.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import git

from . import kernels
from .context import Context, is_timeout
from .covariate import KEY
from .dataserver import DataServer, DataServerError
from .experiment import Experiment
from .ledger import Entry, format_line
from .outcome import INTERRUPTED
from .runner.sandbox import Sealing
from .runner.watchdog import Watchdog
from .scoring import ScoringError
from .settings import Spec
from .sources import FrozenScorer, Refused
from .verdict import Best

# the seal and the data server a draw of the commit checked out in a tree runs in: (row, log, artifact, tree)
Surround = Callable[[Entry, Path, "Path | None", Path], "tuple[Sealing | None, DataServer | None]"]


@contextmanager
def checkout(repo: git.Repo, sha: str) -> Iterator[Path]:
    """The commit ``sha`` in a temporary, detached git worktree, removed (and unregistered) after."""
    folder = Path(tempfile.mkdtemp(prefix="autoresearch-bar-"))
    tree = folder / "tree"
    repo.git.worktree("add", "--detach", "--quiet", str(tree), sha)
    try:
        yield tree
    finally:
        try:
            repo.git.worktree("remove", "--force", str(tree))
        except git.GitCommandError:
            shutil.rmtree(folder, ignore_errors=True)
            repo.git.worktree("prune")
        shutil.rmtree(folder, ignore_errors=True)


class BarRerun:
    """Draws of a judged commit (the bar of a paired verdict, or the commit a calibration
    measures): each run, scored and recorded as that commit's, with its own status."""

    def __init__(self, ctx: Context, test: str, spec: Spec, bar: Best, candidate: Experiment,
                 scorer: FrozenScorer | None, device: str | None, extra: Mapping[str, Any], *,
                 status: str = "keep", label: str = "paired re-run of the bar",
                 reason: str = "paired re-run of the bar beside a candidate",
                 surround: Surround | None = None) -> None:
        self.ctx, self.test, self.spec, self.bar = ctx, test, spec, bar
        self.candidate, self.scorer, self.device = candidate, scorer, device
        self.extra = extra  # written on each row: the candidate's measurement id, or the calibration's
        self.status, self.label, self.reason = status, label, reason  # the commit's own verdict; what its rows say
        self.surround = surround  # the seal and data server each draw runs in, as the candidate's draws do
        self.measurement = uuid.uuid4().hex[:12]
        self.machine: dict[str, float] = {}  # what the machine gave its last draw (covariate.Gauge)

    def draw(self, tree: Path, watchdog: Watchdog, on_tick: Callable[[float, str], None] | None, tick_s: float,
             remaining: Callable[[], float], fields: Mapping[str, Any] | None = None) -> float | str:
        """Run the commit once from ``tree``: its value, or why it has none (its row then says crash).
        ``fields``: this draw's own ledger fields, beside the ones every row of the re-run carries."""
        ctx, spec = self.ctx, self.spec
        run_id = uuid.uuid4().hex[:12]
        entry = dataclasses.replace(
            ctx.entry(self.test, spec, run_id, "running", description=self.bar.description,
                      measurement=self.measurement, extra={"watchdog": watchdog.pid}),
            commit=self.bar.commit, sha=self.bar.sha,
        )
        watchdog.track(format_line(entry))
        ctx.append(entry)
        assert ctx.repo is not None and ctx.repo.working_tree_dir is not None
        script = tree / self.candidate.script.relative_to(ctx.repo.working_tree_dir)
        exp = Experiment(script=script, log_path=ctx.logs_dir / f"{run_id}.log", args=self.candidate.args,
                         env=self.candidate.env, metric=spec.metric, scored=spec.scorer is not None)
        artifact = ctx.logs_dir / f"{run_id}.artifact" / spec.artifact if spec.artifact else None
        extra: dict[str, object] = {"goal": spec.goal, "isolation": ctx.settings.isolation, **self.extra,
                                    **(fields or {})}
        if self.device is not None:
            extra["device"] = self.device
        sealing, server = self.surround(entry, exp.log_path, artifact, tree) if self.surround else (None, None)
        started = time.time()
        try:
            try:
                exp.run(ctx.runner, watchdog, on_tick, tick_s, worktree=tree, commit=self.bar.sha, artifact=artifact,
                        sealing=sealing, env=server.env if server is not None else None,
                        on_start=on_run_start(server, self.scorer, artifact, sealing is not None))
            finally:
                if sealing is not None:  # nothing a run leaves in its folder reaches the next one
                    shutil.rmtree(sealing.run_dir, ignore_errors=True)
            self.machine = exp.machine
            if exp.machine:
                extra[KEY] = exp.machine
            extra.update(kernels.record(ctx.kernels, sealing))
            problem = _budget(server, exp, extra) if server is not None else ""
            value, problem = (None, problem) if problem else self._value(exp, artifact, remaining)
        except BaseException as exc:  # the pairs' time limit, or Ctrl-C: the bar's row must not stay open
            if server is not None:
                server.kill()
            seconds = time.time() - started
            why = f"timed out after {seconds:.0f} s" if is_timeout(exc) else f"ended: {type(exc).__name__}"
            status = "timeout" if is_timeout(exc) else INTERRUPTED if isinstance(exc, KeyboardInterrupt) else "crash"
            ctx.append(entry.finished(status=status, duration_s=seconds, extra={
                **extra, "reason": f"{self.label} {why}", "log": str(exp.log_path)}))
            if is_timeout(exc):
                return why  # the re-run hung, not the candidate: judged on its own draws
            raise
        finally:
            if self.scorer is not None:
                self.scorer.close()
            if artifact is not None:
                shutil.rmtree(artifact.parent, ignore_errors=True)
        if problem:
            extra.update(reason=f"{self.label}: {problem}", log=str(exp.log_path))
        else:
            extra["reason"] = self.reason
        memory = exp.peak_memory_mb / 1024 if exp.peak_memory_mb is not None else None
        ctx.append(entry.finished(status="crash" if problem else self.status, value=value, memory_gb=memory,
                                  duration_s=exp.duration, extra=extra))
        return value if value is not None else problem

    def _value(self, exp: Experiment, artifact: Path | None, remaining: Callable[[], float]) -> tuple[float | None, str]:
        """The bar draw's value the way the candidate's is taken (scorer, else printed metric), or what failed."""
        name = exp.script.name
        if exp.crashed:
            why = f"{name} exited with code {exp.returncode}" if exp.returncode else f"{name} printed no {self.spec.metric} line"
            error = exp.error()
            return None, f"{why}: {error}" if error and exp.returncode else why
        limit = self.spec.max_seconds
        if limit is not None and exp.duration is not None and exp.duration > limit:
            return None, f"over the wall limit: ran {exp.duration:.0f} s, limit {limit:g} s"
        if self.scorer is not None:
            assert artifact is not None
            try:
                value = self.scorer.score(artifact, remaining())
            except (Refused, ScoringError) as exc:
                return None, f"its artifact was not scored: {exc}"
        else:
            value = exp.metrics[self.spec.metric]
        if not math.isfinite(value):
            return None, f"{name} gave {value!r}"
        return value, ""


def _budget(server: DataServer, exp: Experiment, extra: dict[str, object]) -> str:
    """Why the draw trained past its budget on the data server's clock, or "" (as the candidate's draws are
    held); what the server counted goes into ``extra``, as on the candidate's rows."""
    try:
        record, reason = server.settle(exp.ended if exp.ended is not None else time.monotonic())
    except DataServerError as exc:
        return str(exc)
    extra.update(record)
    return reason or ""


def on_run_start(server: DataServer | None, scorer: FrozenScorer | None, artifact: Path | None,
                 sealed: bool) -> Callable[[dict[str, Any]], None]:
    """What a run's start sets going beside it: the data server hears the target's process group, and,
    in a sealed run, the frozen scorer's interpreter starts for the artifact (its imports overlap the
    target's start-up, after the load gauge's first reading). Unsealed, it starts after the target: a
    target outside the seal could stop it or write into its memory while it waits."""
    def on_start(token: dict[str, Any]) -> None:
        if server is not None:
            server.watch(token)
        if sealed and scorer is not None and artifact is not None:
            scorer.prepare(artifact)
    return on_start
