"""save_model: the trained model as an artifact the frozen scorer evaluates without train.py's code.

The contract with train.py is one line: `model(idx)` with token ids (B, T) int64 returns
logits (B, T, vocab). That call is traced by `torch.export` into a graph of tensor
operations (batch dimension dynamic, T fixed at the profile's context length) and written
with `torch.export.save`. Export runs on a float32 CPU copy of the model, so the graph
holds no GPU-only kernels (FA3) and the scorer can move it to whatever device it has.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import torch

from pytest_autoresearch.lm import profiles

ARTIFACT_ENV = "AUTORESEARCH_ARTIFACT"  # where the plugin wants the artifact written
EXAMPLE_BATCH = 2  # rows in the tracing input; the exported batch dimension is dynamic


class ExportError(RuntimeError):
    """The model's logits path could not be exported as a graph; the message says what to change."""


class _Logits(torch.nn.Module):
    """The one call the scorer makes: idx (B, T) → logits (B, T, vocab)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(idx)
        return out


def artifact_path() -> Path | None:
    """The path in AUTORESEARCH_ARTIFACT, or None when a plain `python train.py` runs."""
    raw = os.environ.get(ARTIFACT_ENV, "").strip()
    return Path(raw) if raw else None


def export_model(model: torch.nn.Module, seq_len: int | None = None, vocab_size: int | None = None
                 ) -> torch.export.ExportedProgram:
    """Trace `model(idx) -> logits` on a float32 CPU copy; raise ExportError saying what to change."""
    profile = profiles.active_profile()
    seq_len = seq_len or profile.max_seq_len
    vocab_size = vocab_size or profile.vocab_size
    original = getattr(model, "_orig_mod", model)  # torch.compile wraps the module it was given
    if not isinstance(original, torch.nn.Module):
        raise ExportError(f"save_model needs the torch.nn.Module, not {type(model).__name__}")
    copied = copy.deepcopy(original).to(device="cpu", dtype=torch.float32).eval()
    wrapper = _Logits(copied).eval()
    idx = torch.randint(0, vocab_size, (EXAMPLE_BATCH, seq_len), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            expected = wrapper(idx)
        except Exception as exc:
            raise ExportError(f"model(idx) failed on a (B, T) batch of token ids: {_first_line(exc)}. "
                              "The scorer calls model(idx) alone, without targets; it must return logits") from exc
        if not isinstance(expected, torch.Tensor) or tuple(expected.shape) != (EXAMPLE_BATCH, seq_len, vocab_size):
            shape = tuple(expected.shape) if isinstance(expected, torch.Tensor) else type(expected).__name__
            raise ExportError(f"model(idx) must return logits of shape (B, T, vocab) = "
                              f"{(EXAMPLE_BATCH, seq_len, vocab_size)}, got {shape}")
        try:
            program = torch.export.export(wrapper, (idx,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
        except Exception as exc:
            raise ExportError(
                f"model(idx) could not be exported as a graph of tensor operations: {_first_line(exc)}. "
                "The forward must not branch on tensor values (Python `if`/`while` on a tensor, .item(), "
                ".tolist(), data-dependent shapes): use torch.where or torch.cond, or keep that logic "
                "out of the logits path"
            ) from exc
        got = program.module()(idx)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise ExportError(
            f"the exported graph computes different logits than model(idx) (largest difference "
            f"{(got - expected).abs().max().item():.3g}): the forward must compute the same thing every time it "
            "is called, traced or not (torch.compiler.is_compiling() is True while exporting), and must not "
            "depend on Python state that changes between calls")
    return program


def save_model(model: torch.nn.Module, path: str | Path | None = None) -> Path | None:
    """Export `model(idx) -> logits` to `path` (default: AUTORESEARCH_ARTIFACT) for the frozen scorer.

    Without a path and without the variable (a plain `python train.py`) the export still
    runs, so a model that cannot be exported fails here rather than under pytest, but
    nothing is written: None is returned.
    """
    started = time.monotonic()
    target = Path(path) if path is not None else artifact_path()
    program = export_model(model)
    if target is None:
        print(f"export: ok in {time.monotonic() - started:.1f}s (not saved: {ARTIFACT_ENV} is unset)", flush=True)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}.pt2")  # torch.export.save wants .pt2
    torch.export.save(program, tmp)
    os.replace(tmp, target)  # a killed export never leaves a half-written artifact
    print(f"export: {target} in {time.monotonic() - started:.1f}s", flush=True)
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
