"""The frozen language-model scorer: val_bpb from the exported model, computed here, not by train.py.

Run through `pytest_autoresearch.scoring.run_scorer("pytest_autoresearch.lm.scorer:score", artifact)`
in an isolated interpreter. It loads the ExportedProgram that save_model wrote (a graph of tensor
operations: none of train.py's Python runs), feeds it only the inputs of the pinned validation
rows, and computes bits per byte from its logits exactly as evaluate_bpb defines it. Two checks
can reject the artifact (pytest_autoresearch.scoring.Rejected):

- causality: the validation pass keeps the log-probabilities of CAUSAL_ROWS rows per probe
  batch; then CAUSAL_BATCHES forwards shaped like a scoring batch hold those rows in the slots
  they were scored in, with other batches' rows around them, each row's tokens after a random
  position (drawn from the OS's entropy each time: no graph can know which positions are
  probed) replaced by random ones. The log-probabilities at and before that position must not
  move by more than CAUSAL_TOLERANCE nats from the scored ones. The first row of each batch
  keeps every token (only its neighbours change), and at full matmul precision one row is also
  scored alone. The base being the scoring itself, a graph cannot behave only while it is
  probed (by batch size, by company, by rounding): where the matmuls round their operands
  (matmul_precision), the probe's do too, and only those (same shape, same kernels: a causal
  graph moves nothing; the exact products, never scored there, are not probed).
- leakage: the same model is scored on a held-out split (documents of the source's train split,
  as many as val has, which no training path serves). With gap = heldout_bpb - val_bpb and its
  standard error se (over blocks of 8 consecutive rows, since rows of one document are alike):
      Rejected when gap > LEAK_RELATIVE * heldout_bpb  and  gap > LEAK_Z * se.
  The held-out rows are a sample sized by this rule's power: blocks in a pinned random order,
  scored until LEAK_Z * se <= LEAK_RELATIVE * heldout_bpb (at least MIN_HELDOUT_BLOCKS blocks, at
  most all). Past that point the relative rule alone decides, so the smallest gap caught,
  max(LEAK_RELATIVE * heldout_bpb, LEAK_Z * se), is the same as with every held-out row scored.
  Calibration (benchmarks/lm_scorer.py --leakage; cpu profile, pystdlib, train.py's 4x256 GPT,
  2 shared cores): the unchanged baseline's held-out files are a little harder, a gap of
  +0.075 (2.8 %, z 1.4) at a 5 s budget, +0.099 (6.3 %, z 1.9) at 60 s, +0.054 (5.3 %, z 1.2)
  at the full 300 s (val_bpb 0.975). The same train.py reading the "val" split instead:
  +0.06 (2.0 %, z 0.7) at 5 s, too early to gain from it, and +1.97 (84 %, z 33) at 60 s. On
  the tiny test corpus (tests/lm) the baseline sits at -0.30 (-15 %: its 11 held-out files are
  easy) and a model trained 150 steps on val rows at +0.47 (19 %, z 4.1). LEAK_RELATIVE = 15 % leaves room above the baseline's drift and LEAK_Z = 3
  keeps small held-out sets from rejecting on noise. A run that gains less than that from the
  validation rows is not caught; memorising them is. Uncalibrated at the gpu profile (climbmix).

What it costs (docs/architecture.md, "What a run costs"): the validation rows are most of it
(1.1 TFLOP for train.py's cpu-profile model: ~6-8 s of two AVX512-BF16 cores with bf16-rounded
matmuls, run op by op, most of it outside the matmuls); the held-out sample adds at least 128 rows, the probes
2 batches, the start-up and load ~3 s of one core. The phases' seconds are on the log (Phases).
"""

from __future__ import annotations

import ctypes
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch._export.serde.serialize  # noqa: F401 - torch.export.load's own imports (1.3 s here) and the one
import torch.export._trace  # noqa: F401 - it makes while loading (0.1-0.3 s), paid before the artifact exists:
# the plugin starts this interpreter as the target starts (scoring.ScorerProcess)

from pytest_autoresearch.lm.dataset import PreparedData, prepare
from pytest_autoresearch.scoring import Rejected

CAUSAL_BATCHES = 2  # forwards of the causality probe, each at the scoring batch's shape
CAUSAL_ROWS = 8  # rows of a probe batch whose log-probabilities are compared (all of them on a CPU)
CAUSAL_TOLERANCE = 1e-3  # nats: float32 noise is ~1e-6, a peek at a later token moves predictions by far more
SCORE_TOKENS = {"cpu": 2**11, "cuda": 2**17}  # tokens per forward pass at most: a CPU's caches hold the
# activations of 2048 tokens (a 16-row batch is 2x slower here); on a GPU it bounds the (B, H, T, T) scores
LEAK_RELATIVE = 0.15  # val_bpb may beat heldout_bpb by this share of it ...
LEAK_Z = 3.0  # ... or by this many standard errors of the difference, whichever is more
BLOCK = 8  # rows per block of the standard errors: consecutive rows of one document are alike
MIN_HELDOUT_BLOCKS = 16  # held-out blocks scored at least, so that their standard error is an estimate
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
KEPT_FREE_BYTES = 2**30  # freed memory glibc keeps for the next allocation instead of returning it to the kernel
MMAP_ABOVE_BYTES = 2**25  # allocations from the heap up to this (glibc's largest: 32 MiB; a cpu batch's logits are 16 MiB)


