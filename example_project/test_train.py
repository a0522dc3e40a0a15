"""The benchmark: val_bpb of the model train.py hands over, lower is better, judged against this branch's best.

The value is not what train.py prints: frozen code (pytest_autoresearch.lm.scorer) computes it
from the exported model on the pinned validation rows, in an interpreter train.py never touches.
The training batches come from a frozen data server that keeps the budget's clock: a train.py
still running 20 s (its export allowance) after TIME_BUDGET seconds of training is red, unless
what it did after the budget fits into those 20 s on idle cores (a busy machine only made it wait).
"""

from __future__ import annotations

import pytest

from pytest_autoresearch.lm.profiles import time_budget

# Around the training budget: start-up, compilation and the export (the scorer's time is not counted).
ALLOWANCE_S = 180


@pytest.mark.autoresearch(metric="val_bpb", goal="min", script="train.py",
                          scorer="pytest_autoresearch.lm.scorer:score", artifact="model.pt2",
                          data_server="pytest_autoresearch.lm.dataloader:serve", budget=time_budget(),
                          max_seconds=time_budget() + ALLOWANCE_S)
def test_train(experiment) -> None:  # type: ignore[no-untyped-def]
    assert experiment.returncode == 0
