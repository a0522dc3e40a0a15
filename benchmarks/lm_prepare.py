"""First-time and cached preparation of the pystdlib data (tokenizer, token arrays, val rows).

Usage: python benchmarks/lm_prepare.py [profile]    # default cpu; uses a fresh temporary cache
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from pytest_autoresearch.lm import dataset
from pytest_autoresearch.lm.profiles import PROFILES


def main() -> None:
    profile = PROFILES[sys.argv[1] if len(sys.argv) > 1 else "cpu"]
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        data = dataset.prepare("pystdlib", profile, Path(cache))
        first = time.perf_counter() - start
        dataset._MEMO.clear()  # measure what a new process pays
        start = time.perf_counter()
        dataset.prepare("pystdlib", profile, Path(cache), progress=lambda message: None)
        cached = time.perf_counter() - start
        train_tokens = len(data.tokens("train"))
        val_tokens = len(data.tokens("val"))
    print(f"profile {profile.name}: first preparation {first:.1f}s, cached {cached:.2f}s")
    print(f"train tokens {train_tokens:,}, val tokens {val_tokens:,}, fingerprint {data.fingerprint}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