@dataclass(frozen=True)
class Bpb:
    """Bits per byte of one split, and the nats and bytes of each row behind it."""

    bpb: float
    row_nats: np.ndarray  # (N,) float64
    row_bytes: np.ndarray  # (N,) int64

    def standard_error(self, block: int = BLOCK) -> float:
        """Standard error of bpb over blocks of consecutive rows (rows of one document are alike)."""
        n = len(self.row_nats) // block
        if n < 2:
            return math.inf
        nats = self.row_nats[: n * block].reshape(n, block).sum(1)
        nbytes = self.row_bytes[: n * block].reshape(n, block).sum(1).astype(np.float64)
        residual = (nats / math.log(2) - self.bpb * nbytes) / nbytes.mean()  # ratio estimator, linearized
        return float(np.sqrt((residual**2).sum() / (n * (n - 1))))


def score(artifact: Path) -> dict[str, float]:
    """val_bpb and heldout_bpb of the exported model; Rejected if it peeks ahead or learned the val rows."""
    clock = Phases()
    reuse_freed_memory()
    data = prepare(progress=lambda message: print(f"autoresearch: {message}", file=sys.stderr, flush=True))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = matmul_precision(device)
    torch.set_float32_matmul_precision(precision)  # the probe runs at it too: the graph probed is the graph scored
    program = load_program(artifact, device)
    clock.lap("load")
    logits_of: torch.nn.Module = program.module()
    batch_size = scoring_batch_size(data, device)
    probe = CausalityProbe(data, batch_size)
    val = bits_per_byte(logits_of, data.val_rows, data, device, batch_size, observe=probe.observe)
    clock.lap("validation")
    probe.check(logits_of, device, alone=precision == "highest")  # against the logits the validation rows were scored with
    clock.lap("probes")
    heldout_rows = in_random_blocks(data.heldout_rows)
    heldout = bits_per_byte(logits_of, heldout_rows, data, device, batch_size,
                            enough=lambda part: leakage_decidable(val, part))
    clock.lap("held-out")
    peak = f", peak memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
    print(f"autoresearch: scored in {clock}{peak}", file=sys.stderr, flush=True)
    gap, se = heldout.bpb - val.bpb, math.hypot(val.standard_error(), heldout.standard_error())
    print(f"autoresearch: held-out {heldout.bpb:.4f} on {len(heldout.row_nats)} of {len(heldout_rows[0])} rows, "
          f"val {val.bpb:.4f}: gap {gap / heldout.bpb:+.1%}, {gap / se:+.1f} standard errors", file=sys.stderr, flush=True)
    check_leakage(val, heldout)
    return {"val_bpb": val.bpb, "heldout_bpb": heldout.bpb}


class Phases:
    """Seconds spent in each phase of scoring, printed on the scorer's log for benchmarks/lm_scorer.py."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase], self._last = now - self._last, now

    def __str__(self) -> str:
        phases = ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in self.seconds.items())
        return f"{sum(self.seconds.values()):.2f}s ({phases})"


def reuse_freed_memory() -> bool:
    """Have the C allocator keep the memory torch frees for the next tensor; whether it could (glibc).

    Run op by op, each large tensor of a forward (a cpu batch's logits: 16 MiB) was a fresh
    mapping from the kernel, returned when freed, and its first touch cost a page fault every
    4 KiB: ~2,500 faults a validation row, 15-25% of the validation phase on two cores. Kept, a
    forward reuses the last one's pages. Where tensors are allocated does not change what they hold.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc: its allocator keeps its own policy
    return bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE_BYTES))


def load_program(artifact: Path, device: torch.device) -> torch.export.ExportedProgram:
    """The exported `idx -> logits` program on `device`; `.module()` gives a callable graph."""
    program = torch.export.load(artifact)
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    return program


