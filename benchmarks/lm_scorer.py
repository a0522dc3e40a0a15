"""Export and scoring seconds of example_project/train.py's model, and the leakage rule's numbers.

Usage: python benchmarks/lm_scorer.py [BUDGET_SECONDS ...] [--repeats N] [--leakage] [--keep FOLDER]
       python benchmarks/lm_scorer.py --artifact MODEL.pt2 [--repeats N] [--cold]
For each budget (default 5) it runs train.py in a temporary copy of the example project with
AUTORESEARCH_ARTIFACT set, reads train.py's own export line, then scores the artifact as the plugin
does: the scorer's isolated interpreter (scoring.ScorerProcess) starts as train.py starts, imports
while it trains, and scores when it has exited. "score s" is what the run pays after the target's
exit, split as the scorer's log line does: start (what is left of the interpreter's start and
imports), load (prepared data and the program), validation, probes, held-out.
--keep copies each trained artifact to FOLDER (model-BUDGET.pt2, model-BUDGET-val.pt2 for the
cheat); --artifact scores a kept one again without training, its scorer started HEAD_START_S
before (--cold: at once, the whole start paid after the exit, as before the scorer was started
early): measure a change to the scorer on one artifact, alternating runs of the old and the new
checkout, and compare within one run.
--leakage also runs a copy whose loader reads the "val" split (the cheat the held-out split
exists for). Each row shows heldout_bpb - val_bpb, relative and in standard errors, and how many
held-out rows the scorer needed for it (the scorer's own log lines).
Memory: train.py's peak_vram_mb and, on CUDA, the scorer's peak (scoring must not need more).
Profile, source and cache come from the AUTORESEARCH_* environment; run prepare.py first. On a GPU:
  AUTORESEARCH_PROFILE=gpu AUTORESEARCH_DATA=climbmix python benchmarks/lm_scorer.py 60
measures what a gpu-profile run pays for export, load and scoring (docs/architecture.md, "What a run costs").
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pytest_autoresearch.scoring import ScorerProcess

EXAMPLE = Path(__file__).resolve().parents[1] / "example_project"
PHASES = ("start", "load", "validation", "probes", "held-out")
TARGET = "pytest_autoresearch.lm.scorer:score"
HEAD_START_S = 10.0  # a kept artifact's scorer starts this long before it scores: a run's start-up and training
LOADER = 'make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train", device=device)'


def run_once(folder: Path, budget: str, cheat: bool, keep: Path | None) -> dict[str, float | str]:
    for name in ("prepare.py", "train.py"):
        shutil.copy(EXAMPLE / name, folder / name)
    if cheat:
        train = (folder / "train.py").read_text()
        assert LOADER in train, "train.py's loader line changed; update this benchmark"
        (folder / "train.py").write_text(train.replace(LOADER, LOADER.replace('"train"', '"val"')))
    artifact = folder / "model.pt2"
    artifact.unlink(missing_ok=True)
    env = {**os.environ, "AUTORESEARCH_TIME_BUDGET": budget, "AUTORESEARCH_ARTIFACT": str(artifact)}
    scorer = ScorerProcess(TARGET, artifact, search_path=[folder], forbidden=[folder / "train.py"])
    run = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True)
    if run.returncode:
        scorer.close()
        raise SystemExit(run.stdout[-2000:] + run.stderr[-2000:])
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(artifact, keep / f"model-{budget}{'-val' if cheat else ''}.pt2")
    export = re.search(r"^export: .* in ([0-9.]+)s", run.stdout, re.M)
    trained_mib = re.search(r"^peak_vram_mb: +([0-9.]+)", run.stdout, re.M)
    return {"export_s": float(export.group(1)) if export else math.nan,
            "train_mib": float(trained_mib.group(1)) if trained_mib else math.nan,
            **score_once(scorer)}


def score_once(scorer: ScorerProcess) -> dict[str, float | str]:
    result = scorer.score(timeout=600)
    phases = {name: float(s) for name, s in re.findall(r"([a-z-]+) ([0-9.]+)s", _scored_line(result.log))}
    phases["start"] = result.seconds - sum(phases.values())
    scored_mib = re.search(r"peak memory ([0-9]+) MiB", result.log)
    leak = re.search(r"held-out ([0-9.]+) on ([0-9]+) of ([0-9]+) rows, val ([0-9.]+): gap ([-+0-9.]+)%, "
                     r"([-+0-9.]+) standard errors", result.log)
    nan = math.nan  # rejected before the held-out rows were scored (causality): no numbers
    held, rows, of, val, rel, z = (float(g) for g in leak.groups()) if leak else (nan,) * 6
    return {"score_s": result.seconds, **{f"{name}_s": phases.get(name, nan) for name in PHASES},
            "score_mib": float(scored_mib.group(1)) if scored_mib else nan,
            "val": result.values.get("val_bpb", val), "heldout": held, "rows": f"{rows:.0f}/{of:.0f}",
            "gap": held - val, "rel": rel / 100, "z": z,
            "verdict": f"rejected: {result.rejected}" if result.rejected else "scored"}


def rescore(artifact: Path, cold: bool) -> dict[str, float | str]:
    """A kept artifact scored again: no training, so no export seconds or training memory."""
    scorer = ScorerProcess(TARGET, artifact)
    if not cold:
        time.sleep(HEAD_START_S)
    return {"export_s": math.nan, "train_mib": math.nan, **score_once(scorer)}


def _scored_line(log: str) -> str:
    """The scorer's `scored in ...` line: the seconds of each phase after the total."""
    found = re.search(r"scored in [0-9.]+s \(([^)]*)\)", log)
    return found.group(1) if found else ""


def main() -> None:
    args = sys.argv[1:]
    valued = {"--repeats", "--keep", "--artifact"}
    option = {flag: args[args.index(flag) + 1] for flag in valued if flag in args}
    repeats = int(option.get("--repeats", 1))
    keep = Path(option["--keep"]) if "--keep" in option else None
    budgets = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] not in valued)]
    kinds = [False, True] if "--leakage" in args else [False]
    print(f"{'budget':>6} {'trained on':>10} {'export s':>8} {'score s':>7} "
          + " ".join(f"{name:>10}" for name in PHASES)
          + f" {'train MiB':>9} {'score MiB':>9} {'val_bpb':>17} {'heldout':>8} {'rows':>8} {'gap':>7} {'rel':>6} {'z':>6}  load  verdict")
    with tempfile.TemporaryDirectory() as tmp:
        if "--artifact" in option:
            artifact = Path(option["--artifact"]).absolute()
            runs: list[tuple[str, bool, Callable[[], dict[str, float | str]]]] = [("-", False, partial(rescore, artifact, "--cold" in args))]
        else:
            runs = [(budget, cheat, partial(run_once, Path(tmp), budget, cheat, keep))
                    for budget in budgets or ["5"] for cheat in kinds]
        for budget, cheat, measure in runs:
            for _ in range(repeats):
                r = measure()
                print(f"{budget:>6} {'val' if cheat else 'train':>10} {r['export_s']:8.2f} {r['score_s']:7.2f} "
                      + " ".join(f"{r[f'{name}_s']:10.2f}" for name in PHASES)
                      + f" {r['train_mib']:9.0f} {r['score_mib']:9.0f} {r['val']:17.15f} {r['heldout']:8.4f} "
                      f"{r['rows']:>8} {r['gap']:+7.3f} {r['rel']:+6.1%} {r['z']:+6.2f} {os.getloadavg()[0]:5.2f}  "
                      f"{r['verdict']}", flush=True)


if __name__ == "__main__":
    main()
