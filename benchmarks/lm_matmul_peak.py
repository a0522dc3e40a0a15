"""Peak matmul throughput of this machine's CPU (or GPU) in bf16 and fp32: the MFU denominator.

Usage: python benchmarks/lm_matmul_peak.py
Prints TFLOP/s per dtype and shape, and the load average (the machine may be shared).
"""

from __future__ import annotations

import os
import time

import torch

SHAPES = [(4096, 4096, 4096), (8192, 512, 512), (8192, 256, 1024), (8192, 1024, 256), (8192, 256, 2048)]


def tflops(m: int, k: int, n: int, dtype: torch.dtype, device: str, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    iters, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        iters += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * m * k * n * iters / (time.perf_counter() - start) / 1e12


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, load average before: {os.getloadavg()[0]:.2f}")
    for dtype in (torch.bfloat16, torch.float32):
        results = [tflops(*shape, dtype, device) for shape in SHAPES]
        for shape, value in zip(SHAPES, results):
            print(f"{str(dtype):15} {'x'.join(map(str, shape)):16} {value:.3f} TFLOP/s")
        print(f"{str(dtype):15} {'peak':16} {max(results):.3f} TFLOP/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
