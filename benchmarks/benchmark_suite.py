"""The example pytest-benchmark suite (example_benchmark/) under the loop, with its ini's settings.

1. Overhead: wall time of `pytest --autoresearch` over plain `pytest --benchmark-only` on the same
   suite, alternated in one run (repeat 1: the same one process; and the ini's repeats).
2. No-op commits: N empty commits judged one after another; how many were kept (target 0-1).
3. A real speedup (~10%: `words` builds its words in a list): kept in how many of T tries,
   each in a fresh repository whose baseline is measured just before it (so the machine's
   drift between bar and candidate spans one run, not the whole benchmark); processes per verdict.

    python benchmarks/benchmark_suite.py [--noops 20] [--tries 5] [--pairs 3] [--statistic median]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _repo import git, init

EXAMPLE = Path(__file__).resolve().parents[1] / "example_benchmark"
SLOW_WORDS = '''            current = current + char.lower()
        else:
            if current:
                found.append(current)
            current = ""
    if current:
        found.append(current)
    return found'''
FAST_WORDS = '''            chars.append(char)
        elif chars:
            found.append("".join(chars).lower())
            chars = []
    if chars:
        found.append("".join(chars).lower())
    return found'''


def pytest(cwd: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def suite_line(output: str) -> str:
    return next((line for line in output.splitlines() if line.startswith("autoresearch: ") and " suite[" in line), "")


def faster(path: Path) -> None:
    source = (path / "textstats.py").read_text()
    assert SLOW_WORDS in source
    source = source.replace(SLOW_WORDS, FAST_WORDS).replace('    current = ""\n    for char', "    chars: list[str] = []\n    for char")
    (path / "textstats.py").write_text(source)


def fresh(tmp: Path, name: str) -> Path:
    """The example in a new repository, its baseline committed."""
    path = Path(tmp) / name
    shutil.copytree(EXAMPLE, path)
    init(path)
    (path / ".gitignore").write_text((EXAMPLE / ".gitignore").read_text() + "__pycache__/\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "baseline")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noops", type=int, default=20)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--statistic", default="", help="judge this statistic instead of the ini's")
    args = parser.parse_args()
    judge = ["--autoresearch", *(["--autoresearch-benchmark", args.statistic] if args.statistic else [])]
    with tempfile.TemporaryDirectory() as tmp:
        path = fresh(Path(tmp), "example")
        plain, judged, repeated = [], [], []
        for _ in range(args.pairs):
            plain.append(pytest(path, "--benchmark-only", "-p", "no:autoresearch")[0])
            judged.append(pytest(path, "--autoresearch", "--autoresearch-repeat", "1")[0])
            repeated.append(pytest(path, "--autoresearch")[0])
        if args.pairs:
            p, j, r = (statistics.median(x) for x in (plain, judged, repeated))
            print(f"overhead: plain --benchmark-only {p:.2f} s, --autoresearch (repeat 1) {j:.2f} s = x{j / p:.2f}, "
                  f"with the ini's repeats {r:.2f} s = x{r / p:.2f} (medians of {args.pairs})")

        kept = 0
        for i in range(args.noops):
            git(path, "commit", "-q", "--allow-empty", "-m", f"no-op {i + 1}")
            line = suite_line(pytest(path, *judge)[1])
            kept += line.startswith("autoresearch: keep")
            print(f"no-op {i + 1}: {line[:120]}")
        if args.noops:
            print(f"no-ops kept: {kept} of {args.noops}")

        wins = 0
        for i in range(args.tries):
            path = fresh(Path(tmp), f"try{i + 1}")
            base = suite_line(pytest(path, *judge)[1])
            faster(path)
            git(path, "commit", "-qam", "words: build each word in a list")
            seconds, output = pytest(path, *judge)
            line = suite_line(output)
            wins += line.startswith("autoresearch: keep")
            draws = len(re.findall(r"^autoresearch: \w+ test_textstats", output, re.MULTILINE))
            print(f"speedup try {i + 1} ({seconds:.0f} s; baseline {base[:40]}): {line[:150]}")
        # the session's own process draws every benchmark once; the ini's repeat 3 adds two fresh ones each
        if args.tries:
            print(f"speedup kept: {wins} of {args.tries}; {1 + 2 * draws} pytest processes per verdict")


if __name__ == "__main__":
    main()
