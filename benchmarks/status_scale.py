"""Time `autoresearch status` and its digest on a big ledger: 100,000 rows, 1,000 commits, one day.

The ledger has the shape a long session leaves (see bar_lookup.py): the branch's commits are
kept, every other run is a discarded or crashed commit reset away, all on the branch `main`, one
row every 0.86 s over 24 hours, each row with the fields a verdict records (bar, mean, n, delta,
sigma). Each command runs as the user runs it, a fresh `python -m pytest_autoresearch` process.

    python benchmarks/status_scale.py [--rows 100000] [--commits 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _repo import init
from bar_lookup import make_history

from pytest_autoresearch.ledger import COLUMNS, Entry, sealed_line

COMMANDS = (("status",), ("status", "--json"), ("status", "--since", "8h"),
            ("status", "--since", "8h", "--format", "markdown"))


def write_ledger(path: Path, rows: int, shas: list[str], rng: random.Random) -> None:
    end = datetime.now(timezone.utc)
    step = timedelta(days=1) / rows
    with open(path, "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        prev, bar = "", 1.1
        for i in range(rows):
            value = rng.gauss(1.0, 0.02)
            if i < len(shas):  # the kept commits of the branch, each a little better
                sha, status, bar = shas[i], "keep", min(bar, value)
            else:
                sha, status = rng.randbytes(20).hex(), rng.choice(["discard", "discard", "crash"])
            extra = {"goal": "min", "reason": "-", "bar": bar, "bar_n": 1, "mean": value, "n": 1,
                     "delta": value - bar, "sigma": 0.028}
            line, prev = sealed_line(Entry(
                run_id=f"r{i}", status=status, sha=sha, commit=sha[:7], branch="main",
                value=None if status == "crash" else value, metric="val_bpb", test="test_train.py::test_train",
                identity="id", measurement=f"r{i}", description="an idea", pid=None, duration_s=300.0,
                timestamp=(end - (rows - i) * step).isoformat(timespec="seconds"), extra=extra,
            ), prev)
            fh.write(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        init(repo)
        shas = make_history(repo, args.commits)
        ledger = repo / "ledger.tsv"
        write_ledger(ledger, args.rows, shas, random.Random(0))
        print(f"rows={args.rows} commits={args.commits}")
        for command in COMMANDS:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "pytest_autoresearch", *command, "--ledger", str(ledger)],
                                      cwd=repo, capture_output=True, text=True)
                times.append(time.perf_counter() - start)
                assert done.returncode == 0, done.stderr
            print(f"  autoresearch {' '.join(command):<40} median {statistics.median(times):.2f} s, "
                  f"min {min(times):.2f} s ({len(done.stdout.splitlines())} lines)")


if __name__ == "__main__":
    main()
