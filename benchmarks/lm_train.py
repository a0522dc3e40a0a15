"""val_bpb, throughput, MFU and wall time of example_project/train.py at a given time budget.

Usage: python benchmarks/lm_train.py BUDGET_SECONDS [REPEATS] [--pytest] [--train PATH ...]
Direct mode runs train.py; --pytest runs the whole `pytest --autoresearch` in a throwaway git
copy of the example project (startup, data check, training, evaluation, judging), which is
what the 1.05 x budget target is about. Data caches must be warm (run prepare.py first).
Each --train PATH runs that train.py variant in the example's place, beside its prepare.py;
with several, their runs interleave (A B A B ...) so a machine's changing load falls on all
of them alike, and each gets its own mean.
train.py's MFU is a share of its fixed reference peak; the bf16 matmul peak is measured
again before each run, and the achieved FLOP/s are shown as a share of it too, since on a
shared machine both move together.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git
import torch
from lm_matmul_peak import SHAPES, tflops

from pytest_autoresearch import gitstate
from pytest_autoresearch.ledger import Ledger

EXAMPLE = Path(__file__).resolve().parents[1] / "example_project"
FILES = ["prepare.py", "train.py", "test_train.py", "conftest.py", "pytest.ini"]


def summary(output: str) -> dict[str, float]:
    block = output.rsplit("\n---\n", 1)[1]
    return {k.strip(): float(v) for k, _, v in (line.partition(":") for line in block.splitlines()) if v.strip()}


def run_direct(env: dict[str, str], folder: Path) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"train.py in {folder} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return time.perf_counter() - start, summary(out.stdout)


def run_pytest(env: dict[str, str], folder: Path) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "--autoresearch", "-q", "-p", "no:cacheprovider"],
                   cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    run_folder = gitstate.run_folder(git.Repo(folder))
    run = Ledger(Ledger.default_path(run_folder)).runs()[-1]
    log = run_folder / "runs" / f"{run.run_id}.log"
    if run.value is None:
        raise SystemExit(f"the run in {folder} was not scored ({run.status}): see {log}")
    # under pytest train.py leaves val_bpb to the frozen scorer, whose value the ledger holds
    return wall, {**summary(log.read_text()), "val_bpb": run.value}


def reference_peak(train: Path, device: str) -> float:
    """The peak `train` divides by for mfu_percent (FLOP/s)."""
    name = "GPU_PEAK_FLOPS" if device == "cuda" else "CPU_PEAK_FLOPS"
    match = re.search(rf"^{name} = ([0-9.e]+)", train.read_text(), re.M)
    if match is None:
        raise SystemExit(f"{train} does not define {name}; update this benchmark")
    return float(match.group(1))


def measured_peak(device: str) -> float:
    """This machine's bf16 matmul peak right now (FLOP/s), as lm_matmul_peak.py measures it."""
    return max(tflops(*shape, torch.bfloat16, device) for shape in SHAPES) * 1e12


def project(folder: Path, train: Path, in_git: bool) -> Path:
    """A copy of the example project in `folder` with `train` as its train.py (a git repository for --pytest)."""
    folder.mkdir()
    for name in FILES if in_git else ["prepare.py"]:
        shutil.copy(EXAMPLE / name, folder / name)
    shutil.copy(train, folder / "train.py")
    if in_git:
        (folder / ".gitignore").write_text("__pycache__/\n")
        for cmd in (["init", "-q", "-b", "autoresearch/bench"], ["add", "."],
                    ["-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "bench"]):
            subprocess.run(["git", *cmd], cwd=folder, check=True)
    return folder


def main() -> None:
    args = sys.argv[1:]
    trains: list[Path] = []
    while "--train" in args:
        at = args.index("--train")
        trains.append(Path(args[at + 1]).resolve())
        del args[at : at + 2]
    in_git = "--pytest" in args
    args = [a for a in args if not a.startswith("--")]
    budget, repeats = args[0], int(args[1]) if len(args) > 1 else 1
    env = {**os.environ, "AUTORESEARCH_TIME_BUDGET": budget}
    trains = trains or [EXAMPLE / "train.py"]
    names = [train.name for train in trains]
    labels = {train: train.name if names.count(train.name) == 1 else str(train) for train in trains}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {train: project(Path(tmp) / str(n), train, in_git) for n, train in enumerate(trains)}
        device = "cuda" if torch.cuda.is_available() else "cpu"
        rows: dict[Path, list[float]] = {train: [] for train in trains}
        for i in range(repeats):
            for train, folder in folders.items():
                reference, peak = reference_peak(train, device), measured_peak(device)
                load = os.getloadavg()[0]
                wall, s = run_pytest(env, folder) if in_git else run_direct(env, folder)
                tok_s = s["total_tokens_M"] * 1e6 / max(s["training_seconds"], 1e-9)
                achieved = s["mfu_percent"] / 100 * reference
                rows[train].append(s["val_bpb"])
                label = f"{labels[train]} " if len(trains) > 1 else ""
                print(f"{label}run {i + 1}: val_bpb {s['val_bpb']:.4f} | {tok_s:,.0f} tok/s | mfu {s['mfu_percent']:.1f}% "
                      f"of {reference / 1e12:.3g} = {achieved / 1e12:.3f} TFLOP/s = {100 * achieved / peak:.1f}% of the "
                      f"{peak / 1e12:.3f} measured before the run | "
                      f"steps {s['num_steps']:.0f} | training {s['training_seconds']:.1f}s | train.py {s['total_seconds']:.1f}s | "
                      f"wall {wall:.1f}s = {wall / float(budget):.3f} x budget | load before {load:.2f}", flush=True)
    for train, values in rows.items():
        if len(values) > 1:
            print(f"{labels[train]}: val_bpb mean {statistics.mean(values):.4f} stdev {statistics.stdev(values):.4f} "
                  f"over {len(values)} runs")


if __name__ == "__main__":
    main()
