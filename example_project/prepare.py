"""
Frozen preparation for autoresearch experiments: constants, data, tokenizer, dataloader, evaluation.
The agent never edits this file; train.py imports what it needs from here. The code behind
each name lives in pytest_autoresearch/lm/ (frozen too: it is part of the evaluation identity).

Usage: python prepare.py    # prepare data and tokenizer once (cached under ~/.cache/autoresearch)

Environment (each is part of the evaluation identity):
    AUTORESEARCH_PROFILE      cpu (default) or gpu: context length, vocabulary, evaluation tokens
    AUTORESEARCH_DATA         pystdlib (default, offline: sized for a CPU), climbmix (downloaded: use it
                              on a GPU, which passes over pystdlib dozens of times a run), tinystories,
                              or a folder path
    AUTORESEARCH_SHARDS       climbmix training shards to download (default 10; validation: the last one)
    AUTORESEARCH_TIME_BUDGET  override the 300 s training budget (tests, smoke runs)
    AUTORESEARCH_CACHE        where prepared data lives (default ~/.cache/autoresearch)
    AUTORESEARCH_ARTIFACT     where save_model writes the trained model (set by the plugin)
    AUTORESEARCH_PREPARED     the prepared folder a sealed run is served, without its scored rows (set by the plugin)

The score is not what train.py prints. train.py ends with save_model(model), which exports
`model(idx)` (token ids (B, T) int64 -> logits (B, T, vocab)) as a graph of tensor operations;
frozen code (pytest_autoresearch.lm.scorer) computes val_bpb from that graph on the pinned
validation rows in a separate interpreter, checks that predictions never depend on later
tokens, and compares with a held-out split that no training path serves.
"""

from __future__ import annotations

from pytest_autoresearch.lm import profiles
from pytest_autoresearch.lm.dataloader import make_dataloader
from pytest_autoresearch.lm.dataset import prepare
from pytest_autoresearch.lm.evaluate import evaluate_bpb
from pytest_autoresearch.lm.export import save_model
from pytest_autoresearch.lm.tokenizer import Tokenizer

# ---------------------------------------------------------------------------
# Constants (fixed, do not modify)
# ---------------------------------------------------------------------------

PROFILE = profiles.active_profile()  # cpu or gpu, from AUTORESEARCH_PROFILE
MAX_SEQ_LEN = PROFILE.max_seq_len  # context length
TIME_BUDGET = profiles.time_budget()  # training time budget in seconds (300 unless overridden)
EVAL_TOKENS = PROFILE.eval_tokens  # validation tokens scored by evaluate_bpb
VOCAB_SIZE = PROFILE.vocab_size  # BPE vocabulary, special tokens included

# ---------------------------------------------------------------------------
# Data and tokenizer: prepare() builds them once per source and profile, then loads the cache
# ---------------------------------------------------------------------------

# prepare() -> the prepared data: .tokenizer (tiktoken inside, BOS = <|reserved_0|>), .fingerprint

# ---------------------------------------------------------------------------
# Runtime utilities (imported by train.py)
# ---------------------------------------------------------------------------

# make_dataloader(tokenizer, B, T, "train", device) -> endless (inputs, targets, epoch) batches:
# best-fit packed rows, BOS at every document start, long documents split, never cropped
# (it prints one NOTE: line when a run starts a third pass over the training data)

# ---------------------------------------------------------------------------
# Evaluation (DO NOT CHANGE: this is the fixed metric)
# ---------------------------------------------------------------------------

# evaluate_bpb(model, batch_size) -> bits per byte on the pinned validation rows (train.py's self-report)
# save_model(model) -> exports model(idx) -> logits to AUTORESEARCH_ARTIFACT: the scored artifact

__all__ = ["PROFILE", "MAX_SEQ_LEN", "TIME_BUDGET", "EVAL_TOKENS", "VOCAB_SIZE",
           "Tokenizer", "make_dataloader", "evaluate_bpb", "prepare", "save_model"]

if __name__ == "__main__":
    data = prepare()
    print(f"ready: {data.source} / profile {data.profile.name} / fingerprint {data.fingerprint} at {data.directory}")
