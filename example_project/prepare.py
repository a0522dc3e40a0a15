"""
Frozen preparation for autoresearch experiments: constants, data, tokenizer, dataloader, evaluation.
The agent never edits this file; train.py imports what it needs from here.

Usage: python prepare.py    # prepare data and tokenizer once (cached under ~/.cache/autoresearch)

Environment (each is part of the evaluation identity):
    AUTORESEARCH_PROFILE      cpu (default) or gpu: context length, vocabulary, evaluation tokens
    AUTORESEARCH_DATA         pystdlib (default, offline), tinystories or climbmix
    AUTORESEARCH_TIME_BUDGET  override the 300 s training budget (tests, smoke runs)
    AUTORESEARCH_CACHE        where prepared data lives (default ~/.cache/autoresearch)
"""

from __future__ import annotations

from pytest_autoresearch.lm import dataloader, evaluate, profiles
from pytest_autoresearch.lm.dataset import prepare
from pytest_autoresearch.lm.tokenizer import Tokenizer

# ---------------------------------------------------------------------------
# Constants (fixed, do not modify)
# ---------------------------------------------------------------------------

PROFILE = profiles.active_profile()
MAX_SEQ_LEN = PROFILE.max_seq_len  # context length
TIME_BUDGET = profiles.time_budget()  # training time budget in seconds (300 unless overridden)
EVAL_TOKENS = PROFILE.eval_tokens  # validation tokens scored by evaluate_bpb
VOCAB_SIZE = PROFILE.vocab_size  # BPE vocabulary, special tokens included

# ---------------------------------------------------------------------------
# Data and tokenizer (prepared once, then loaded from the cache)
# ---------------------------------------------------------------------------

__all__ = ["MAX_SEQ_LEN", "TIME_BUDGET", "EVAL_TOKENS", "VOCAB_SIZE", "Tokenizer", "make_dataloader", "evaluate_bpb", "prepare"]

# ---------------------------------------------------------------------------
# Runtime utilities (imported by train.py)
# ---------------------------------------------------------------------------

make_dataloader = dataloader.make_dataloader  # (tokenizer, B, T, split, device) -> (x, y, epoch) batches

# ---------------------------------------------------------------------------
# Evaluation (DO NOT CHANGE: this is the fixed metric)
# ---------------------------------------------------------------------------

evaluate_bpb = evaluate.evaluate_bpb  # (model, batch_size) -> bits per byte on the pinned validation rows

if __name__ == "__main__":
    data = prepare()
    print(f"ready: {data.source} / profile {data.profile.name} / fingerprint {data.fingerprint} at {data.directory}")
