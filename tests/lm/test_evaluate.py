"""evaluate_bpb: exact for a uniform model, blind to special and unscored tokens, lower for better models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from pytest_autoresearch.lm.dataset import PreparedData  # noqa: E402
from pytest_autoresearch.lm.evaluate import evaluate_bpb  # noqa: E402


class LogitModel(torch.nn.Module):
    """Predicts the same distribution everywhere; `spike` adds nats on chosen targets."""

    def __init__(self, logits: torch.Tensor, spike_on: int | None = None) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(logits.double())  # float64, so "exact" can mean 1e-12
        self.spike_on = spike_on

    def forward(self, idx: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        logits = self.logits.expand(*idx.shape, -1).reshape(-1, self.logits.numel())
        nats = F.cross_entropy(logits, targets.reshape(-1).clamp(min=0), reduction="none")
        nats = torch.where(targets.reshape(-1) < 0, 1e6, nats)  # garbage where nothing is scored
        if self.spike_on is not None:
            nats = torch.where(targets.reshape(-1) == self.spike_on, 1e6, nats)
        return nats


def expected_uniform(data: PreparedData) -> float:
    _, targets = data.val_rows
    nbytes = data.token_bytes[targets[targets >= 0]]
    scored = int((nbytes > 0).sum())
    return math.log(len(data.token_bytes)) * scored / (math.log(2) * int(nbytes.sum()))


def test_uniform_model_is_exact(tiny_data: PreparedData) -> None:
    vocab = tiny_data.tokenizer.get_vocab_size()
    bpb = evaluate_bpb(LogitModel(torch.zeros(vocab)), data=tiny_data)
    assert bpb == pytest.approx(expected_uniform(tiny_data), rel=1e-12)


def test_special_and_unscored_targets_are_left_out(tiny_data: PreparedData, tmp_path: Path) -> None:
    """Rows with BOS targets and -1 targets: a model scoring them terribly loses nothing."""
    inputs, targets = (a.copy() for a in tiny_data.val_rows)
    bos = tiny_data.tokenizer.bos_token_id
    targets[:, ::7] = bos
    targets[:, 3::11] = -1
    for name, array in {"val_inputs": inputs, "val_targets": targets, "token_bytes": tiny_data.token_bytes}.items():
        np.save(tmp_path / f"{name}.npy", array)
    data = PreparedData(tmp_path, "test", tiny_data.profile, "test")
    vocab = tiny_data.tokenizer.get_vocab_size()
    spiky = LogitModel(torch.zeros(vocab), spike_on=bos)
    assert evaluate_bpb(spiky, data=data) == pytest.approx(expected_uniform(data), rel=1e-12)


def test_a_better_model_scores_lower(tiny_data: PreparedData) -> None:
    vocab = tiny_data.tokenizer.get_vocab_size()
    counts = np.bincount(np.asarray(tiny_data.tokens("train")), minlength=vocab) + 1
    unigram = LogitModel(torch.from_numpy(np.log(counts / counts.sum())))
    uniform = LogitModel(torch.zeros(vocab))
    assert evaluate_bpb(unigram, data=tiny_data) < 0.9 * evaluate_bpb(uniform, data=tiny_data)


def test_batch_size_changes_nothing(tiny_data: PreparedData) -> None:
    model = LogitModel(torch.randn(tiny_data.tokenizer.get_vocab_size(), generator=torch.Generator().manual_seed(0)))
    assert evaluate_bpb(model, 3, data=tiny_data) == pytest.approx(evaluate_bpb(model, 16, data=tiny_data), rel=1e-12)


def test_fixtures_give_data_and_evaluator(pytester: pytest.Pytester, tiny_corpus: Path, lm_cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORESEARCH_DATA", str(tiny_corpus))
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(lm_cache))
    pytester.makeconftest('pytest_plugins = ["pytest_autoresearch.lm.fixtures"]')
    pytester.makepyfile(
        """
        import math, torch

        def test_uniform(frozen_dataset, evaluator):
            vocab = frozen_dataset.tokenizer.get_vocab_size()
            uniform = lambda x, y, reduction: torch.full(y.shape, math.log(vocab))
            assert frozen_dataset.profile.name == "cpu" and len(frozen_dataset.fingerprint) == 16
            assert 1 < evaluator(uniform) < 10
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
