"""
Autoresearch pretraining script: one file, one device, a fixed time budget.
The GPT of the nanochat line (RoPE, QK-norm, RMSNorm, ReLU² MLP, value embeddings,
logit soft-capping) trained with Muon for matrices and AdamW for the rest.
This is the file the agent edits. Usage: python train.py
The score is computed from the model it saves, not from what it prints: keep `model(idx)`
returning logits (B, T, vocab) from token ids alone, and keep the save_model call at the end.
"""

from __future__ import annotations

import ctypes
import gc
import math
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import MAX_SEQ_LEN, PROFILE, TIME_BUDGET, evaluate_bpb, make_dataloader, prepare, save_model

# ---------------------------------------------------------------------------
# GPT model
# ---------------------------------------------------------------------------


@dataclass
class GPTConfig:
    sequence_len: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_kv_head: int
    n_embd: int
    window_pattern: str  # per layer, cycled: L = full context, S = the short_window most recent keys; last layer is always L
    short_window: int  # keys an S layer's query sees, its own included


def norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def compute_dtype(device_type: str) -> torch.dtype:
    """Autocast's dtype while it is on, float32 otherwise (the exported model the scorer runs).

    Embeddings are float32 weights: uncast, their rows would carry the residual stream and the attention
    of the value-embedding layers in float32 (15% more memory kept for backward, and on CUDA those
    layers' attention off its bf16 flash kernel).
    """
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32


def has_ve(layer_idx: int, n_layer: int) -> bool:
    """Value embeddings on alternating layers, always including the last."""
    return layer_idx % 2 == (n_layer - 1) % 2


def apply_rotary_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


try:  # FlashAttention-3 on Hopper GPUs when installed; PyTorch SDPA everywhere else
    from flash_attn_interface import flash_attn_func as _fa3
except ImportError:
    _fa3 = None


def visible_keys(T: int, window: int, device: torch.device) -> torch.Tensor:
    """(T, T) mask: query i sees keys i - window < j <= i."""
    i = torch.arange(T, device=device)
    return (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)


