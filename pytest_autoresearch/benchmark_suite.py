"""A pytest-benchmark suite as the target: which tests are its benchmarks, what must hold before
anything runs, and the suite's verdict at the end of the session.

Registered beside the session when ``--autoresearch-benchmark STAT`` (or ini
``autoresearch_benchmark``) is given. Every test using pytest-benchmark's ``benchmark`` fixture is
judged by that statistic, no marker needed; each is measured by its trial (:mod:`.trial`: one
pytest process per draw), and the suite is kept or discarded as one (:mod:`.suite`): every
member's ledger row carries the suite's verdict.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import replace
from typing import Any

import pytest

from . import bar, history, suite
from .fresh_draw import forwarded, split_options
from .outcome import BASELINE_FAILED, INTERRUPTED, Outcome
from .session import AutoresearchSession, spec_key, trial_key
from .settings import AUTO, Spec
from .terminal import VerdictReporter
from .trial import Trial

FIXTURE = "benchmark"


def measures_itself(item: pytest.Item) -> bool:
    """Whether a test is a pytest-benchmark test: it uses the fixture and runs no script."""
    spec = item.stash.get(spec_key, None)
    return FIXTURE in getattr(item, "fixturenames", ()) and (spec is None or spec.script is None)


def check_usable(config: pytest.Config) -> None:
    """Before anything runs: every setting under which pytest-benchmark measures nothing judgeable."""
    fix = "--autoresearch-benchmark judges pytest-benchmark's statistics"
    if not config.pluginmanager.has_plugin("benchmark"):
        raise pytest.UsageError(f"autoresearch: {fix}, and pytest-benchmark is not installed (or disabled with "
                                "-p no:benchmark): pip install 'pytest-autoresearch[benchmark]'")
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        raise pytest.UsageError(f"autoresearch: {fix}, and --benchmark-disable measures nothing: remove it "
                                "(or add --benchmark-enable)")
    split = split_options(config.invocation_params.args)
    if split:
        raise pytest.UsageError(f"autoresearch: {fix}, measured the same way in every repeat's fresh pytest "
                                f"process: write {split[0]} and its value as one word ({split[0]}=VALUE), or put "
                                "it in the ini's addopts")
    if config.getoption("benchmark_skip") and not config.getoption("benchmark_only"):
        raise pytest.UsageError(f"autoresearch: {fix}, and --benchmark-skip skips every benchmark: remove it")
    if config.getoption("dist", "no") != "no" or config.getoption("numprocesses", None) or os.environ.get("PYTEST_XDIST_WORKER"):
        raise pytest.UsageError(f"autoresearch: {fix}, and pytest-benchmark turns itself off under xdist: "
                                "run without -n (add -p no:xdist, or -n 0)")
    if config.pluginmanager.has_plugin("codspeed") and (config.getoption("codspeed", False) or os.environ.get("CODSPEED_ENV")):
        raise pytest.UsageError(f"autoresearch: {fix}, and pytest-codspeed is active, which takes the benchmark "
                                "fixture over: run without --codspeed (and without CODSPEED_ENV)")


class BenchmarkSuite:
    """The plugin of a pytest-benchmark suite under ``--autoresearch``."""

    def __init__(self, config: pytest.Config, session: AutoresearchSession, reporter: VerdictReporter) -> None:
        check_usable(config)
        self.config, self.session, self.reporter = config, session, reporter
        stat = session.ctx.settings.benchmark
        assert stat is not None
        self.stat: str = stat

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Every pytest-benchmark test is a benchmark of the statistic; a marker adds its limits."""
        for item in items:
            if measures_itself(item):
                marked = item.stash.get(spec_key, None)
                spec = Spec(metric=self.stat) if marked is None else replace(marked, metric=self.stat, goal="min")
                item.stash[spec_key] = replace(spec, benchmark=self.stat)

    def pytest_autoresearch_identity(self, config: pytest.Config) -> dict[str, str]:
        """pytest-benchmark's calibration options decide what a value means."""
        return {"benchmark": " ".join([self.stat, *forwarded(config.invocation_params.args)])}

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After the last test, before the reports: judge the suite and complete its members' rows."""
        trials = [t for item in session.items if (t := item.stash.get(trial_key, None)) and t.spec.benchmark]
        pending = [t for t in trials if t.pending is not None]
        if not trials:
            return
        ctx = self.session.ctx
        failed = [t.item.nodeid for t in trials if t.outcome is not None]
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        with ctx.locked():
            judged = {t: bar.judge(ctx, t.item.nodeid, t.spec, [d.value for d in t.draws if d.value is not None])
                      for t in pending}
            if interrupted or failed or session.testsfailed:
                why = ("interrupted before the suite's verdict" if interrupted else
                       f"the suite is not green ({failed[0] if failed else f'{session.testsfailed} failed'}): "
                       "a benchmark's value counts only when every test passed")
                verdict = suite.SuiteVerdict(False, why)
            else:
                beyond_noise = ctx.settings.min_delta == AUTO
                verdict = suite.judge([self._member(t, judged[t]) for t in pending], ctx.settings.noise_k, beyond_noise)
                verdict = replace(verdict, unpaired=suite.unpaired(verdict, ctx.settings.paired, ctx.settings.noise_k,
                                                                   beyond_noise))
            summary = suite.Summary(uuid.uuid4().hex[:12], INTERRUPTED if interrupted else verdict.status, self.stat,
                                    len(trials), ctx.head.short if ctx.head else "", verdict,
                                    tuple(_ratio(t.item.nodeid, judged[t]) for t in pending))
            outcomes = [self._complete(t, judged[t], summary) for t in pending]
        self.session.outcomes.extend(outcomes)
        undo = f"revert: {ctx.revert}" if ctx.revert else f"fix: {BASELINE_FAILED}" if ctx.head else ""
        revert = [undo] if undo and not verdict.keep and not interrupted else []
        self.reporter.lines.append(summary.line(revert))
        self.reporter.suite = summary.to_json()
        if not verdict.keep and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _member(self, trial: Trial, judged: bar.Judged) -> suite.Member:
        ctx, spec, best = self.session.ctx, trial.spec, judged.verdict.best
        kept = ctx.head is not None and history.kept_at(
            ctx.runs(("keep",), test=trial.item.nodeid, metric=spec.metric, identity=ctx.identity), ctx.head.sha)
        return suite.Member(trial.item.nodeid, judged.value, best.value if best else None, judged.sigma,
                            spec.threshold, spec.protected, judged.min_delta, kept)

    def _complete(self, trial: Trial, judged: bar.Judged, summary: suite.Summary) -> Outcome:
        """A member's rows completed with the suite's verdict: every row says which suite verdict it
        belongs to and what it said, so the reports read the suite back from any member (history.suites)."""
        verdict, ratio = summary.verdict, _ratio(trial.item.nodeid, judged).ratio
        extra: dict[str, Any] = {"suite": f"{verdict.status} of {summary.size}", "suite_id": summary.id}
        # the geomean and its sigma unrounded: the reports' suite line is then the plugin's to the digit
        facts = {"suite_geomean": verdict.geomean, "suite_sigma": verdict.sigma,
                 "ratio": None if ratio is None else round(ratio, 6)}
        extra.update({k: v for k, v in facts.items() if v is not None and math.isfinite(v)})
        said = {"suite_regressed": verdict.regressed, "suite_paired": verdict.unpaired}
        extra.update({k: v for k, v in said.items() if v})
        reason = f"suite: {verdict.reason}" + (f" (this benchmark x{ratio:.3f})" if ratio is not None else "")
        return trial.complete(summary.status, reason, judged, extra)


def _ratio(test: str, judged: bar.Judged) -> suite.Ratio:
    best = judged.verdict.best
    ratio = judged.value / best.value if best and best.value else None
    return suite.Ratio(test, judged.value, best.value if best else None, ratio)
