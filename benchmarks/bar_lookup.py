"""Time to find the bar in a big ledger on a long branch: 100,000 rows, 1,000 commits.

Reads the ledger, lists HEAD's lineage with one `git rev-list`, picks the best kept result
among the proper ancestors and pools the noise: what every judged run does under the lock.
Target: under 0.5 s. Two ledgers of the same size:

- night: the shape a long session leaves. The branch's commits are the kept ones; every
  other run is of a commit that was discarded and reset away, so it is not on the lineage.
- worst case: every run is a keep or discard of a commit on the lineage (each commit measured
  a hundred times), so every one of them is parsed and grouped.

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

from pytest_autoresearch import chain, gitstate, history
from pytest_autoresearch.ledger import COLUMNS, Entry, Ledger, sealed_line
from pytest_autoresearch.verdict import Best


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


def write_ledger(path: Path, rows: int, shas: list[str], worst: bool, rng: random.Random) -> None:
    with open(path, "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        prev = ""  # each row sealed into the hash chain, as Ledger.append writes it
        for i in range(rows):
            if worst or i < len(shas):
                sha = rng.choice(shas) if worst else shas[i]
                status = rng.choice(["keep", "discard", "crash"]) if worst else "keep"
            else:  # a discarded or crashed commit, reset away
                sha, status = rng.randbytes(20).hex(), rng.choice(["discard", "discard", "crash"])
            line, prev = sealed_line(Entry(
                run_id=f"r{i}", status=status, sha=sha, commit=sha[:7],
                value=rng.uniform(0.9, 1.1), metric="val_bpb", test="test_train.py::test_train",
                identity="id", measurement=f"r{i}", description="an idea", pid=None,
            ), prev)
            fh.write(line)


def lookup(ledger: Ledger, repo: Path, head: str, repeats: int) -> tuple[list[float], list[float], Best | None]:
    """What a judged run does under the lock, timed: wall and CPU seconds per repeat."""
    repo_obj = gitstate.open_repo(repo)
    assert repo_obj is not None
    times, cpu, best = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        lineage = gitstate.lineage(repo_obj, head)
        runs = ledger.runs(("keep", "discard"), shas=frozenset(lineage), test="test_train.py::test_train",
                           metric="val_bpb", identity="id")
        best = history.best_before(runs, lineage, "min")
        history.noise_floor(runs, lineage)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu, best


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
        print(f"rows={args.rows} commits={args.commits}; target < 0.5 s")
        for name, worst in (("night", False), ("worst case", True)):
            path = repo / f"{name.replace(' ', '-')}.tsv"
            write_ledger(path, args.rows, shas, worst, rng)
            times, cpu, best = lookup(Ledger(path), repo, shas[-1], args.repeats)
            assert best is not None
            print(f"{name:>10}: median {statistics.median(times):.3f} s wall, min {min(times):.3f} s, "
                  f"median {statistics.median(cpu):.3f} s CPU (best {best.value:.4f} at {best.commit})")
        start = time.perf_counter()
        report = chain.verify(path, check_logs=False)
        assert report.intact and report.rows == args.rows
        print(f"chain.verify (autoresearch status checks it): {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