def written_out_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention over (B, H, T, D) tensors as two matmuls and a masked softmax, for the compiler."""
    scores = (q @ k.mT) * q.size(-1) ** -0.5
    scores = scores.float().masked_fill(~visible_keys(q.size(-2), window, q.device), float("-inf"))
    return scores.softmax(-1).to(v.dtype) @ v


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Causal attention over (B, T, H, D) tensors, each query seeing at most `window` keys."""
    T = q.size(1)
    if _fa3 is not None and q.is_cuda:
        # FA3's left window counts keys before the query's own: window - 1 sees the same keys as visible_keys
        y = _fa3(q, k, v, causal=True, window_size=(window - 1 if window < T else -1, 0))
        return y[0] if isinstance(y, tuple) else y  # older FA3 builds also return the log-sum-exp
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
    if q.device.type == "cpu" and torch.compiler.is_compiling():
        # Written out, compiled attention runs its matmuls in bf16 and fuses mask and softmax; SDPA's
        # math kernel would upcast them to fp32 (2.5x slower here) and its flash kernel is slower still.
        if k.size(1) != q.size(1):
            k, v = (t.repeat_interleave(q.size(1) // k.size(1), dim=1) for t in (k, v))
        y = written_out_attention(q, k, v, window)
    elif window >= T:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.size(1) != k.size(1))
    else:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=visible_keys(T, window, q.device),
                                           enable_gqa=q.size(1) != k.size(1))
    return y.transpose(1, 2)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        self.c_q = nn.Linear(config.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.ve_gate_channels = 32
        self.ve_gate = nn.Linear(self.ve_gate_channels, self.n_kv_head, bias=False) if has_ve(layer_idx, config.n_layer) else None

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos_sin: tuple[torch.Tensor, torch.Tensor], window: int) -> torch.Tensor:
        B, T, C = x.size()
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:  # value embedding mixed in through an input-dependent gate in (0, 2)
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate_channels]))  # (B, T, n_kv_head)
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        cos, sin = (t.to(q.dtype) for t in cos_sin)
        q, k = (norm(apply_rotary_emb(t, cos, sin)).to(v.dtype) for t in (q, k))  # RoPE, then QK-norm
        y = attention(q, k, v, window).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU²


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos_sin: tuple[torch.Tensor, torch.Tensor], window: int) -> torch.Tensor:
        x = x + self.attn(norm(x), ve, cos_sin, window)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        kv_dim = config.n_kv_head * (config.n_embd // config.n_head)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.value_embeds = nn.ModuleDict(
            {str(i): nn.Embedding(config.vocab_size, kv_dim) for i in range(config.n_layer) if has_ve(i, config.n_layer)}
        )
        self.blocks = nn.ModuleList([Block(config, i) for i in range(config.n_layer)])
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))  # per-layer residual scale
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))  # per-layer skip from the embedding
        long = config.sequence_len
        pattern = config.window_pattern.upper()
        self.windows = [long if pattern[i % len(pattern)] == "L" else config.short_window for i in range(config.n_layer)]
        self.windows[-1] = long
        head_dim = config.n_embd // config.n_head
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(config.sequence_len, dtype=torch.float32), inv_freq)  # (T, head_dim/2)
        self.register_buffer("cos", freqs.cos()[None, :, None, :], persistent=False)  # (1, T, 1, head_dim/2)
        self.register_buffer("sin", freqs.sin()[None, :, None, :], persistent=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        s = 3**0.5 * self.config.n_embd**-0.5  # uniform bound with the std of n_embd**-0.5
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(lin.weight, -s, s)
            nn.init.zeros_(block.attn.c_proj.weight)  # every block starts as the identity
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)
        for ve in self.value_embeds.values():
            nn.init.uniform_(ve.weight, -s, s)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)

    def estimate_flops(self) -> float:
        """Training FLOPs per token: 6 per weight in a matmul plus 12·C per key attended (scores and values).

        Query i of T attends min(i + 1, w) keys under a window of w: on average (w(w+1)/2 + (T-w)·w) / T,
        about T/2 for a full window and w for a short one.
        """
        embeddings = self.wte.weight.numel() + sum(ve.weight.numel() for ve in self.value_embeds.values())
        scalars = self.resid_lambdas.numel() + self.x0_lambdas.numel()
        matmul_params = sum(p.numel() for p in self.parameters()) - embeddings - scalars
        T = self.config.sequence_len
        keys = sum((w * (w + 1) / 2 + (T - w) * w) / T for w in (min(w, T) for w in self.windows))
        return 6 * matmul_params + 12 * self.config.n_embd * keys

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); with targets, the cross-entropy instead."""
        B, T = idx.size()
        cos_sin = self.cos[:, :T], self.sin[:, :T]
        dtype = compute_dtype(idx.device.type)  # of the residual stream and the value embeddings
        x = norm(self.wte(idx).to(dtype))  # (B, T, C)
        x0 = x
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx).to(dtype) if str(i) in self.value_embeds else None
            x = block(x, ve, cos_sin, self.windows[i])
        x = norm(x)
        logits = self.lm_head(x).float()  # (B, T, vocab)
        # soft-cap at ±15: 15·s/√(1+s²) has the shape of 15·tanh(s) at a fifth of its cost on a CPU
        s = (logits / 15).clamp(-1e4, 1e4)  # s² stays finite however far a diverging run goes
        logits = 15 * s * torch.rsqrt(1 + s * s)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=reduction)


# ---------------------------------------------------------------------------
# Optimizer: Muon for 2-D matrices inside blocks, AdamW for everything else
# ---------------------------------------------------------------------------


def orthogonalize(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Newton–Schulz iteration towards the nearest semi-orthogonal matrix (Keller Jordan's quintic).

    `G` is a stack of matrices (n, rows, cols); baddbmm fuses each scale-and-add into its matmul.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.bfloat16()
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # b·A + c·A²
        X = torch.baddbmm(X, B, X, beta=a, alpha=1)  # a·X + B·X
    return (X.mT if tall else X).to(G.dtype)


class Muon(torch.optim.Optimizer):
    """SGD-momentum (Nesterov) whose update is orthogonalized, scaled for the matrix's aspect ratio.

    Matrices of one shape form one group and are orthogonalized together as a batch.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, momentum: float, weight_decay: float) -> None:
        by_shape: dict[torch.Size, list[nn.Parameter]] = {}
        for p in params:
            by_shape.setdefault(p.shape, []).append(p)
        groups = [dict(params=ps) for ps in by_shape.values()]
        super().__init__(groups, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = group["params"]
            grads = torch.stack([p.grad for p in params])  # (n, rows, cols)
            buf = self.state[params[0]].setdefault("momentum", torch.zeros_like(grads))
            buf.lerp_(grads, 1 - group["momentum"])
            update = orthogonalize(grads.lerp_(buf, group["momentum"]))
            aspect = max(1.0, grads.size(-2) / grads.size(-1)) ** 0.5
            torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            torch._foreach_add_(params, update.unbind(0), alpha=-group["lr"] * aspect)


def make_optimizers(model: GPT) -> list[torch.optim.Optimizer]:
    scale = (model.config.n_embd / 768) ** -0.5  # AdamW rates were tuned at width 768
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    adam_groups = [
        dict(params=[model.wte.weight, *model.value_embeds.parameters()], lr=EMBEDDING_LR * scale),
        dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR * scale),
        dict(params=[model.resid_lambdas], lr=SCALAR_LR * 0.01),
        dict(params=[model.x0_lambdas], lr=SCALAR_LR, betas=(0.96, 0.95)),
    ]
    adam = torch.optim.AdamW(adam_groups, betas=ADAM_BETAS, eps=1e-10, weight_decay=0.0, fused=False)
    muon = Muon(matrices, lr=MATRIX_LR, momentum=0.95, weight_decay=WEIGHT_DECAY)
    for opt in (adam, muon):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return [adam, muon]


