"""Time of `Ledger.append`: 1,000 single-row appends, to an empty ledger and to a 100,000-row one.

Each append is what a judged run does twice (the write-ahead row, then the final one): take the
file lock, write one line, fsync. The rows are final rows of a crash, each naming a 20 kB run log,
so a ledger that hashes run logs does so here. The time per append must not grow with the ledger.

    python benchmarks/ledger_append.py [--appends 1000] [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_autoresearch.ledger import COLUMNS, Entry, Ledger, format_line


def entry(i: int, logs: Path) -> Entry:
    return Entry(
        run_id=f"r{i}", status="crash", commit="abc1234", sha="abc1234" + "0" * 33, value=0.9979,
        memory_gb=44.0, description="halve the batch size", metric="val_bpb", test="test_train.py::test_train",
        branch="autoresearch/nov25", identity="0123456789abcdef", measurement=f"r{i}", duration_s=300.0,
        extra={"goal": "min", "reason": "train.py exited with code 1", "log": str(logs / f"r{i}.log")},
    )


def timed_appends(path: Path, logs: Path, appends: int) -> tuple[float, float]:
    """Wall and CPU seconds of the appends (the fsync of each is most of the wall time)."""
    ledger = Ledger(path)
    entries = [entry(i, logs) for i in range(appends)]
    start, start_cpu = time.perf_counter(), time.process_time()
    for e in entries:
        ledger.append(e)
    return time.perf_counter() - start, time.process_time() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=1_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        logs = folder / "runs"
        logs.mkdir()
        for i in range(args.appends):
            (logs / f"r{i}.log").write_text(f"step {i}\n" * 2500)
        big = folder / "big.tsv"
        with open(big, "w") as fh:
            fh.write("\t".join(COLUMNS) + "\n")
            fh.writelines(format_line(entry(-i - 1, logs)) for i in range(args.rows))
        base = big.read_bytes()
        for name, rows in (("empty", 0), (f"{args.rows:,} rows", args.rows)):
            times, cpu = [], []
            for repeat in range(args.repeats):
                path = folder / f"ledger-{repeat}.tsv"
                if rows:
                    path.write_bytes(base)
                wall, used = timed_appends(path, logs, args.appends)
                times.append(wall)
                cpu.append(used)
                path.unlink()
            per = statistics.median(times) / args.appends * 1e6
            per_cpu = statistics.median(cpu) / args.appends * 1e6
            print(f"{args.appends} appends to a ledger of {name:>12}: median {statistics.median(times):.3f} s wall "
                  f"({per:.0f} us each), {statistics.median(cpu):.3f} s CPU ({per_cpu:.0f} us each)")


if __name__ == "__main__":
    main()
