"""Raw against load-adjusted spread of one commit's draws (the covariate adjustment, covariate.py).

    python benchmarks/load_adjustment.py PROJECT [--draws N] [--load] [--seed S] [--after ISO] [--commit REV] [--pytest=ARG ...]

PROJECT is a git repository with a judged commit at HEAD (e.g. a copy of example_project after one
``AUTORESEARCH_TIME_BUDGET=30 pytest --autoresearch``). With ``--draws N`` HEAD is run N more times
(``pytest --autoresearch -q`` each: a re-measurement of the commit), under ``nice -n 19``; with
``--load`` each draw runs beside 0, 1 or 2 busy processes (a seeded, shuffled order), started
before the draw and stopped after it, niced like the run (an un-niced one would leave a niced
run a sixtieth of a core: a stall, not a load). Then, from HEAD's ledger
rows with gauge readings (those this invocation wrote, else those after ``--after``, else all), it
prints every draw and, for each candidate covariate, theta, its t statistic, the raw spread and the
adjusted spread, in-sample and leave-one-out (theta fitted without the draw it corrects), and
whether the verdict's rule (``covariate.fit``) would use it.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pytest_autoresearch import covariate
from pytest_autoresearch.ledger import Entry, Ledger

CANDIDATES = ("others", "steal", "reference", "competing")
BUSY = "while True: pass"


def run_draws(project: Path, draws: int, load: bool, seed: int, extra: list[str]) -> None:
    """HEAD drawn ``draws`` times, each beside its share of busy processes."""
    rng = random.Random(seed)
    counts = [i % 3 for i in range(draws)] if load else [0] * draws
    rng.shuffle(counts)
    for index, count in enumerate(counts):
        busy = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", BUSY]) for _ in range(count)]
        started = time.time()
        try:
            done = subprocess.run(["nice", "-n", "19", sys.executable, "-m", "pytest", "--autoresearch", "-q",
                                   "-p", "no:cacheprovider", *extra], cwd=project, capture_output=True, text=True)
        finally:
            for process in busy:
                process.kill()
                process.wait()
        line = next((l for l in done.stdout.splitlines() if l.startswith("autoresearch: ")), done.stdout[-300:])
        print(f"draw {index + 1}/{draws}: {count} busy, "
              f"{time.time() - started:.0f} s: {line}", flush=True)


def rows(project: Path, after: str, commit: str) -> list[Entry]:
    head = subprocess.run(["git", "rev-parse", commit], cwd=project, capture_output=True, text=True,
                          check=True).stdout.strip()
    ledger = Ledger(project / ".git" / "autoresearch" / "ledger.tsv")
    return [r for r in ledger.runs(("keep", "discard"), shas=[head]) if r.sha == head and r.status in ("keep", "discard") and r.value is not None
            and math.isfinite(r.value) and covariate.KEY in r.extra and r.timestamp >= after]


def ols(ys: list[float], xs: list[float]) -> tuple[float, float]:
    """Slope of ys on xs and its t statistic (0, 0 when xs do not vary)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0 or len(ys) < 3:
        return 0.0, 0.0
    theta = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    residual = sum((y - my - theta * (x - mx)) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(residual / (len(ys) - 2) / sxx)
    return theta, theta / se if se > 0 else math.inf


def report(runs: list[Entry]) -> None:
    ys = [r.value for r in runs if r.value is not None]
    print(f"\n{len(ys)} draws of {runs[0].commit} (load average now {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)")
    print(f"{'value':>9} {'others':>7} {'steal':>6} {'GB/s':>7} {'compete':>7} {'tokens':>8} {'trained_s':>9}")
    for run in runs:
        machine = run.extra[covariate.KEY]
        print(f"{run.value:9.4f} {machine.get('others', float('nan')):7.3f} {machine.get('steal', float('nan')):6.3f} "
              f"{machine.get('reference', float('nan')):7.4f} {machine.get('competing', float('nan')):7.2f} "
              f"{run.extra.get('served_tokens', 0):8} "
              f"{run.extra.get('trained_s', float('nan')):9.1f}")
    raw_range, raw_sd = max(ys) - min(ys), statistics.stdev(ys)
    print(f"\nraw: {min(ys):.4f}-{max(ys):.4f} (range {raw_range:.4f}), sd {raw_sd:.4f}")
    for name in CANDIDATES:
        pairs = [(r.value, covariate.reading(r.extra, name)) for r in runs]
        usable = [(y, x) for y, x in pairs if y is not None and x is not None]
        if len(usable) < 3:
            print(f"{name:>12}: not recorded")
            continue
        vs, xs = [y for y, _ in usable], [x for _, x in usable]
        theta, t = ols(vs, xs)
        inside = [y - theta * (x - statistics.fmean(xs)) for y, x in usable]
        loo = []
        for i, (y, x) in enumerate(usable):
            rest = usable[:i] + usable[i + 1:]
            th, _ = ols([a for a, _ in rest], [b for _, b in rest])
            loo.append(y - th * (x - statistics.fmean(b for _, b in rest)))
        rule = covariate.fit([usable]) is not None
        print(f"{name:>12}: theta {theta:+.4g} (t {t:+.1f}); adjusted range {max(inside) - min(inside):.4f}, "
              f"sd {statistics.stdev(inside):.4f} ({statistics.stdev(inside) / raw_sd:.2f} x raw); "
              f"leave-one-out range {max(loo) - min(loo):.4f}, sd {statistics.stdev(loo):.4f} "
              f"({statistics.stdev(loo) / raw_sd:.2f} x raw); the verdict's rule {'uses' if rule else 'does not use'} it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--draws", type=int, default=0)
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--after", default="")
    parser.add_argument("--commit", default="HEAD", help="whose draws to report (default: HEAD)")
    parser.add_argument("--pytest", action="append", default=[], metavar="ARG", help="given to each pytest run")
    args = parser.parse_args()
    after = args.after
    if args.draws:
        after = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run_draws(args.project.resolve(), args.draws, args.load, args.seed, args.pytest)
    found = rows(args.project, after, args.commit)
    if len(found) < 3:
        sys.exit(f"{len(found)} draws of HEAD with gauge readings after {after or 'the start'}: need 3")
    report(found)


if __name__ == "__main__":
    main()