# ---------------------------------------------------------------------------
# Hyper-parameters (edit these directly, no CLI flags)
# ---------------------------------------------------------------------------

BIG = PROFILE.name == "gpu"  # defaults for the profile in use: gpu (an H100) or cpu (two cores)

# Model
DEPTH = 8 if BIG else 4  # number of transformer blocks
ASPECT_RATIO = 64  # model width = DEPTH * ASPECT_RATIO, rounded up to a multiple of HEAD_DIM
HEAD_DIM = 128  # channels per attention head
WINDOW_PATTERN = "SSSL"  # attention windows per layer: L full context, S short (on CUDA only with FA3)
SHORT_WINDOW = MAX_SEQ_LEN // 2 if BIG else 32  # keys an S layer sees (on a CPU 32 of 256 learn faster per token)

# Optimization
TOTAL_BATCH_SIZE = 2**19 if BIG else 2**13  # tokens per optimizer step
DEVICE_BATCH_SIZE = 128 if BIG else 16  # rows per forward/backward; gradient accumulation makes up the rest
EMBEDDING_LR = 0.6  # AdamW, token and value embeddings
UNEMBEDDING_LR = 0.004  # AdamW, lm_head
MATRIX_LR = 0.04  # Muon, matrices inside blocks
SCALAR_LR = 0.5  # AdamW, per-layer lambdas
WEIGHT_DECAY = 0.2  # Muon's decoupled weight decay at the start, falling linearly to 0 at the end
ADAM_BETAS = (0.8, 0.95)  # AdamW betas
WARMUP_RATIO = 0.0  # share of the budget spent warming the learning rate up
WARMDOWN_RATIO = 0.5  # share of the budget spent decaying it to FINAL_LR_FRAC
FINAL_LR_FRAC = 0.0  # learning rate at the end, as a share of the peak

