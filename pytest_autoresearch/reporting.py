"""The verdicts' way to the reader: terminal summary, ``-q`` lines and the JSON file.

Outcomes are collected from test reports (``user_properties``), so this works the same in a
plain run and on the xdist controller, which runs no test itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .report import PROPERTY, Outcome, summary_table, verdict_line, write_json
from .settings import Settings


class VerdictReporter:
    """Registered beside the session in ``--autoresearch`` mode."""

    def __init__(self, config: pytest.Config, settings: Settings, note: Callable[[], str]) -> None:
        self.config = config
        self.settings = settings
        self.note = note
        self.outcomes: list[Outcome] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == PROPERTY and report.when == "call":
                self.outcomes.append(Outcome.from_json(str(value)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        note = self.note()
        if not self.outcomes and not note:
            return
        if self.config.get_verbosity() < 0:
            for outcome in self.outcomes:
                terminalreporter.write_line(verdict_line(outcome))
            return
        terminalreporter.write_sep("=", "autoresearch")
        if note:
            terminalreporter.write_line(f"autoresearch: {note}")
        if self.outcomes:
            for line in summary_table(self.outcomes):
                terminalreporter.write_line(line)
            for outcome in self.outcomes:
                if outcome.note and outcome.note != note:
                    terminalreporter.write_line(f"{outcome.test}: {outcome.note}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.settings.json_path is not None and not hasattr(self.config, "workerinput"):
            write_json(self.settings.json_path, self.outcomes)
