"""Compare train.py variants at a fixed number of training tokens instead of a fixed time.

Usage: python benchmarks/lm_fixed_tokens.py TOKENS [NAME=VALUE ...] [--train PATH]
Runs a copy of example_project/train.py (or of the train.py variant at PATH) whose schedule follows steps, not seconds, with the
given constants replaced (e.g. MATRIX_LR=0.06 TOTAL_BATCH_SIZE=2**12). The result does not
depend on how busy the machine is, so variants can be compared on a shared machine; how
many tokens a variant gets through in the real budget is a separate, timed measurement.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "example_project"


def variant(source: str, tokens: int, constants: dict[str, str]) -> str:
    for name, value in constants.items():
        source, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", source, flags=re.M)
        if count != 1:
            raise SystemExit(f"{name} is not a constant of train.py")
    steps = f"max(1, {tokens} // TOTAL_BATCH_SIZE)"
    replacements = {
        "progress = min(training_seconds / TIME_BUDGET, 1.0)": f"progress = min(step / {steps}, 1.0)",
        "if step > WARMUP_STEPS and training_seconds >= TIME_BUDGET:": f"if step >= {steps}:",
        "\nstep = 0\n": f"\nassert {steps} > WARMUP_STEPS, f'{tokens:,} tokens are {{{steps}}} steps, "
                        f"not more than the {{WARMUP_STEPS}} warm-up steps train.py leaves untimed: give more tokens'"
                        "\nstep = 0\n",
    }
    for old, new in replacements.items():
        if old not in source:
            raise SystemExit(f"train.py no longer contains {old!r}; update this benchmark")
        source = source.replace(old, new)
    return source


def main() -> None:
    args = sys.argv[1:]
    train = EXAMPLE / "train.py"
    if "--train" in args:
        at = args.index("--train")
        train = Path(args[at + 1])
        del args[at : at + 2]
    tokens = int(eval(args[0], {}))  # accepts 2**20 and the like
    constants = dict(arg.split("=", 1) for arg in args[1:])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "prepare.py").write_text((EXAMPLE / "prepare.py").read_text())
        (Path(tmp) / "train.py").write_text(variant(train.read_text(), tokens, constants))
        out = subprocess.run([sys.executable, "train.py"], cwd=tmp, capture_output=True, text=True)
    summary = {k: v.strip() for k, _, v in (line.partition(":") for line in out.stdout.rsplit("\n---\n", 1)[-1].splitlines())}
    if out.returncode != 0 or "val_bpb" not in summary:
        print(out.stdout[-2000:], out.stderr[-2000:])
        raise SystemExit(1)
    label = " ".join(args[1:]) or "defaults"
    if train != EXAMPLE / "train.py":
        label = f"{train.name} {label}"
    print(f"{label}: val_bpb {summary['val_bpb']} after {tokens:,} tokens "
          f"({summary['num_steps']} steps, {summary['num_params_M']}M params)", flush=True)


if __name__ == "__main__":
    main()
