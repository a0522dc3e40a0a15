"""One ``pytest --autoresearch`` session: guard the tree, run each benchmark, judge, record.

Registered as a plugin only in ``--autoresearch`` mode. Everything about this commit's
result is reported in the test's call phase (so it reads FAILED, with the revert command);
only preconditions of the whole run (a dirty tree) are usage errors.
"""

from __future__ import annotations

import inspect
import statistics
import time
import uuid
import warnings
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import git
import pytest

from . import gitstate, history, identity, noise
from .experiment import Experiment
from .ledger import Entry, Ledger, LedgerWarning, format_line
from .progress import Ticker, progress_line
from .report import PROPERTY, Outcome, failure_message
from .settings import AUTO, Settings, Spec
from .verdict import Best, judge
from .watchdog import Watchdog

spec_key = pytest.StashKey[Spec]()
run_key = pytest.StashKey["Run"]()
start_key = pytest.StashKey[float]()


class Recorder:
    """What the ``autoresearch`` fixture returns: record a value measured in-process."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.value: float | None = None
        self.extra: dict[str, Any] = {}

    def record(self, value: float, **extra: Any) -> None:
        """Record the metric's value (and any extra numbers or notes) for judging."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"record() takes a number for {self.metric}, not {value!r}")
        self.value = float(value)
        self.extra.update(extra)


@dataclass
class Sample:
    """One run of the target: its write-ahead ledger line and what it measured."""

    entry: Entry
    value: float | None = None
    memory_gb: float | None = None
    duration: float | None = None
    log: str = ""


@dataclass
class Run:
    """The per-test state of one judged measurement: one sample, or several with --autoresearch-repeat."""

    run_id: str
    experiment: Experiment | None = None
    recorder: Recorder | None = None
    samples: list[Sample] = field(default_factory=list)
    outcome: Outcome | None = None  # set once the ledger rows are completed


