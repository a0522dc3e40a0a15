"""Wall-time overhead of `pytest --autoresearch` over running the same script directly.

For a script that sleeps 1 s and one that sleeps 20 s: the median of several runs of each,
printed as added seconds and as a ratio. Target: under 1.0 s added.

    python benchmarks/overhead.py [--repeats 5]
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


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(seconds: float, repeats: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        init(repo)
        (repo / "test_bench.py").write_text(TEST)
        direct, plugin = [], []
        for i in range(repeats):
            # A new commit each time, each a (tiny) improvement, so every run is judged and kept.
            (repo / "train.py").write_text(TRAIN.format(seconds=seconds, score=100 - i))
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", f"run {i}")
            direct.append(timed([sys.executable, "train.py"], repo))
            plugin.append(timed([sys.executable, "-m", "pytest", "--autoresearch", "-q", "-p", "no:cacheprovider"], repo))
        return statistics.median(direct), statistics.median(plugin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (default: 5)")
    parser.add_argument("--sleeps", type=float, nargs="+", default=[1.0, 20.0], help="script durations in s")
    args = parser.parse_args()
    print(f"{'script':>10} {'direct s':>9} {'pytest s':>9} {'added s':>8} {'ratio':>6}")
    for seconds in args.sleeps:
        direct, plugin = measure(seconds, args.repeats)
        print(f"{'sleep ' + format(seconds, 'g'):>10} {direct:9.3f} {plugin:9.3f} {plugin - direct:8.3f} {plugin / direct:6.3f}")


if __name__ == "__main__":
    main()
