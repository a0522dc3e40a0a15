"""Export and scoring seconds of example_project/train.py's model, and the leakage rule's numbers.

Usage: python benchmarks/lm_scorer.py [BUDGET_SECONDS ...] [--repeats N] [--leakage]
For each budget (default 5) it runs train.py in a temporary copy of the example project with
AUTORESEARCH_ARTIFACT set, reads train.py's own export line, then scores the artifact through
run_scorer (a fresh isolated interpreter: its time includes importing torch and loading data).
--leakage also runs a copy whose loader reads the "val" split (the cheat the held-out split
exists for) and prints heldout_bpb - val_bpb for both, relative and in standard errors.
Profile, source and cache come from the AUTORESEARCH_* environment; run prepare.py first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_autoresearch.lm import scorer
from pytest_autoresearch.scoring import run_scorer

EXAMPLE = Path(__file__).resolve().parents[1] / "example_project"
LOADER = 'make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train", device=device)'


def run_once(folder: Path, budget: str, cheat: bool) -> dict[str, float | str]:
    for name in ("prepare.py", "train.py"):
        shutil.copy(EXAMPLE / name, folder / name)
    if cheat:
        train = (folder / "train.py").read_text()
        assert LOADER in train, "train.py's loader line changed; update this benchmark"
        (folder / "train.py").write_text(train.replace(LOADER, LOADER.replace('"train"', '"val"')))
    artifact = folder / "model.pt2"
    artifact.unlink(missing_ok=True)
    env = {**os.environ, "AUTORESEARCH_TIME_BUDGET": budget, "AUTORESEARCH_ARTIFACT": str(artifact)}
    run = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(run.stdout[-2000:] + run.stderr[-2000:])
    export = re.search(r"^export: .* in ([0-9.]+)s", run.stdout, re.M)
    result = run_scorer("pytest_autoresearch.lm.scorer:score", artifact, timeout=600,
                        search_path=[folder], forbidden=[folder / "train.py"])
    import torch

    from pytest_autoresearch.lm.dataset import prepare

    # the standard errors are not among the scorer's values: score the same artifact here to show them
    data, device = prepare(), torch.device("cpu")
    model = scorer.load_program(artifact, device).module()
    val = scorer.bits_per_byte(model, data.val_rows, data, device)
    held = scorer.bits_per_byte(model, data.heldout_rows, data, device)
    se = (val.standard_error() ** 2 + held.standard_error() ** 2) ** 0.5
    return {"export_s": float(export.group(1)) if export else float("nan"), "score_s": result.seconds,
            "val": val.bpb, "heldout": held.bpb,
            "gap": held.bpb - val.bpb, "rel": (held.bpb - val.bpb) / held.bpb, "z": (held.bpb - val.bpb) / se,
            "verdict": f"rejected: {result.rejected}" if result.rejected else "scored"}


def main() -> None:
    args = sys.argv[1:]
    repeats = int(args[args.index("--repeats") + 1]) if "--repeats" in args else 1
    budgets = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--repeats")]
    kinds = [False, True] if "--leakage" in args else [False]
    print(f"{'budget':>6} {'trained on':>10} {'export s':>8} {'score s':>7} {'val_bpb':>8} "
          f"{'heldout':>8} {'gap':>7} {'rel':>6} {'z':>6}  verdict")
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets or ["5"]:
            for cheat in kinds:
                for _ in range(repeats):
                    r = run_once(Path(tmp), budget, cheat)
                    print(f"{budget:>6} {'val' if cheat else 'train':>10} {r['export_s']:8.2f} {r['score_s']:7.2f} "
                          f"{r['val']:8.4f} {r['heldout']:8.4f} {r['gap']:+7.3f} "
                          f"{r['rel']:+6.1%} {r['z']:+6.2f}  {r['verdict']}", flush=True)


if __name__ == "__main__":
    main()
