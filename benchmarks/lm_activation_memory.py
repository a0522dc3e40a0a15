"""Bytes train.py's model keeps for backward, per token: the part of training memory that grows with the batch.

Usage: python benchmarks/lm_activation_memory.py [ROWS] [--train PATH] [--sdpa]
Runs train.py's own setup (its profile, constants, autocast and compile choices) with random
token ids in place of the data, then counts the storages autograd saves during one forward of
ROWS rows (default: train.py's DEVICE_BATCH_SIZE; 2 for the gpu profile without a GPU), in the
eager and the compiled model, and scales them to train.py's own micro-batch. It runs on any
device, so a memory change meant for a GPU can be measured without one:
`AUTORESEARCH_PROFILE=gpu` gives the GPU model's shapes, and --sdpa makes a CPU take the
attention path CUDA takes without FA3 (SDPA) instead of the CPU's written-out one. On a GPU it
also prints the allocator's peak.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch

from pytest_autoresearch.lm import profiles

EXAMPLE = Path(__file__).resolve().parents[1] / "example_project"
SETUP = "\nt_start = time.time()"
LOOP = "\n# Training loop"
CPU_ATTENTION = 'q.device.type == "cpu" and torch.compiler.is_compiling()'


def train_setup(source: str, rows: int | None) -> types.ModuleType:
    """train.py's definitions and setup, run with random batches instead of the prepared data
    (and `rows` rows per micro-batch when given; its own DEVICE_BATCH_SIZE stays as OWN_ROWS)."""
    if SETUP not in source or LOOP not in source:
        raise SystemExit("train.py's setup no longer runs from `t_start = time.time()` to `# Training loop`")
    head, _, rest = source.partition(SETUP)
    setup = SETUP + rest.partition(LOOP)[0]
    module = types.ModuleType("train_setup")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    sys.path.insert(0, str(EXAMPLE))  # for `from prepare import ...`
    namespace = module.__dict__
    exec(compile(head, "train.py", "exec"), namespace)
    namespace["OWN_ROWS"] = namespace["DEVICE_BATCH_SIZE"]
    if rows is not None:
        namespace["DEVICE_BATCH_SIZE"] = rows
    vocab = module.PROFILE.vocab_size
    tokenizer = types.SimpleNamespace(get_vocab_size=lambda: vocab)
    namespace["prepare"] = lambda: types.SimpleNamespace(tokenizer=tokenizer)

    def random_batches(tokenizer: object, B: int, T: int, split: str, device: torch.device
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        while True:
            yield torch.randint(0, vocab, (B, T), device=device), torch.randint(0, vocab, (B, T), device=device), 1

    namespace["make_dataloader"] = random_batches
    exec(compile(setup, "train.py", "exec"), namespace)
    return module


def saved_bytes(train: types.ModuleType, model: torch.nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward of train.py's batch."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), train.autocast:
        loss = model(train.x, train.y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(storages.values())


def main() -> None:
    args = sys.argv[1:]
    source = (EXAMPLE / "train.py").read_text()
    if "--train" in args:
        at = args.index("--train")
        source = Path(args[at + 1]).read_text()
        del args[at : at + 2]
    if "--sdpa" in args:
        args.remove("--sdpa")
        if CPU_ATTENTION not in source:
            raise SystemExit(f"train.py no longer contains {CPU_ATTENTION!r}; update this benchmark")
        source = source.replace(CPU_ATTENTION, "False")
    gpu_model_on_cpu = profiles.active_profile().name == "gpu" and not torch.cuda.is_available()
    rows = int(args[0]) if args else 2 if gpu_model_on_cpu else None
    train = train_setup(source, rows)
    full = train.OWN_ROWS * train.MAX_SEQ_LEN  # tokens of train.py's own micro-batch
    tokens = train.x.numel()
    eager = saved_bytes(train, train.model) / tokens
    saved_bytes(train, train.train_model)  # the first call compiles
    compiled = saved_bytes(train, train.train_model) / tokens
    print(f"saved for backward, {tokens:,} tokens per forward: eager {eager:,.0f} bytes/token, "
          f"compiled {compiled:,.0f} bytes/token = {compiled * full / 2**30:.1f} GiB at train.py's {full:,} tokens")
    if torch.cuda.is_available():
        print(f"allocator peak: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
