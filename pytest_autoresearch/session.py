"""One ``pytest --autoresearch`` session: settle its context, then hand each benchmark to a trial.

Registered as a plugin only in ``--autoresearch`` mode. Preconditions of the whole run (a
dirty tree, no commit) are usage errors before anything runs; the evaluation identity and the
frozen-file reference are settled once after collection, outside every test's time limit.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from . import chain, correctness, cpp_headers, gitstate, guard, history, identity, kernels, trust
from .context import Context
from .dataserver import usable_cores
from .leases import Leases, detect_devices
from .ledger import Ledger
from .outcome import PROPERTY, Outcome
from .runner import Runner
from .runner import sandbox
from .runner.local import LocalRunner
from .settings import Settings, Spec
from .terminal import waiting
from .trial import Trial, lease_key, started_key, timer_key

spec_key = pytest.StashKey[Spec]()
trial_key = pytest.StashKey[Trial]()


class AutoresearchSession:
    """The session plugin, kept in ``config.stash``; its state is :attr:`ctx`."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.ctx = Context(config, settings, _runner(settings), logs_dir=config.rootpath / ".autoresearch" / "runs")
        self.outcomes: list[Outcome] = []  # every benchmark's, as its report brought it; settled at the end
        self._unselected = 0  # tests -k, -m, --lf ... deselected: not checked
        self._specs: dict[str, Spec] = {}  # this process's benchmarks, in the order they run

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Before anything runs: results are tied to commits, so the tree must be committed."""
        ctx = self.ctx
        root = ctx.config.rootpath
        ledger_path = ctx.settings.ledger
        ctx.repo = gitstate.open_repo(root)
        if ctx.repo is None:
            ctx.note = f"not a git repository ({root}): thresholds judge, no branch bar applies"
        else:
            ctx.scope = gitstate.scope_of(ctx.repo, root)
            ctx.head = gitstate.head(ctx.repo)
            if ctx.head is None:
                raise pytest.UsageError("autoresearch: the repository has no commit yet; commit first")
            guard.require_committed(ctx.repo, ctx.scope)
            folder = gitstate.run_folder(ctx.repo)
            ledger_path = ledger_path or Ledger.default_path(folder)
            ctx.logs_dir = folder / "runs"
            if ctx.head.branch is None:
                ctx.note = "detached HEAD: results are recorded under the branch name '(detached)'"
        if ctx.runner.name != "local" and ctx.repo is None:
            raise pytest.UsageError(f"autoresearch: the {ctx.runner.name} runner ships a commit's tree: "
                                    "run inside a git repository, or use --autoresearch-runner local")
        if ctx.settings.isolation == sandbox.SEALED:
            _require_sandbox(ctx.settings.network)
        devices = detect_devices(ctx.settings.devices, os.environ) if ctx.runner.name == "local" else ()
        if devices:
            folder = gitstate.run_folder(ctx.repo) if ctx.repo is not None else root / ".autoresearch"
            ctx.leases = Leases(folder / "devices", devices)
        if ledger_path is not None:
            ctx.open_ledger(ledger_path)
        elif ctx.repo is None:
            ctx.note += "; nothing is recorded (set --autoresearch-ledger to keep a ledger)"

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._unselected += len(items)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """After every other plugin's selection and order: tests outside ``requires`` deselected,
        then the benchmarks last, so a wrong change fails before any expensive run."""
        bench = [i for i in items if spec_key in i.stash]
        if not bench:
            return
        patterns = [*self.ctx.settings.requires, *(p for i in bench for p in i.stash[spec_key].requires)]
        needed, outside = correctness.required((i.nodeid for i in items if spec_key not in i.stash), patterns)
        if outside:
            drop = set(outside)
            unselected = self._unselected
            config.hook.pytest_deselected(items=[i for i in items if i.nodeid in drop])
            self._unselected = unselected
            items[:] = [i for i in items if i.nodeid not in drop]
        items[:] = correctness.benchmarks_last(items, lambda i: spec_key in i.stash)
        self._specs = {i.nodeid: i.stash[spec_key] for i in bench}
        known = self.ctx.correctness
        known.benchmarks, known.required, known.deselected = frozenset(i.nodeid for i in bench), tuple(needed), len(outside)

    def pytest_report_collectionfinish(self, config: pytest.Config) -> list[str]:
        """Under the collection line, the order and what a keep needs; not with -q, where every
        line that starts ``autoresearch:`` is a verdict an agent greps."""
        header = self.ctx.correctness.header(self._unselected)
        return [header] if header and config.get_verbosity() >= 0 else []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.ctx.correctness.record(report.nodeid or "(collection)", "collect", True)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every test's result, for what a keep needs; every benchmark's outcome, for the reports."""
        self.ctx.correctness.record(report.nodeid, report.when, report.failed)
        for name, value in report.user_properties:
            if name == PROPERTY and report.when == "call":
                self.outcomes.append(Outcome.from_json(str(value)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """When every result is in (on the xdist controller too), before anything is reported:
        a keep in a red session becomes a discard, in the ledger and in every report."""
        if hasattr(session.config, "workerinput"):
            return
        red = session.testsfailed > 0 or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if red:
            self.outcomes = [self._demoted(o, int(exitstatus)) if o.green else o for o in self.outcomes]
            judged = {o.test for o in self.outcomes}
            if self.ctx.correctness.failures():  # e.g. -x stopped the session before the benchmarks
                self.outcomes += [self._not_reached(t, s) for t, s in self._specs.items()
                                  if t not in judged and t not in self.ctx.correctness.reported]

    def _not_reached(self, test: str, spec: Spec) -> Outcome:
        """A benchmark the session never ran because tests failed first: recorded as such."""
        failed = self.ctx.correctness.failures(besides=test)
        reason = f"not run: {correctness.failed_text(failed)}"
        entry = self.ctx.entry(test, spec, uuid.uuid4().hex[:12], "discard",
                               extra={"reason": reason, "failed": failed[:correctness.KEPT]})
        self.ctx.append(entry)
        return Outcome(test=test, metric=spec.metric, goal=spec.goal, status="discard", value=None, reason=reason,
                       commit=self.ctx.head.short if self.ctx.head else "", identity=self.ctx.identity,
                       revert=self.ctx.revert or "", runs=(entry.run_id,), failed=tuple(failed))

    def _demoted(self, outcome: Outcome, exitstatus: int) -> Outcome:
        """A keep the rest of the session did not confirm: recorded again as a discard, with why."""
        failed = self.ctx.correctness.failures(besides=outcome.test)
        reason = correctness.failed_text(failed) if failed else f"the session exited with code {exitstatus}"
        if self.ctx.ledger is not None and outcome.runs:
            ids = set(outcome.runs)
            kept = [r for r in self.ctx.ledger.runs(("keep",), test=outcome.test) if r.run_id in ids]
            self.ctx.append(*(r.finished(status="discard", extra={**r.extra, "reason": reason, "was": "keep",
                                                                  "failed": failed[:correctness.KEPT]})
                              for r in kept))
        for run_id in outcome.runs:  # only kept artifacts are worth their disk space
            shutil.rmtree(self.ctx.logs_dir / f"{run_id}.artifact", ignore_errors=True)
        return dataclasses.replace(outcome, status="discard", reason=reason, failed=tuple(failed))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Once, outside every test timeout: the evaluation identity, the bar's lineage, the frozen files."""
        benchmarks = [i.nodeid for i in session.items if spec_key in i.stash]
        if not benchmarks:
            return
        ctx = self.ctx
        parts = {"device": identity.device()}
        whole = ""  # the frozen files hashed with their judging settings, as identities before 0.3 did
        if ctx.repo is not None and ctx.head is not None:
            parts["frozen"], whole = _frozen_digest(ctx, {i.path for i in session.items if spec_key in i.stash})
        for extra in ctx.config.hook.pytest_autoresearch_identity(config=ctx.config):
            if extra:
                parts.update({str(k): str(v) for k, v in extra.items()})
        ctx.identity_parts, ctx.surface = parts, _pytest_surface(ctx.config)
        ctx.identity, ctx.surface_digest = identity.digest(parts), identity.digest(ctx.surface)
        if ctx.ledger is not None and whole:  # an upgraded ledger goes on with the same leaderboard
            ctx.ledger.register_same(identity.digest({**parts, "frozen": whole}), ctx.identity)
        ctx.mutable_files = _mutable_files(ctx)
        if ctx.settings.isolation == sandbox.SEALED:
            ctx.seal = _seal(ctx)
        if ctx.ledger is not None and ctx.ledger.path.is_file():
            ctx.distrusted = _distrusted(ctx)
        if ctx.repo is None or ctx.head is None:
            return
        ctx.lineage = tuple(gitstate.lineage(ctx.repo, ctx.head.sha))
        marked = ctx.runs(("keep", "accepted"))
        ctx.reference = history.last_kept(marked, ctx.lineage, benchmarks)
        ctx.revert_to = history.last_kept(marked, ctx.lineage[1:], benchmarks)
        ctx.frozen_changes = guard.frozen_changes(ctx)
        guard.require_same_surface(ctx, marked, benchmarks)
        if ctx.ledger is not None:
            ctx.ledger.register_identity(ctx.identity, parts)
            ctx.ledger.register_identity(ctx.surface_digest, ctx.surface)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        """Before pytest-timeout starts its clock: lease a device (waiting does not count against
        the time limit), and the moment the limit counts from."""
        spec = item.stash.get(spec_key, None)
        if self.ctx.leases is not None and spec is not None and spec.script is not None:
            item.stash[lease_key] = self.ctx.leases.acquire(waiting(self.ctx.config, item.name, self.ctx.settings.progress_s))
        item.stash[started_key] = time.time()
        try:
            return (yield)
        finally:
            if lease_key in item.stash:
                item.stash[lease_key].release()

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> None:
        """When pytest-timeout arms a test's timer: keep its settings, so pairing can re-arm it."""
        item.stash[timer_key] = settings

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, object, object]:
        """Run the target before the body and judge after it: all in the call phase."""
        if spec_key not in pyfuncitem.stash or self.ctx.settings.calibrate:
            return (yield)
        trial = self.trial_for(pyfuncitem)
        try:
            return (yield from trial.run())
        except KeyboardInterrupt:
            if trial.outcome is not None:  # pytest stops here and reports no test: its verdict line says why
                self.outcomes.append(trial.outcome)
            raise

    def trial_for(self, item: pytest.Function) -> Trial:
        """The trial of a benchmark, made when a fixture or the call first needs it."""
        if trial_key not in item.stash:
            item.stash[trial_key] = Trial(self.ctx, item, item.stash[spec_key])
        return item.stash[trial_key]

    def close(self) -> None:
        self.ctx.release_watchdog()
        if self.ctx.kernels is not None:
            self.ctx.kernels.close()
        if self.ctx.repo is not None:
            self.ctx.repo.close()  # GitPython's git helper processes: an in-process run must not leave them


CALIBRATION = "autoresearch-calibration"


class Calibration:
    """Under ``--autoresearch-calibrate N``: each benchmark's call runs the A/A pairs instead of its
    body (there is no candidate to judge, and the body checks a run of HEAD that never happens)."""

    def __init__(self, session: AutoresearchSession) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        """In a benchmark's call phase, before pytest calls the body: the pairs, and no body."""
        if spec_key not in pyfuncitem.stash:
            return None
        self.session.trial_for(pyfuncitem).calibrate()
        return True


def _pytest_surface(config: pytest.Config) -> dict[str, str]:
    """What of pytest itself judges this run: conftests, ini file, plugins, -p and -o options."""
    conftests = [Path(p.__file__) for p in config.pluginmanager.get_plugins()
                 if isinstance(p, ModuleType) and p.__file__ and Path(p.__file__).name == "conftest.py"]
    plugins = [f"{dist.project_name}=={dist.version}" for _, dist in config.pluginmanager.list_plugin_distinfo()]
    return trust.surface(config.rootpath, conftests, config.inipath, plugins,
                         config.invocation_params.args, os.environ.get("PYTEST_ADDOPTS", ""))


def _frozen_digest(ctx: Context, test_files: set[Path]) -> tuple[str, str]:
    """The content of every frozen file at HEAD, less the settings that decide how a value is
    judged, never what it is (the ini file's judging keys, the benchmarks' judging marker
    arguments); and the same with them, as identities recorded before 0.3 hashed it."""
    assert ctx.repo is not None and ctx.head is not None and ctx.repo.working_tree_dir
    top = Path(ctx.repo.working_tree_dir).resolve()
    cuts: dict[Path, Callable[[bytes], bytes]] = {path.resolve(): identity.without_judging_arguments for path in test_files}
    if ctx.config.inipath is not None:
        cuts[ctx.config.inipath.resolve()] = identity.without_judging_keys
    blobs = gitstate.tracked_blobs(ctx.repo, ctx.head.sha, ctx.scope)
    frozen = set(gitstate.frozen([p for p, _ in blobs], ctx.settings.mutable, ctx.scope))
    whole = [(p, b) for p, b in blobs if p in frozen]
    measured = [(p, identity.measured_blob(b, (top / p).read_bytes(), cuts[top / p]) if top / p in cuts else b) for p, b in whole]
    return identity.files_digest(measured), identity.files_digest(whole)


def _distrusted(ctx: Context) -> frozenset[str]:
    """Rows the hash chain says were written by hand: left out of every verdict, said once.

    A row the plugin wrote and someone then edited or deleted cannot be left out: leaving out a
    kept row would lower the bar. Such a ledger stops the session until a person restores it.
    """
    assert ctx.ledger is not None
    report = chain.verify(ctx.ledger.path, check_logs=False)
    altered = [p for p in report.problems if p.kind in chain.ALTERED]
    if altered:
        raise pytest.UsageError(
            f"autoresearch: the ledger {ctx.ledger.path} was changed by hand ({altered[0]}): rows a verdict "
            "rests on may be altered or gone, so nothing is judged; autoresearch verify lists every change, "
            "and a person restores the ledger or moves it aside (--autoresearch-ledger) to start afresh"
        )
    forged = [p for p in report.problems if p.kind in chain.FORGED]
    if not forged:
        return frozenset()
    lines = ctx.ledger.path.read_text(encoding="utf-8", errors="replace").split("\n")
    header = lines[0].split("\t")
    at = header.index("run_id") if "run_id" in header else -1
    ids = {cells[at] for p in forged if 0 < p.line <= len(lines) and len(cells := lines[p.line - 1].split("\t")) > at >= 0}
    ctx.warn(f"{ctx.ledger.path}: rows not written by the plugin ({', '.join(f'line {p.line}: {p.kind}' for p in forged[:3])}"
             f"{', ...' if len(forged) > 3 else ''}) are left out of every verdict; autoresearch verify lists them")
    return frozenset(ids)


def _runner(settings: Settings) -> Runner:
    """The place runs execute; Ray is imported only when asked for."""
    if settings.runner == "local":
        return LocalRunner()
    try:
        from .runner.ray import RayRunner
    except ImportError:
        raise pytest.UsageError("autoresearch: --autoresearch-runner ray needs Ray: "
                                "pip install 'pytest-autoresearch[ray]'") from None
    return RayRunner(settings.ray_address)


def _require_sandbox(network: bool) -> None:
    """Sealed runs, or a usage error naming why not and the opt-out: never a silent unsealed run.

    Checked on this machine; a Ray node that cannot seal a run crashes it, saying why.
    """
    opt_out = "turn sealing off with autoresearch_isolation = none (or --autoresearch-isolation none); runs are then recorded unsealed"
    try:
        sandbox.check(network)
    except sandbox.SandboxUnavailable as exc:
        raise pytest.UsageError(f"autoresearch: cannot seal script runs: {exc}; {opt_out}") from None


def _seal(ctx: Context) -> sandbox.Sealing:
    """What every sealed run of this session may read and may not: the project's hook answers, the
    private files, and the plugin's own folders (ledger, logs, earlier runs' folders); the kernel
    service local runs reach is started here, beside the headers it lends."""
    read: list[str] = []
    hide = [str(ctx.logs_dir.parent)]
    if ctx.ledger is not None:  # with its lock and sidecars, wherever --autoresearch-ledger put it
        hide += [str(ctx.ledger.path), *(str(p) for p in ctx.ledger.path.parent.glob(f"{ctx.ledger.path.name}.*"))]
    root = ctx.config.rootpath
    hide += sorted(str(p) for pattern in ctx.settings.private for p in root.glob(pattern))
    env: dict[str, str] = {}
    for answer in ctx.config.hook.pytest_autoresearch_seal(config=ctx.config):
        if answer:
            read += [str(p) for p in answer.get("read", ())]
            hide += [str(p) for p in answer.get("hide", ())]
            env.update({str(k): str(v) for k, v in dict(answer.get("env", {})).items()})
    reporter = ctx.config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print  # "autoresearch: " starts only verdict lines
    lent = cpp_headers.lend(ctx.logs_dir.parent / "cpp-headers", ctx.compile_caches,
                            say=lambda line: say(f"sealed runs: {line}"),
                            warn=lambda message: ctx.warn(message, cpp_headers.HeadersWarning))
    if ctx.runner.name == "local":  # a Ray node's runs could not reach a socket here
        project = [str(root), *([str(ctx.repo.working_tree_dir)] if ctx.repo is not None and ctx.repo.working_tree_dir else [])]
        ctx.kernels = kernels.start(ctx.logs_dir.parent / "kernels", lent, usable_cores(), hide=project)
        read += [str(ctx.kernels.folder)] if ctx.kernels is not None else []
    return sandbox.Sealing("", read=tuple(read), hide=tuple(hide), network=ctx.settings.network, env=env, lent=lent)


def _mutable_files(ctx: Context) -> tuple[Path, ...]:
    """The files the agent may change, as they are on disk (tracked ones at HEAD, else by glob)."""
    if ctx.repo is not None and ctx.head is not None and ctx.repo.working_tree_dir:
        top = Path(ctx.repo.working_tree_dir)
        paths = [p for p, _ in gitstate.tracked_blobs(ctx.repo, ctx.head.sha, ctx.scope)]
        return tuple(top / p for p in paths if gitstate.matches_any(p, ctx.settings.mutable, ctx.scope))
    root = ctx.config.rootpath
    return tuple(sorted({p for pattern in ctx.settings.mutable for p in root.rglob(pattern) if p.is_file()}))
