"""The evaluation identity: what must be equal for two results to be comparable.

It holds only what changes a measured value, computed here, never reported by the target: the
content of the frozen files (the ini file without its judging keys), the device the run
measures on, and whatever a project's ``pytest_autoresearch_identity`` hook adds (e.g. a
dataset fingerprint, profile, budget). How a value is judged (min_delta, repeats, noise,
timeouts) and which pytest plugins are loaded are not part of it: see :mod:`.trust`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path


def digest(parts: Mapping[str, str]) -> str:
    """A short, stable hash of the identity parts (12 hex digits)."""
    blob = json.dumps(dict(parts), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def files_digest(blobs: Iterable[tuple[str, str]]) -> str:
    """A hash of (path, content id) pairs: equal exactly when the files are equal."""
    return hashlib.sha256("\n".join(f"{p}\0{b}" for p, b in blobs).encode()).hexdigest()[:12]


def cpuinfo(field: str) -> str:
    """The value of the first ``field`` line of Linux's /proc/cpuinfo; "" where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == field:
                return value.strip()
    except OSError:
        pass
    return ""


def _cpu_model() -> str:
    return cpuinfo("model name") or platform.processor() or platform.machine()


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


# Ini keys that decide how a value is judged, never what it is: an ini file that differs only in
# them measures the same way. Every other line of the ini file counts, like any frozen file.
JUDGING_KEYS = ("autoresearch_min_delta", "autoresearch_noise_k", "autoresearch_repeat",
                "autoresearch_timeout", "autoresearch_progress", "autoresearch_ledger", "autoresearch_adjust")
_JUDGING_LINE = re.compile(rb"^[ \t]*(?:" + b"|".join(k.encode() for k in JUDGING_KEYS) + rb")[ \t]*[=:].*(?:\r?\n|$)",
                           re.MULTILINE)


def without_judging_keys(content: bytes) -> bytes:
    """An ini file (pytest.ini, tox.ini, setup.cfg, pyproject.toml) without its judging-key lines."""
    return _JUDGING_LINE.sub(b"", content)


# Marker arguments that decide how a value is judged, never what it is.
JUDGING_ARGUMENTS = ("threshold", "min_delta", "max_seconds", "requires")


def without_judging_arguments(source: bytes) -> bytes:
    """A test file without the judging arguments of its ``autoresearch`` markers, each cut with the
    comma before it (or after it, when it comes first), so adding one leaves the rest as it was."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def at(line: int, col: int) -> int:  # ast columns count UTF-8 bytes, as these offsets do
        return starts[line - 1] + col

    cuts = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "autoresearch"):
            continue
        items: list[ast.expr | ast.keyword] = sorted([*node.args, *node.keywords], key=lambda n: (n.lineno, n.col_offset))
        spans = [(at(n.lineno, n.col_offset), at(n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in items]
        for i, item in enumerate(items):
            if isinstance(item, ast.keyword) and item.arg in JUDGING_ARGUMENTS:
                if i > 0:
                    cuts.append((spans[i - 1][1], spans[i][1]))
                else:
                    cuts.append((spans[i][0], spans[i + 1][0] if len(items) > 1 else spans[i][1]))
    kept, last = [], 0
    for start, end in sorted(cuts):
        kept.append(source[last:max(start, last)])
        last = max(last, end)
    return b"".join(kept) + source[last:]


def measured_blob(blob: str, content: bytes, cut: Callable[[bytes], bytes]) -> str:
    """The content id of a frozen file as it counts for measurement: its blob id without what
    ``cut`` leaves out (the ini file's judging keys, a test file's judging arguments)."""
    stripped = cut(content)
    return blob if stripped == content else blob_id(stripped)


def blob_id(content: bytes) -> str:
    """Git's blob id of ``content``: equal to the committed file's id when nothing was left out."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# The pytest surface, as identities recorded before 0.3 held it: now a matter of trust only (.trust).
SURFACE = ("pytest conftests", "pytest ini", "pytest plugins", "pytest options")


def measured(parts: Mapping[str, str]) -> dict[str, str]:
    """The parts of a recorded identity that change a measured value (older ones held the surface too)."""
    return {k: v for k, v in parts.items() if k not in SURFACE}
