"""The evaluation identity: what must be equal for two results to be comparable.

It is computed here, never reported by the target: the content of the frozen files, the
device the run measures on, the time-budget-like settings of the run, and whatever a
project's ``pytest_autoresearch_identity`` hook adds (e.g. a dataset fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path


def digest(parts: Mapping[str, str]) -> str:
    """A short, stable hash of the identity parts (12 hex digits)."""
    blob = json.dumps(dict(parts), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def files_digest(blobs: Iterable[tuple[str, str]]) -> str:
    """A hash of (path, content id) pairs: equal exactly when the files are equal."""
    return hashlib.sha256("\n".join(f"{p}\0{b}" for p, b in blobs).encode()).hexdigest()[:12]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_models() -> str:
    """GPU model names from nvidia-smi, without importing torch; empty where there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return ", ".join(sorted({line.strip() for line in out.splitlines() if line.strip()}))


@lru_cache(maxsize=1)
def device() -> str:
    """The hardware a measurement is tied to: GPU model(s) if any, and the CPU model."""
    gpus = _gpu_models()
    return f"gpu: {gpus}; cpu: {_cpu_model()}" if gpus else f"cpu: {_cpu_model()}"