def matmul_precision(device: torch.device) -> str:
    """torch's float32 matmul precision for scoring: "medium" where rounded operands make matmuls fast.

    At "medium" a float32 matmul rounds its operands inside the kernel and accumulates and returns
    float32: to bf16 on CPUs with AVX512-BF16 or AMX (oneDNN), to TF32 on CUDA GPUs from Ampere on.
    The graph stays float32, so nothing else is cast. On a 2-core AMX Xeon it scores the cpu
    profile's validation rows 1.4x faster than float32 and 3-13% faster than bf16 casts written
    into the graph (which also round each result), and moves val_bpb by 4e-6 to 1e-5 from float32
    (the casts: 2e-5 to 7e-5; docs/architecture.md, "Rounded operands"). Elsewhere "highest".
    """
    if device.type == "cuda":
        fast = torch.cuda.get_device_capability(device) >= (8, 0)
    else:
        cpu = torch.cpu
        fast = any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return "medium" if fast else "highest"


def _logits(logits_of: torch.nn.Module, x: torch.Tensor, vocab: int) -> torch.Tensor:
    """Float32 logits (B, T, vocab). No autocast: the exported graph fixes its own dtypes."""
    with torch.no_grad():
        logits: torch.Tensor = logits_of(x)
    if tuple(logits.shape) != (*x.shape, vocab):
        raise ValueError(f"the artifact returned logits of shape {tuple(logits.shape)} for input "
                         f"{tuple(x.shape)}; expected {(*x.shape, vocab)}")
    return logits.float()


