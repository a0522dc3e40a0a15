"""train.py end to end on a tiny corpus: it trains for the budget, prints Karpathy's summary, saves its model."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pytest_autoresearch.lm.dataset import prepare  # noqa: E402
from pytest_autoresearch.scoring import run_scorer  # noqa: E402
from tests.lm.lm_fixtures import EXAMPLE  # noqa: E402

SUMMARY_KEYS = ["training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                "total_tokens_M", "num_steps", "num_params_M", "depth"]


def summary(output: str) -> dict[str, float]:
    block = output.split("\n---\n", 1)[1]
    return {key: float(value) for key, _, value in (line.partition(":") for line in block.splitlines()) if value}


@pytest.mark.usefixtures("lm_env")
def test_train_py_learns_within_its_budget(tiny_project: Path) -> None:
    project = tiny_project
    artifact = project.parent / "artifact" / "model.pt2"
    env = {**os.environ, "AUTORESEARCH_ARTIFACT": str(artifact)}
    run = subprocess.run([sys.executable, "train.py"], cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = summary(run.stdout)
    assert list(result) == SUMMARY_KEYS, "the scorer computes val_bpb: train.py does not evaluate twice"
    assert 3 <= result["training_seconds"] < 3 + 10, "training stops once the budget is spent"
    assert result["num_steps"] > 2 and result["depth"] == 2
    scored = run_scorer("pytest_autoresearch.lm.scorer:score", artifact, timeout=120, search_path=[project],
                        forbidden=[project / "train.py"])
    assert scored.rejected is None, scored.rejected
    data = prepare()
    _, targets = data.val_rows
    nbytes = data.token_bytes[targets[targets >= 0]]
    uniform = math.log(len(data.token_bytes)) * int((nbytes > 0).sum()) / (math.log(2) * int(nbytes.sum()))
    assert math.isfinite(scored.values["val_bpb"]) and 0 < scored.values["val_bpb"] < 0.95 * uniform, (scored, uniform)


@pytest.mark.usefixtures("lm_env")
def test_sliding_window_attention_runs(tiny_project: Path, edit_train: Callable[..., None]) -> None:
    edit_train(tiny_project / "train.py", WINDOW_PATTERN='"SL"', DEPTH="3", HEAD_DIM="16")
    run = subprocess.run([sys.executable, "train.py"], cwd=tiny_project, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert math.isfinite(summary(run.stdout)["val_bpb"]), "run by hand, train.py evaluates itself"


@pytest.mark.usefixtures("lm_env")
def test_a_diverging_run_fails_fast(tiny_project: Path, edit_train: Callable[..., None]) -> None:
    project = tiny_project
    edit_train(project / "train.py", EMBEDDING_LR="1e30", UNEMBEDDING_LR="1e30")
    run = subprocess.run([sys.executable, "train.py"], cwd=project, capture_output=True, text=True, timeout=240)
    assert run.returncode == 1
    assert "FAIL: loss" in run.stdout and "val_bpb" not in run.stdout


def train_definitions(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The example train.py's classes and functions, without its setup and training loop."""
    source = (EXAMPLE / "train.py").read_text()
    end = source.find("\nt_start = time.time()")
    assert end > 0, "train.py's setup no longer starts at `t_start = time.time()`: update this helper"
    module = types.ModuleType("train_definitions")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look their module up
    monkeypatch.syspath_prepend(str(EXAMPLE))  # for `from prepare import ...`
    exec(compile(source[:end], str(EXAMPLE / "train.py"), "exec"), module.__dict__)
    return module


def test_the_residual_stream_takes_autocasts_dtype_and_the_exported_model_stays_float32(
        monkeypatch: pytest.MonkeyPatch) -> None:
    train = train_definitions(monkeypatch)
    config = train.GPTConfig(sequence_len=16, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=32,
                             window_pattern="L", short_window=8)
    model = train.GPT(config)
    model.init_weights()
    seen: list[torch.dtype] = []
    for block in model.blocks:
        block.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
        if block.attn.ve_gate is not None:  # a layer with a value embedding: the attention's second input
            block.attn.register_forward_hook(lambda module, args, out: seen.append(args[1].dtype))
    idx = torch.randint(0, 64, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(idx)
    assert seen == [torch.bfloat16] * 3, "under autocast the residual stream and value embeddings are bf16"
    assert logits.dtype == torch.float32, "the loss and the soft-cap see float32 logits"
    seen.clear()
    assert model(idx).dtype == torch.float32 and seen == [torch.float32] * 3, "no autocast (export): float32 throughout"


@pytest.mark.parametrize("window", [4, 5, 16])
def test_written_out_attention_sees_the_keys_sdpa_sees_under_the_window_mask(
        monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    """The CPU's compiled training path against SDPA with the mask the exported, scored graph uses."""
    train = train_definitions(monkeypatch)
    q, k, v = (torch.randn(2, 3, 16, 8) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=train.visible_keys(16, window, q.device))
    torch.testing.assert_close(train.written_out_attention(q, k, v, window), expected, rtol=1e-5, atol=1e-5)
