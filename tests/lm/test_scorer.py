"""The frozen LM scorer on exported models: agrees with evaluate_bpb, rejects peeking and val training."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from pytest_autoresearch.lm.dataloader import make_dataloader  # noqa: E402
from pytest_autoresearch.lm.dataset import PreparedData, prepare  # noqa: E402
from pytest_autoresearch.lm.evaluate import evaluate_bpb  # noqa: E402
from pytest_autoresearch.lm.export import ExportError, export_model, save_model  # noqa: E402
from pytest_autoresearch.lm.profiles import PROFILES  # noqa: E402
from pytest_autoresearch.lm.scorer import (  # noqa: E402
    BLOCK,
    CAUSAL_BATCHES,
    MIN_HELDOUT_BLOCKS,
    Bpb,
    CausalityProbe,
    bits_per_byte,
    in_random_blocks,
    leakage_decidable,
)
from pytest_autoresearch.scoring import Scored, run_scorer  # noqa: E402

SCORER = "pytest_autoresearch.lm.scorer:score"


class TinyLM(nn.Module):
    """One attention layer and an MLP; `causal=False` drops the mask, as a cheating edit would."""

    def __init__(self, vocab: int, width: int = 64, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.wte = nn.Embedding(vocab, width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
        x = self.wte(idx)  # (B, T, C)
        q, k, v = (t.unflatten(-1, (4, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        x = x + F.scaled_dot_product_attention(q, k, v, is_causal=self.causal).transpose(1, 2).flatten(2)
        x = x + self.mlp(F.layer_norm(x, x.shape[-1:]))
        logits = self.head(F.layer_norm(x, x.shape[-1:]))  # (B, T, vocab)
        if targets is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=reduction)


class Branchy(TinyLM):
    """A forward that branches on tensor values: no graph can hold it."""

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
        logits = super().forward(idx)
        if logits.mean() > 0:
            return logits * 2
        return logits


@pytest.fixture(scope="module")
def cpu_data(tiny_corpus: Path, lm_cache: Path) -> PreparedData:
    """The tiny corpus under the cpu profile: what the scorer's interpreter prepares from its environment."""
    return prepare(str(tiny_corpus), PROFILES["cpu"], lm_cache, progress=lambda message: None)


@pytest.fixture(scope="module")
def scorer_env(tiny_corpus: Path, lm_cache: Path) -> dict[str, str]:
    return {**os.environ, "AUTORESEARCH_DATA": str(tiny_corpus), "AUTORESEARCH_CACHE": str(lm_cache),
            "AUTORESEARCH_PROFILE": "cpu"}


