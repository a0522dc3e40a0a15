"""The pytest face of autoresearch: options, the marker, fixtures and reports.

Marked tests are benchmarks. Without ``--autoresearch`` they are skipped; with it, each
one is run, judged against its threshold and the best kept result on the branch, and
recorded in the ledger. The per-session state lives in
:class:`pytest_autoresearch.session.AutoresearchSession`; each benchmark is a
:class:`pytest_autoresearch.trial.Trial`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

import os

from . import hooks, settings
from .adaptive import parse_repeat
from .benchmark_suite import FIXTURE, BenchmarkSuite, measures_itself
from .experiment import Experiment
from .fresh_draw import DRAW_ENV
from .paired import parse_mode
from .session import CALIBRATION, AutoresearchSession, Calibration, spec_key
from .settings import (BENCHMARK_METRIC, BENCHMARK_STATS, DEFAULT_ISOLATION, DEFAULT_NOISE_K, MARKER_SIGNATURE, RUNNERS,
                       benchmark_stat, calibration_pairs, cli_type, isolation_value, min_delta_value,
                       non_negative_float, parse_marker, positive_float, switch)
from .sources import Recorder
from .terminal import VerdictReporter

session_key = pytest.StashKey[AutoresearchSession]()
reporter_key = pytest.StashKey[VerdictReporter]()

DEFAULT_TIMEOUT = "600"
DEFAULT_MUTABLE = ["train.py"]
ENABLE_HELP = "Run tests marked @pytest.mark.autoresearch and judge them against the branch's best (default: skip them)"
LEDGER_HELP = (
    "Results ledger (TSV) to read and append to; relative paths are from the rootdir "
    "(default: autoresearch/ledger.tsv under the git common dir, untouched by reset/clean/stash)"
)
TIMEOUT_HELP = (
    "Time limit in seconds for each benchmark run (times --autoresearch-repeat), enforced by "
    "pytest-timeout unless the test has its own timeout marker (default: 600)"
)
MUTABLE_HELP = "Files (globs, relative to the rootdir) the agent may change between runs; any other change is refused (default: train.py)"
MIN_DELTA_HELP = (
    "Improvement over the best needed to keep a result, or 'auto' for k times the noise floor "
    "once one is measured (strict until then); 0 is always strict; the marker's min_delta "
    "overrides it (default: auto)"
)
NOISE_K_HELP = "How many standard errors of noise an improvement must exceed under min_delta auto (default: 2)"
ACCEPT_HELP = (
    "A person accepts the changes to frozen files or to the pytest surface since the last kept result: "
    "recorded in the ledger (what, who, when, host); a fresh leaderboard only if how values are measured changed"
)
JSON_HELP = "Write this session's verdicts as JSON to PATH (for CI)"
PROGRESS_HELP = "Seconds between progress lines while a script runs when output is not a terminal; 0 turns them off (default: 30)"
RUNNER_HELP = (
    "Where each script run executes: local (a process group here) or ray (a Ray task with one GPU, "
    "or one CPU on a cluster without GPUs, running the committed tree; needs pytest-autoresearch[ray]) "
    "(default: local)"
)
RAY_ADDRESS_HELP = "The Ray cluster to run on with --autoresearch-runner ray (default: RAY_ADDRESS, else a local cluster)"
DEVICES_HELP = (
    "Devices a script benchmark leases one at a time, e.g. 0,1,2,3 (its run sees only that one as "
    "CUDA_VISIBLE_DEVICES); 'none' turns leasing off (default: CUDA_VISIBLE_DEVICES, else nvidia-smi -L, "
    "else none)"
)
REQUIRES_HELP = (
    "Tests a keep needs to pass, as node ids or globs (e.g. tests/test_recipes.py::test_factor*); under "
    "--autoresearch the other tests are deselected, since every test that runs must pass for a keep "
    "(default: every selected test)"
)
ISOLATION_HELP = (
    "How each script run is isolated: sandbox (a Landlock seal: it reads only its work tree, the Python "
    "installation and the data it is served, writes only a fresh run folder, no network) or none (unsealed) "
    f"(default: {DEFAULT_ISOLATION} on this platform)"
)
NETWORK_HELP = "Let sealed script runs use the network, TCP and UDP (default: false, no network)"
PRIVATE_HELP = (
    "Files (globs, relative to the rootdir) a sealed script may not read but its scorer may, e.g. "
    "answers.json (default: none)"
)
BENCHMARK_HELP = (
    "Judge every test using pytest-benchmark's benchmark fixture by this statistic of its timings "
    f"({', '.join(BENCHMARK_STATS)}; seconds, lower is better), the suite kept as one; needs "
    "pytest-autoresearch[benchmark] (default: off)"
)
REPEAT_HELP = (
    "Run each benchmark N times on this commit, record every run and judge their mean; "
    "measures the noise floor. 'auto' or 'auto:N' runs again only while the verdict is in "
    "doubt, at most N times (default: 1; auto means auto:5)"
)
PAIRED_HELP = (
    "Run the bar commit again beside the candidate, alternating in a random order, and judge the "
    "paired differences: auto (when the verdict is in doubt: within the noise of the bar, or the bar "
    "measured on another host or device or over 2 h ago), always, or never; pairs as many as "
    "--autoresearch-repeat, at least 3 (default: auto)"
)
ADJUST_HELP = (
    "Correct each draw for the machine load it ran under (the speed of a fixed workload just before and "
    "after the run, measured outside the target) once draws of the same commit show a stable effect; the "
    "ledger keeps the raw value: on or off (default: on)"
)
CALIBRATE_HELP = (
    "Instead of judging HEAD, run the branch's best commit (else the last judged one) against itself "
    "in N pairs, in a random order, each draw recorded as that commit's; autoresearch calibrate runs this "
    "and reports the noise (default: off)"
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autoresearch", "autoresearch: benchmarks judged against the branch's best")
    group.addoption("--autoresearch", action="store_true", default=False, help=ENABLE_HELP)
    group.addoption("--autoresearch-ledger", metavar="PATH", help=LEDGER_HELP)
    group.addoption(
        "--autoresearch-timeout", metavar="SECONDS", type=cli_type(positive_float, "--autoresearch-timeout"),
        help=TIMEOUT_HELP,
    )
    group.addoption(
        "--autoresearch-min-delta", metavar="DELTA",
        type=cli_type(min_delta_value, "--autoresearch-min-delta"), help=MIN_DELTA_HELP,
    )
    group.addoption(
        "--autoresearch-noise-k", metavar="K", type=cli_type(positive_float, "--autoresearch-noise-k"),
        help=NOISE_K_HELP,
    )
    group.addoption("--autoresearch-accept-frozen", action="store_true", default=False, help=ACCEPT_HELP)
    group.addoption("--autoresearch-json", metavar="PATH", help=JSON_HELP)
    group.addoption(
        "--autoresearch-progress", metavar="SECONDS",
        type=cli_type(non_negative_float, "--autoresearch-progress"), help=PROGRESS_HELP,
    )
    group.addoption(
        "--autoresearch-repeat", metavar="N", type=cli_type(parse_repeat, "--autoresearch-repeat"),
        help=REPEAT_HELP,
    )
    group.addoption(
        "--autoresearch-benchmark", metavar="STAT", type=cli_type(benchmark_stat, "--autoresearch-benchmark"),
        help=BENCHMARK_HELP,
    )
    group.addoption(
        "--autoresearch-paired", metavar="WHEN", type=cli_type(parse_mode, "--autoresearch-paired"),
        help=PAIRED_HELP,
    )
    group.addoption(
        "--autoresearch-adjust", metavar="ON_OFF", type=cli_type(switch, "--autoresearch-adjust"),
        help=ADJUST_HELP,
    )
    group.addoption(
        "--autoresearch-calibrate", metavar="N", type=cli_type(calibration_pairs, "--autoresearch-calibrate"),
        help=CALIBRATE_HELP,
    )
    group.addoption("--autoresearch-runner", metavar="NAME", choices=RUNNERS, help=RUNNER_HELP)
    group.addoption("--autoresearch-ray-address", metavar="ADDRESS", help=RAY_ADDRESS_HELP)
    group.addoption(
        "--autoresearch-isolation", metavar="NAME", type=cli_type(isolation_value, "--autoresearch-isolation"),
        help=ISOLATION_HELP,
    )
    parser.addini("autoresearch_ledger", LEDGER_HELP)
    parser.addini("autoresearch_timeout", TIMEOUT_HELP, default=DEFAULT_TIMEOUT)
    parser.addini("autoresearch_mutable", MUTABLE_HELP, type="linelist", default=DEFAULT_MUTABLE)
    parser.addini("autoresearch_min_delta", MIN_DELTA_HELP, default="auto")
    parser.addini("autoresearch_noise_k", NOISE_K_HELP, default=str(DEFAULT_NOISE_K))
    parser.addini("autoresearch_progress", PROGRESS_HELP, default="30")
    parser.addini("autoresearch_repeat", REPEAT_HELP, default="1")
    parser.addini("autoresearch_paired", PAIRED_HELP, default="auto")
    parser.addini("autoresearch_adjust", ADJUST_HELP, default="on")
    parser.addini("autoresearch_requires", REQUIRES_HELP, type="linelist", default=[])
    parser.addini("autoresearch_devices", DEVICES_HELP)
    parser.addini("autoresearch_benchmark", BENCHMARK_HELP)
    parser.addini("autoresearch_runner", RUNNER_HELP, default="local")
    parser.addini("autoresearch_ray_address", RAY_ADDRESS_HELP)
    parser.addini("autoresearch_isolation", ISOLATION_HELP, default=DEFAULT_ISOLATION)
    parser.addini("autoresearch_network", NETWORK_HELP, type="bool", default=False)
    parser.addini("autoresearch_private", PRIVATE_HELP, type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER_SIGNATURE}: a benchmark of `metric`, judged against `threshold` and the best "
        "kept result on the branch; runs only with --autoresearch",
    )
    if config.getoption("autoresearch") and not os.environ.get(DRAW_ENV):  # not in a benchmark's repeat
        session = AutoresearchSession(config, settings.resolve(config))
        reporter = VerdictReporter(config, session.ctx.settings, lambda: session.ctx.note,
                                   lambda: session.outcomes, session.ctx.correctness.failures)
        if session.ctx.settings.benchmark is not None:
            config.pluginmanager.register(BenchmarkSuite(config, session, reporter), "autoresearch-benchmark-suite")
        config.stash[session_key] = session
        config.stash[reporter_key] = reporter
        config.pluginmanager.register(session, "autoresearch-session")
        config.pluginmanager.register(reporter, "autoresearch-reporter")
        if session.ctx.settings.calibrate:
            config.pluginmanager.register(Calibration(session), CALIBRATION)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()
        config.pluginmanager.unregister(session)
        config.pluginmanager.unregister(config.stash[reporter_key])
        calibration = config.pluginmanager.get_plugin(CALIBRATION)
        if calibration is not None:
            config.pluginmanager.unregister(calibration)
        suite = config.pluginmanager.get_plugin("autoresearch-benchmark-suite")
        if suite is not None:
            config.pluginmanager.unregister(suite)
        del config.stash[session_key]
        del config.stash[reporter_key]


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Validate marker arguments as tests are collected: a bad marker is a collection error."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function):
            mark = item.get_closest_marker("autoresearch")
            if mark is not None:
                try:
                    item.stash[spec_key] = parse_marker(mark.args, mark.kwargs, f"marker on {item.name}",
                                                        benchmark=FIXTURE in item.fixturenames)
                except ValueError as exc:
                    raise collector.CollectError(str(exc)) from None
    return result


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip benchmarks unless --autoresearch (a pytest-benchmark test stays the ordinary test it is);
    otherwise give them the autoresearch time limit."""
    session = config.stash.get(session_key, None)
    for item in items:
        if spec_key not in item.stash:
            continue
        if session is None:
            if not measures_itself(item):
                item.add_marker(pytest.mark.skip(reason="autoresearch benchmark: run with pytest --autoresearch"))
            continue
        if item.stash[spec_key].metric == BENCHMARK_METRIC:
            raise pytest.UsageError(f"autoresearch: {item.nodeid} is a pytest-benchmark test marked without a metric: "
                                    "choose the statistic to judge with --autoresearch-benchmark median "
                                    "(or ini autoresearch_benchmark = median; also min, mean)")
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(session.ctx.settings.timeout * session.ctx.settings.repeat))


@pytest.fixture
def experiment(request: pytest.FixtureRequest) -> Experiment:
    """The marker's ``script``, run by the plugin before the test body; read its metrics here."""
    return _session_for(request, "experiment").trial_for(request.node).make_experiment()


@pytest.fixture
def autoresearch(request: pytest.FixtureRequest) -> Recorder:
    """Record a value measured in-process: ``autoresearch.record(value, **extra)``."""
    return _session_for(request, "autoresearch").trial_for(request.node).make_recorder()


def _session_for(request: pytest.FixtureRequest, fixture: str) -> AutoresearchSession:
    if not isinstance(request.node, pytest.Function) or spec_key not in request.node.stash:
        pytest.fail(
            f"the {fixture} fixture belongs to benchmarks: mark the test with "
            f"@pytest.mark.{MARKER_SIGNATURE}",
            pytrace=False,
        )
    session = request.config.stash.get(session_key, None)
    if session is None:
        pytest.fail(f"the {fixture} fixture needs pytest --autoresearch", pytrace=False)
    return session
