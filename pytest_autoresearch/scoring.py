"""A frozen scorer run in a fresh, isolated interpreter on the artifact a target wrote.

The target's process is untrusted; the verdict rests on what frozen code computes here: a
`python -I` child in an empty working directory imports `module:function`, calls it on the
artifact, refuses the result if any mutable file was imported, and sends it back over a pipe
this process opened (the scorer's stdout is only a log, so printing cannot forge a score).
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_TAIL = 8000  # characters of the scorer's output kept in Scored.log and ScoringError.log


class Rejected(Exception):
    """Raised by a scorer when the artifact cheats; the message is the reason the run is red."""


class ScoringError(Exception):
    """The scorer could not score: artifact missing or unreadable, scorer crashed or timed out."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Scored:
    """What a scorer returned: its values, or the reason it rejected the artifact."""

    values: dict[str, float]
    rejected: str | None
    seconds: float
    log: str  # tail of the scorer's stdout and stderr


def run_scorer(
    target: str,
    artifact: Path,
    *,
    timeout: float,
    search_path: Sequence[Path] = (),
    forbidden: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
) -> Scored:
    """Run `target` ("module:function") on `artifact` in an isolated interpreter and return its result.

    The function is `score(artifact: Path) -> Mapping[str, float] | float` (a bare number
    comes back as {"value": number}). `search_path` folders go first on the child's sys.path
    (a project's frozen modules); a module loaded from a `forbidden` file (the mutable
    surface) makes the result a ScoringError. `env` replaces the child's environment.
    """
    module, _, function = target.partition(":")
    if not module or not function:
        raise ValueError(f"scorer {target!r} must be 'module:function'")
    artifact = Path(artifact).absolute()
    if not artifact.exists():
        raise ScoringError(f"artifact {artifact} was not written")
    request = {
        "target": target,
        "artifact": str(artifact),
        "search_path": [str(Path(p).resolve()) for p in search_path],
        "forbidden": [str(Path(p).resolve()) for p in forbidden],
    }
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="autoresearch-scorer-") as cwd:
            command = isolated_command(__name__, str(write_fd), json.dumps(request))
            proc = subprocess.Popen(
                command, cwd=cwd, env=dict(os.environ if env is None else env), pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
            os.close(write_fd)
            write_fd = -1
            reply: list[bytes] = []
            reader = threading.Thread(target=_read_all, args=(read_fd, reply), daemon=True)
            reader.start()
            try:
                output, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                output, _ = proc.communicate()
                log = _tail(output)
                raise ScoringError(f"scorer {target} timed out after {timeout:g}s", log) from None
            finally:
                _kill_group(proc)  # nothing the scorer started outlives it
            reader.join(timeout=5)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
    seconds = time.monotonic() - started
    log = _tail(output)
    return _result(target, b"".join(reply), proc.returncode, seconds, log)


def _result(target: str, raw: bytes, returncode: int, seconds: float, log: str) -> Scored:
    if not raw:
        last = _last_line(log) or "no output"
        raise ScoringError(f"scorer {target} exited with code {returncode} without a result: {last}", log)
    reply = json.loads(raw)
    if "forbidden" in reply:
        raise ScoringError(f"scorer {target} imported the mutable file {reply['forbidden']}", log)
    if "error" in reply:
        raise ScoringError(f"scorer {target} failed: {reply['error']}", log)
    if "rejected" in reply:
        return Scored({}, str(reply["rejected"]), seconds, log)
    return Scored({str(k): float(v) for k, v in reply["values"].items()}, None, seconds, log)


def _read_all(fd: int, into: list[bytes]) -> None:
    with os.fdopen(fd, "rb") as f:
        into.append(f.read())


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(output: bytes | None) -> str:
    return (output or b"").decode("utf-8", "replace")[-LOG_TAIL:]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# ---------------------------------------------------------------------------
# The child's side: runs in the isolated interpreter
# ---------------------------------------------------------------------------

# The package's own folder goes last on sys.path: an installed copy wins, a source checkout still works.
_BOOTSTRAP = (
    f"import sys; sys.path.append({str(Path(__file__).resolve().parents[1])!r}); "
    "import importlib; importlib.import_module(sys.argv.pop(1))._child_main()"
)


def isolated_command(module: str, *args: str) -> list[str]:
    """The command of a fresh `python -I` interpreter that calls `module._child_main()` with `args` in sys.argv[1:].

    Shared by every piece of frozen code that runs beside an untrusted target (the scorer, the
    data server): no user site, no PYTHON* variables, no current folder on sys.path.
    """
    return [sys.executable, "-I", "-c", _BOOTSTRAP, module, *args]


def refuse_mutable(forbidden: Sequence[str]) -> RefuseMutable:
    """Put a RefuseMutable first on this interpreter's meta path and return it."""
    guard = RefuseMutable(list(forbidden))
    sys.meta_path.insert(0, guard)
    return guard


class RefuseMutable(importlib.abc.MetaPathFinder):
    """First on the child's meta path: a module whose file is mutable is never executed."""

    def __init__(self, forbidden: list[str]) -> None:
        self.banned = set(forbidden)
        self.hit: str | None = None

    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.origin and str(Path(spec.origin).resolve()) in self.banned:
                self.hit = str(Path(spec.origin).resolve())
                raise ImportError(f"{self.hit} is a mutable file: a frozen scorer may not import it")
            return None  # not ours to load: the usual finders go on
        return None


def _child_main() -> None:
    """Entry point of the isolated interpreter: argv = [write fd, request JSON]."""
    fd, request = int(sys.argv[1]), json.loads(sys.argv[2])
    channel = os.fdopen(fd, "w")
    sys.path[0:0] = request["search_path"]
    guard = refuse_mutable(request["forbidden"])
    reply = _child_call(request["target"], Path(request["artifact"]))
    loaded = guard.hit or forbidden_loaded(request["forbidden"])
    if loaded is not None:
        reply = {"forbidden": loaded}
    channel.write(json.dumps(reply))
    channel.close()


def _child_call(target: str, artifact: Path) -> dict[str, Any]:
    module_name, _, attribute = target.partition(":")
    try:
        function: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            function = getattr(function, part)
        result = function(artifact)
    except Rejected as exc:
        return {"rejected": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the reason, with its traceback in the log
        traceback.print_exc()
        sys.stderr.flush()
        return {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]}
    try:
        if isinstance(result, Mapping):
            values = {str(k): float(v) for k, v in result.items()}
        else:
            values = {"value": float(result)}
    except (TypeError, ValueError) as exc:
        return {"error": f"the scorer returned {type(result).__name__}, not numbers: {exc}"}
    return {"values": {k: (v if math.isfinite(v) else str(v)) for k, v in values.items()}}


def forbidden_loaded(forbidden: list[str]) -> str | None:
    """The first forbidden file any loaded module came from, if one did."""
    if not forbidden:
        return None
    banned = set(forbidden)
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            try:
                resolved = str(Path(path).resolve())
            except OSError:
                continue
            if resolved in banned:
                return resolved
    return None
