"""Session-scoped pytest fixtures for language-model tests and in-process benchmarks.

Enable them in a conftest.py with ``pytest_plugins = ["pytest_autoresearch.lm.fixtures"]``:

- ``frozen_dataset``: the prepared data (source, profile and cache from the AUTORESEARCH_*
  environment), prepared once and cached on disk;
- ``evaluator``: ``evaluator(model) -> val_bpb`` on that data's pinned validation rows.

Torch and the kit are imported inside the fixtures, so loading this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_autoresearch.lm.dataset import PreparedData


@pytest.fixture(scope="session")
def frozen_dataset() -> PreparedData:
    """The prepared dataset of the active source and profile."""
    from pytest_autoresearch.lm.dataset import prepare

    return prepare()


@pytest.fixture(scope="session")
def evaluator(frozen_dataset: PreparedData) -> Callable[..., float]:
    """A function scoring a model (``model(x, y, reduction="none")`` → nats) in bits per byte."""
    from pytest_autoresearch.lm.evaluate import evaluate_bpb

    def evaluate(model: Any, batch_size: int | None = None) -> float:
        return evaluate_bpb(model, batch_size, data=frozen_dataset)

    return evaluate
