"""The ``ray`` runner: each run is a Ray actor holding one GPU (or the CPUs asked for) on any node.

The actor receives the committed tree of ``launch.commit`` (``git archive``, never the dirty
work tree), starts a small guard process there, and the guard starts the target in a process
group of its own. Output goes to a log on that node, and ``poll()`` copies new chunks into
``launch.log_path``. The pytest process (the Ray driver) stays the controller.

Nothing outlives the run: the guard holds a pipe from the actor and kills the whole group when
the pipe closes (cancel, the actor's death, or the driver's: Ray kills the actors a dead driver
owned); the target also gets ``PR_SET_PDEATHSIG`` so it dies with the guard; ``reap(token)``
cancels the run from another process (the watchdog) through the actor's name.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle

from . import Exit, Launch

NAMESPACE = "autoresearch"
READ_WAIT_S = 0.25  # how long one read waits on the node for new output (a long poll)
READ_LIMIT = 1 << 20
GRACE_S = 3.0
CANCEL_TIMEOUT_S = 4 * GRACE_S + 10

# The guard, run on the node as ``python -c GUARD result log cwd cmd...``. Plain stdlib, so a
# node needs nothing but Python. It first detaches (a double fork): when Ray ends a worker it
# SIGKILLs the worker's children, and a guard killed that way could not end the target's group.
# Then it starts the target in a new session (its own process group), prints "guard_pid
# target_pid", and either waits for the target to exit or, when stdin reaches EOF (the actor
# closed the pipe or died) or SIGTERM comes, ends the group: SIGTERM, a grace period, SIGKILL.
# Once the leader exits it kills what is left of the group too, then writes the result file;
# if the actor vanished without saying "cancel", it removes the run's folder as well.
# Its stdout closes only when it exits: that is how the actor knows it is gone.
GUARD = r"""
import ctypes, json, os, signal, subprocess, sys, threading, time
result_path, log_path, cwd = sys.argv[1:4]
cmd = sys.argv[4:]
GRACE = float(os.environ.pop("AUTORESEARCH_GUARD_GRACE", "3"))
if os.fork() > 0:
    os._exit(0)
parent = os.getpid()
try:
    libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    libc = None

def die_with_guard():
    if libc is not None and sys.platform.startswith("linux"):
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the guard died before prctl took effect
            os._exit(137)

def alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False

finished = threading.Event()
with open(log_path, "ab") as log:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=die_with_guard)
sys.stdout.write("%d %d\n" % (parent, proc.pid))
sys.stdout.flush()

def end_group(wait_for):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline and wait_for():
            time.sleep(0.02)
        if not wait_for():
            return

orphaned = threading.Event()

def on_eof():
    try:
        said = sys.stdin.buffer.read()
    except Exception:
        said = b""
    if said.strip() != b"cancel":  # the actor died: nobody will read this run's folder
        orphaned.set()
    end_group(lambda: not finished.is_set())  # the main thread reaps the leader

threading.Thread(target=on_eof, daemon=True).start()
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=end_group, args=(lambda: not finished.is_set(),),
                                                            daemon=True).start())
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
        break
    except InterruptedError:
        continue
duration = time.monotonic() - start
finished.set()
end_group(lambda: alive(proc.pid))  # whatever the target left running in its group
result = {"returncode": os.waitstatus_to_exitcode(status), "maxrss_kb": rusage.ru_maxrss, "duration": duration}
with open(result_path + ".tmp", "w") as f:
    json.dump(result, f)
os.replace(result_path + ".tmp", result_path)
if orphaned.is_set():
    import shutil
    shutil.rmtree(os.path.dirname(result_path), ignore_errors=True)
