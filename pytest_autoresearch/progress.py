"""The live progress line shown while a long script runs.

Rewritten in place on a terminal, one line every few seconds otherwise (a log file an agent
reads later), and nothing at all with ``-q`` or on an xdist worker, which has no terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager

import pytest

from .ledger import clean_text

Ticker = Callable[[float, str], None]


def progress_line(
    config: pytest.Config, name: str, limit_s: float | None, every_s: float
) -> tuple[Ticker | None, float]:
    """A ticker for ``Experiment.run`` and how often to call it (None: show nothing)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or hasattr(config, "workerinput") or config.get_verbosity() < 0:
        return None, 1.0
    tty = bool(reporter.isatty())
    if not tty and every_s == 0:
        return None, 1.0
    limit = f" / {limit_s:.0f}s" if limit_s else ""

    def tick(elapsed: float, last: str) -> None:
        line = f"autoresearch: {name} {elapsed:.0f}s{limit}  {clean_text(last)[:100]}"
        with capman.global_and_fixture_disabled() if capman else _nothing():
            if tty:
                reporter.rewrite(line, erase=True)
            else:
                reporter.ensure_newline()
                reporter.write_line(line)

    return tick, (1.0 if tty else every_s)


@contextmanager
def _nothing() -> Generator[None, None, None]:
    yield
