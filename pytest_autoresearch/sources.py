"""Where a benchmark's value comes from: the value sources, asked in order for each draw.

A frozen scorer reading the target's artifact, a value recorded in-process, the target
script's printed output, a fixture named like the metric, a pytest-benchmark fixture's statistic. Adding a source is one class here
and one line in :func:`sources_for`; the bar, the ledger and the reports never see which
source spoke.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from .experiment import Experiment
from .scoring import ScorerProcess, ScoringError
from .settings import Spec


class Refused(Exception):
    """The frozen scorer rejected the artifact: the reason makes the run red."""


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


class Source(Protocol):
    # whether calling the test body again draws again in this process (False: a repeat is a
    # fresh pytest process, as for pytest-benchmark's fixture, usable once per test)
    redrawable: bool

    def value(self) -> float | None:
        """This draw's value, or None when this source has none."""


class Recorded:
    """``autoresearch.record(value)`` in the test body; read once per draw, then cleared."""

    redrawable = True

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def value(self) -> float | None:
        value, self.recorder.value = self.recorder.value, None
        return value


class ScriptOutput:
    """The metric as the target script printed it: a self-report where a scorer exists."""

    redrawable = True

    def __init__(self, experiment: Experiment, metric: str) -> None:
        self.experiment, self.metric = experiment, metric

    def value(self) -> float | None:
        return self.experiment.metrics.get(self.metric)


class MetricFixture:
    """The value of the fixture named like the metric."""

    redrawable = True

    def __init__(self, item: pytest.Function, metric: str) -> None:
        self.item, self.metric = item, metric

    def value(self) -> float | None:
        value = self.item.funcargs.get(self.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None


class FrozenScorer:
    """The value frozen code computes from the artifact the target wrote, in a fresh isolated
    interpreter that may import nothing from the mutable files: the one trusted source.

    :meth:`prepare` starts its interpreter as the target starts, :meth:`score` runs once per draw,
    right after the target; :meth:`value` reads the result.
    """

    redrawable = True

    def __init__(self, spec: Spec, search_path: Sequence[Path], forbidden: Sequence[Path]) -> None:
        assert spec.scorer is not None
        self.target, self.metric, self.env = spec.scorer, spec.metric, dict(spec.env or {})
        self.search_path, self.forbidden = tuple(search_path), tuple(forbidden)
        self.last: float | None = None
        self.seconds: float | None = None
        self.values: dict[str, float] = {}  # everything the scorer returned for the last draw
        self._ready: ScorerProcess | None = None  # started for the run going on (prepare)

    def prepare(self, artifact: Path) -> None:
        """Start the scorer's interpreter for the artifact a run is about to write, so that its
        imports are paid while the target runs, not after it (see :class:`ScorerProcess`)."""
        self.close()
        self._ready = self._process(artifact, early=True)

    def close(self) -> None:
        """End a prepared scorer that will not score (the run crashed, timed out or was stopped)."""
        if self._ready is not None:
            self._ready.close()
            self._ready = None

    def score(self, artifact: Path, timeout: float) -> float:
        """Score one artifact (with the scorer prepared for it, if any); raises Refused (the artifact
        cheats) or ScoringError (no score)."""
        self.last = None
        ready, self._ready = self._ready, None
        if ready is None or ready.artifact != Path(artifact).absolute():
            if ready is not None:
                ready.close()
            ready = self._process(artifact, early=False)
        scored = ready.score(timeout)
        self.seconds, self.values = scored.seconds, dict(scored.values)
        if scored.rejected is not None:
            raise Refused(scored.rejected)
        value = scored.values.get(self.metric, scored.values.get("value"))
        if value is None:
            raise ScoringError(f"scorer {self.target} returned no {self.metric} "
                               f"(it returned {', '.join(sorted(scored.values)) or 'nothing'})", scored.log)
        self.last = value
        return value

    def value(self) -> float | None:
        value, self.last = self.last, None
        return value

    def _process(self, artifact: Path, early: bool) -> ScorerProcess:
        return ScorerProcess(self.target, artifact, search_path=self.search_path, forbidden=self.forbidden,
                             env={**os.environ, **self.env}, early=early)


class BenchmarkStats:
    """A statistic (min, median, mean; seconds per call) of the test's pytest-benchmark fixture,
    read after the body: none when the fixture was not called or benchmarks are disabled."""

    redrawable = False
    missing = ("the benchmark fixture recorded no statistics: call benchmark(...) or benchmark.pedantic(...) "
               "in the test (--benchmark-disable leaves none)")

    def __init__(self, item: pytest.Function, stat: str) -> None:
        self.item, self.stat = item, stat
        self.read = False

    def value(self) -> float | None:
        if self.read:  # the fixture holds one measurement: a later draw is another process's
            return None
        self.read = True
        metadata = getattr(self.item.funcargs.get("benchmark"), "stats", None)
        value = getattr(getattr(metadata, "stats", None), self.stat, None) if metadata else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def disagrees(self_report: float | None, scored: float | None, tolerance: float = 0.01) -> bool:
    """Whether a target's printed value differs from the scored one by more than ``tolerance``
    of the scored value (1%: bf16 against fp32 evaluation differs far less)."""
    if self_report is None or scored is None or not (math.isfinite(scored) and math.isfinite(self_report)):
        return self_report is not None and scored is not None and self_report != scored
    return abs(self_report - scored) > tolerance * max(abs(scored), 1e-12)


def sources_for(item: pytest.Function, spec: Spec, experiment: Experiment | None,
                recorder: Recorder | None, scorer: FrozenScorer | None = None) -> list[Source]:
    """The sources of one benchmark, the most trusted first; with a scorer, only the scorer, and
    for a pytest-benchmark test only its statistic (what the body records is not its measurement)."""
    if scorer is not None:
        return [scorer]
    if spec.benchmark is not None:
        return [BenchmarkStats(item, spec.benchmark)]
    sources: list[Source] = []
    if recorder is not None:
        sources.append(Recorded(recorder))
    if experiment is not None:
        sources.append(ScriptOutput(experiment, spec.metric))
    sources.append(MetricFixture(item, spec.metric))
    return sources


def first_value(sources: list[Source]) -> float | None:
    """Ask every source (each reads its draw once) and keep the first that has a value."""
    values = [source.value() for source in sources]
    return next((v for v in values if v is not None), None)
