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
import shutil
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
IMPORTED = b"\x06"  # the child's first byte on its reply pipe: the scorer's module is imported (the reply follows)
AUTOGROUP_IDLE_NICE = 19  # an early scorer's session while it imports beside the target (autogroup's weight 15 of 1024)
AUTOGROUP_TRIES = 10  # writes to /proc/self/autogroup, 100 ms apart: the kernel refuses more than one in 100 ms


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
    if not Path(artifact).exists():
        raise ScoringError(f"artifact {Path(artifact).absolute()} was not written")
    return ScorerProcess(target, artifact, search_path=search_path, forbidden=forbidden, env=env,
                         early=False).score(timeout)


class ScorerProcess:
    """A scorer's interpreter started before its artifact exists (``early``): it imports `target`'s
    module (torch, for a model's scorer: seconds of one core) while the target runs, on idle cores
    only, then waits until :meth:`score` says go. What it computes, and from what, is as
    :func:`run_scorer` says; only the interpreter's start is paid before. :meth:`close` ends one
    that is not needed (idempotent).

    The import runs in a thread of SCHED_IDLE policy, so the target never waits for it (a target
    timing its own start-up, as train.py's bf16 probe does, sees the machine it would see alone).
    If no core was idle long enough and the import has not finished at go, the interpreter is
    replaced by a fresh one at normal priority: a run never pays more than it did before.
    If this process dies, the child sees its stdin close and exits without scoring.
    """

    def __init__(self, target: str, artifact: Path, *, search_path: Sequence[Path] = (),
                 forbidden: Sequence[Path] = (), env: Mapping[str, str] | None = None, early: bool = True) -> None:
        module, _, function = target.partition(":")
        if not module or not function:
            raise ValueError(f"scorer {target!r} must be 'module:function'")
        self.target, self.artifact, self.early = target, Path(artifact).absolute(), early
        self._search_path, self._forbidden, self._env = search_path, forbidden, env
        request = {
            "target": target,
            "artifact": str(self.artifact),
            "search_path": [str(Path(p).resolve()) for p in search_path],
            "forbidden": [str(Path(p).resolve()) for p in forbidden],
            "early": early,
        }
        self._cwd = tempfile.mkdtemp(prefix="autoresearch-scorer-")
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                isolated_command(__name__, str(write_fd), json.dumps(request)), cwd=self._cwd,
                env=dict(os.environ if env is None else env), pass_fds=(write_fd,), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            shutil.rmtree(self._cwd, ignore_errors=True)
            raise
        finally:
            os.close(write_fd)
        self._reply: list[bytes] = []
        self._output: list[bytes] = []
        assert self._proc.stdout is not None
        self._readers = [threading.Thread(target=_read_all, args=(read_fd, self._reply), daemon=True),
                         threading.Thread(target=_read_all, args=(self._proc.stdout.fileno(), self._output, False),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def imported(self) -> bool:
        """Whether the scorer's module is imported (or failed to be): the child said so on its reply pipe."""
        return b"".join(self._reply).startswith(IMPORTED)

    def score(self, timeout: float) -> Scored:
        """Score the artifact now; the seconds are from here (go) to the result."""
        if self.early and not self.imported:  # its import is still waiting for an idle core
            self.close()
            return ScorerProcess(self.target, self.artifact, search_path=self._search_path, forbidden=self._forbidden,
                                 env=self._env, early=False).score(timeout)
        started = time.monotonic()
        try:
            if not self.artifact.exists():
                raise ScoringError(f"artifact {self.artifact} was not written")
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(b"go\n")
                self._proc.stdin.close()
            except BrokenPipeError:
                pass  # it exited already (its module failed to import): its reply says why
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.close()
                raise ScoringError(f"scorer {self.target} timed out after {timeout:g}s", _tail(b"".join(self._output))) from None
        finally:
            self.close()
        return _result(self.target, b"".join(self._reply).removeprefix(IMPORTED), self._proc.returncode,
                       time.monotonic() - started, _tail(b"".join(self._output)))

    def close(self) -> None:
        """End the scorer and everything it started, and collect what it wrote."""
        _kill_group(self._proc)  # nothing the scorer started outlives it
        self._proc.wait()
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        for reader in self._readers:
            reader.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        shutil.rmtree(self._cwd, ignore_errors=True)


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


def _read_all(fd: int, into: list[bytes], closefd: bool = True) -> None:
    with os.fdopen(fd, "rb", closefd=closefd) as f:
        while chunk := f.read1(65536):
            into.append(chunk)


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
    imported: list[Any] = []

    def load() -> None:
        if request["early"] and hasattr(os, "sched_setscheduler"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only: scoring keeps its priority
        imported.append(_child_import(request["target"]))
        channel.write(IMPORTED.decode())
        channel.flush()

    if request["early"]:
        set_autogroup_nice(AUTOGROUP_IDLE_NICE)
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    if not sys.stdin.buffer.readline():  # no go: the run ended without an artifact to score, or the plugin died
        os._exit(0)
    if request["early"]:
        set_autogroup_nice(0)
    loader.join()
    reply = _child_call(imported[0], Path(request["artifact"]))
    loaded = guard.hit or forbidden_loaded(request["forbidden"])
    if loaded is not None:
        reply = {"forbidden": loaded}
    channel.write(json.dumps(reply))
    channel.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the reply is out: tearing down the interpreter (torch's modules) is a second of nothing


def set_autogroup_nice(nice: int) -> bool:
    """Set the nice value of this process's autogroup (its session's scheduling group); whether it took.

    Where the kernel's autogroup is on, each session is a scheduling group and the groups share the
    CPU by their own nice value: SCHED_IDLE then yields only to the scorer's own session, and the
    import competed with the target's session for a whole core. At AUTOGROUP_IDLE_NICE the group
    gets ~1.5% of a core the target wants. Raising it needs no privilege, nor does going back to 0;
    an unprivileged write is refused (EAGAIN) within 100 ms of anyone's last, so it is retried.
    """
    for _ in range(AUTOGROUP_TRIES):
        try:
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(nice))
            return True
        except BlockingIOError:
            time.sleep(0.1)
        except OSError:
            return False  # no autogroup in this kernel, or not ours to change
    return False


def _child_import(target: str) -> Any:
    """The scoring function, or the exception that stopped its import (reported when scoring)."""
    module_name, _, attribute = target.partition(":")
    try:
        function: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            function = getattr(function, part)
    except BaseException as exc:  # noqa: BLE001 - reported as the scorer's failure when it is asked to score
        return exc
    return function


def _child_call(function: Any, artifact: Path) -> dict[str, Any]:
    try:
        if isinstance(function, BaseException):
            raise function
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
