"""Evaluation profiles and the environment switches that select them.

A profile fixes what a result means: context length, vocabulary size, evaluation tokens.
`gpu` carries Karpathy's constants; `cpu` is sized so a laptop core pair can train and
evaluate within the same 300 s budget. Both, and any budget override, are part of the
evaluation identity, so results under different settings are never compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROFILE_ENV = "AUTORESEARCH_PROFILE"
BUDGET_ENV = "AUTORESEARCH_TIME_BUDGET"
CACHE_ENV = "AUTORESEARCH_CACHE"
DATA_ENV = "AUTORESEARCH_DATA"

TIME_BUDGET = 300  # seconds of training per run, both profiles
DEFAULT_PROFILE = "cpu"
DEFAULT_SOURCE = "pystdlib"


@dataclass(frozen=True)
class Profile:
    """The fixed constants of one evaluation setting."""

    name: str
    max_seq_len: int  # context length for training and evaluation
    vocab_size: int  # BPE vocabulary, special tokens included
    eval_tokens: int  # target tokens scored by evaluate_bpb (fewer if the split is smaller)
    eval_batch_size: int  # rows per evaluation forward pass


PROFILES: dict[str, Profile] = {
    "gpu": Profile("gpu", max_seq_len=2048, vocab_size=8192, eval_tokens=40 * 524288, eval_batch_size=128),
    "cpu": Profile("cpu", max_seq_len=256, vocab_size=2048, eval_tokens=131072, eval_batch_size=64),
}


def active_profile() -> Profile:
    """The profile named by AUTORESEARCH_PROFILE (default `cpu`)."""
    name = os.environ.get(PROFILE_ENV, DEFAULT_PROFILE).strip() or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; use one of: {', '.join(sorted(PROFILES))}")
    return PROFILES[name]


def time_budget() -> float:
    """Training seconds per run: AUTORESEARCH_TIME_BUDGET if set (tests, smoke runs), else 300."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return float(TIME_BUDGET)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{BUDGET_ENV}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{BUDGET_ENV}={raw!r} must be a positive number of seconds")
    return value


def source_name() -> str:
    """The data source named by AUTORESEARCH_DATA (default `pystdlib`, needs no network)."""
    return os.environ.get(DATA_ENV, DEFAULT_SOURCE).strip() or DEFAULT_SOURCE


def cache_root() -> Path:
    """Where prepared data lives: AUTORESEARCH_CACHE, else ~/.cache/autoresearch."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "autoresearch"
