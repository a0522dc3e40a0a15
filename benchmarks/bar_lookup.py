"""Time to find the bar in a big ledger on a long branch: 100,000 rows, 1,000 commits.

Reads the ledger, lists HEAD's lineage with one `git rev-list`, picks the best kept result
among the proper ancestors and pools the noise: what every judged run does under the lock.
Target: under 0.5 s.

    python benchmarks/bar_lookup.py [--rows 100000] [--commits 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from _repo import git, init

from pytest_autoresearch import gitstate, history
from pytest_autoresearch.ledger import Entry, Ledger, format_line, COLUMNS


def make_history(repo: Path, commits: int) -> list[str]:
    """`commits` commits on main, made in one `git fast-import` (seconds, not minutes)."""
    stream = []
    for i in range(commits):
        parent = f"from :{i}\n" if i else ""
        data = f"print({i})\n"
        stream.append(
            f"commit refs/heads/main\nmark :{i + 1}\ncommitter b <b@x> {1700000000 + i} +0000\n"
            f"data {len(f'c{i}')}\nc{i}\n{parent}M 644 inline train.py\ndata {len(data)}\n{data}\n"
        )
    git(repo, "fast-import", "--quiet", stdin="".join(stream))
    git(repo, "reset", "-q", "--hard", "main")
    return git(repo, "rev-list", "--reverse", "main").split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        init(repo)
        shas = make_history(repo, args.commits)
        path = repo / "ledger.tsv"
        with open(path, "w") as fh:
            fh.write("\t".join(COLUMNS) + "\n")
            for i in range(args.rows):
                sha = rng.choice(shas)
                fh.write(format_line(Entry(
                    run_id=f"r{i}", status=rng.choice(["keep", "discard", "crash"]), sha=sha, commit=sha[:7],
                    value=rng.uniform(0.9, 1.1), metric="val_bpb", test="test_train.py::test_train",
                    identity="id", measurement=f"r{i}", description="an idea", pid=None,
                )))
        ledger = Ledger(path)
        repo_obj = gitstate.open_repo(repo)
        assert repo_obj is not None
        times, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            lineage = gitstate.lineage(repo_obj, shas[-1])
            runs = ledger.runs(("keep", "discard"), test="test_train.py::test_train",
                               metric="val_bpb", identity="id")
            best = history.best_before(runs, lineage, "min")
            history.noise_floor(runs, lineage)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        assert best is not None
        print(f"rows={args.rows} commits={args.commits} lineage={len(lineage)}")
        print(f"bar lookup: median {statistics.median(times):.3f} s wall, min {min(times):.3f} s, "
              f"median {statistics.median(cpu):.3f} s CPU in this process "
              f"(best {best.value:.4f} at {best.commit}); target < 0.5 s")


if __name__ == "__main__":
    main()
