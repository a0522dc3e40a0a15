"""Hook specifications a project's conftest.py can implement."""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_autoresearch_identity(config: pytest.Config) -> dict[str, str] | None:
    """Return what else makes results comparable, e.g. ``{"dataset": fingerprint}``.

    Called once per session in ``--autoresearch`` mode, after collection and before any
    test runs, outside every test timeout: a good place to prepare data. The returned
    parts join the evaluation identity; results are compared only within one identity.
    """
