"""The evaluation identity: what must be equal for two results to be comparable.

It is computed here, never reported by the target: the content of the frozen files, the
device the run measures on, the pytest surface that judges the run (conftests, ini file,
plugins and their versions, ``-p`` and ``-o`` options), and whatever a project's
``pytest_autoresearch_identity`` hook adds (e.g. a dataset fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
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


SURFACE = ("pytest conftests", "pytest ini", "pytest plugins", "pytest options")


def surface(root: Path, conftests: Iterable[Path], ini: Path | None, plugins: Iterable[str],
            args: Sequence[str], addopts: str) -> dict[str, str]:
    """The pytest surface that judges a run, as identity parts: a plugin that rewrites outcomes
    or a conftest added above the project changes them.

    Paths are named relative to ``root`` (so worktrees compare), with a hash of their content;
    ``plugins`` are "name==version"; of the options in ``args`` and ``addopts``
    (PYTEST_ADDOPTS) only ``-p NAME`` (code loaded into the judge) and ``-o`` count: ``-q``,
    ``-x`` or ``-p no:cacheprovider`` change what is printed or cached, not what is judged.
    """
    def named(path: Path) -> str:
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            digest = "unreadable"
        where = path.relative_to(root) if path.is_relative_to(root) else path
        return f"{where.as_posix()}:{digest}"

    options: list[str] = []
    words = [*shlex.split(addopts), *args]
    for i, word in enumerate(words):
        if word in ("-p", "-o", "--override-ini") and i + 1 < len(words):
            options.append(f"{'-p' if word == '-p' else '-o'} {words[i + 1]}")
        elif word.startswith("--override-ini="):
            options.append(f"-o {word.split('=', 1)[1]}")
        elif word[:2] in ("-p", "-o") and len(word) > 2 and not word.startswith("--"):
            options.append(f"{word[:2]} {word[2:]}")
    options = [o for o in options if not o.startswith("-p no:")]
    return {
        "pytest conftests": ", ".join(sorted({named(p) for p in conftests})) or "none",
        "pytest ini": named(ini) if ini else "none",
        "pytest plugins": ", ".join(sorted(set(plugins))) or "none",
        "pytest options": " ".join(sorted(options)) or "none",
    }