class AutoresearchSession:
    """The state of one ``--autoresearch`` session, kept in ``config.stash`` and used as a plugin."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.repo: git.Repo | None = None
        self.head: gitstate.Head | None = None
        self.scope = "."
        self.lineage: list[str] = []  # HEAD, then every commit it builds on
        self.on_lineage: frozenset[str] = frozenset()
        self.ledger: Ledger | None = None
        self.logs_dir = config.rootpath / ".autoresearch" / "runs"
        self.identity = ""
        self.identity_parts: dict[str, str] = {}
        self.note = ""
        self.reference: str | None = None
        self.frozen_changes: list[str] = []
        self._warned: set[str] = set()

    # -- session hooks ---------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Before anything runs: results are tied to commits, so the tree must be committed."""
        root = self.config.rootpath
        self.repo = gitstate.open_repo(root)
        ledger_path = self.settings.ledger
        if self.repo is None:
            self.note = f"not a git repository ({root}): thresholds judge, no branch bar applies"
        else:
            self.scope = gitstate.scope_of(self.repo, root)
            self.head = gitstate.head(self.repo)
            if self.head is None:
                raise pytest.UsageError("autoresearch: the repository has no commit yet; commit first")
            dirty = gitstate.dirty_files(self.repo, self.scope)
            if dirty:
                raise pytest.UsageError(
                    "autoresearch: uncommitted changes to " + ", ".join(dirty)
                    + "; results are tied to commits: commit first (git commit -am '...')"
                )
            untracked = gitstate.untracked_python(self.repo, self.scope)
            if untracked:
                raise pytest.UsageError(
                    "autoresearch: untracked files that change what is measured: "
                    + ", ".join(untracked) + "; commit them or add them to .gitignore"
                )
            run_folder = gitstate.common_dir(self.repo) / "autoresearch"
            ledger_path = ledger_path or run_folder / "ledger.tsv"
            self.logs_dir = run_folder / "runs"
            if self.head.branch is None:
                self.note = "detached HEAD: results are recorded under the branch name '(detached)'"
        if ledger_path is not None:
            self.ledger = Ledger(ledger_path)
        elif self.repo is None:
            self.note += "; nothing is recorded (set --autoresearch-ledger to keep a ledger)"

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Once, outside every test timeout: the evaluation identity and the frozen-file guard."""
        benchmarks = [i for i in session.items if spec_key in i.stash]
        if not benchmarks:
            return
        parts = {"device": identity.device()}
        if self.repo is not None and self.head is not None:
            blobs = gitstate.tracked_blobs(self.repo, self.head.sha, self.scope)
            kept = set(gitstate.frozen([p for p, _ in blobs], self.settings.mutable, self.scope))
            parts["frozen"] = identity.files_digest(b for b in blobs if b[0] in kept)
        for extra in self.config.hook.pytest_autoresearch_identity(config=self.config):
            if extra:
                parts.update({str(k): str(v) for k, v in extra.items()})
        self.identity_parts = parts
        self.identity = identity.digest(parts)
        if self.repo is None or self.head is None:
            return
        self.lineage = gitstate.lineage(self.repo, self.head.sha)
        self.on_lineage = frozenset(self.lineage)
        runs = self._runs(statuses=("keep", "baseline"))
        self.reference = history.reference_commit(runs, self.lineage, (i.nodeid for i in benchmarks))
        if self.reference is not None and self.reference != self.head.sha:
            changed = gitstate.changed_files(self.repo, self.reference, self.head.sha, self.scope)
            self.frozen_changes = gitstate.frozen(changed, self.settings.mutable, self.scope)
        if self.ledger is not None:
            with self._tolerant_ledger():
                self.ledger.register_identity(self.identity, parts)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        item.stash[start_key] = time.time()
        return (yield)

    # -- fixtures' objects -------------------------------------------------------------

    def _run(self, item: pytest.Item) -> Run:
        if run_key not in item.stash:
            item.stash[run_key] = Run(uuid.uuid4().hex[:12])
        return item.stash[run_key]

    def experiment_for(self, item: pytest.Item) -> Experiment:
        spec = item.stash[spec_key]
        if spec.script is None:
            pytest.fail(
                f'the experiment fixture needs a script: @pytest.mark.autoresearch(metric="{spec.metric}", '
                'script="train.py")', pytrace=False,
            )
        script = (item.path.parent / spec.script).resolve()
        if not script.is_file():
            pytest.fail(f"autoresearch: script {spec.script!r} not found (looked for {script})", pytrace=False)
        run = self._run(item)
        run.experiment = Experiment(
            script=script, log_path=self.logs_dir / f"{run.run_id}.log", args=spec.args,
            env=dict(spec.env or {}), metric=spec.metric,
        )
        return run.experiment

    def recorder_for(self, item: pytest.Item) -> Recorder:
        run = self._run(item)
        run.recorder = Recorder(item.stash[spec_key].metric)
        return run.recorder

    # -- the judged run ------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, object, object]:
        """Run the target before the body, judge after it: all in the call phase."""
        item = pyfuncitem
        spec = item.stash.get(spec_key, None)
        if spec is None:
            return (yield)
        run = self._run(item)
        if self.frozen_changes:
            if not self.settings.accept_frozen:
                pytest.fail(self._frozen_message(), pytrace=False)
            self._append(self._entry(item, spec, uuid.uuid4().hex[:12], "baseline", description=(
                "accepted change to frozen files: " + ", ".join(self.frozen_changes))))
        repeat = self.settings.repeat if (run.experiment or run.recorder) else 1
        watchdog = Watchdog(self.ledger.path if self.ledger else None, self._deadline(item))
        try:
            for index in range(repeat):
                sample = self._start_sample(item, spec, run, watchdog)
                try:
                    if run.experiment is not None:
                        self._run_experiment(item, spec, run, sample, watchdog)
                    if index == repeat - 1:
                        result = yield
                    elif run.experiment is None:
                        _call_body(item)
                except BaseException as exc:
                    if run.outcome is not None:  # already judged a crash, with its log tail
                        raise
                    sample.value = self._value(item, spec, run)
                    status = "timeout" if _is_timeout(exc) else "crash"
                    if status == "crash" and sample.value is not None and not isinstance(exc, KeyboardInterrupt):
                        status = "discard"  # measured, then the body's own asserts failed
                    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"test failed: {_first_line(exc)}"
                    self._finish(item, spec, run, status, reason)
                    raise
                sample.value = self._value(item, spec, run)
                sample.memory_gb = self._memory_gb(run)
                if run.recorder is not None:
                    run.recorder.value = None
            outcome = self._judge(item, spec, run)
            if not outcome.green:
                pytest.fail(failure_message(outcome, revertable=self._revertable()), pytrace=False)
            return result
        finally:
            watchdog.release()

    def _start_sample(self, item: pytest.Function, spec: Spec, run: Run, watchdog: Watchdog) -> Sample:
        """Write the run ahead as ``running`` and have the watchdog complete it if pytest dies."""
        run_id = run.run_id if not run.samples else uuid.uuid4().hex[:12]
        entry = self._entry(item, spec, run_id, "running", measurement=run.run_id,
                            extra={"watchdog": watchdog.pid})
        watchdog.track(format_line(entry))
        self._append(entry)
        sample = Sample(entry)
        if run.experiment is not None:
            run.experiment.log_path = self.logs_dir / f"{run_id}.log"
            sample.log = str(run.experiment.log_path)
        run.samples.append(sample)
        return sample

    def _run_experiment(self, item: pytest.Function, spec: Spec, run: Run, sample: Sample,
                        watchdog: Watchdog) -> None:
        exp = run.experiment
        assert exp is not None
        exp.run(watchdog, *self._progress(item))
        sample.duration = exp.duration
        if exp.crashed:
            why = (f"{exp.script.name} exited with code {exp.returncode}" if exp.returncode
                   else f"{exp.script.name} printed no {spec.metric} line")
            sample.value = exp.metrics.get(spec.metric)
            outcome = self._finish(item, spec, run, "crash", why)
            pytest.fail(failure_message(outcome, exp.tail(), self._revertable()), pytrace=False)

    def _value(self, item: pytest.Function, spec: Spec, run: Run) -> float | None:
        """The metric: recorded, else from the script's output, else the fixture of that name."""
        if run.recorder is not None and run.recorder.value is not None:
            return run.recorder.value
        if run.experiment is not None:
            return run.experiment.metrics.get(spec.metric)
        value = item.funcargs.get(spec.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    def _memory_gb(self, run: Run) -> float | None:
        if run.experiment is not None and run.experiment.peak_memory_mb is not None:
            return run.experiment.peak_memory_mb / 1024
        if run.recorder is not None:
            for key, scale in (("memory_gb", 1.0), ("peak_vram_mb", 1 / 1024)):
                value = run.recorder.extra.get(key)
                if isinstance(value, (int, float)):
                    return float(value) * scale
        return None

    def _judge(self, item: pytest.Function, spec: Spec, run: Run) -> Outcome:
        """Read the bar, judge and record under one lock, so no other run judges in between."""
        values = [s.value for s in run.samples]
        if any(v is None for v in values):
            return self._finish(item, spec, run, "crash", (
                f"no value for {spec.metric}: use the experiment fixture with script=..., call "
                f"autoresearch.record(value), or define a fixture named {spec.metric}"
            ))
        finite = [v for v in values if v is not None]
        value = statistics.fmean(finite)
        min_delta = spec.min_delta if spec.min_delta is not None else self.settings.min_delta
        with self._locked():
            best, already, floor, notes = None, False, None, [self.note] if self.note else []
            if self.head is not None and self.ledger is not None:
                runs = self._runs(statuses=("keep", "discard"), test=item.nodeid, metric=spec.metric,
                                  identity=self.identity)
                best = history.best_before(runs, self.lineage, spec.goal)
                already = history.kept_at(runs, self.head.sha)
                floor = history.noise_floor(runs, self.lineage, finite)
                if best is None and not already and not self.note:
                    notes.append(self._fresh_note(item.nodeid, spec.metric))
            sigma = floor.of_difference(len(finite), best.n) if floor and best else None
            if min_delta == AUTO:
                if floor is None:
                    notes.append("noise floor unknown, judged strictly: measure it with "
                                 "pytest --autoresearch --autoresearch-repeat 5 on the baseline commit")
                min_delta = self.settings.noise_k * sigma if sigma is not None else 0.0
            assert isinstance(min_delta, float)
            verdict = judge(value, goal=spec.goal, threshold=spec.threshold, best=best,
                            min_delta=min_delta, already_kept=already)
            return self._finish(item, spec, run, verdict.status, verdict.reason, best=verdict.best,
                                delta=verdict.delta, sigma=sigma, min_delta=min_delta,
                                note="; ".join(notes))

    def _finish(self, item: pytest.Function, spec: Spec, run: Run, status: str, reason: str, *,
                best: Best | None = None, delta: float | None = None, sigma: float | None = None,
                min_delta: float | None = None, note: str = "") -> Outcome:
        """Complete every sample's ledger line with one status and hand the outcome to the reports."""
        extra: dict[str, Any] = {k: v for k, v in (run.recorder.extra if run.recorder else {}).items()
                                 if isinstance(v, (str, int, float, bool))}
        extra["reason"] = reason
        if best is not None:
            extra.update(bar=best.value, bar_commit=best.commit, bar_n=best.n)
        if min_delta:
            extra["min_delta"] = min_delta
        started = item.stash.get(start_key, time.time())
        self._append(*(
            s.entry.finished(status=status, value=s.value, memory_gb=s.memory_gb,
                             duration_s=s.duration if s.duration is not None else time.time() - started,
                             extra={**extra, "repeats": len(run.samples)} if len(run.samples) > 1 else extra)
            for s in run.samples
        ))
        values = [s.value for s in run.samples if s.value is not None]
        durations = [s.duration for s in run.samples if s.duration is not None]
        memories = [s.memory_gb for s in run.samples if s.memory_gb is not None]
        outcome = Outcome(
            test=item.nodeid, metric=spec.metric, goal=spec.goal, status=status,
            value=statistics.fmean(values) if values else None, reason=reason,
            commit=self.head.short if self.head else "", identity=self.identity,
            threshold=spec.threshold, best=best.value if best else None,
            best_commit=best.commit if best else "", best_n=best.n if best else 0, delta=delta,
            n=len(values), spread=noise.spread(values) if len(values) > 1 else None, sigma=sigma,
            duration=sum(durations) if durations else time.time() - started,
            memory_gb=max(memories) if memories else None,
            log=run.samples[-1].log if run.samples else "", note=note,
        )
        item.user_properties.append((PROPERTY, outcome.to_json()))
        item.user_properties.append((spec.metric, "" if outcome.value is None else outcome.value))
        run.outcome = outcome
        return outcome

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _tolerant_ledger(self) -> Generator[None, None, None]:
        """Show each ledger warning once, never escalated: a corrupt line must not crash a run."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for warning in caught:
            if issubclass(warning.category, LedgerWarning) and str(warning.message) in self._warned:
                continue
            self._warned.add(str(warning.message))
            with warnings.catch_warnings():
                warnings.simplefilter("always", LedgerWarning)
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)

    def _entry(self, item: pytest.Function, spec: Spec, run_id: str, status: str, *,
               description: str | None = None, measurement: str = "",
               extra: dict[str, Any] | None = None) -> Entry:
        head = self.head
        return Entry(
            run_id=run_id, status=status, commit=head.short if head else "",
            sha=head.sha if head else "",
            description=description if description is not None else head.subject if head else "",
            metric=spec.metric, test=item.nodeid,
            branch=(head.branch or "(detached)") if head else "", identity=self.identity,
            measurement=measurement or run_id, extra=extra or {},
        )

    def _append(self, *entries: Entry) -> None:
        if self.ledger is not None:
            self.ledger.append(*entries)

    def _runs(self, statuses: tuple[str, ...], **equal: str) -> list[Entry]:
        """The runs of HEAD and the commits it builds on: the only ones a verdict looks at."""
        if self.ledger is None:
            return []
        with self._tolerant_ledger():
            return self.ledger.runs(statuses, shas=self.on_lineage, **equal)

    @contextmanager
    def _locked(self) -> Generator[None, None, None]:
        if self.ledger is None:
            yield
        else:
            with self.ledger.locked():
                yield

    def _deadline(self, item: pytest.Item) -> float | None:
        mark = item.get_closest_marker("timeout")
        if mark is None or not self.config.pluginmanager.has_plugin("timeout"):
            return None
        seconds = mark.args[0] if mark.args else mark.kwargs.get("timeout")
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            return None
        return item.stash.get(start_key, time.time()) + float(seconds)

    def _revertable(self) -> bool:
        return len(self.lineage) > 1

    def _frozen_message(self) -> str:
        ref = self.reference[:7] if self.reference else "?"
        lines = [
            f"autoresearch: FROZEN files changed since {ref} (the last kept result on this branch): "
            + ", ".join(self.frozen_changes),
            f"  only {', '.join(self.settings.mutable)} may change (ini autoresearch_mutable)",
        ]
        if self._revertable():
            lines.append("  revert: git reset --hard HEAD~1")
        lines.append("  a person who meant this change accepts it with: pytest --autoresearch --autoresearch-accept-frozen")
        return "\n".join(lines)

    def _fresh_note(self, test: str, metric: str) -> str:
        """Say plainly why there is nothing to compare with."""
        others = {r.identity for r in self._runs(statuses=("keep",), test=test, metric=metric)}
        others.discard(self.identity)
        if not others:
            return "first result for this test on this branch"
        assert self.ledger is not None
        changed: set[str] = set()
        with self._tolerant_ledger():
            for other in others:
                before = self.ledger.identity_parts(other)
                changed |= {k for k in self.identity_parts.keys() | before.keys()
                            if before.get(k) != self.identity_parts.get(k)}
        what = ", ".join(sorted(changed)) or "the evaluation settings"
        return f"new leaderboard: {what} changed since the earlier results (identity {self.identity})"

    def _progress(self, item: pytest.Item) -> tuple[Ticker | None, float]:
        deadline = self._deadline(item)
        limit = deadline - item.stash[start_key] if deadline else None
        return progress_line(self.config, item.name, limit, self.settings.progress_s)


def _call_body(item: pytest.Function) -> None:
    """Run the test body once more with the same fixtures (a repeat of a recorded measurement)."""
    names = inspect.signature(item.obj).parameters
    item.obj(**{name: item.funcargs[name] for name in names if name in item.funcargs})


def _is_timeout(exc: BaseException) -> bool:
    """pytest-timeout's signal method fails the test with 'Timeout (>Ns) from pytest-timeout.'."""
    return isinstance(exc, pytest.fail.Exception) and str(exc).startswith("Timeout")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