# Runtime
EVAL_BATCH_SIZE = PROFILE.eval_batch_size  # rows per evaluation forward pass (speed only)
COMPILE = True  # torch.compile the training model (cuda; cpu with a C compiler); the first step pays for it
WARMUP_STEPS = 10 if BIG else 2  # first steps (compilation, allocation) not counted against TIME_BUDGET
CPU_PEAK_FLOPS = 0.9e12  # bf16 matmul peak of the reference 2-core CPU (benchmarks/lm_matmul_peak.py)
GPU_PEAK_FLOPS = 989.5e12  # H100 bf16 dense peak


def lr_multiplier(progress: float) -> float:
    if progress < WARMUP_RATIO:
        return progress / WARMUP_RATIO
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    cooldown = (1.0 - progress) / WARMDOWN_RATIO
    return cooldown + (1 - cooldown) * FINAL_LR_FRAC


def muon_momentum(step: int) -> float:
    return 0.85 + 0.10 * min(step / 300, 1.0)


def muon_weight_decay(progress: float) -> float:
    return WEIGHT_DECAY * (1.0 - progress)


# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def bf16_helps(device: torch.device) -> bool:
    """bf16 autocast on GPUs; on a CPU only when its bf16 matmuls beat fp32 (a 50 ms probe)."""
    if device.type != "cpu":
        return True
    speed = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(512, 512, dtype=dtype)
        a @ a
        t0 = time.perf_counter()
        for _ in range(8):
            a @ a
        speed[dtype] = time.perf_counter() - t0
    return speed[torch.bfloat16] < 0.7 * speed[torch.float32]