"""


class _RemoteRun:
    """The actor's side of one run, on the node Ray picked. Standard library only (plus ray)."""

    def __init__(self) -> None:
        self.guard: subprocess.Popen[bytes] | None = None  # exits at once; its fork is the guard
        self.guard_pid = 0
        self.folder = ""
        self.artifact = ""

    def start(self, tree: bytes, script: str, args: list[str], env: dict[str, str], artifact_name: str) -> dict[str, str]:
        import io
        import socket
        import tarfile
        import tempfile

        import ray as ray_

        self.folder = tempfile.mkdtemp(prefix="autoresearch-run-")
        root = os.path.join(self.folder, "tree")
        with tarfile.open(fileobj=io.BytesIO(tree)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # Python before the extraction filters: the tree is our own git archive
                tar.extractall(root)  # noqa: S202
        gpus = [str(g) for g in ray_.get_runtime_context().get_accelerator_ids().get("GPU", [])]
        run_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env, "AUTORESEARCH_GUARD_GRACE": str(GRACE_S)}
        if gpus:
            run_env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)  # what Ray assigned wins
        if artifact_name:
            os.mkdir(os.path.join(self.folder, "artifact"))
            self.artifact = run_env["AUTORESEARCH_ARTIFACT"] = os.path.join(self.folder, "artifact", artifact_name)
        path = os.path.join(root, script)
        cmd = [sys.executable, "-u", path, *args]
        self.guard = subprocess.Popen(
            [sys.executable, "-c", GUARD, self._result, self._log, os.path.dirname(path), *cmd],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=run_env, start_new_session=True,
        )
        assert self.guard.stdout is not None
        line = self.guard.stdout.readline().decode().split()
        self.guard.wait()
        if len(line) != 2:
            raise RuntimeError("the run's guard process did not start the target")
        self.guard_pid, pid = int(line[0]), line[1]
        return {
            "host": socket.gethostname(),
            "node": ray_.get_runtime_context().get_node_id(),
            "device": ",".join(gpus) or "cpu",
            "pid": pid,
        }

    @property
    def _log(self) -> str:
        return os.path.join(self.folder, "log")

    @property
    def _result(self) -> str:
        return os.path.join(self.folder, "result.json")

    def read(self, offset: int, wait_s: float = READ_WAIT_S) -> tuple[bytes, dict[str, Any] | None]:
        """New output from ``offset``, and the result once the run ended and all of it was read."""
        import json

        deadline = time.monotonic() + wait_s
        while True:
            # Result first: once it exists, nothing writes to the log any more.
            done = os.path.exists(self._result)
            lost = not done and self._guard_gone()
            size = os.path.getsize(self._log) if os.path.exists(self._log) else 0
            if done or lost or size > offset or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        chunk = b""
        if size > offset:
            with open(self._log, "rb") as f:
                f.seek(offset)
                chunk = f.read(READ_LIMIT)
        if offset + len(chunk) < size:
            return chunk, None
        if done:
            with open(self._result) as f:
                result: dict[str, Any] = json.load(f)
            return chunk, result
        if lost:  # the guard was killed before it could write the result
            return chunk, {"returncode": -9, "maxrss_kb": 0, "duration": None}
        return chunk, None

    def cancel(self, offset: int) -> tuple[bytes, dict[str, Any] | None]:
        """End the target's group (close the guard's pipe), wait for it, return the rest of the log."""
        if self.guard is not None and self.guard.stdin is not None and not self.guard.stdin.closed:
            try:
                self.guard.stdin.write(b"cancel\n")  # not orphaned: keep the log for us to read
                self.guard.stdin.close()
            except BrokenPipeError:
                pass  # the guard is gone already
            deadline = time.monotonic() + 3 * GRACE_S
            while not self._guard_gone() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not self._guard_gone():
                os.kill(self.guard_pid, 9)  # the target still dies with it (PR_SET_PDEATHSIG)
        chunks = []
        while True:
            chunk, result = self.read(offset, wait_s=0)
            chunks.append(chunk)
            offset += len(chunk)
            if not chunk:
                return b"".join(chunks), result

    def _guard_gone(self) -> bool:
        """Whether the guard exited: its stdout, which only it holds, reached EOF."""
        import select

        if self.guard is None or self.guard.stdout is None:
            return True
        if self.guard.stdout.closed:
            return True
        if select.select([self.guard.stdout], [], [], 0)[0] and not self.guard.stdout.read1(1):  # type: ignore[attr-defined]
            self.guard.stdout.close()
            return True
        return False

    def finish(self) -> bytes | None:
        """The artifact's bytes (None when the target wrote none); the run's folder is removed."""
        import shutil

        data = None
        if self.artifact and os.path.isfile(self.artifact):
            with open(self.artifact, "rb") as f:
                data = f.read()
        shutil.rmtree(self.folder, ignore_errors=True)
        return data


