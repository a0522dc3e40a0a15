"""One judged benchmark: its draws (runs of the target), their values, and how it ended.

Every draw is written ahead to the ledger as ``running`` (a watchdog completes it if pytest
dies), measured through the value sources, and completed with one status: the verdict, or
crash, timeout, interrupted. Everything about the result is reported in the call phase, so it
reads FAILED with the reason and the command that discards the commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import archive, bar, calibration, correctness, covariate, fresh_draw, guard, history, kernels, noise, paired
from .context import Context, is_timeout
from .dataserver import EXPORT_ALLOWANCE_S, Clock, DataServer, DataServerError, socket_path, usable_cores
from .experiment import MAX_NOTES, Experiment, parse_notes
from .leases import Lease
from .ledger import Entry, format_line, now_iso
from .outcome import INTERRUPTED, PROPERTY, Outcome, failure_message
from .runner.sandbox import REFUSED, SEALED, UNSEALED, Sealing
from .rerun import BarRerun, checkout, on_run_start
from .runner.watchdog import Watchdog
from .scoring import LOG_TAIL, ScoringError
from .settings import AUTO, Spec
from .sources import BenchmarkStats, FrozenScorer, Recorder, Refused, Source, disagrees, first_value, sources_for
from .terminal import about, announce, progress_line
from .verdict import Best

WALL_LIMIT = "over the wall limit"  # a red run's time limit, as apart from training past the budget (the data server's)
COMPILE_CACHES = 16  # the compile caches kept, most recent ideas first
started_key = pytest.StashKey[float]()
MAX_MESSAGE = 2000  # characters of a failed assertion kept in the reason
lease_key = pytest.StashKey[Lease]()
timer_key = pytest.StashKey[Any]()  # pytest-timeout's settings for the test, as it armed its timer


@dataclass
class Draw:
    """One run of the target: its write-ahead ledger row and what it measured."""

    entry: Entry
    value: float | None = None
    memory_gb: float | None = None
    duration: float | None = None
    log: str = ""
    artifact: Path | None = None  # where the target writes its artifact for the frozen scorer
    self_report: float | None = None  # the metric as the target printed it, when a scorer gives the value
    notes: tuple[str, ...] = ()  # the target's NOTE: lines: said beside the verdict, never judged
    scored: dict[str, Any] = field(default_factory=dict)  # this draw's scoring_s and scored_* values
    ended: str = ""  # when this draw ended (UTC, ISO): its row's timestamp, not the verdict's
    extra: dict[str, Any] = field(default_factory=dict)  # this draw's own ledger fields (trained_s, served_tokens)


class Trial:
    """The judged measurement of one benchmark on this commit: one draw, or several with repeats."""

    def __init__(self, ctx: Context, item: pytest.Function, spec: Spec) -> None:
        self.ctx, self.item, self.spec = ctx, item, spec
        self.run_id = uuid.uuid4().hex[:12]
        self.experiment: Experiment | None = None
        self.recorder: Recorder | None = None
        self.scorer: FrozenScorer | None = None
        self.draws: list[Draw] = []
        self.outcome: Outcome | None = None  # set once the ledger rows are completed
        self.repeat_note = ""  # why adaptive repeats stopped where they did
        self.pending: Watchdog | None = None  # measured, waiting for its suite's verdict
        self.suite_extra: dict[str, Any] = {}  # what the suite's verdict adds to each row
        self.deadline: float | None = None  # when pairing re-armed the test's timer: its new end

    # -- what the fixtures hand to the test ------------------------------------------------

    def make_experiment(self) -> Experiment:
        spec = self.spec
        if spec.script is None:
            pytest.fail(f'the experiment fixture needs a script: @pytest.mark.autoresearch(metric="{spec.metric}", '
                        'script="train.py")', pytrace=False)
        script = (self.item.path.parent / spec.script).resolve()
        if not script.is_file():
            pytest.fail(f"autoresearch: script {spec.script!r} not found (looked for {script})", pytrace=False)
        lease = self.item.stash.get(lease_key, None)
        self.experiment = Experiment(script=script, log_path=self.ctx.logs_dir / f"{self.run_id}.log",
                                     args=spec.args, env={**(spec.env or {}), **(lease.env if lease else {})},
                                     metric=spec.metric, scored=spec.scorer is not None)
        if spec.scorer is not None:
            self.scorer = FrozenScorer(spec, search_path=[self.item.path.parent], forbidden=self.ctx.mutable_files)
        return self.experiment

    def make_recorder(self) -> Recorder:
        self.recorder = Recorder(self.spec.metric)
        return self.recorder

    # -- the judged run --------------------------------------------------------------------

    def run(self) -> Generator[None, object, object]:
        """The body of ``pytest_pyfunc_call``: each draw, then the verdict; yields once for the test body.

        A source that cannot draw again in this process (pytest-benchmark's fixture) has each
        repeat drawn by a fresh pytest process; a pytest-benchmark test's verdict is its suite's,
        given at the end of the session (:mod:`pytest_autoresearch.suite`).
        """
        guard.check_frozen(self.ctx, self.item.nodeid, self.spec)
        self._check_correct_first()
        sources = sources_for(self.item, self.spec, self.experiment, self.recorder, self.scorer)
        redrawable = all(source.redrawable for source in sources)
        repeat = self.ctx.settings.repeat if (self.experiment or self.recorder or not redrawable) else 1
        adaptive = self.ctx.settings.adaptive_repeat and repeat > 1
        watchdog = self.ctx.watchdog(self._deadline())
        try:
            for index in range(repeat):
                draw = self._start_draw(watchdog)
                try:
                    if self.experiment is not None:
                        self._run_target(draw, watchdog, sources)
                    if index == 0:  # pytest's own call of the body: the first draw, as the last is not known yet
                        result = yield
                    elif not redrawable:
                        draw.value = self._fresh_process_draw(draw, watchdog)
                    elif self.experiment is None:
                        _call_body(self.item)
                except BaseException as exc:
                    if self.outcome is None:  # else already judged a crash, with its log tail
                        self._ended_by(exc, draw, sources)
                    raise
                if index == 0 or redrawable:
                    draw.value = first_value(sources)
                if index == 0 and self.spec.benchmark is not None:  # not when its suite's verdict comes
                    draw.duration = time.time() - self.item.stash.get(started_key, time.time())
                draw.memory_gb = self._memory_gb()
                draw.ended = now_iso()
                if adaptive and self._settled():
                    break
            if self.spec.benchmark is not None and all(d.value is not None for d in self.draws):
                self.pending = watchdog  # its rows are completed with the suite's verdict
                return result
            try:
                pairs, why = self._pair(watchdog, sources)
            except BaseException as exc:
                if self.outcome is None:
                    self._ended_by(exc, self.draws[-1], sources)
                raise
            outcome = self._judge(pairs, why)
            if not outcome.green:
                pytest.fail(failure_message(outcome), pytrace=False)
            return result
        finally:
            if self.pending is not watchdog:
                watchdog.release()

    def complete(self, status: str, reason: str, judged: bar.Judged | None, extra: dict[str, Any]) -> Outcome:
        """Complete a pending trial's rows with its suite's verdict (see :meth:`run`)."""
        self.suite_extra = extra
        try:
            return self._finish(status, reason, judged)
        finally:
            if self.pending is not None:
                self.pending.release()
                self.pending = None

    def _fresh_process_draw(self, draw: Draw, watchdog: Watchdog) -> float | None:
        """A repeat drawn by a fresh pytest process running this test alone; red unless it passed."""
        assert self.spec.benchmark is not None
        log = self.ctx.logs_dir / f"{draw.entry.run_id}.log"
        drawn = fresh_draw.run(self.ctx.config, self.item, self.spec.benchmark, log, self._remaining(), watchdog)
        draw.duration, draw.log, draw.value = drawn.duration, str(log), drawn.value
        if drawn.returncode is None:
            self._fail("timeout", "a repeat in a fresh pytest process ran out of time", drawn.tail)
        if drawn.returncode != 0:
            self._fail("discard" if drawn.value is not None else "crash",
                       f"test failed in a fresh pytest process (draw {len(self.draws)}): {drawn.error}", drawn.tail)
        return drawn.value

    def _check_correct_first(self) -> None:
        """A required test already failed: this commit cannot be kept, so its expensive run is not made."""
        failed = [t for t in self.ctx.correctness.failures() if t not in self.ctx.correctness.benchmarks]
        if failed:
            self._start_draw(None)
            self._fail("discard", f"not run: {correctness.failed_text(failed)}", failed=failed)

    def _start_draw(self, watchdog: Watchdog | None) -> Draw:
        """Write the draw ahead as ``running`` and have the watchdog complete it if pytest dies."""
        run_id = self.run_id if not self.draws else uuid.uuid4().hex[:12]
        if watchdog is None:  # nothing will run: the row is completed at once
            entry = self.ctx.entry(self.item.nodeid, self.spec, run_id, "running", measurement=self.run_id)
        else:
            entry = self.ctx.entry(self.item.nodeid, self.spec, run_id, "running", measurement=self.run_id,
                                   extra={"watchdog": watchdog.pid})
            watchdog.track(format_line(entry))
            self.ctx.append(entry)
        draw = Draw(entry)
        if self.experiment is not None:
            self.experiment.log_path = self.ctx.logs_dir / f"{run_id}.log"
            draw.log = str(self.experiment.log_path)
        if self.spec.artifact is not None:
            draw.artifact = self.ctx.logs_dir / f"{run_id}.artifact" / self.spec.artifact
        self.draws.append(draw)
        return draw

    def _run_target(self, draw: Draw, watchdog: Watchdog, sources: list[Source]) -> None:
        """Run the target for this draw and judge what it left; a scorer prepared for it never outlives it."""
        try:
            self._run_and_score(draw, watchdog, sources)
        finally:
            if self.scorer is not None:
                self.scorer.close()

    def _run_and_score(self, draw: Draw, watchdog: Watchdog, sources: list[Source]) -> None:
        exp = self.experiment
        assert exp is not None
        ticker, every = progress_line(self.ctx.config, self.item.name, self._limit(), self.ctx.settings.progress_s)
        tree = self.ctx.repo.working_tree_dir if self.ctx.repo is not None else None
        sealing = self._sealing(draw) if self.ctx.settings.isolation == SEALED else None
        server = self._data_server(draw, sealed=sealing is not None)
        try:
            exp.run(self.ctx.runner, watchdog, ticker, every, worktree=Path(tree) if tree else None,
                    commit=self.ctx.head.sha if self.ctx.head else None, artifact=draw.artifact,
                    sealing=sealing, env=server.env if server else None,
                    on_start=on_run_start(server, self.scorer, draw.artifact, sealing is not None))
        except BaseException:
            if server is not None:
                server.kill()
            raise
        finally:
            if sealing is not None:  # nothing a run leaves in its folder reaches the next one
                shutil.rmtree(sealing.run_dir, ignore_errors=True)
        draw.duration = exp.duration
        if exp.machine:
            draw.extra[covariate.KEY] = exp.machine
        draw.extra.update(kernels.record(self.ctx.kernels, sealing))
        draw.self_report = exp.metrics.get(self.spec.metric)
        draw.notes = tuple(exp.notes)
        limit = self.spec.max_seconds
        if limit is not None and exp.duration is not None and exp.duration > limit:
            if server is not None:
                server.kill()
            self._fail("timeout", f"{WALL_LIMIT}: ran {exp.duration:.0f} s, limit {limit:g} s "
                                  "(the wall time the plugin measured, whatever the script printed)", exp.tail())
        if server is not None:
            self._keep_budget(server, draw)
        if exp.crashed:
            name = exp.script.name
            why = (f"{name} exited with code {exp.returncode}" if exp.returncode
                   else f"{name} printed no {self.spec.metric} line")
            error = exp.error()
            if sealing is not None and "Permission denied" in error:
                error += f" ({REFUSED})"
            draw.value = None if self.scorer else first_value(sources)
            self._fail("crash", f"{why}: {error}" if error and exp.returncode else why, exp.tail())
        if self.scorer is not None:
            assert draw.artifact is not None
            try:
                self.scorer.score(draw.artifact, self._remaining())
                draw.scored = self._scored()
            except Refused as exc:
                self._fail("discard", str(exc))
            except ScoringError as exc:
                self._fail("crash", str(exc), exc.log.strip())

    def _surroundings(self, entry: Entry, log: Path, artifact: Path | None,
                      tree: Path) -> tuple[Sealing | None, DataServer | None]:
        """What a draw of another commit (checked out in ``tree``) runs in, as this commit's draws
        do: the seal, when runs are sealed, and the frozen data server, when the benchmark has one."""
        draw = Draw(entry, log=str(log), artifact=artifact)
        sealing = self._sealing(draw, tree) if self.ctx.settings.isolation == SEALED else None
        return sealing, self._data_server(draw, sealed=sealing is not None)

    def _sealing(self, draw: Draw, tree: Path | None = None) -> Sealing:
        """This draw's seal: the session's, with a fresh run folder, the artifact's folder, a warm
        compile cache (see :meth:`_compile_cache`) for the code in ``tree`` (default: HEAD's) and,
        where the session serves kernels, the client on its PATH with a token of its own (kernels.py)."""
        session = self.ctx.seal
        assert session is not None, "settled with the identity, before any benchmark runs"
        run_dir = Path(tempfile.mkdtemp(prefix="autoresearch-sealed-"))
        write = [str(draw.artifact.parent)] if draw.artifact is not None else []
        if draw.artifact is not None:
            draw.artifact.parent.mkdir(parents=True, exist_ok=True)
        cache = self._compile_cache(run_dir, tree)
        env = {**session.env, "TORCHINDUCTOR_CACHE_DIR": str(cache), "TRITON_CACHE_DIR": str(cache / "triton")}
        env = self.ctx.kernels.admit(env) if self.ctx.kernels is not None else env
        return dataclasses.replace(session, run_dir=str(run_dir), write=(*write, str(cache)), env=env)

    def _compile_cache(self, run_dir: Path, tree: Path | None = None) -> Path:
        """torch.compile's cache for this code: warm between runs, never a channel between ideas.

        Keyed by the evaluation identity and the mutable files' content, so no other commit's
        code reads what this one left there. The first run of this code fills it in place; every
        later run works on a copy in its own run folder that vanishes with it.
        """
        digest = hashlib.sha256(self.ctx.identity.encode())
        root = self.ctx.repo.working_tree_dir if self.ctx.repo is not None else None
        for path in self.ctx.mutable_files:
            if tree is not None and root is not None:  # another commit's code: its own files key its cache
                path = tree / path.relative_to(root)
            digest.update(path.name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
        shared = self.ctx.compile_caches / digest.hexdigest()[:16]
        try:
            shared.mkdir(parents=True)
            older = sorted(shared.parent.iterdir(), key=lambda p: p.stat().st_mtime)[:-COMPILE_CACHES]
            for folder in older:  # an idea's kernels are worth keeping while it may be re-run
                shutil.rmtree(folder, ignore_errors=True)
            return shared
        except FileExistsError:
            copy = run_dir / "compile-cache"
            try:
                shutil.copytree(shared, copy, symlinks=True, ignore_dangling_symlinks=True)
            except (FileNotFoundError, shutil.Error):  # pruned by a parallel session meanwhile: a cold cache
                copy.mkdir(exist_ok=True)
            return copy

    def _data_server(self, draw: Draw, sealed: bool) -> DataServer | None:
        """The frozen data server for this draw, listening before the target starts; None without data_server=."""
        spec = self.spec
        if spec.data_server is None or spec.budget is None:
            return None
        allowance = EXPORT_ALLOWANCE_S if spec.export_allowance is None else spec.export_allowance
        log = Path(draw.log).with_suffix(".data.log")
        folder = draw.artifact.parent if draw.artifact is not None else log.parent
        # a sealed CPU run's late exit may be the machine's load (see over_budget); a leased accelerator's never is
        cores = usable_cores() if sealed and self.item.stash.get(lease_key, None) is None else 0
        return DataServer(spec.data_server, Clock(spec.budget, allowance, cores=cores), socket_path(folder),
                          search_path=[self.item.path.parent], forbidden=self.ctx.mutable_files,
                          env={**os.environ, **(spec.env or {})}, log_path=log)

    def _keep_budget(self, server: DataServer, draw: Draw) -> None:
        """Red when the target trained past its budget on the server's clock; record what it was served."""
        exp = self.experiment
        assert exp is not None and exp.ended is not None
        try:
            record, reason = server.settle(exp.ended)
        except DataServerError as exc:
            self._fail("crash", str(exc), server.log_tail())
        draw.notes = tuple(dict.fromkeys([*draw.notes, *parse_notes(server.log_tail(LOG_TAIL))]))[:MAX_NOTES]
        draw.extra.update(record)
        if reason is not None:
            self._fail("timeout", reason, exp.tail())

    def _fail(self, status: str, reason: str, tail: str = "", failed: Sequence[str] = ()) -> None:
        """End the trial red, in the call phase, with this status and reason."""
        outcome = self._finish(status, reason, failed=failed)
        pytest.fail(failure_message(outcome, tail), pytrace=False)

    def _ended_by(self, exc: BaseException, draw: Draw, sources: list[Source]) -> None:
        """The test body or a signal ended the draw: timeout, interrupted, crash, or the body's own failure."""
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C: no verdict; the draws that finished keep their values
            self._finish(INTERRUPTED, f"interrupted (Ctrl-C) during draw {len(self.draws)}: no verdict, nothing "
                                      "kept or discarded; run again to judge this commit")
            return
        draw.value = first_value(sources)
        status = "timeout" if is_timeout(exc) else "crash"
        wrong = status == "crash" and draw.value is not None
        if wrong:
            status = "discard"  # measured, then the body's own asserts failed: a wrong answer, not a broken run
        reason = f"test failed: {_message(exc)}"
        if status == "timeout":
            reason = (f"{WALL_LIMIT}: {str(exc).strip().rstrip('.')} (autoresearch_timeout): the run hung, "
                      "or set-up and compilation took too long")
        self._finish(status, reason, failed=[self.item.nodeid] if wrong else ())

    def _target_note(self) -> str:
        """What the target's draws asked to be said, each note once, named by the script: informational,
        since the target's output is its own word (the verdict never reads it)."""
        if self.experiment is None:
            return ""
        notes = list(dict.fromkeys(note for draw in self.draws for note in draw.notes))[:MAX_NOTES]
        return "; ".join(f"{self.experiment.script.name}: {note}" for note in notes)

    def _scored(self) -> dict[str, Any]:
        """What the frozen scorer said of the draw it scored last: its seconds and its other values."""
        if self.scorer is None or self.scorer.seconds is None:
            return {}
        return {"scoring_s": round(self.scorer.seconds, 2),
                **{f"scored_{k}": v for k, v in self.scorer.values.items() if k != self.spec.metric and math.isfinite(v)}}

    def _memory_gb(self) -> float | None:
        if self.experiment is not None and self.experiment.peak_memory_mb is not None:
            return self.experiment.peak_memory_mb / 1024
        if self.recorder is not None:
            for key, scale in (("memory_gb", 1.0), ("peak_vram_mb", 1 / 1024)):
                value = self.recorder.extra.get(key)
                if isinstance(value, (int, float)):
                    return float(value) * scale
        return None

    def _loads(self) -> list[float | None]:
        """Each draw's machine load, as the gauge read it (None where it could not)."""
        return [covariate.reading(d.extra) for d in self.draws if d.value is not None]

    def _settled(self) -> bool:
        """Adaptive repeats: whether the draws so far leave the verdict in no real doubt."""
        values = [d.value for d in self.draws]
        if any(v is None for v in values):
            return True  # judged a crash whatever comes next
        step = bar.repeat_step(self.ctx, self.item.nodeid, self.spec, [v for v in values if v is not None],
                               self._loads())
        self.repeat_note = step.reason
        return step.stop

    def _pair(self, watchdog: Watchdog, sources: list[Source]) -> tuple[paired.Pairs | None, str]:
        """A verdict in doubt: run the bar commit again beside HEAD, alternating in a random order.

        Returns the pairs and why they were run, or no pairs and why not (the bar crashed).
        Only a script's value can be paired: the bar's code runs as a script, never in this process.
        """
        values = [d.value for d in self.draws]
        if (self.experiment is None or self.recorder is not None or self.ctx.repo is None or self.ctx.head is None
                or any(v is None for v in values)):
            return None, ""
        lease = self.item.stash.get(lease_key, None)
        device = lease.device if lease else None
        why, best = bar.pairing(self.ctx, self.item.nodeid, self.spec, [v for v in values if v is not None], device,
                                self._loads())
        if not why or best is None:
            return None, ""
        count = paired.pairs_for(self.ctx.settings.repeat)
        self._rearm(2 * count)
        took = [d.duration for d in self.draws if d.duration is not None]
        cost = f", {about(2 * count * statistics.fmean(took))}" if took else ""
        announce(self.ctx.config, f"autoresearch: pairing {self.item.nodeid}: {why}; running the bar {best.commit} "
                                  f"and this commit {count} times each, alternating ({2 * count} runs{cost})")
        scorer = FrozenScorer(self.spec, [self.item.path.parent], self.ctx.mutable_files) if self.scorer else None
        rerun = BarRerun(self.ctx, self.item.nodeid, self.spec, best, self.experiment, scorer, device,
                         {"paired_with": self.run_id}, surround=self._surroundings)
        ticker, every = progress_line(self.ctx.config, self.item.name, self._limit(), self.ctx.settings.progress_s)
        bar_values: list[float] = []
        candidate_values: list[float] = []
        bar_loads: list[float | None] = []  # each draw's machine load, for the adjustment
        candidate_loads: list[float | None] = []
        with checkout(self.ctx.repo, best.sha) as tree:
            for bar_first in paired.order(count, best.sha, self.ctx.head.sha, values):
                for is_bar in (bar_first, not bar_first):
                    if is_bar:
                        got = rerun.draw(tree, watchdog, ticker, every, self._remaining)
                        if isinstance(got, str):
                            return None, (f"not paired: the bar {best.commit} failed on its re-run ({got}); "
                                          f"judged on this commit's own draws")
                        bar_values.append(got)
                        bar_loads.append(rerun.machine.get(covariate.COVARIATE))
                        continue
                    draw = self._start_draw(watchdog)
                    self._run_target(draw, watchdog, sources)
                    draw.value, draw.memory_gb = first_value(sources), self._memory_gb()
                    if draw.value is None:
                        return None, ""
                    candidate_values.append(draw.value)
                    candidate_loads.append(covariate.reading(draw.extra))
        return paired.Pairs(tuple(bar_values), tuple(candidate_values), tuple(bar_loads), tuple(candidate_loads)), why

    def calibrate(self) -> None:
        """A/A calibration (``--autoresearch-calibrate N``): the reference commit run against itself.

        N pairs of draws of one commit, in a random balanced order, each through the path a paired
        verdict's bar takes (:class:`BarRerun` in a temporary worktree), each a ledger row of that
        commit with its own verdict's status, so the noise floor learns from it. ``calibration.py``
        reads the rows back; nothing is judged here.
        """
        ctx, spec, test = self.ctx, self.spec, self.item.nodeid
        if self.experiment is None or self.recorder is not None:
            pytest.fail(f"autoresearch calibrate: {self.item.name} does not run a script (the experiment fixture "
                        "with script=...): only a script's run can be drawn again from another commit", pytrace=False)
        if ctx.repo is None or ctx.head is None:
            pytest.fail("autoresearch calibrate: run it inside a git repository", pytrace=False)
        runs = ctx.runs(("keep", "discard"), test=test, metric=spec.metric, identity=ctx.identity)
        target, which = history.best(runs, spec.goal), "the best commit"
        status = "keep"
        if target is None:
            judged = history.draws(runs)
            sha = next((sha for sha in ctx.lineage if sha in judged), None)
            if sha is None:
                pytest.fail(f"autoresearch calibrate: nothing judged yet for {test} under this evaluation identity: "
                            "run pytest --autoresearch first", pytrace=False)
            run = next(r for r in runs if r.sha == sha)
            target = Best(statistics.fmean(judged[sha]), sha[:7], len(judged[sha]), sha, run.description)
            which, status = ("HEAD" if sha == ctx.head.sha else "the last judged commit") + ", as nothing is kept", \
                "discard"
        count = ctx.settings.calibrate
        self._rearm(2 * count)
        lease = self.item.stash.get(lease_key, None)
        scorer = FrozenScorer(spec, [self.item.path.parent], ctx.mutable_files) if self.scorer else None
        rule = {"min_delta": spec.min_delta if spec.min_delta is not None else ctx.settings.min_delta,
                "noise_k": ctx.settings.noise_k, "paired": ctx.settings.paired,
                "pairs": paired.pairs_for(ctx.settings.repeat)}
        rerun = BarRerun(ctx, test, spec, target, self.experiment, scorer, lease.device if lease else None,
                         {calibration.KEY: self.run_id, "calibrated": which, "rule": rule}, status=status,
                         label="calibration draw", reason="calibration draw (A/A: the commit against itself)",
                         surround=self._surroundings)
        ticker, every = progress_line(ctx.config, self.item.name, self._limit(), ctx.settings.progress_s)
        watchdog = ctx.watchdog(self._deadline())
        try:
            with checkout(ctx.repo, target.sha) as tree:
                for pair, a_first in enumerate(paired.order(count, target.sha, self.run_id)):
                    for side in ("a", "b") if a_first else ("b", "a"):
                        draw = 2 * pair + (side != ("a" if a_first else "b"))
                        got = rerun.draw(tree, watchdog, ticker, every, self._remaining,
                                         {"pair": pair, "side": side, "first": draw % 2 == 0, "draw": draw})
                        if isinstance(got, str):
                            pytest.fail(f"autoresearch calibrate: {target.commit} failed on draw {draw + 1}: {got}",
                                        pytrace=False)
        finally:
            watchdog.release()

    def _rearm(self, runs: int) -> None:
        """Give the pairs a time limit of their own: pytest-timeout's timer set again, for ``runs`` runs."""
        settings = self.item.stash.get(timer_key, None)
        if settings is None or not settings.timeout:
            return
        seconds = settings.timeout / max(1, self.ctx.settings.repeat) * runs
        hook = self.item.config.hook
        hook.pytest_timeout_cancel_timer(item=self.item)
        hook.pytest_timeout_set_timer(item=self.item, settings=settings._replace(timeout=seconds))
        self.deadline = time.time() + seconds

    def _judge(self, pairs: paired.Pairs | None = None, why_paired: str = "") -> Outcome:
        """Read the bar, judge and record under one lock, so no other run judges in between."""
        values = [d.value for d in self.draws]
        if any(v is None for v in values):
            return self._finish("crash", BenchmarkStats.missing if self.spec.benchmark is not None else (
                f"no value for {self.spec.metric}: use the experiment fixture with script=..., call "
                f"autoresearch.record(value), or define a fixture named {self.spec.metric}"
            ))
        with self.ctx.locked():
            judged = bar.judge(self.ctx, self.item.nodeid, self.spec, [v for v in values if v is not None],
                               pairs, why_paired, self._loads())
            return self._finish(judged.verdict.status, judged.verdict.reason, judged)

    def _finish(self, status: str, reason: str, judged: bar.Judged | None = None,
                failed: Sequence[str] = ()) -> Outcome:
        """Complete every draw's ledger row with one status and hand the outcome to the reports."""
        extra: dict[str, Any] = {k: v for k, v in (self.recorder.extra if self.recorder else {}).items()
                                 if isinstance(v, (str, int, float, bool))}
        extra["reason"] = reason
        if failed:
            extra["failed"] = list(failed[:correctness.KEPT])
        extra.update(self.suite_extra)
        best = judged.verdict.best if judged else None
        if best is not None:
            extra.update(bar=best.value, bar_commit=best.commit, bar_n=best.n)
        if judged is not None and judged.min_delta:
            extra["min_delta"] = judged.min_delta
        if judged is not None:  # the verdict's own numbers: every report reads them, none re-derives them
            facts = {"mean": judged.value, "n": judged.n, "delta": judged.verdict.delta, "sigma": judged.sigma}
            extra.update({k: v for k, v in facts.items() if v is not None and math.isfinite(v)})
            rule = self.spec.min_delta if self.spec.min_delta is not None else self.ctx.settings.min_delta
            if rule == AUTO:  # the margin is k standard errors: reports say what an idea needs with this k
                extra["noise_k"] = self.ctx.settings.noise_k
        if judged is not None and judged.earlier:
            extra["remeasure"] = True
        if judged is not None and judged.pairing:
            extra["paired"] = judged.pairing
        if judged is not None and judged.pairs is not None:
            extra["pairs"] = judged.pairs.n
        adjustment = judged.adjustment if judged is not None else None
        if adjustment is not None:
            extra["adjustment"] = adjustment.text()
        if self.experiment is not None and status == "crash":
            extra["log"] = str(self.experiment.log_path)
        reports = [d.self_report for d in self.draws if d.self_report is not None]
        if self.scorer is not None and reports:
            extra["self_report"] = statistics.fmean(reports)
        target_note = self._target_note()
        if target_note:
            extra["target_note"] = target_note
        if len(self.draws) > 1:
            extra["repeats"] = len(self.draws)
        if self.repeat_note:
            extra["adaptive"] = self.repeat_note
        lease = self.item.stash.get(lease_key, None)
        where = dict(self.experiment.where) if self.experiment is not None else {}
        if lease is not None:
            extra["device"] = lease.device
        elif where.get("device"):
            extra["device"] = where["device"]
        extra["isolation"] = self.ctx.settings.isolation if self.experiment is not None else "in-process"
        if self.ctx.runner.name != "local":
            extra.update(runner=self.ctx.runner.name, node=where.get("node") or where.get("host", ""))
        started = self.item.stash.get(started_key, time.time())
        self.ctx.append(*(
            d.entry.finished(status=status, value=d.value, memory_gb=d.memory_gb,
                             duration_s=d.duration if d.duration is not None else time.time() - started,
                             extra={"goal": self.spec.goal, "surface": self.ctx.surface_digest, **extra, **d.scored,
                                    **d.extra, **_adjusted(adjustment, d)},
                             **({"timestamp": d.ended} if d.ended else {}))
            for d in self.draws
        ))
        if self.ctx.repo is not None and self.ctx.head is not None:  # reset and gc must not lose the idea
            problem = archive.keep_judged(self.ctx.repo, self.run_id, self.ctx.head.sha)
            if problem:
                self.ctx.warn(problem, archive.ArchiveWarning)
        values = [d.value for d in self.draws if d.value is not None]
        durations = [d.duration for d in self.draws if d.duration is not None]
        memories = [d.memory_gb for d in self.draws if d.memory_gb is not None]
        earlier = judged.earlier if judged else ()
        self_report = extra.get("self_report")
        if status != "keep":
            for d in self.draws:  # only kept artifacts are worth their disk space
                if d.artifact is not None:
                    shutil.rmtree(d.artifact.parent, ignore_errors=True)
        outcome = Outcome(
            test=self.item.nodeid, metric=self.spec.metric, goal=self.spec.goal, status=status,
            value=judged.value if judged else statistics.fmean(values) if values else None, reason=reason,
            commit=self.ctx.head.short if self.ctx.head else "", identity=self.ctx.identity,
            threshold=self.spec.threshold, best=best.value if best else None,
            best_commit=best.commit if best else "", best_n=best.n if best else 0,
            delta=judged.verdict.delta if judged else None, n=judged.n if judged else len(values), earlier=earlier,
            now=tuple(values),
            spread=noise.spread([*earlier, *values]), sigma=judged.sigma if judged else None,
            **_noise_fields(judged),
            duration=sum(durations) if durations else time.time() - started,
            memory_gb=max(memories) if memories else None,
            log=self.draws[-1].log if self.draws else "", note=judged.note if judged else self.ctx.note,
            target_note=target_note,
            revert=self.ctx.revert or "", hint=judged.hint if judged else "",
            unsealed=extra["isolation"] == UNSEALED,
            self_report=self_report if disagrees(self_report, statistics.fmean(values) if values else None) else None,
            runs=tuple(d.entry.run_id for d in self.draws), failed=tuple(failed),
            paired=judged.pairing if judged else "",
            adjusted=adjustment.text() if adjustment is not None else "",
        )
        self.item.user_properties.append((PROPERTY, outcome.to_json()))
        self.item.user_properties.append((self.spec.metric, "" if outcome.value is None else outcome.value))
        self.outcome = outcome
        return outcome

    # -- time ------------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        """When pytest-timeout ends this test, if it will: the watchdog then says ``timeout``."""
        if self.deadline is not None:
            return self.deadline
        mark = self.item.get_closest_marker("timeout")
        if mark is None or not self.ctx.config.pluginmanager.has_plugin("timeout"):
            return None
        seconds = mark.args[0] if mark.args else mark.kwargs.get("timeout")
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            return None
        return self.item.stash.get(started_key, time.time()) + float(seconds)

    def _remaining(self) -> float:
        """Seconds left before the test's time limit (the scorer may use them), else the session's."""
        deadline = self._deadline()
        return max(1.0, deadline - time.time()) if deadline else self.ctx.settings.timeout

    def _limit(self) -> float | None:
        deadline = self._deadline()
        return deadline - self.item.stash.get(started_key, time.time()) if deadline else None


def _noise_fields(judged: bar.Judged | None) -> dict[str, Any]:
    """The noise floor a verdict used, as the Outcome carries it."""
    floor = judged.floor if judged is not None else None
    if judged is None or floor is None:
        return {}
    return {"noise_sigma": floor.sigma, "noise_draws": floor.dof + floor.groups, "noise_commits": floor.groups,
            "needs": judged.needs}


def _adjusted(adjustment: covariate.Adjustment | None, draw: Draw) -> dict[str, float]:
    """What a draw's row records of the verdict's correction: its adjusted value, theta and the reference
    load (its value stays raw)."""
    if adjustment is None or draw.value is None:
        return {}
    return {"adjusted": adjustment.value(draw.value, covariate.reading(draw.extra)), "load_theta": adjustment.theta,
            "load_reference": adjustment.reference}


def _call_body(item: pytest.Function) -> None:
    """Run the test body once more with the same fixtures (a repeat of a recorded measurement)."""
    names = inspect.signature(item.obj).parameters
    item.obj(**{name: item.funcargs[name] for name in names if name in item.funcargs})


def _message(exc: BaseException) -> str:
    """The exception's whole message (an assertion's explanation spans lines): what made the answer wrong."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
