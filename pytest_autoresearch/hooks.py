"""Hook specifications a project's conftest.py can implement."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_autoresearch_identity(config: pytest.Config) -> dict[str, str] | None:
    """Return what else makes results comparable, e.g. ``{"dataset": fingerprint}``.

    Called once per session in ``--autoresearch`` mode, after collection and before any
    test runs, outside every test timeout: a good place to prepare data. The returned
    parts join the evaluation identity; results are compared only within one identity.
    """


@pytest.hookspec
def pytest_autoresearch_seal(config: pytest.Config) -> dict[str, Any] | None:
    """Return what a sealed script run may read beyond its work tree and the Python installation,
    and what it must not, e.g. ``{"read": [data_cache], "hide": [validation_files], "env": {...}}``.

    Called once per session in ``--autoresearch`` mode when runs are sealed, after the identity
    hook (so the data is prepared). ``env`` holds variables the sealed run needs, since its HOME
    is a fresh folder (e.g. where the data cache is).
    """
