"""Prepare data and tokenizer before any benchmark runs, and tie results to them.

pytest-autoresearch calls the identity hook once per `--autoresearch` session, outside every
test timeout: the first call prepares the dataset (visible progress, cached afterwards), so
preparation never counts against train.py's budget or the 10-minute limit.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Before collection: a bad AUTORESEARCH_PROFILE or AUTORESEARCH_TIME_BUDGET gets the fix, not a traceback."""
    from pytest_autoresearch.lm import profiles

    try:
        profiles.active_profile()
        profiles.time_budget()
    except ValueError as exc:
        raise pytest.UsageError(f"autoresearch: {exc}") from None


def pytest_autoresearch_identity(config: pytest.Config) -> dict[str, str]:
    from pytest_autoresearch.lm.dataset import prepare

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print
    data = prepare(progress=lambda message: say(f"data: {message}"))  # "autoresearch: " starts only verdict lines
    return data.identity()


def pytest_autoresearch_seal(config: pytest.Config) -> dict[str, Any]:
    """A sealed train.py reads the prepared tokenizer and training tokens, never the scored rows
    or the documents they come from."""
    from pytest_autoresearch.lm.dataset import sealed

    return sealed()