def keep_freed_memory() -> None:
    """Stop glibc from handing freed tensors back to the OS: otherwise every CPU step faults in
    (and zeroes) hundreds of MB of fresh pages, about a sixth of the step time here."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: its maximum; larger blocks are still mapped
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Accelerator memory on a GPU; the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20 if sys.platform == "darwin" else kib / 2**10  # macOS reports bytes


t_start = time.time()
torch.manual_seed(42)
device = pick_device()
if device.type == "cpu":
    keep_freed_memory()
use_bf16 = bf16_helps(device)
autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
peak_flops = GPU_PEAK_FLOPS if device.type == "cuda" else CPU_PEAK_FLOPS

# On CUDA a sliding window needs FA3: without it SDPA leaves its flash kernel for a masked one (20% slower
# than full windows on an H100, and a compiled flex_attention mask triples the first step). A CPU masks for free.
window_pattern = "L" if device.type == "cuda" and _fa3 is None else WINDOW_PATTERN

tokenizer = prepare().tokenizer
vocab_size = tokenizer.get_vocab_size()
model_dim = -(-DEPTH * ASPECT_RATIO // HEAD_DIM) * HEAD_DIM
config = GPTConfig(sequence_len=MAX_SEQ_LEN, vocab_size=vocab_size, n_layer=DEPTH, n_head=model_dim // HEAD_DIM,
                   n_kv_head=model_dim // HEAD_DIM, n_embd=model_dim, window_pattern=window_pattern,
                   short_window=SHORT_WINDOW)
model = GPT(config).to(device)
model.init_weights()
num_params = sum(p.numel() for p in model.parameters())
flops_per_token = model.estimate_flops()
optimizers = make_optimizers(model)
can_compile = device.type == "cuda" or (device.type == "cpu" and shutil.which("cc") is not None)
train_model = torch.compile(model) if COMPILE and can_compile else model  # evaluation runs the eager model

tokens_per_fwdbwd = DEVICE_BATCH_SIZE * MAX_SEQ_LEN
assert TOTAL_BATCH_SIZE % tokens_per_fwdbwd == 0, "TOTAL_BATCH_SIZE must be a multiple of DEVICE_BATCH_SIZE * MAX_SEQ_LEN"
grad_accum_steps = TOTAL_BATCH_SIZE // tokens_per_fwdbwd
train_loader = make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train", device=device)
x, y, epoch = next(train_loader)

print(f"device: {device} ({'bf16 autocast' if use_bf16 else 'fp32'}, {torch.get_num_threads()} threads, "
      f"{'compiled' if train_model is not model else 'eager'})")
print(f"model: {num_params / 1e6:.2f}M parameters, depth {DEPTH}, width {model_dim}, vocab {vocab_size}, "
      f"windows {window_pattern}{'' if window_pattern == WINDOW_PATTERN else f' (not {WINDOW_PATTERN}: no FA3)'}"
      f"{f', S = {config.short_window} keys' if min(model.windows) < MAX_SEQ_LEN else ''}")
print(f"budget: {TIME_BUDGET:g}s, {TOTAL_BATCH_SIZE:,} tokens per step, {grad_accum_steps} micro-batch{'' if grad_accum_steps == 1 else 'es'} per step")
print(f"setup: {time.time() - t_start:.1f}s", flush=True)

# ---------------------------------------------------------------------------
# Training loop: runs until TIME_BUDGET seconds of training have passed
# ---------------------------------------------------------------------------

step = 0
training_seconds = 0.0
smooth_loss = 0.0
while True:
    t0 = time.time()
    for _ in range(grad_accum_steps):
        with autocast:
            loss = train_model(x, y)
        (loss / grad_accum_steps).backward()
        x, y, epoch = next(train_loader)  # the next batch is ready before the optimizer runs
    progress = min(training_seconds / TIME_BUDGET, 1.0)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lr_multiplier(progress)
    for group in optimizers[1].param_groups:
        group["momentum"] = muon_momentum(step)
        group["weight_decay"] = muon_weight_decay(progress)
    for opt in optimizers:
        opt.step()
    model.zero_grad(set_to_none=True)
    loss_value = loss.item()
    # Diverged: NaN, or twice the loss of uniform guessing (soft-capped logits bound it near 37 nats)
    if not math.isfinite(loss_value) or loss_value > 2 * math.log(vocab_size):
        print(f"FAIL: loss {loss_value} at step {step}")
        sys.exit(1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.time() - t0
    if step >= WARMUP_STEPS:
        training_seconds += dt
    if step == 0:  # the first step allocated what training needs; keep the collector out of the loop
        gc.collect()
        gc.freeze()
        gc.disable()
    smooth_loss = 0.9 * smooth_loss + 0.1 * loss_value
    debiased = smooth_loss / (1 - 0.9 ** (step + 1))
    tok_per_sec = TOTAL_BATCH_SIZE / dt
    if step % 10 == 0 or step < WARMUP_STEPS:
        remaining = max(0.0, TIME_BUDGET - training_seconds)
        print(f"step {step:05d} ({100 * progress:.1f}%) | loss: {debiased:.4f} | lrm: {lr_multiplier(progress):.2f} | "
              f"dt: {dt * 1000:.0f}ms | tok/sec: {tok_per_sec:,.0f} | mfu: {100 * flops_per_token * tok_per_sec / peak_flops:.1f}% | "
              f"epoch: {epoch} | remaining: {remaining:.0f}s", flush=True)
    step += 1
    if step > WARMUP_STEPS and training_seconds >= TIME_BUDGET:
        break

# ---------------------------------------------------------------------------
# Evaluation and summary
# ---------------------------------------------------------------------------

model.eval()
artifact = save_model(model)  # the artifact the frozen scorer evaluates (to AUTORESEARCH_ARTIFACT when set)
if artifact is None:  # run by hand, nothing scores the artifact: evaluate here (under pytest the scorer does)
    t_eval = time.time()
    with autocast:
        val_bpb = evaluate_bpb(model, EVAL_BATCH_SIZE)
    print(f"evaluation: {time.time() - t_eval:.1f}s")
counted_steps = step - WARMUP_STEPS
mfu = 100 * flops_per_token * TOTAL_BATCH_SIZE * counted_steps / training_seconds / peak_flops
print("---")
if artifact is None:
    print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {training_seconds:.1f}")
print(f"total_seconds:    {time.time() - t_start:.1f}")
print(f"peak_vram_mb:     {peak_memory_mb(device):.1f}")
print(f"mfu_percent:      {mfu:.2f}")
print(f"total_tokens_M:   {step * TOTAL_BATCH_SIZE / 1e6:.1f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.1f}")
print(f"depth:            {DEPTH}")
