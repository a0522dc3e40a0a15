"""evaluate_bpb: the fixed metric. Bits per byte over the pinned validation rows.

Summed per-token cross-entropy (nats) over the summed UTF-8 byte length of the target
tokens, divided by ln 2. Special tokens (byte length 0) and unscored targets (-1) are left
out of both sums, so the number does not depend on the vocabulary size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from pytest_autoresearch.lm.dataset import PreparedData


class LossModel(Protocol):
    """What evaluate_bpb needs: per-token nats for (B, T) inputs and targets."""

    def __call__(self, idx: torch.Tensor, targets: torch.Tensor, reduction: str = ...) -> torch.Tensor: ...


@torch.no_grad()
def evaluate_bpb(model: LossModel, batch_size: int | None = None, data: PreparedData | None = None,
                 device: str | torch.device | None = None) -> float:
    """Bits per byte of `model` on the prepared validation rows.

    `model(x, y, reduction="none")` must return the cross-entropy in nats of every target,
    shape (B, T) or (B * T,). The batch size only changes speed, never the result.
    """
    if data is None:
        from pytest_autoresearch.lm.dataset import prepare

        data = prepare()
    if device is None:
        parameters = getattr(model, "parameters", None)
        device = next(parameters()).device if parameters else torch.device("cpu")
    batch_size = batch_size or data.profile.eval_batch_size
    inputs, targets = (torch.from_numpy(a.astype("int64")) for a in data.val_rows)
    token_bytes = torch.from_numpy(data.token_bytes.astype("int64")).to(device)
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=device)
    for i in range(0, len(inputs), batch_size):
        x = inputs[i : i + batch_size].to(device)
        y = targets[i : i + batch_size].to(device)
        nats = model(x, y, reduction="none").reshape(y.shape).double()
        nbytes = torch.where(y >= 0, token_bytes[y.clamp(min=0)], 0)
        total_nats += torch.where(nbytes > 0, nats, 0.0).sum()
        total_bytes += nbytes.sum()
    return float(total_nats) / (math.log(2) * int(total_bytes))
