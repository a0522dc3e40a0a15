"""Dataloader throughput against what training consumes (target: at least 10x headroom).

Usage: python benchmarks/lm_dataloader.py [training_tokens_per_second]
The training rate defaults to the CPU profile's measured rate; pass your own from train.py's log.
"""

from __future__ import annotations

import os
import sys
import time

from pytest_autoresearch.lm.dataloader import make_dataloader
from pytest_autoresearch.lm.dataset import prepare

B = 32  # train.py's DEVICE_BATCH_SIZE


def main() -> None:
    training_rate = float(sys.argv[1]) if len(sys.argv) > 1 else 20_000.0
    data = prepare()
    T = data.profile.max_seq_len
    loader = make_dataloader(None, B, T, "train", data=data)
    next(loader)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < 5.0:
        next(loader)
        batches += 1
    rate = batches * B * T / (time.perf_counter() - start)
    print(f"profile {data.profile.name}: loader {rate:,.0f} tokens/s, training {training_rate:,.0f} tokens/s, "
          f"headroom {rate / training_rate:.0f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
