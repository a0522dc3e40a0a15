"""An honest pytest-benchmark suite: each test times one routine on fresh input every round,
then checks the answer against a plain reference. Frozen: the agent changes textstats.py only.

Fresh input per round (``benchmark.pedantic`` with a ``setup``) keeps a candidate that
remembers earlier answers from timing a lookup instead of the work.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import textstats

ROUNDS = 15
VOCABULARY = [f"{a}{b}" for a in ("the", "data", "pytest", "bench", "it's", "x") for b in ("", "s", "ed", "1")]


def text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(VOCABULARY).capitalize() if rng.random() < 0.1 else rng.choice(VOCABULARY)
                    for _ in range(n_words)) + rng.choice([".", "!", " end"])


def timed(benchmark: Any, function: Callable[..., Any], make: Callable[[random.Random], tuple[Any, ...]]) -> tuple[Any, tuple[Any, ...]]:
    """Time ``function`` on new arguments each round; return the last round's result and arguments."""
    rng = random.Random(len(VOCABULARY))
    last: list[tuple[Any, ...]] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        last[:] = [make(rng)]
        return last[0], {}

    result = benchmark.pedantic(function, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    return result, last[0]


def reference_words(s: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", s.lower())  # the texts here are ASCII


def test_words(benchmark: Any) -> None:
    result, (s,) = timed(benchmark, textstats.words, lambda rng: (text(rng, 8000),))
    assert result == reference_words(s)


def test_top_words(benchmark: Any) -> None:
    result, (s, n) = timed(benchmark, textstats.top_words, lambda rng: (text(rng, 8000), 5))
    expected = sorted(Counter(reference_words(s)).items(), key=lambda pair: (-pair[1], pair[0]))[:n]
    assert result == expected


def test_edit_distance(benchmark: Any) -> None:
    def pair(rng: random.Random) -> tuple[str, str]:
        a = "".join(rng.choice("acgt") for _ in range(160))
        return a, "".join(c for c in a if rng.random() > 0.1)[::-1][:150]

    result, (a, b) = timed(benchmark, textstats.edit_distance, pair)
    assert result == reference_distance(a, b)


def test_common_prefix(benchmark: Any) -> None:
    def strings(rng: random.Random) -> tuple[list[str]]:
        stem = "".join(rng.choice("ab") for _ in range(1000))
        return ([stem + rng.choice("ab") * rng.randint(0, 5) + str(i) for i in range(100)],)

    result, (given,) = timed(benchmark, textstats.common_prefix, strings)
    assert result == os.path.commonprefix(given)


def reference_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