# A node needs Ray but not this package: the actor class travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


@functools.cache
def _actor_class() -> Any:
    return ray.remote(_RemoteRun)


def _connect(address: str | None) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    extra: dict[str, Any] = {}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        extra["include_dashboard"] = False  # starts a local cluster for this process
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.ERROR, **extra)


def snapshot(worktree: Path, commit: str, script: Path) -> tuple[bytes, str]:
    """The committed tree of ``commit`` as tar bytes, and the script's path inside it."""
    try:
        relative = script.resolve().relative_to(worktree.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"the script {script} is not inside the work tree {worktree}") from None

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=worktree, capture_output=True, check=True).stdout
    try:
        git("cat-file", "-e", f"{commit}:{relative}")
    except subprocess.CalledProcessError:
        raise ValueError(f"{relative} is not in commit {commit[:12]}: commit it to run it on Ray") from None
    return git("archive", "--format=tar", commit), relative


def _node_ip(node_id: str) -> str:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return next((str(n["NodeManagerAddress"]) for n in nodes if n["NodeID"] == node_id), "")


class RayHandle:
    """One run on the cluster, driven by ``poll()`` from the pytest process."""

    def __init__(self, runner: RayRunner, launch: Launch, tree: bytes, script: str) -> None:
        self.last_output = f"waiting for a Ray node with {runner.describe()} free"
        self._name = f"autoresearch-{uuid.uuid4().hex}"
        self._launch = launch
        self._exit: Exit | None = None
        self._where: dict[str, str] | None = None
        self._offset = 0
        self._start = time.monotonic()
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        if launch.artifact is not None:
            launch.artifact.unlink(missing_ok=True)  # what is there afterwards is this run's
        self._log = open(launch.log_path, "wb")
        self._actor: Any = _actor_class().options(
            name=self._name, namespace=NAMESPACE, num_gpus=runner.num_gpus, num_cpus=runner.num_cpus, max_restarts=0,
        ).remote()
        self._started = self._actor.start.remote(
            tree, script, list(launch.args), dict(launch.env), launch.artifact.name if launch.artifact else ""
        )
        self._pending = self._actor.read.remote(0)
        self._gcs = ray.get_runtime_context().gcs_address

    @property
    def where(self) -> dict[str, str]:
        """Node and device once the run started (``pid`` is the target's, on that node)."""
        return dict(self._where or {})

    def poll(self) -> Exit | None:
        if self._exit is not None:
            return self._exit
        try:
            if self._where is None and ray.wait([self._started], timeout=0)[0]:
                self._started_where()
            if not ray.wait([self._pending], timeout=0)[0]:
                return None
            chunk, result = ray.get(self._pending)
            if self._where is None:  # the actor answers in order: start has returned
                self._started_where()
        except ray.exceptions.RayActorError:
            return self._lost()
        self._write(chunk)
        if result is None:
            self._pending = self._actor.read.remote(self._offset)
            return None
        artifact = ray.get(self._actor.finish.remote())
        if artifact is not None and self._launch.artifact is not None:
            self._launch.artifact.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._launch.artifact.with_name(self._launch.artifact.name + ".tmp")
            tmp.write_bytes(artifact)
            tmp.replace(self._launch.artifact)
        return self._end(result)

    def cancel(self) -> None:
        if self._exit is not None:
            return
        result: dict[str, Any] | None = None
        if self._where is not None or ray.wait([self._started], timeout=0)[0]:
            try:
                chunk, result = ray.get(self._actor.cancel.remote(self._offset), timeout=CANCEL_TIMEOUT_S)
                self._write(chunk)
                ray.get(self._actor.finish.remote(), timeout=CANCEL_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError):
                pass  # the actor is gone already: its guard saw the pipe close
        # Not started yet (waiting for a GPU): killing the actor is all there is to do.
        self._end(result or {"returncode": -15, "maxrss_kb": 0, "duration": None})

    def _started_where(self) -> None:
        try:
            where: dict[str, str] = ray.get(self._started)
        except ray.exceptions.RayTaskError:  # a failed start is our bug: raise it, with its traceback
            ray.kill(self._actor, no_restart=True)
            self._log.close()
            raise
        where["ip"] = _node_ip(where["node"])
        self._where = where
        self.last_output = ""

    def orphan_token(self) -> dict[str, Any]:
        return {"runner": "ray", "address": self._gcs, "namespace": NAMESPACE, "actor": self._name}

    def _write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._offset += len(chunk)
        self._log.write(chunk)
        self._log.flush()
        lines = chunk.decode(errors="replace").replace("\r", "\n").strip().splitlines()
        if lines:
            self.last_output = lines[-1].strip()

    def _lost(self) -> Exit:
        """The actor died under us (its node went away, or ``reap`` ended it)."""
        return self._end({"returncode": -9, "maxrss_kb": 0, "duration": None})

    def _end(self, result: dict[str, Any]) -> Exit:
        ray.kill(self._actor, no_restart=True)
        self._log.close()
        maxrss = result.get("maxrss_kb") or 0
        duration = result.get("duration")
        self._exit = Exit(
            returncode=int(result["returncode"]),
            duration=float(duration) if duration is not None else time.monotonic() - self._start,
            peak_memory_mb=maxrss / 1024 if maxrss > 0 else None,
            where={k: v for k, v in (self._where or {}).items() if k != "pid"},
        )
        return self._exit


