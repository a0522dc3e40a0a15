"""False keeps and runs per verdict on a drifting target, with and without paired re-measurement.

The fake target's value falls with a clock (one tick per run, BETWEEN ticks between two commits:
the agent's thinking time) while its code does not change, plus seeded normal noise. A baseline
is measured five times (the noise floor, min_delta = auto); then COMMITS commits that change
nothing are judged as the agent loop does (keep on green, reset on red), once with
``--autoresearch-paired never`` and once with the default (auto), over several seeds.

    python benchmarks/paired_drift.py [--commits 20] [--seeds 3] [--drift-sigmas 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _repo import git, init

from pytest_autoresearch.ledger import Ledger

SIGMA = 0.01
BETWEEN = 20
TEST = """
import pytest

@pytest.mark.autoresearch(metric="score", min_delta="auto", script="train.py")
def test_train(experiment):
    pass
"""
TRAIN = """# {message}
import os
import random
from pathlib import Path
clock = Path(os.environ["DRIFT_CLOCK"])
tick = int(clock.read_text())
clock.write_text(str(tick + 1))
noise = random.Random(f"{{os.environ['DRIFT_SEED']}}-{{tick}}").gauss(0, {sigma})
print("---")
print("score:", 1.0 - float(os.environ["DRIFT_PER_TICK"]) * tick + noise)
"""


def session(folder: Path, commits: int, paired: str, seed: int, per_tick: float) -> tuple[int, int, int]:
    """One night: (keeps, verdicts, target runs) of ``commits`` no-change commits after the baseline."""
    init(folder)
    (folder / "test_bench.py").write_text(TEST)
    clock = folder.parent / f"{folder.name}.clock"
    clock.write_text("0")
    env = {**os.environ, "DRIFT_CLOCK": str(clock), "DRIFT_SEED": str(seed), "DRIFT_PER_TICK": repr(per_tick)}

    def commit(message: str) -> None:
        (folder / "train.py").write_text(TRAIN.format(message=message, sigma=SIGMA))
        git(folder, "add", "-A")
        git(folder, "commit", "-q", "-m", message)

    def run(*args: str) -> bool:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--autoresearch",
                               "--autoresearch-paired", paired, *args], cwd=folder, env=env, capture_output=True)
        return done.returncode == 0

    commit("baseline")
    assert run("--autoresearch-repeat", "5"), "the baseline must be kept"
    keeps = 0
    for i in range(commits):
        tick = int(clock.read_text()) + BETWEEN
        clock.write_text(str(tick + tick % 2))
        commit(f"idea {i}: changes nothing")
        if run():
            keeps += 1
        else:
            git(folder, "reset", "-q", "--hard", "HEAD~1")
    runs = Ledger(folder / ".git" / "autoresearch" / "ledger.tsv").runs(("keep", "discard", "crash"))
    return keeps, commits, len(runs) - 5  # the baseline's five draws are not a verdict's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--drift-sigmas", type=float, default=10.0, help="drift over the night, in noise floors")
    args = parser.parse_args()
    per_tick = args.drift_sigmas * SIGMA / (args.commits * BETWEEN)
    print(f"{args.commits} no-change commits per night, drift {args.drift_sigmas:g} sigma over the night, "
          f"{args.seeds} seeds")
    print(f"{'pairing':<8} {'false keeps':>12} {'verdicts':>9} {'runs/verdict':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for paired in ("never", "auto"):
            keeps = verdicts = runs = 0
            for seed in range(args.seeds):
                k, v, r = session(Path(tmp) / f"{paired}-{seed}", args.commits, paired, seed, per_tick)
                keeps, verdicts, runs = keeps + k, verdicts + v, runs + r
            print(f"{paired:<8} {keeps:>5} of {verdicts:<5} {verdicts:>9} {runs / verdicts:>13.2f}")


if __name__ == "__main__":
    main()
