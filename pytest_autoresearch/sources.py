"""Where a benchmark's value comes from: the value sources, asked in order for each draw.

A value recorded in-process, the target script's printed output, a fixture named like the
metric. Adding a source (a frozen scorer reading an artifact) is one class here and one line
in :func:`sources_for`; the bar, the ledger and the reports never see which source spoke.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest

from .experiment import Experiment


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
    def value(self) -> float | None:
        """This draw's value, or None when this source has none."""


class Recorded:
    """``autoresearch.record(value)`` in the test body; read once per draw, then cleared."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def value(self) -> float | None:
        value, self.recorder.value = self.recorder.value, None
        return value


class ScriptOutput:
    """The metric as the target script printed it: a self-report where a scorer exists."""

    def __init__(self, experiment: Experiment, metric: str) -> None:
        self.experiment, self.metric = experiment, metric

    def value(self) -> float | None:
        return self.experiment.metrics.get(self.metric)


class MetricFixture:
    """The value of the fixture named like the metric."""

    def __init__(self, item: pytest.Function, metric: str) -> None:
        self.item, self.metric = item, metric

    def value(self) -> float | None:
        value = self.item.funcargs.get(self.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None


def sources_for(item: pytest.Function, metric: str, experiment: Experiment | None,
                recorder: Recorder | None) -> list[Source]:
    """The sources of one benchmark, the most direct first."""
    sources: list[Source] = []
    if recorder is not None:
        sources.append(Recorded(recorder))
    if experiment is not None:
        sources.append(ScriptOutput(experiment, metric))
    sources.append(MetricFixture(item, metric))
    return sources


def first_value(sources: list[Source]) -> float | None:
    """Ask every source (each reads its draw once) and keep the first that has a value."""
    values = [source.value() for source in sources]
    return next((v for v in values if v is not None), None)
