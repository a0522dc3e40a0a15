"""The benchmark: train.py's val_bpb, lower is better, judged against this branch's best."""

from __future__ import annotations

import pytest


@pytest.mark.autoresearch(metric="val_bpb", goal="min", script="train.py")
def test_train(experiment) -> None:  # type: ignore[no-untyped-def]
    assert experiment.metrics["val_bpb"] > 0
