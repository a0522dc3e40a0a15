"""The frozen language-model scorer: val_bpb from the exported model, computed here, not by train.py.

Run through `pytest_autoresearch.scoring.run_scorer("pytest_autoresearch.lm.scorer:score", artifact)`
in an isolated interpreter. It loads the ExportedProgram that save_model wrote (a graph of tensor
operations: none of train.py's Python runs), feeds it only the inputs of the pinned validation
rows, and computes bits per byte from its logits exactly as evaluate_bpb defines it. Two checks
can reject the artifact (pytest_autoresearch.scoring.Rejected):

- causality: on CAUSAL_ROWS validation rows, the tokens after a position are replaced by random
  ones; the log-probabilities at and before it must not move by more than CAUSAL_TOLERANCE nats
  (evaluated in float32, where a causal model moves them by ~1e-6). A row scored alone must
  also get the predictions it gets inside a batch.
- leakage: the same model is scored on a held-out split (every 20th document of the source's
  train split, which no training path serves). Rejected when
      val_bpb < heldout_bpb - (LEAK_ABSOLUTE + LEAK_RELATIVE * heldout_bpb).
  Calibration (benchmarks/lm_scorer.py; cpu profile, pystdlib, 4x256 GPT of train.py): on the
  unchanged baseline, heldout_bpb - val_bpb was +0.03 to +0.07 over runs of 3-60 s (the held-out
  documents are a little harder than the validation ones, a fixed property of the split, so the
  margin is one-sided around it); a model trained on the validation rows for the same budgets
  pulled away by 0.4 to 1.4. The tiny test corpus (tests/lm) gives a baseline gap under 0.05 and
  a val-trained gap above 0.5. The margin (0.15 + 5 % of heldout_bpb) sits between them: a run
  that trains on a few validation rows among its training data is not caught, one that trains
  on them enough to help is.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pytest_autoresearch.lm.dataset import PreparedData, prepare
from pytest_autoresearch.scoring import Rejected

CAUSAL_ROWS = 4  # validation rows the causality probe perturbs
CAUSAL_TOLERANCE = 1e-3  # nats: float32 noise is ~1e-6, a peek at a later token moves predictions by far more
LEAK_ABSOLUTE = 0.15  # bits per byte the validation score may beat the held-out one by ...
LEAK_RELATIVE = 0.05  # ... plus this share of heldout_bpb


@dataclass(frozen=True)
class Bpb:
    """Bits per byte of one split, and the sums behind it."""

    bpb: float
    nats: float
    nbytes: int


def score(artifact: Path) -> dict[str, float]:
    """val_bpb and heldout_bpb of the exported model; Rejected if it peeks ahead or learned the val rows."""
    data = prepare(progress=lambda message: print(f"autoresearch: {message}", file=sys.stderr, flush=True))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    logits_of = load(artifact, device)
    check_causality(logits_of, data, device)
    val = bits_per_byte(logits_of, data.val_rows, data, device)
    heldout = bits_per_byte(logits_of, data.heldout_rows, data, device)
    check_leakage(val.bpb, heldout.bpb)
    return {"val_bpb": val.bpb, "heldout_bpb": heldout.bpb}


def load(artifact: Path, device: torch.device) -> torch.nn.Module:
    """The exported `idx -> logits` graph on `device`."""
    program = torch.export.load(artifact)
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    module: torch.nn.Module = program.module()
    return module


def _logits(logits_of: torch.nn.Module, x: torch.Tensor, vocab: int) -> torch.Tensor:
    # bf16 on a GPU, as train.py evaluates; float32 on a CPU, where bf16 is often slower
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda)
    with torch.no_grad(), autocast:
        logits: torch.Tensor = logits_of(x)
    if tuple(logits.shape) != (*x.shape, vocab):
        raise ValueError(f"the artifact returned logits of shape {tuple(logits.shape)} for input "
                         f"{tuple(x.shape)}; expected {(*x.shape, vocab)}")
    return logits.float()


def bits_per_byte(logits_of: torch.nn.Module, rows: tuple[np.ndarray, np.ndarray], data: PreparedData,
                  device: torch.device, batch_size: int | None = None) -> Bpb:
    """evaluate_bpb's definition from logits: nats of scored targets / their bytes / ln 2."""
    batch_size = batch_size or data.profile.eval_batch_size
    vocab = len(data.token_bytes)
    inputs, targets = (torch.from_numpy(a.astype(np.int64)) for a in rows)
    token_bytes = torch.from_numpy(data.token_bytes.astype(np.int64)).to(device)
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=device)
    for i in range(0, len(inputs), batch_size):
        x = inputs[i : i + batch_size].to(device)
        y = targets[i : i + batch_size].to(device)  # never enters the model
        logprobs = torch.log_softmax(_logits(logits_of, x, vocab), dim=-1)
        nats = -logprobs.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1).double()
        nbytes = torch.where(y >= 0, token_bytes[y.clamp(min=0)], 0)
        total_nats += torch.where(nbytes > 0, nats, 0.0).sum()
        total_bytes += nbytes.sum()
    nats_sum, bytes_sum = float(total_nats), int(total_bytes)
    return Bpb(nats_sum / (math.log(2) * bytes_sum), nats_sum, bytes_sum)


