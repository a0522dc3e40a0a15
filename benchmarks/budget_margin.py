"""The budget rule's margin: how far past its budget an honest train.py runs on the data server's clock.

Usage: python benchmarks/budget_margin.py [runs] [budget_s] [cold_compiles]
Runs the example's train.py (shrunk as the tests shrink it, two micro-batches a step) `runs` times against a frozen data
server, the last `cold_compiles` of them with COMPILE = True and an empty inductor cache (the
first compile of a new model shape). For each: trained seconds on the server's clock (first timed
batch to exit), the overrun past the budget, and how much of the export allowance is left.
None may be red. Uses AUTORESEARCH_DATA / AUTORESEARCH_CACHE as set (the tests' tiny corpus suits).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_autoresearch.dataserver import EXPORT_ALLOWANCE_S, SOCKET_ENV, Clock, DataServer, over_budget

REPO = Path(__file__).resolve().parents[1]
# the tests' tiny model, with the CPU example's two micro-batches per step (train.py's warm-up: 2 steps, 4 batches)
TINY_TRAIN = {"DEPTH": "2", "ASPECT_RATIO": "32", "HEAD_DIM": "32", "TOTAL_BATCH_SIZE": "2**13",
              "DEVICE_BATCH_SIZE": "16", "COMPILE": "False", "EVAL_BATCH_SIZE": "16"}


def shrunk_train(dest: Path, compile_model: bool) -> Path:
    for name in ("prepare.py", "train.py"):
        shutil.copy(REPO / "example_project" / name, dest / name)
    lines = (dest / "train.py").read_text().splitlines(keepends=True)
    constants = {**TINY_TRAIN, "COMPILE": str(compile_model)}
    for i, line in enumerate(lines):
        name = line.partition(" = ")[0]
        if name in constants:
            lines[i] = f"{name} = {constants[name]}\n"
    (dest / "train.py").write_text("".join(lines))
    return dest / "train.py"


def one_run(budget: float, cold: bool) -> tuple[float, bool, float, str]:
    """(trained seconds on the server's clock, red, wall seconds, what train.py said of its time) of one honest run."""
    with tempfile.TemporaryDirectory(prefix="bench-margin-") as tmp:
        folder = Path(tmp)
        train = shrunk_train(folder, compile_model=cold)
        clock = Clock(budget, EXPORT_ALLOWANCE_S)
        server = DataServer("pytest_autoresearch.lm.dataloader:serve", clock, folder / "data.sock")
        env = {**os.environ, **server.env, "AUTORESEARCH_TIME_BUDGET": f"{budget:g}",
               "AUTORESEARCH_ARTIFACT": str(folder / "model.pt2"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        if cold:
            env["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")  # empty: a cold compile
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(train)], cwd=folder, env=env, capture_output=True, text=True)
        ended = time.monotonic()
        served = server.stop()
        if proc.returncode != 0:
            raise SystemExit(f"train.py failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        said = ", ".join(m.group(0) for m in re.finditer(r"(setup: \S+|export: .* in \S+|training_seconds: +\S+)",
                                                         proc.stdout))
        return served.trained(clock, ended), over_budget(served, clock, ended) is not None, ended - started, said


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    cold = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    print(f"budget {budget:g} s, export allowance {EXPORT_ALLOWANCE_S:g} s, load average {os.getloadavg()[0]:.2f}",
          flush=True)
    overruns = []
    for i in range(runs):
        compiled = i >= runs - cold
        trained, red, wall, said = one_run(budget, compiled)
        overruns.append(trained - budget)
        print(f"run {i + 1:2d} ({'cold compile' if compiled else 'eager'}): trained {trained:6.2f} s, "
              f"overrun {trained - budget:+6.2f} s, allowance left {EXPORT_ALLOWANCE_S - (trained - budget):6.2f} s, "
              f"wall {wall:6.1f} s, {'RED' if red else 'ok'}; train.py: {said.replace(str(Path(tempfile.gettempdir())), '')}",
              flush=True)
    print(f"worst honest overrun {max(overruns):+.2f} s of {EXPORT_ALLOWANCE_S:g} s allowed; "
          f"red: {sum(o > EXPORT_ALLOWANCE_S for o in overruns)} of {runs}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