class RayRunner:
    """Runs each launch as a Ray actor asking for ``num_gpus`` GPUs and ``num_cpus`` CPUs.

    ``address`` is the cluster's (``"auto"``, ``"ray://host:10001"``, ``"127.0.0.1:6379"``);
    None means ``RAY_ADDRESS`` or else a local cluster for this process; a process already
    connected to Ray keeps that connection. ``num_gpus`` None means 1 when the cluster has
    GPUs, else 0.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_gpus: float | None = None, num_cpus: float = 1) -> None:
        self.address = address
        self._num_gpus = num_gpus
        self.num_cpus = num_cpus

    @property
    def num_gpus(self) -> float:
        if self._num_gpus is None:
            _connect(self.address)
            resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
            self._num_gpus = 1.0 if resources.get("GPU", 0) > 0 else 0.0
        return self._num_gpus

    def describe(self) -> str:
        return f"{self.num_gpus:g} GPU" if self.num_gpus else f"{self.num_cpus:g} CPU"

    def start(self, launch: Launch) -> RayHandle:
        if launch.worktree is None or launch.commit is None:
            raise ValueError("the ray runner ships a commit: it needs launch.worktree and launch.commit")
        tree, script = snapshot(launch.worktree, launch.commit, launch.script)
        _connect(self.address)
        return RayHandle(self, launch, tree, script)


def reap(token: dict[str, Any]) -> None:
    """End the run a token names, from another process (the watchdog, once pytest died).

    Usually Ray has already killed the actor with its dead driver and the guard has ended the
    target's group; then there is nothing left to find and this returns.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=token["address"], namespace=token["namespace"], log_to_driver=False, logging_level=logging.ERROR)
    try:
        try:
            actor = ray.get_actor(token["actor"], namespace=token["namespace"])
        except ValueError:
            return
        try:
            ray.get(actor.cancel.remote(0), timeout=CANCEL_TIMEOUT_S)
            ray.get(actor.finish.remote(), timeout=CANCEL_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError):
            pass
        ray.kill(actor, no_restart=True)
    finally:
        ray.shutdown()