def check_causality(logits_of: torch.nn.Module, data: PreparedData, device: torch.device) -> None:
    """Reject a model whose prediction at a position moves when later tokens (or other rows) change."""
    inputs, _ = data.val_rows
    vocab = len(data.token_bytes)
    picks = np.linspace(0, len(inputs) - 1, min(CAUSAL_ROWS, len(inputs))).round().astype(np.int64)
    x = torch.from_numpy(inputs[picks].astype(np.int64)).to(device)
    T = x.size(1)
    generator = torch.Generator().manual_seed(0)
    with torch.autocast(device.type, enabled=False):
        base = torch.log_softmax(_exact_logits(logits_of, x, vocab), dim=-1)
        for cut in sorted({0, T // 3, 2 * T // 3, T - 2}):
            changed = x.clone()
            changed[:, cut + 1 :] = torch.randint(0, vocab, (x.size(0), T - cut - 1), generator=generator).to(device)
            moved = torch.log_softmax(_exact_logits(logits_of, changed, vocab), dim=-1)
            delta = float((moved[:, : cut + 1] - base[:, : cut + 1]).abs().max())
            if delta > CAUSAL_TOLERANCE:
                raise Rejected(f"the model's predictions depend on later tokens (changing the tokens after "
                               f"position {cut} moved earlier log-probabilities by {delta:.3g} nats)")
        alone = torch.log_softmax(_exact_logits(logits_of, x[:1], vocab), dim=-1)
        delta = float((alone - base[:1]).abs().max())
        if delta > CAUSAL_TOLERANCE:
            raise Rejected(f"the model's predictions depend on the other rows of its batch ({delta:.3g} nats)")


def _exact_logits(logits_of: torch.nn.Module, x: torch.Tensor, vocab: int) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = logits_of(x)
    if tuple(logits.shape) != (*x.shape, vocab):
        raise ValueError(f"the artifact returned logits of shape {tuple(logits.shape)} for input "
                         f"{tuple(x.shape)}; expected {(*x.shape, vocab)}")
    return logits.float()


def check_leakage(val_bpb: float, heldout_bpb: float) -> None:
    """Reject when val_bpb beats the held-out split by more than two splits of one distribution differ."""
    if not (math.isfinite(val_bpb) and math.isfinite(heldout_bpb)):
        return  # a non-finite score fails on its own
    margin = LEAK_ABSOLUTE + LEAK_RELATIVE * heldout_bpb
    if val_bpb < heldout_bpb - margin:
        raise Rejected(f"validation leakage suspected: val_bpb {val_bpb:.4f} vs held-out {heldout_bpb:.4f} "
                       f"(more than {margin:.3f} apart; was the model trained on validation rows?)")
