"""The frozen data server against today's in-process loader: training tokens/s (target: at least 99%), and bytes/s.

Usage: python benchmarks/lm_data_server.py [rounds] [seconds per arm]
Uses the prepared data of AUTORESEARCH_DATA / AUTORESEARCH_PROFILE (default pystdlib, cpu) and
AUTORESEARCH_CACHE. Three measurements, the two loaders interleaved round by round in this run:
- training: a small model stepping on the cpu profile's micro-batches (B=16, T=profile) fed by
  each loader, as train.py takes them (the next batch asked for after each backward);
- raw cpu: batches/s of each loader alone at the same shape;
- raw gpu shape: B=128, T=2048 (train.py's BIG micro-batch), in bytes/s through the socket;
- with Ray installed, the same served directly and through the Ray runner's relay (a node's
  socket, the actor's TCP connection to this machine on loopback, the controller's relay).
Prints medians and the ratio of the second arm to the first for each.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from pytest_autoresearch.dataserver import SOCKET_ENV, Clock, DataServer
from pytest_autoresearch.lm.dataloader import make_dataloader
from pytest_autoresearch.lm.dataset import PreparedData, prepare

CPU_B = 16  # train.py's DEVICE_BATCH_SIZE on a CPU
GPU_B, GPU_T = 128, 2048  # ... and on a GPU (the gpu profile's context)
Batches = Iterator[tuple[torch.Tensor, torch.Tensor, int]]


def in_process(data: PreparedData, B: int, T: int) -> Callable[[], Batches]:
    return lambda: make_dataloader(None, B, T, "train", data=data)


def served(folder: Path, B: int, T: int, relay: bool = False) -> Callable[[], Batches]:
    def start() -> Batches:
        server = DataServer("pytest_autoresearch.lm.dataloader:serve", Clock(budget=3600), folder / "data.sock")
        closing: list[Callable[[], object]] = []
        os.environ[SOCKET_ENV] = str(server.path)
        if relay:  # what a Ray run's loader connects to: the node's end of the relay, joined to this machine's
            from pytest_autoresearch.runner.ray import _Relay
            from pytest_autoresearch.runner.ray_node import RemoteRun
            here, node = _Relay(str(server.path)), RemoteRun()
            node.folder = tempfile.mkdtemp(dir=folder)
            closing = [here.close, node.finish]
            os.environ[SOCKET_ENV] = node._relay_data(here.spec)
        try:
            yield from make_dataloader(None, B, T, "train")
        finally:
            del os.environ[SOCKET_ENV]
            server.kill()
            for close in closing:
                close()
    return start


def training_rate(loader: Batches, model: torch.nn.Module, seconds: float) -> float:
    """Tokens/s of a model stepping on the loader's batches, the next batch fetched after each backward."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y, _ = next(loader)
    for _ in range(3):  # warm-up, as train.py's untimed steps
        step(model, opt, x, y)
        x, y, _ = next(loader)
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(model, opt, x, y)
        tokens += x.numel()
        x, y, _ = next(loader)
    return tokens / (time.perf_counter() - start)


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-1)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def raw_rate(loader: Batches, seconds: float) -> float:
    """Batches/s of the loader alone."""
    next(loader)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(loader)
        batches += 1
    return batches / (time.perf_counter() - start)


def compare(name: str, unit: str, scale: float, rounds: int, measure: Callable[[Batches], float],
            here: Callable[[], Batches], there: Callable[[], Batches], arms: tuple[str, str] = ("in-process", "served"),
            ) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        for arm, into in ((here, theirs), (there, ours)) if r % 2 == 0 else ((there, ours), (here, theirs)):
            loader = arm()
            into.append(measure(loader) * scale)
            loader.close()  # type: ignore[attr-defined]
    a, b = statistics.median(theirs), statistics.median(ours)
    print(f"{name}: {arms[0]} {a:,.0f} {unit}, {arms[1]} {b:,.0f} {unit}, {arms[1]} / {arms[0]} {b / a:.3f} "
          f"(per round: {', '.join(f'{o / t:.3f}' for o, t in zip(ours, theirs))})", flush=True)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    data = prepare()
    T = data.profile.max_seq_len
    vocab = data.profile.vocab_size
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, 256), torch.nn.Linear(256, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 256), torch.nn.ReLU(), torch.nn.Linear(256, vocab))
    print(f"{data.source} / profile {data.profile.name}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        folder = Path(tmp)
        compare(f"training (B={CPU_B}, T={T})", "tokens/s", 1.0, rounds, lambda l: training_rate(l, model, seconds),
                in_process(data, CPU_B, T), served(folder, CPU_B, T))
        compare(f"raw loader (B={CPU_B}, T={T})", "tokens/s", CPU_B * T, rounds, lambda l: raw_rate(l, seconds / 2),
                in_process(data, CPU_B, T), served(folder, CPU_B, T))
        compare(f"raw loader, gpu micro-batch (B={GPU_B}, T={GPU_T})", "MB/s", GPU_B * GPU_T * 8 / 1e6, rounds,
                lambda l: raw_rate(l, seconds / 2), in_process(data, GPU_B, GPU_T), served(folder, GPU_B, GPU_T))
        if importlib.util.find_spec("ray") is not None:
            compare(f"gpu micro-batch (B={GPU_B}, T={GPU_T}) from a Ray node", "MB/s", GPU_B * GPU_T * 8 / 1e6, rounds,
                    lambda l: raw_rate(l, seconds / 2), served(folder, GPU_B, GPU_T),
                    served(folder, GPU_B, GPU_T, relay=True), arms=("served", "relayed"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
