"""torch inductor's precompiled C++ header: built once by frozen code, lent read-only to every sealed run.

Inductor compiles a CPU graph's kernels against one precompiled header (~150 MB, ~8 s of g++ on
two cores) that it keeps under ``tempfile.gettempdir()``, not ``TORCHINDUCTOR_CACHE_DIR``. A
sealed run's TMPDIR is fresh, so every sealed run built it again, on a warm compile cache too.
The header depends on torch, the compiler and the CPU, never on the target's code: frozen code
builds it (a tiny ``torch.compile`` in an isolated interpreter) once a sealed run has compiled C++
kernels, and each later run finds it linked into its TMPDIR, readable and never writable, so it
carries nothing from one run to the next. A target compiled with other flags builds its own, as before.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

from filelock import FileLock
from pytest import PytestWarning

from .runner.local import kill_group
from .scoring import isolated_command

BUILD_TIMEOUT_S = 600.0  # the build's import and g++ take ~40 s on two idle cores
FAILED = "failed.log"  # in a version's folder: its build failed, and is not tried again


class HeadersWarning(PytestWarning):
    """The precompiled header could not be built: sealed runs go on, each building its own."""


def folder() -> str:
    """Where inductor keeps precompiled headers, relative to TMPDIR (its ``default_cache_dir`` rule)."""
    try:
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):
        user = f"uid_{os.getuid()}"
    return os.path.join("torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user), "precompiled_headers")


def wanted(compile_caches: Path) -> bool:
    """Whether an earlier sealed run here compiled C++ kernels: its compile cache holds their sources."""
    return next(compile_caches.glob("*/*/*.cpp"), None) is not None


def lend(root: Path, compile_caches: Path, say: Callable[[str], None], warn: Callable[[str], None]) -> Mapping[str, str]:
    """The headers every sealed run finds in its TMPDIR (path inside it → the built file), built
    here first when they are wanted and missing; empty without torch, or when the build failed."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return {}
    built = root / version
    if not built.is_dir() and wanted(compile_caches):
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / f"{version}.lock")):  # parallel sessions build it once
            if not built.is_dir():
                say(f"building torch {version}'s precompiled C++ header for sealed runs (once; ~40 s) ...")
                _build(built)
                if (built / FAILED).exists():
                    warn(f"torch's precompiled C++ header could not be built (see {built / FAILED}): "
                         "each sealed run builds its own, as unsealed runs do in their TMPDIR")
                for other in root.iterdir():  # an older torch's headers are never read again
                    if other.is_dir() and other != built:
                        shutil.rmtree(other, ignore_errors=True)
    if (built / FAILED).exists():
        return {}
    return {os.path.join(folder(), p.name): str(p) for p in sorted(built.glob("*.h*"))}


def _build(built: Path) -> None:
    """Compile a tiny function as a target would, in a scratch TMPDIR, and keep the headers it left
    there in ``built``; on failure ``built`` holds only FAILED, the build's output."""
    scratch = Path(tempfile.mkdtemp(prefix="autoresearch-headers-"))
    staging = built.with_name(f"{built.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "TORCHINDUCTOR_CACHE_DIR": str(scratch / "cache")}
    try:
        proc = subprocess.Popen(isolated_command(__name__), cwd=scratch, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output = proc.communicate(timeout=BUILD_TIMEOUT_S)[0]
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, proc.poll)
            output = proc.communicate()[0] + f"\ntimed out after {BUILD_TIMEOUT_S:g} s"
        finally:  # inductor's compile workers share the build's process group: none outlives it
            kill_group(proc.pid, proc.poll)
        headers = sorted((scratch / folder()).glob("*.h*"))
        if proc.returncode == 0 and any(p.suffix == ".gch" for p in headers):
            for path in headers:
                shutil.move(str(path), staging / path.name)
        else:
            (staging / FAILED).write_text(f"exit code {proc.returncode}, headers {[p.name for p in headers]}\n{output}")
        os.replace(staging, built)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _child_main() -> None:
    """In the isolated interpreter: inductor compiles one CPU kernel, and with it the header."""
    import torch

    compiled = torch.compile(lambda x: (x * 2.0).sin().sum(dim=-1))
    compiled(torch.randn(64, 64))
