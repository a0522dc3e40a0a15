"""The BPE tokenizer: trained with rustbpe, run by tiktoken, saved with its token byte lengths.

Token byte lengths turn nats per token into bits per byte; special tokens have length 0 so
evaluate_bpb leaves them out.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import rustbpe  # type: ignore[import-untyped, unused-ignore]
import tiktoken

# GPT-4's split pattern with \p{N}{1,2} instead of {1,3}, as in nanochat.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
SPECIAL_TOKENS = [f"<|reserved_{i}|>" for i in range(4)]
BOS_TOKEN = SPECIAL_TOKENS[0]
ROUND_TRIP_SAMPLE = "def f(x):\n    return x ** 2  # Hello, 世界! 123456\n\tTabs\r\n"


class Tokenizer:
    """A tiktoken `Encoding` plus the BOS id and per-token byte lengths."""

    def __init__(self, enc: tiktoken.Encoding) -> None:
        self.enc = enc
        self.bos_token_id: int = enc.encode_single_token(BOS_TOKEN)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, doc_cap: int = 10_000) -> Tokenizer:
        """Learn BPE merges from `texts` (each cut to `doc_cap` characters) with rustbpe."""
        bpe = rustbpe.Tokenizer()
        capped: Iterator[str] = (text[:doc_cap] for text in texts)
        bpe.train_from_iterator(capped, vocab_size - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
        ranks = {bytes(token): rank for token, rank in bpe.get_mergeable_ranks()}
        specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
        enc = tiktoken.Encoding(name="rustbpe", pat_str=bpe.get_pattern(), mergeable_ranks=ranks, special_tokens=specials)
        tokenizer = cls(enc)
        tokenizer.check_round_trip()
        return tokenizer

    @classmethod
    def load(cls, directory: Path) -> Tokenizer:
        with open(directory / "tokenizer.pkl", "rb") as f:
            return cls(pickle.load(f))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "tokenizer.pkl", "wb") as f:
            pickle.dump(self.enc, f)

    def get_vocab_size(self) -> int:
        return int(self.enc.n_vocab)

    def get_bos_token_id(self) -> int:
        return self.bos_token_id

    def encode(self, text: str, prepend: int | None = None) -> list[int]:
        ids = [] if prepend is None else [prepend]
        ids.extend(self.enc.encode_ordinary(text))
        return ids

    def encode_batch(self, texts: list[str], prepend: int | None = None, num_threads: int = 2) -> list[list[int]]:
        rows = self.enc.encode_ordinary_batch(texts, num_threads=num_threads)
        if prepend is not None:
            rows = [[prepend, *row] for row in rows]
        return rows

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(ids)

    def token_bytes(self) -> np.ndarray:
        """UTF-8 byte length of every token id; 0 for special tokens."""
        special = set(self.enc.special_tokens_set)
        lengths = [
            0 if self.enc.decode([i]) in special else len(self.enc.decode_single_token_bytes(i))
            for i in range(self.get_vocab_size())
        ]
        return np.asarray(lengths, dtype=np.int32)

    def check_round_trip(self, text: str = ROUND_TRIP_SAMPLE) -> None:
        """Raise if encode → decode does not give `text` back."""
        decoded = self.decode(self.encode(text))
        if decoded != text:
            raise RuntimeError(f"tokenizer round trip failed: {text!r} -> {decoded!r}")
