"""Settings resolved once per session, and the validated arguments of the marker.

Command line beats ini beats default; the marker overrides per test. Every validator takes
``where`` so an error names the place the bad value came from and what to write instead.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .runner.sandbox import ISOLATIONS, SEALED, UNSEALED
from .verdict import GOALS

T = TypeVar("T")


def positive_float(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a positive number such as 600, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: must be a positive number, got {text!r}")
    return value


def calibration_pairs(text: str, where: str) -> int:
    """How many A/A pairs a calibration runs: a whole number, at least 2 (a spread needs two)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{where}: expected a whole number of pairs such as 8, got {text!r}") from None
    if value < 2:
        raise ValueError(f"{where}: a calibration needs at least 2 pairs, got {value}")
    return value


def non_negative_float(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number such as 0.001, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: must be a finite number >= 0, got {text!r}")
    return value


AUTO = "auto"
RUNNERS = ("local", "ray")
DEFAULT_ISOLATION = SEALED if sys.platform.startswith("linux") else UNSEALED  # macOS: no sandbox yet
BENCHMARK_STATS = ("min", "median", "mean")  # statistics of a pytest-benchmark result that can be judged
DEFAULT_NOISE_K = 2.0  # standard errors an improvement must exceed under min_delta = auto


def min_delta_value(text: str, where: str) -> float | str:
    """A non-negative number, or "auto" for k times the measured noise floor."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return non_negative_float(text, where)
    except ValueError:
        raise ValueError(f'{where}: expected a number such as 0.001 or "auto", got {text!r}') from None


def isolation_value(text: str, where: str) -> str:
    """How script runs are isolated: one of :data:`ISOLATIONS`."""
    if text not in ISOLATIONS:
        raise ValueError(f"{where}: expected one of {', '.join(ISOLATIONS)}, got {text!r}")
    return text


def switch(text: str, where: str) -> bool:
    """``on`` or ``off`` (also true/false, yes/no, 1/0)."""
    word = text.strip().lower()
    if word in ("on", "true", "yes", "1"):
        return True
    if word in ("off", "false", "no", "0"):
        return False
    raise ValueError(f"{where}: expected on or off, got {text!r}")


def benchmark_stat(text: str, where: str) -> str | None:
    """The pytest-benchmark statistic to judge (min, median or mean), or None when empty."""
    stat = text.strip().lower()
    if stat and stat not in BENCHMARK_STATS:
        raise ValueError(f"{where}: expected one of {', '.join(BENCHMARK_STATS)}, got {text!r}")
    return stat or None


def cli_type(validator: Callable[[str, str], T], option: str) -> Callable[[str], T]:
    """An argparse ``type=`` that reports a bad command-line value as a usage error."""

    def convert(text: str) -> T:
        try:
            return validator(text, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option  # argparse names the type in its message
    return convert


@dataclass(frozen=True)
class Settings:
    """The session's settings: command line, else ini, else default."""

    ledger: Path | None
    timeout: float
    mutable: tuple[str, ...]
    min_delta: float | str
    noise_k: float
    accept_frozen: bool
    json_path: Path | None
    progress_s: float
    repeat: int  # runs per commit: exactly this many, or at most this many when adaptive
    devices: str | None = None  # ini autoresearch_devices, as written: leases.detect_devices reads it
    runner: str = "local"
    ray_address: str | None = None
    adaptive_repeat: bool = False  # stop repeating once the verdict is clear (adaptive.next_step)
    requires: tuple[str, ...] = ()  # tests a keep needs (node ids or globs); empty: every selected test
    isolation: str = UNSEALED  # sandbox: each script run sealed (runner/sandbox.py); none: unsealed
    network: bool = False  # a sealed run may use the network
    private: tuple[str, ...] = ()  # files (globs from the rootdir) a sealed target may not read, a scorer may
    benchmark: str | None = None  # judge every pytest-benchmark test by this statistic (min, median, mean)
    paired: str = "auto"  # re-measure the bar beside the candidate: auto (verdicts in doubt), always, never
    adjust: bool = True  # correct every draw for the machine load it ran under (covariate.py)
    calibrate: int = 0  # A/A pairs of the reference commit to run instead of judging HEAD (autoresearch calibrate)


@dataclass(frozen=True)
class Spec:
    """The ``@pytest.mark.autoresearch(...)`` arguments of one test, validated."""

    metric: str
    goal: str = "min"
    threshold: float | None = None
    min_delta: float | str | None = None
    script: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    scorer: str | None = None  # "module:function": frozen code that scores the artifact
    artifact: str | None = None  # the file name the target writes its artifact to
    max_seconds: float | None = None  # the target's wall time allowed, measured from outside
    requires: tuple[str, ...] = ()  # tests this benchmark's keep needs, on top of autoresearch_requires
    data_server: str | None = None  # "module:function": frozen code that serves the training batches
    budget: float | None = None  # training seconds, on the data server's clock
    export_allowance: float | None = None  # seconds after the budget until the target exits (default: the server's)
    protected: bool = False  # in a benchmark suite: must not regress beyond its own noise
    benchmark: str | None = None  # the value is this statistic of the test's pytest-benchmark fixture


MARKER_SIGNATURE = (
    'autoresearch(metric, goal="min", *, threshold=None, min_delta=None|"auto", script=None, '
    'args=(), env=None, scorer=None, artifact=None, max_seconds=None, requires=(), data_server=None, budget=None, '
    'export_allowance=None, protected=False)'
)
ARGUMENTS = frozenset({"metric", "goal", "threshold", "min_delta", "script", "args", "env", "scorer",
                       "artifact", "max_seconds", "requires", "data_server", "budget", "export_allowance", "protected"})
BENCHMARK_METRIC = ""  # the metric of a marker without one on a pytest-benchmark test: the chosen statistic


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, e.g. {name}=1.25, not {value!r}")
    return float(value)


def _flag(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be True or False, not {value!r}")
    return value


def parse_marker(args: Sequence[Any], kwargs: Mapping[str, Any], where: str, benchmark: bool = False) -> Spec:
    """Validate marker arguments; ValueError says what to write instead.

    On a test using pytest-benchmark's fixture (``benchmark``) the metric may be left out: it is
    the statistic chosen with --autoresearch-benchmark.
    """
    hint = f"write @pytest.mark.{MARKER_SIGNATURE}"
    names = ("metric", "goal")
    if len(args) > len(names):
        raise ValueError(f"{where}: too many positional arguments; {hint}")
    given = dict(zip(names, args))
    for key in given.keys() & kwargs.keys():
        raise ValueError(f"{where}: {key} given twice; {hint}")
    given.update(kwargs)
    unknown = sorted(set(given) - ARGUMENTS)
    if unknown:
        raise ValueError(f"{where}: unknown argument(s) {', '.join(unknown)}; {hint}")
    metric = given.get("metric", BENCHMARK_METRIC if benchmark else None)
    if not isinstance(metric, str) or not (metric.strip() or benchmark):
        raise ValueError(f'{where}: a metric name is required, e.g. metric="val_bpb"; {hint}')
    goal = given.get("goal", "min")
    if goal not in GOALS:
        raise ValueError(f'{where}: goal must be "min" or "max", not {goal!r}')
    threshold = given.get("threshold")
    min_delta = given.get("min_delta")
    script = given.get("script")
    if script is not None and (not isinstance(script, str) or not script):
        raise ValueError(f'{where}: script must be a path string such as script="train.py"')
    args_ = given.get("args", ())
    if isinstance(args_, str) or not all(isinstance(a, str) for a in args_):
        raise ValueError(f'{where}: args must be a list of strings, e.g. args=["--fast"]')
    env = given.get("env")
    if env is not None and not (
        isinstance(env, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise ValueError(f'{where}: env must map strings to strings, e.g. env={{"SEED": "1"}}')
    scorer, artifact, max_seconds = given.get("scorer"), given.get("artifact"), given.get("max_seconds")
    if scorer is not None and (not isinstance(scorer, str) or not all(scorer.partition(":")[::2])):
        raise ValueError(f'{where}: scorer must be "module:function", e.g. scorer="pytest_autoresearch.lm.scorer:score"')
    if artifact is not None and (not isinstance(artifact, str) or not artifact or "/" in artifact or artifact in (".", "..")):
        raise ValueError(f'{where}: artifact must be a file name such as artifact="model.pt2"')
    if (scorer is None) != (artifact is None) or (scorer is not None and script is None):
        raise ValueError(f'{where}: a scorer reads the artifact a script writes: give script=, scorer= and '
                         'artifact= together, e.g. script="train.py", scorer="mymod:score", artifact="model.pt2"')
    if max_seconds is not None and (_number(max_seconds, "max_seconds", where) <= 0 or script is None):
        raise ValueError(f"{where}: max_seconds limits a script's wall time: a positive number with script=")
    requires = given.get("requires", ())
    if not isinstance(requires, (list, tuple)) or not all(isinstance(r, str) and r.strip() for r in requires):
        raise ValueError(f'{where}: requires must be a list of test ids or globs, e.g. '
                         f'requires=["tests/test_recipes.py::test_factor*"]')
    data_server, budget, allowance = given.get("data_server"), given.get("budget"), given.get("export_allowance")
    if data_server is not None and (not isinstance(data_server, str) or not all(data_server.partition(":")[::2])):
        raise ValueError(f'{where}: data_server must be "module:function", '
                         'e.g. data_server="pytest_autoresearch.lm.dataloader:serve"')
    if (data_server is None) != (budget is None) or (data_server is not None and script is None):
        raise ValueError(f'{where}: a data server keeps a script\'s training budget: give script=, data_server= and '
                         'budget= together, e.g. data_server="pytest_autoresearch.lm.dataloader:serve", budget=300')
    if budget is not None and _number(budget, "budget", where) <= 0:
        raise ValueError(f"{where}: budget is the training time in seconds: a positive number, not {budget!r}")
    if allowance is not None and (_number(allowance, "export_allowance", where) < 0 or data_server is None):
        raise ValueError(f"{where}: export_allowance is the seconds after budget= until the script exits: "
                         "a number >= 0, with data_server= and budget=")
    spec = Spec(
        metric=metric,
        goal=goal,
        threshold=None if threshold is None else _number(threshold, "threshold", where),
        min_delta=(None if min_delta is None else AUTO if min_delta == AUTO
                   else _number(min_delta, "min_delta", where)),
        script=script,
        args=tuple(args_),
        env=env,
        scorer=scorer,
        artifact=artifact,
        max_seconds=None if max_seconds is None else float(max_seconds),
        requires=tuple(r.strip() for r in requires),
        data_server=data_server,
        budget=None if budget is None else float(budget),
        export_allowance=None if allowance is None else float(allowance),
        protected=_flag(given.get("protected", False), "protected", where),
    )
    if isinstance(spec.min_delta, float) and spec.min_delta < 0:
        raise ValueError(f"{where}: min_delta must be >= 0, not {min_delta!r}")
    return spec


def resolve(config: pytest.Config) -> Settings:
    """CLI beats ini beats default; a bad ini value is a usage error naming the key."""

    def pick(option: str, validator: Callable[[str, str], T]) -> T:
        value = config.getoption(option)
        if value is not None:
            return value  # type: ignore[no-any-return]  # already validated by the option's type=
        try:
            return validator(str(config.getini(option)).strip(), f"ini {option}")
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    ledger = config.getoption("autoresearch_ledger") or config.getini("autoresearch_ledger")
    json_path = config.getoption("autoresearch_json")
    from .adaptive import parse_repeat  # here, not at the top: adaptive reads DEFAULT_NOISE_K from this module
    from .paired import parse_mode

    mutable = tuple(p for p in config.getini("autoresearch_mutable") if p.strip())
    if not mutable:
        raise pytest.UsageError("ini autoresearch_mutable: list at least one file, e.g. train.py")
    plan = pick("autoresearch_repeat", parse_repeat)
    return Settings(
        ledger=config.rootpath / ledger if ledger else None,
        timeout=pick("autoresearch_timeout", positive_float),
        mutable=mutable,
        min_delta=pick("autoresearch_min_delta", min_delta_value),
        noise_k=pick("autoresearch_noise_k", positive_float),
        accept_frozen=config.getoption("autoresearch_accept_frozen"),
        json_path=Path(json_path).resolve() if json_path else None,
        progress_s=pick("autoresearch_progress", non_negative_float),
        repeat=plan.max_runs,
        adaptive_repeat=plan.adaptive,
        paired=pick("autoresearch_paired", parse_mode),
        adjust=pick("autoresearch_adjust", switch),
        calibrate=config.getoption("autoresearch_calibrate") or 0,
        devices=str(config.getini("autoresearch_devices")).strip() or None,
        runner=_runner(config),
        requires=tuple(p.strip() for p in config.getini("autoresearch_requires") if p.strip()),
        isolation=pick("autoresearch_isolation", isolation_value),
        network=bool(config.getini("autoresearch_network")),
        private=tuple(p for p in config.getini("autoresearch_private") if p.strip()),
        benchmark=pick("autoresearch_benchmark", benchmark_stat),
        ray_address=config.getoption("autoresearch_ray_address") or str(config.getini("autoresearch_ray_address")).strip() or None,
    )


def _runner(config: pytest.Config) -> str:
    runner = config.getoption("autoresearch_runner") or str(config.getini("autoresearch_runner")).strip() or "local"
    if runner not in RUNNERS:
        raise pytest.UsageError(f"ini autoresearch_runner: expected one of {', '.join(RUNNERS)}, got {runner!r}")
    return str(runner)
