"""Packing dataloader: endless training batches, BOS-aligned best-fit packing (see packing.py).

Training pieces are shuffled over the whole split each epoch: a few long files hold most of
the tokens of a source tree, and packed whole they would fill batch after batch. So: no
padding, BOS at every document start, every training token a target exactly once per epoch.
Only "train" and "val" are served; the held-out split never reaches a training path. A run
that passes over its training data more than PASSES_BEFORE_NOTE times is told so, once, in
a `NOTE:` line of its output (the plugin shows it beside the verdict).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_autoresearch.dataserver import SOCKET_ENV, receive
from pytest_autoresearch.lm.packing import Piece, pack_rows, pieces_of, split_rows
from pytest_autoresearch.lm.sources import SHARDS_ENV, train_shards

if TYPE_CHECKING:
    import torch

    from pytest_autoresearch.lm.dataset import PreparedData

# Say so when a run starts its third pass over the training split. val_bpb compares runs by how
# well a model learns from text it has not seen. Repeating text a few times costs little where
# tokens far outnumber parameters (Muennighoff et al. 2023: up to ~4 epochs are nearly as good
# as fresh data), but a run that starts its third pass within the budget repeats fast, and the
# passes pile up: on an H100 the gpu profile passed over pystdlib 26 times in 60 s, its training
# loss fell to 0.02, and val_bpb ranked how well runs memorise. The cpu profile on two CPU cores
# trains on about 5 M of pystdlib's 9.3 M tokens in 300 s: far below the line, and quiet.
PASSES_BEFORE_NOTE = 2


def make_dataloader(
    tokenizer: object, B: int, T: int, split: str, device: str | torch.device = "cpu",
    data: PreparedData | None = None, seed: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """Endless (inputs, targets, epoch) batches of shape (B, T) on `device`.

    "train" reshuffles pieces every epoch; "val" cycles through the pinned evaluation rows.
    `tokenizer` is accepted for Karpathy's signature; the prepared data already carries it.
    Under the plugin (AUTORESEARCH_DATA_SOCKET set) "train" batches come from the frozen data
    server, which keeps the budget's clock; run by hand they are packed here.
    """
    import torch

    from pytest_autoresearch.lm.dataset import prepare

    device = torch.device(device)
    pin = device.type == "cuda"  # pinned memory + non_blocking only help host→GPU copies
    socket_path = os.environ.get(SOCKET_ENV, "").strip()
    if socket_path and split == "train":  # the server's batches, whatever data= says: its clock counts them
        batches = _received(socket_path, B, T, seed)
    else:
        batches = _batches(data or prepare(), B, T, split, seed)
    for inputs, targets, epoch in batches:
        x, y = torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(targets.astype(np.int64))
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        yield x.to(device, non_blocking=pin), y.to(device, non_blocking=pin), epoch


def repeat_note(passes: int, seconds: float, tokens: int, source: str) -> str:
    """What a run that repeats its training data is told, and what to use instead."""
    if source == "climbmix":
        advice = f"download more shards: {SHARDS_ENV}=N (now {train_shards()})"
    else:
        advice = "use AUTORESEARCH_DATA=climbmix on a GPU"
    return (f"training data seen {passes} times in {seconds:.0f} s ({tokens:,} tokens of {source}): "
            f"val_bpb measures memorisation; {advice}")


def _batches(data: PreparedData, B: int, T: int, split: str, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    if split == "val":
        inputs, targets = data.val_rows
        if inputs.shape[1] != T:
            raise ValueError(f"validation rows have length {inputs.shape[1]}, not T={T}")
        while True:
            for i in range(0, len(inputs) - B + 1, B):
                yield inputs[i : i + B], targets[i : i + B], 1
    if split != "train":
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    tokens, offsets = data.tokens("train"), data.offsets("train")
    pieces = list(pieces_of(offsets, range(len(offsets) - 1), T + 1))
    epoch = 1

    def endless() -> Iterator[Piece]:
        nonlocal epoch
        while True:
            order = np.random.default_rng((seed, epoch)).permutation(len(pieces))
            yield from (pieces[i] for i in order)
            epoch += 1

    # passes counted in targets served, not by `epoch`: packing reads pieces ahead of the batches
    started, served, noted = time.monotonic(), 0, False
    for batch, scored in pack_rows(tokens, endless(), B, T + 1):
        inputs, targets = split_rows(batch, scored)
        served += int(scored.sum())
        if not noted and served > PASSES_BEFORE_NOTE * len(tokens):
            noted = True
            note = repeat_note(PASSES_BEFORE_NOTE, time.monotonic() - started, len(tokens), data.source)
            print(f"NOTE: {note}", flush=True)
        yield inputs, targets, epoch


def serve(request: Mapping[str, Any]) -> Iterator[tuple[bytes, int]]:
    """The data server's batches (run in its isolated interpreter): `request` is {"B", "T", "seed"}.

    Each payload is the epoch (int64) then inputs and targets (2, B, T) as int32; the tokens
    counted are the batch's inputs, B * T.
    """
    from pytest_autoresearch.lm.dataset import prepare

    B, T, seed = int(request["B"]), int(request["T"]), int(request.get("seed", 0))
    for inputs, targets, epoch in _batches(prepare(), B, T, "train", seed):
        payload = np.int64(epoch).tobytes() + np.stack([inputs, targets]).astype(np.int32).tobytes()
        yield payload, B * T


def _received(path: str, B: int, T: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """The "train" batches from the data server at `path` (raises BudgetSpent when it stops serving)."""
    for _, payload in receive(path, {"B": B, "T": T, "seed": seed}):
        epoch = int(np.frombuffer(payload, dtype=np.int64, count=1)[0])
        rows = np.frombuffer(payload, dtype=np.int32, offset=8).reshape(2, B, T)
        yield rows[0], rows[1], epoch