def train(data: PreparedData, split: str, steps: int, causal: bool = True, lr: float = 3e-3) -> TinyLM:
    torch.manual_seed(0)
    model = TinyLM(len(data.token_bytes), causal=causal)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loader = make_dataloader(None, 8, data.profile.max_seq_len, split, data=data)
    for _ in range(steps):
        x, y, _ = next(loader)
        model(x, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def trained(cpu_data: PreparedData) -> TinyLM:
    return train(cpu_data, "train", 100)


@pytest.fixture
def score(tmp_path: Path, scorer_env: dict[str, str]) -> Callable[[nn.Module], Scored]:
    def export_and_score(model: nn.Module) -> Scored:
        artifact = save_model(model, tmp_path / "model.pt2")
        assert artifact is not None
        return run_scorer(SCORER, artifact, timeout=120, env=scorer_env)

    return export_and_score


def test_val_bpb_agrees_with_evaluate_bpb(trained: TinyLM, cpu_data: PreparedData,
                                          score: Callable[[nn.Module], Scored]) -> None:
    result = score(trained)
    assert result.rejected is None, result.rejected
    assert result.values["val_bpb"] == pytest.approx(evaluate_bpb(trained, data=cpu_data), rel=1e-5)
    assert 0 < result.values["heldout_bpb"] < 10


def test_rounded_matmuls_move_the_score_by_rounding_only(trained: TinyLM, cpu_data: PreparedData,
                                                         rounded_matmuls: Callable[[bool], None]) -> None:
    module, cpu = export_model(trained).module(), torch.device("cpu")
    exact = bits_per_byte(module, cpu_data.val_rows, cpu_data, cpu).bpb
    rounded_matmuls(True)
    rounded = bits_per_byte(module, cpu_data.val_rows, cpu_data, cpu).bpb
    assert rounded != exact and rounded == pytest.approx(exact, rel=1e-4)


# Where glibc puts one of a forward's large temporaries (a cpu batch's logits, 16 MiB), by default and then
# with reuse_freed_memory, in MiB: what is in mappings of their own while the tensor lives and after it is
# freed, and the free memory the heap keeps after.
MALLOC = """
import ctypes, torch
from pytest_autoresearch.lm.scorer import reuse_freed_memory
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
def place():
    logits = torch.ones(8, 256, 2048)
    held = mallinfo2()
    del logits
    freed = mallinfo2()
    return held.hblkhd >> 20, freed.hblkhd >> 20, freed.fordblks >> 20
print(*place())
print(reuse_freed_memory(), *place())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_the_scorer_keeps_the_memory_a_forward_freed_for_the_next() -> None:
    """By default each large tensor is a mapping of its own, returned when freed and faulted in a page at a
    time when the next one comes (a quarter of the scoring); kept in the heap, the next one reuses its pages."""
    out = subprocess.run([sys.executable, "-c", MALLOC], capture_output=True, text=True, timeout=120, check=True).stdout
    default, reused = ([int(n) if n.isdigit() else n for n in line.split()] for line in out.splitlines())
    assert default[0] - default[1] >= 16 and default[2] < 16  # mapped for itself, unmapped when freed
    assert reused[0] == "True" and reused[1] == reused[2] and reused[3] >= 16  # from the heap, and kept there


def test_a_causal_model_moves_nothing_when_probed_with_rounded_matmuls(trained: TinyLM, cpu_data: PreparedData,
                                                                       rounded_matmuls: Callable[[bool], None]) -> None:
    cpu, module = torch.device("cpu"), export_model(trained).module()
    rounded_matmuls(True)
    probe = CausalityProbe(cpu_data, 4)
    bits_per_byte(module, cpu_data.val_rows, cpu_data, cpu, 4, observe=probe.observe)
    probe.check(module, cpu, alone=False)  # each row in its own slot of the same shape: rounded the same way


def test_a_model_without_its_causal_mask_is_rejected(cpu_data: PreparedData,
                                                     score: Callable[[nn.Module], Scored]) -> None:
    result = score(train(cpu_data, "train", 20, causal=False))
    assert result.rejected is not None and result.rejected.startswith("the model's predictions depend on later tokens")


class Peeking(TinyLM):
    """Causal, but the logit of the token `shift` ahead (along `dim`: 1 the row, 0 the next row) gets +20 where `where` is 1."""

    def __init__(self, vocab: int, where: torch.Tensor, dim: int) -> None:
        super().__init__(vocab)
        self.register_buffer("where", where)
        self.dim = dim

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
        logits = super().forward(idx)
        peek = F.one_hot(torch.roll(idx, -1, self.dim), logits.size(-1)).to(logits.dtype)
        return logits + 20 * self.where[: idx.size(1), None] * peek


def test_a_peek_that_avoids_any_fixed_positions_is_caught(cpu_data: PreparedData,
                                                          score: Callable[[nn.Module], Scored]) -> None:
    T = cpu_data.profile.max_seq_len
    where = torch.ones(T)
    where[[0, T // 3, 2 * T // 3, T - 2, T - 1]] = 0  # the positions the probe cut before it drew them at random
    result = score(Peeking(len(cpu_data.token_bytes), where, dim=1).eval())
    assert result.rejected is not None and result.rejected.startswith("the model's predictions depend on later tokens")


def test_a_peek_at_the_next_row_is_caught(cpu_data: PreparedData, score: Callable[[nn.Module], Scored]) -> None:
    result = score(Peeking(len(cpu_data.token_bytes), torch.ones(cpu_data.profile.max_seq_len), dim=0).eval())
    assert result.rejected is not None and result.rejected.startswith(
        "the model's predictions depend on the other rows of its batch"), result.rejected


def test_probe_rows_keep_their_place_in_the_batch_and_positions_are_drawn_afresh(cpu_data: PreparedData) -> None:
    rows, T = cpu_data.val_rows[0].shape
    batch = 4
    assert rows >= 2 * batch, "the tiny corpus has rows for two batches"
    first, second = CausalityProbe(cpu_data, batch), CausalityProbe(cpu_data, batch)
    assert len(first.batches) == CAUSAL_BATCHES
    for picks, cuts in first.batches:
        assert list(picks % batch) == list(range(batch)) and (picks < rows // batch * batch).all()
        assert cuts[0] == T - 1 and ((0 <= cuts[1:]) & (cuts[1:] < T - 1)).all()
    drawn = [cuts[1:].tolist() for probe in (first, second) for _, cuts in probe.batches]
    assert drawn[:CAUSAL_BATCHES] != drawn[CAUSAL_BATCHES:], "each scoring probes positions of its own"


def test_a_model_trained_on_validation_rows_is_rejected(cpu_data: PreparedData,
                                                        score: Callable[[nn.Module], Scored]) -> None:
    result = score(train(cpu_data, "val", 150, lr=1e-2))  # val 19 % and 4 standard errors below held-out
    assert result.rejected is not None and result.rejected.startswith("validation leakage suspected: val_bpb")


def test_data_dependent_control_flow_says_what_to_change(cpu_data: PreparedData) -> None:
    with pytest.raises(ExportError, match="must not branch on tensor values.*torch.where or torch.cond"):
        export_model(Branchy(len(cpu_data.token_bytes)))


def test_a_model_returning_a_loss_says_what_to_return(cpu_data: PreparedData) -> None:
    class LossOnly(TinyLM):
        def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
            return super().forward(idx).mean()

    with pytest.raises(ExportError, match=r"must return logits of shape \(B, T, vocab\)"):
        export_model(LossOnly(len(cpu_data.token_bytes)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own imports warn
def test_a_compiled_model_exports_its_original_module(trained: TinyLM) -> None:
    compiled = torch.compile(trained)  # nothing compiles until it is called, and export never calls it
    program = export_model(compiled)
    idx = torch.zeros(3, PROFILES["cpu"].max_seq_len, dtype=torch.int64)
    torch.testing.assert_close(program.module()(idx), trained(idx))  # batch 3: the batch dimension is dynamic


def test_without_an_artifact_path_nothing_is_written(trained: TinyLM, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AUTORESEARCH_ARTIFACT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert save_model(trained) is None
    assert list(tmp_path.iterdir()) == [] and "AUTORESEARCH_ARTIFACT is unset" in capsys.readouterr().out


def test_held_out_blocks_are_shuffled_whole_so_any_prefix_samples_the_split() -> None:
    rows = np.arange(8 * BLOCK + 3)[:, None] * np.ones((1, 4), dtype=np.int64)  # row i holds i: 8 blocks and 3 rows
    inputs, targets = in_random_blocks((rows, rows))
    firsts = inputs[: 8 * BLOCK : BLOCK, 0]
    assert sorted(inputs[:, 0]) == list(range(len(rows))) and (targets == inputs).all()
    assert (inputs[: 8 * BLOCK, 0].reshape(8, BLOCK) == firsts[:, None] + np.arange(BLOCK)).all(), "blocks stay whole"
    assert list(firsts) != sorted(firsts) and list(inputs[8 * BLOCK :, 0]) == [64, 65, 66]
    assert (in_random_blocks((rows, rows))[0] == inputs).all(), "the order is pinned"


def _bpb(bpb: float, spread: float, rows: int) -> Bpb:
    """`rows` rows of 100 bytes each whose blocks alternate between bpb - spread and bpb + spread."""
    per_block = np.repeat(np.resize([bpb - spread, bpb + spread], rows // BLOCK), BLOCK)
    return Bpb(bpb, per_block * 100 * math.log(2), np.full(rows, 100, dtype=np.int64))


@pytest.mark.parametrize(("rows", "spread", "decidable"), [
    (MIN_HELDOUT_BLOCKS * BLOCK - BLOCK, 0.0, False),  # too few blocks to estimate a standard error
    (MIN_HELDOUT_BLOCKS * BLOCK, 0.01, True),  # 3 se far under 15% of 1.0
    (MIN_HELDOUT_BLOCKS * BLOCK, 0.3, False),  # noisy: more rows could still tell a 15% gap
    (64 * BLOCK, 0.3, True),  # the same noise, four times the blocks
])
def test_held_out_rows_are_scored_until_the_rule_can_tell_its_gap(rows: int, spread: float, decidable: bool) -> None:
    val = _bpb(1.0, 0.01, 64 * BLOCK)
    assert leakage_decidable(val, _bpb(1.0, spread, rows)) is decidable


def test_scoring_stops_when_enough_rows_are_scored(trained: TinyLM, cpu_data: PreparedData) -> None:
    cpu, rows = torch.device("cpu"), in_random_blocks(cpu_data.heldout_rows)
    part = bits_per_byte(trained, rows, cpu_data, cpu, batch_size=BLOCK, enough=lambda b: len(b.row_nats) >= 2 * BLOCK)
    first = bits_per_byte(trained, tuple(a[: 2 * BLOCK] for a in rows), cpu_data, cpu)  # type: ignore[arg-type]
    assert len(part.row_nats) == 2 * BLOCK and part.bpb == first.bpb
    whole, ordered = (bits_per_byte(trained, r, cpu_data, cpu) for r in (rows, cpu_data.heldout_rows))
    assert whole.bpb == pytest.approx(ordered.bpb, rel=1e-12) and whole.standard_error() == pytest.approx(
        ordered.standard_error(), rel=1e-9), "all rows in block order: the same bpb and standard error"
