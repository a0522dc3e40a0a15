"""Step 0 of example_project/train.py: a cold compile cache, only its C++ kernels already built, warm.

Usage: python benchmarks/compile_step.py [BUDGET_SECONDS] [--repeats N]
On a CPU, inductor writes each kernel as C++ and builds it with the compiler in CXX. This runs
train.py three ways per repeat, each in a fresh process: "cold" (an empty TORCHINDUCTOR_CACHE_DIR,
what a sealed run of a new commit gets), "kernels" (an empty cache again, but every kernel the
cold run built is found by its source and flags in a store outside the cache: what a sealed
commit that changes no kernel gets from pytest_autoresearch/kernels.py; docs/architecture.md,
"Kernels built by frozen code") and "warm" (the cold run's cache: a re-run of the same commit). CXX points to a
wrapper written here that keys each `-o X.so` build of one .cpp file by the file's bytes and the
other arguments, times it and copies a stored build instead of running the compiler. Each row
shows step 0's seconds (train.py's first step: the compile), the compiler's seconds (summed, and
while any build ran), the builds run and found, and step 0 against the cold run of its repeat.
The precompiled header lives under TMPDIR, as in an unsealed run: build it once beforehand
(any earlier run does). Run prepare.py first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "example_project"
WRAPPER = """#!{python}
import hashlib, os, shutil, subprocess, sys, time
args, store, log = sys.argv[1:], {store!r}, {log!r}
sources = [a for a in args if a.endswith(".cpp")]
if "-o" not in args or len(sources) != 1:
    os.execvp({compiler!r}, [{compiler!r}, *args])
out = args[args.index("-o") + 1]
key = hashlib.sha256(open(sources[0], "rb").read() + "\\0".join(a for a in args if a not in (sources[0], out)).encode())
stored = os.path.join(store, key.hexdigest() + ".so")
start = time.time()
if os.path.exists(stored):
    shutil.copy(stored, out)
    kind, code = "found", 0
else:
    kind, code = "built", subprocess.call([{compiler!r}, *args])
    if code == 0:
        shutil.copy(out, stored + ".part")
        os.replace(stored + ".part", stored)
with open(log, "a") as f:
    f.write(f"{{kind}} {{start}} {{time.time()}}\\n")
sys.exit(code)
"""


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the spans ran."""
    total, end = 0.0, -1.0
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def step0(folder: Path, cache: Path, store: Path, budget: str) -> dict[str, float]:
    log = folder / "builds.log"
    log.unlink(missing_ok=True)
    wrapper = folder / "cxx"
    wrapper.write_text(WRAPPER.format(python=sys.executable, store=str(store), log=str(log),
                                      compiler=os.environ.get("CXX", "g++")))
    wrapper.chmod(0o755)
    env = {**os.environ, "CXX": str(wrapper), "TORCHINDUCTOR_CACHE_DIR": str(cache), "AUTORESEARCH_TIME_BUDGET": budget}
    run = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True)
    first = re.search(r"^step 00000 .*\| dt: (\d+)ms", run.stdout, re.M)
    if run.returncode or first is None:
        raise SystemExit(run.stdout[-2000:] + run.stderr[-2000:])
    builds = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    built = [(float(a), float(b)) for kind, a, b in builds if kind == "built"]
    return {"step0": int(first.group(1)) / 1000, "compiler": sum(b - a for a, b in built),
            "busy": busy_seconds(built), "built": len(built), "found": len(builds) - len(built)}


def main() -> None:
    parser = argparse.ArgumentParser(description="train.py's step 0: cold, with only its C++ kernels built, warm")
    parser.add_argument("budget", nargs="?", default="5", help="AUTORESEARCH_TIME_BUDGET of each run (seconds)")
    parser.add_argument("--repeats", type=int, default=1, help="cold, kernels and warm runs, this many times")
    args = parser.parse_args()
    print(f"{'repeat':>6} {'caches':>8} {'step 0 s':>8} {'compiler s':>10} {'busy s':>7} {'built':>5} {'found':>5} "
          f"{'x cold':>6}  load", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("prepare.py", "train.py"):
            shutil.copy(EXAMPLE / name, folder / name)
        for repeat in range(1, args.repeats + 1):
            store, cold_cache = folder / f"store-{repeat}", folder / f"cache-{repeat}"
            store.mkdir()
            runs = [("cold", cold_cache), ("kernels", folder / f"cache-{repeat}-kernels"), ("warm", cold_cache)]
            cold = None
            for kind, cache in runs:
                r = step0(folder, cache, store, args.budget)
                cold = cold or r["step0"]
                print(f"{repeat:>6} {kind:>8} {r['step0']:8.1f} {r['compiler']:10.1f} {r['busy']:7.1f} {r['built']:5.0f} "
                      f"{r['found']:5.0f} {r['step0'] / cold:6.2f}  {os.getloadavg()[0]:4.2f}", flush=True)


if __name__ == "__main__":
    main()
