"""Wall time a sealed run adds over an unsealed one: `pytest --autoresearch`, sandbox vs none.

Interleaved in one process, same project, same script (it sleeps 1 s): the median of each,
whole sessions and the run alone (the duration the plugin records in the ledger, from the
wrapper's start to the target's exit), as added seconds and as a ratio. Target: under 1 s.

    python benchmarks/sealing.py [--repeats 7] [--sleep 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _repo import git, init

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pytest_autoresearch.ledger import Ledger  # noqa: E402

TEST = """
import pytest

@pytest.mark.autoresearch(metric="score", script="train.py")
def test_train(experiment):
    pass
"""

TRAIN = """
import time
time.sleep({seconds})
print("---")
print("score: {score}")
"""


def session(repo: Path, isolation: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "--autoresearch", "-q", "-p", "no:cacheprovider",
                    "--autoresearch-isolation", isolation], cwd=repo, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="sessions of each kind (default: 7)")
    parser.add_argument("--sleep", type=float, default=1.0, help="the script's duration in s (default: 1)")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"none": [], "sandbox": []}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        init(repo)
        (repo / "test_bench.py").write_text(TEST)
        for i in range(args.repeats):
            (repo / "train.py").write_text(TRAIN.format(seconds=args.sleep, score=100 - i))
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", f"run {i}")
            for isolation in (("none", "sandbox") if i % 2 else ("sandbox", "none")):
                walls[isolation].append(session(repo, isolation))
        runs = Ledger(repo / ".git" / "autoresearch" / "ledger.tsv").runs()
    durations = {kind: [r.duration_s for r in runs if r.extra.get("isolation") == kind and r.duration_s] for kind in walls}
    print(f"{'':>14} {'unsealed s':>10} {'sealed s':>9} {'added s':>8} {'ratio':>6}")
    for name, table in (("pytest session", walls), ("the run alone", durations)):
        plain, sealed = statistics.median(table["none"]), statistics.median(table["sandbox"])
        print(f"{name:>14} {plain:10.3f} {sealed:9.3f} {sealed - plain:8.3f} {sealed / plain:6.3f}")


if __name__ == "__main__":
    main()
