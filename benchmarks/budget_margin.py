"""The budget rule's margin: how far past its budget an honest train.py runs on the data server's clock.

Usage: python benchmarks/budget_margin.py [runs] [budget_s] [cold_compiles] [busy_jobs] [--example]
Runs the example's train.py (shrunk as the tests shrink it, two micro-batches a step; with --example as
it is, the cpu profile's model) `runs` times against a frozen data
server, the last `cold_compiles` of them with COMPILE = True and an empty inductor cache (the
first compile of a new model shape), while `busy_jobs` processes spin on the machine's cores (a
loaded machine). For each: trained seconds on the server's clock (first timed batch to exit), the
overrun past the budget, the work done after the budget (the least time it takes on idle cores, which
excuses a late exit on a sealed CPU run), how much of it was excused as the step in progress, and the
verdict. None may be red. Uses AUTORESEARCH_DATA / AUTORESEARCH_CACHE as set (the tests' tiny corpus
suits the shrunk model; --example on pystdlib is the README's main job at another budget).
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

from pytest_autoresearch.dataserver import EXPORT_ALLOWANCE_S, Clock, DataServer, Served, over_budget, usable_cores

REPO = Path(__file__).resolve().parents[1]
# the tests' tiny model, with the CPU example's two micro-batches per step (train.py's warm-up: 2 steps, 4 batches)
TINY_TRAIN = {"DEPTH": "2", "ASPECT_RATIO": "32", "HEAD_DIM": "32", "TOTAL_BATCH_SIZE": "2**13",
              "DEVICE_BATCH_SIZE": "16", "COMPILE": "False", "EVAL_BATCH_SIZE": "16"}


def shrunk_train(dest: Path, compile_model: bool, shrink: bool) -> Path:
    for name in ("prepare.py", "train.py"):
        shutil.copy(REPO / "example_project" / name, dest / name)
    lines = (dest / "train.py").read_text().splitlines(keepends=True)
    constants = {**(TINY_TRAIN if shrink else {}), "COMPILE": str(compile_model)}
    for i, line in enumerate(lines):
        name = line.partition(" = ")[0]
        if name in constants:
            lines[i] = f"{name} = {constants[name]}\n"
    (dest / "train.py").write_text("".join(lines))
    return dest / "train.py"


def one_run(budget: float, cold: bool, shrink: bool) -> tuple[Served, Clock, bool, float, float, str]:
    """(what the server saw, its clock, red, trained seconds, wall seconds, what train.py said) of one run."""
    with tempfile.TemporaryDirectory(prefix="bench-margin-") as tmp:
        folder = Path(tmp)
        train = shrunk_train(folder, compile_model=cold or not shrink, shrink=shrink)
        clock = Clock(budget, EXPORT_ALLOWANCE_S, cores=usable_cores())
        server = DataServer("pytest_autoresearch.lm.dataloader:serve", clock, folder / "data.sock")
        env = {**os.environ, **server.env, "AUTORESEARCH_TIME_BUDGET": f"{budget:g}",
               "AUTORESEARCH_ARTIFACT": str(folder / "model.pt2"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        if cold:
            env["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")  # empty: a cold compile
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(train)], cwd=folder, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        server.watch({"pgid": proc.pid})
        stdout, stderr = proc.communicate()
        ended = time.monotonic()
        served = server.stop()
        if proc.returncode != 0:
            raise SystemExit(f"train.py failed:\n{stdout[-2000:]}{stderr[-2000:]}")
        said = ", ".join(m.group(0) for m in re.finditer(r"(setup: \S+|export: .* in \S+|training_seconds: +\S+)",
                                                         stdout))
        red = over_budget(served, clock, ended) is not None
        return served, clock, red, served.trained(clock, ended), ended - started, said


def main() -> None:
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    runs = int(args[0]) if len(args) > 0 else 10
    budget = float(args[1]) if len(args) > 1 else 3.0
    cold = int(args[2]) if len(args) > 2 else 2
    busy = int(args[3]) if len(args) > 3 else 0
    shrink = "--example" not in sys.argv
    jobs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        print(f"budget {budget:g} s, export allowance {EXPORT_ALLOWANCE_S:g} s, {busy} busy jobs, "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        overruns, works, reds = [], [], 0
        for i in range(runs):
            compiled = i >= runs - cold
            served, clock, red, trained, wall, said = one_run(budget, compiled, shrink)
            work, step = served.work_after_budget(clock) or 0.0, served.step_in_progress(clock)
            overruns.append(trained - budget)
            works.append(work - step)
            reds += red
            print(f"run {i + 1:2d} ({'cold compile' if compiled else 'warm' if not shrink else 'eager'}): "
                  f"trained {trained:6.2f} s, overrun {trained - budget:+6.2f} s, work after the budget {work:5.2f} s "
                  f"({step:5.2f} s the step in progress), wall {wall:6.1f} s, {'RED' if red else 'ok'}; "
                  f"train.py: {said.replace(str(Path(tempfile.gettempdir())), '')}", flush=True)
        print(f"worst honest overrun {max(overruns):+.2f} s, worst work after the budget and its step {max(works):.2f} s, "
              f"of {EXPORT_ALLOWANCE_S:g} s allowed; red: {reds} of {runs}; load average {os.getloadavg()[0]:.2f}")
    finally:
        for job in jobs:
            job.kill()
            job.wait()


if __name__ == "__main__":
    main()
