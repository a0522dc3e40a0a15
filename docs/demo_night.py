"""A short, real autoresearch session on the example project, to draw docs/progress.png.

It plays the agent with a fixed list of edits to train.py's constants: commit, run
``pytest --autoresearch``, keep the commit when green, ``git reset --hard HEAD~1`` when red;
then prints ``autoresearch status`` and draws the chart. Every number comes from a real
training run (cpu profile, pystdlib data, a short budget so the whole session takes minutes).

    python docs/demo_night.py --budget 15 --output docs/progress.png
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

ROOT = Path(__file__).resolve().parent.parent

# (commit subject, {constant: new value}) in the order an agent might try them
EDITS: list[tuple[str, dict[str, str]]] = [
    ("double the matrix learning rate", {"MATRIX_LR": "0.08"}),
    ("halve the batch: more steps in the budget", {"TOTAL_BATCH_SIZE": "2**12", "DEVICE_BATCH_SIZE": "16"}),
    ("depth 2: a smaller, faster model", {"DEPTH": "2"}),
    ("no weight decay", {"WEIGHT_DECAY": "0.0"}),
    ("longer warmdown", {"WARMDOWN_RATIO": "0.7"}),
    ("typo in the batch size", {"TOTAL_BATCH_SIZE": "2**12 +"}),
    ("embedding lr 1.0", {"EMBEDDING_LR": "1.0"}),
    ("wider model: aspect ratio 96", {"ASPECT_RATIO": "96"}),
    ("unembedding lr 0.008", {"UNEMBEDDING_LR": "0.008"}),
    ("wider still: aspect ratio 128", {"ASPECT_RATIO": "128"}),
    ("depth 3", {"DEPTH": "3"}),
    ("matrix lr 0.05", {"MATRIX_LR": "0.05"}),
    ("shorter warmdown", {"WARMDOWN_RATIO": "0.3"}),
    ("final lr 10% of peak", {"FINAL_LR_FRAC": "0.1"}),
    ("weight decay 0.1", {"WEIGHT_DECAY": "0.1"}),
]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def edit(train: Path, changes: dict[str, str]) -> None:
    text = train.read_text()
    for name, value in changes.items():
        text, count = re.subn(rf"^{name} = [^#\n]*?(\s+#)", rf"{name} = {value}\1", text, flags=re.M)
        assert count == 1, f"{name} not found once in {train}"
    train.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=15.0, help="Training seconds per run (default: 15)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "progress.png", help="Where to draw the chart")
    parser.add_argument("--keep", action="store_true", help="Keep the session's folder (printed) afterwards")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autoresearch-demo-"))
    project = work / "example_project"
    shutil.copytree(ROOT / "example_project", project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    env = {**os.environ, "AUTORESEARCH_TIME_BUDGET": f"{args.budget:g}"}
    git(project, "init", "-q", "-b", "main")
    git(project, "config", "user.name", "demo agent")
    git(project, "config", "user.email", "agent@example.com")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline: the example project as shipped")
    cli = [sys.executable, "-m", "pytest_autoresearch"]
    pytest = [sys.executable, "-m", "pytest", "--autoresearch", "-q", "-p", "no:cacheprovider"]
    subprocess.run([*cli, "init", "demo"], cwd=project, check=True)
    subprocess.run(pytest, cwd=project, env=env, check=True, stdout=subprocess.DEVNULL)
    for subject, changes in EDITS:
        edit(project / "train.py", changes)
        git(project, "commit", "-qam", subject)
        done = subprocess.run(pytest, cwd=project, env=env, capture_output=True, text=True)
        verdict = next((line for line in done.stdout.splitlines() if line.startswith("autoresearch: ")), "?")
        print(f"{subject:45s} {verdict}", flush=True)
        if done.returncode != 0:
            git(project, "reset", "-q", "--hard", "HEAD~1")
    subprocess.run([*cli, "status"], cwd=project, check=True)
    output = args.output.resolve()
    subprocess.run([*cli, "plot", "-o", str(output), "--size", "1200x600"], cwd=project, check=True)
    if args.keep:
        print(f"session folder: {project}")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