def scoring_batch_size(data: PreparedData, device: torch.device) -> int:
    """Rows per scoring forward: SCORE_TOKENS tokens at most, never more than the profile's eval batch."""
    tokens = SCORE_TOKENS.get(device.type, SCORE_TOKENS["cuda"])
    return min(data.profile.eval_batch_size, max(1, tokens // data.profile.max_seq_len))


def bits_per_byte(logits_of: torch.nn.Module, rows: tuple[np.ndarray, np.ndarray], data: PreparedData,
                  device: torch.device, batch_size: int | None = None,
                  enough: Callable[[Bpb], bool] | None = None,
                  observe: Callable[[range, torch.Tensor], None] | None = None) -> Bpb:
    """evaluate_bpb's definition from logits: nats of scored targets / their bytes / ln 2.

    With `enough`, the rows are scored in order until `enough(the rows scored so far)` holds.
    `observe(rows, logprobs)` sees each batch's log-probabilities (the causality probe's base).
    """
    batch_size = batch_size or scoring_batch_size(data, device)
    vocab = len(data.token_bytes)
    inputs, targets = (torch.from_numpy(a.astype(np.int64)) for a in rows)
    token_bytes = torch.from_numpy(data.token_bytes.astype(np.int64)).to(device)
    row_nats, row_bytes = [], []
    for i in range(0, len(inputs), batch_size):
        x = inputs[i : i + batch_size].to(device)
        y = targets[i : i + batch_size].to(device)  # never enters the model
        logprobs = torch.log_softmax(_logits(logits_of, x, vocab), dim=-1)
        if observe is not None:
            observe(range(i, i + len(x)), logprobs)
        nats = -logprobs.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1).double()
        nbytes = torch.where(y >= 0, token_bytes[y.clamp(min=0)], 0)
        row_nats.append(torch.where(nbytes > 0, nats, 0.0).sum(1).cpu())
        row_bytes.append(nbytes.sum(1).cpu())
        if enough is not None and enough(_bpb(row_nats, row_bytes)):
            break
    return _bpb(row_nats, row_bytes)


def _bpb(row_nats: list[torch.Tensor], row_bytes: list[torch.Tensor]) -> Bpb:
    nats_per_row, bytes_per_row = torch.cat(row_nats).numpy(), torch.cat(row_bytes).numpy()
    return Bpb(float(nats_per_row.sum()) / (math.log(2) * int(bytes_per_row.sum())), nats_per_row, bytes_per_row)


def in_random_blocks(rows: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The rows in blocks of BLOCK consecutive rows, the blocks in a pinned random order.

    Any leading part is then a random sample of blocks from the whole split, not its first documents.
    """
    inputs, targets = rows
    blocks = len(inputs) // BLOCK
    order = np.random.default_rng(0).permutation(blocks)
    keep = np.concatenate([(order[:, None] * BLOCK + np.arange(BLOCK)).ravel(), np.arange(blocks * BLOCK, len(inputs))])
    return inputs[keep], targets[keep]


class CausalityProbe:
    """Validation rows with their later tokens replaced, in batches shaped like the scoring's.

    Slot j of a probe batch holds a row from slot j of a scoring batch (the same place in the
    same shape: the same kernels compute it), each from a random batch, so its neighbours are
    not the ones it was scored with. Each compared row but the first is cut at a random
    position; the first keeps every token, so only its neighbours change. The base is what
    `observe` saw: the validation pass's own log-probabilities of those rows.
    """

    def __init__(self, data: PreparedData, batch_size: int) -> None:
        self.inputs = data.val_rows[0]
        self.vocab = len(data.token_bytes)
        rows, T = self.inputs.shape
        width = min(batch_size, rows)  # a split smaller than a batch is scored (and probed) as one partial batch
        full = max(1, rows // batch_size)
        entropy = np.random.default_rng()  # the OS's: a graph cannot know the positions probed
        self.seed = int(entropy.integers(2**63))
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, cut of each row; T - 1: every token kept)
        for _ in range(CAUSAL_BATCHES):
            picks = entropy.integers(0, full, width) * batch_size + np.arange(width)
            cuts = entropy.integers(0, max(1, T - 1), width)
            if width > 1:
                cuts[0] = T - 1
            self.batches.append((picks, cuts))
        compared = [(int(r), int(c)) for picks, cuts in self.batches for r, c in zip(picks[:CAUSAL_ROWS], cuts[:CAUSAL_ROWS])]
        self.wanted: dict[int, int] = {}  # row -> positions of its base kept (up to the largest cut)
        for row, cut in compared:
            self.wanted[row] = max(cut, self.wanted.get(row, -1))
        self.base: dict[int, torch.Tensor] = {}

    def observe(self, rows: range, logprobs: torch.Tensor) -> None:
        """Keep the log-probabilities of the compared rows among `rows`: a copy on the CPU, so neither the
        batch's tensor nor a GPU's memory is held."""
        for row, cut in self.wanted.items():
            if row in rows:
                self.base[row] = logprobs[row - rows.start, : cut + 1].to("cpu", torch.float32, copy=True)

    def check(self, logits_of: torch.nn.Module, device: torch.device, alone: bool = True) -> None:
        """Reject a model whose prediction at a position moves when later tokens (or other rows) change.

        `alone` adds a row scored by itself, whose kernels may round differently (exact only in
        float32 at full matmul precision).
        """
        generator = torch.Generator().manual_seed(self.seed)
        T = self.inputs.shape[1]
        for picks, cuts in self.batches:
            x = torch.from_numpy(self.inputs[picks].astype(np.int64))
            for i, cut in enumerate(cuts):
                x[i, cut + 1 :] = torch.randint(0, self.vocab, (T - cut - 1,), generator=generator)
            moved = torch.log_softmax(_logits(logits_of, x.to(device), self.vocab), dim=-1)
            for i in sorted(range(min(CAUSAL_ROWS, len(picks))), key=lambda i: -cuts[i]):  # whole rows first
                row, cut = int(picks[i]), int(cuts[i])
                delta = float((moved[i, : cut + 1].float().cpu() - self.base[row][: cut + 1]).abs().max())
                if delta <= CAUSAL_TOLERANCE:
                    continue
                if cut == T - 1:
                    raise Rejected(f"the model's predictions depend on the other rows of its batch ({delta:.3g} nats "
                                   f"on validation row {row} when its neighbours changed)")
                raise Rejected(f"the model's predictions depend on later tokens (changing the tokens after position "
                               f"{cut} of validation row {row} moved earlier log-probabilities by {delta:.3g} nats)")
        if alone:
            row, cut = int(self.batches[0][0][0]), int(self.batches[0][1][0])
            x = torch.from_numpy(self.inputs[row : row + 1].astype(np.int64)).to(device)
            by_itself = torch.log_softmax(_logits(logits_of, x, self.vocab), dim=-1)[0, : cut + 1].float().cpu()
            delta = float((by_itself - self.base[row][: cut + 1]).abs().max())
            if delta > CAUSAL_TOLERANCE:
                raise Rejected(f"the model's predictions depend on the other rows of its batch ({delta:.3g} nats "
                               f"on validation row {row} scored alone)")


def leakage_decidable(val: Bpb, heldout: Bpb) -> bool:
    """Whether the held-out rows scored so far already tell a gap of LEAK_RELATIVE at LEAK_Z standard errors.

    From there on the relative rule alone decides check_leakage, so more held-out rows would
    catch nothing more: the split is sampled until its noise is that small (or used up).
    """
    if len(heldout.row_nats) < MIN_HELDOUT_BLOCKS * BLOCK:
        return False
    return LEAK_Z * math.hypot(val.standard_error(), heldout.standard_error()) <= LEAK_RELATIVE * heldout.bpb


def check_leakage(val: Bpb, heldout: Bpb) -> None:
    """Reject when val_bpb beats the held-out split by more than two samples of one distribution differ."""
    if not (math.isfinite(val.bpb) and math.isfinite(heldout.bpb)):
        return  # a non-finite score fails on its own
    gap = heldout.bpb - val.bpb
    se = math.hypot(val.standard_error(), heldout.standard_error())
    if gap > LEAK_RELATIVE * heldout.bpb and gap > LEAK_Z * se:
        raise Rejected(f"validation leakage suspected: val_bpb {val.bpb:.4f} vs held-out {heldout.bpb:.4f} "
                       f"({gap / heldout.bpb:.1%} and {gap / se:.1f} standard errors apart; "
                       "was the model trained on validation rows?)")
