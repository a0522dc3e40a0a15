"""The ``ray`` runner: each run is a Ray actor holding one GPU (or the CPUs asked for) on any node.

The actor receives the committed tree of ``launch.commit`` (``git archive``, never the dirty
work tree), starts a small guard process there, and the guard starts the target in a process
group of its own. Output goes to a log on that node, and ``poll()`` copies new chunks into
``launch.log_path``. The pytest process (the Ray driver) stays the controller.

A run with a frozen data server (``AUTORESEARCH_DATA_SOCKET`` in its environment) gets its
batches from the server here, through a relay: the target connects to a socket in its run folder
on the node, and the actor joins each connection to this process over TCP (opening with a secret
of the run), and this process to the server's socket (``_Relay``). The budget's clock stays frozen
code on this machine wherever the run trains.

Nothing outlives the run: the guard holds a pipe from the actor and kills the whole group when
the pipe closes (cancel, the actor's death, or the driver's: Ray kills the actors a dead driver
owned); the target also gets ``PR_SET_PDEATHSIG`` so it dies with the guard; ``reap(token)``
cancels the run from another process (the watchdog) through the actor's name.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import secrets
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle

from ..dataserver import SOCKET_ENV
from . import Exit, Launch, landlock, ray_node
from .ray_node import GRACE_S, RELAY_CONNECT_S, RELAY_TOKEN_BYTES, accept_each, pump, stop_listening

NAMESPACE = "autoresearch"
CANCEL_TIMEOUT_S = 4 * GRACE_S + 10

# A node needs Ray but not this package: the actor class travels by value.
cloudpickle.register_pickle_by_value(ray_node)  # type: ignore[no-untyped-call]


@functools.cache
def _actor_class() -> Any:
    return ray.remote(ray_node.RemoteRun)


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


def _node_seal(launch: Launch) -> dict[str, Any] | None:
    """What the node needs to seal the run as a local one would be (``ray_node.sealed_command``):
    the wrapper's own source, and the session's paths and variables. Paths on this machine only
    (the artifact's folder, the compile cache) stay here: the node writes its own run folders."""
    sealing = launch.sealing
    if sealing is None:
        return None
    return {"source": Path(landlock.__file__).read_text(), "read": list(sealing.read), "hide": list(sealing.hide),
            "network": sealing.network, "env": {k: v for k, v in sealing.env.items() if not k.endswith("_CACHE_DIR")}}


def _node_ip(node_id: str) -> str:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return next((str(n["NodeManagerAddress"]) for n in nodes if n["NodeID"] == node_id), "")


class _Relay:
    """This end of a remote run's data: a TCP listener on this node's address that joins each
    connection opening with the run's secret to the data server's socket here, and drops any other."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.token = secrets.token_bytes(RELAY_TOKEN_BYTES)
        self.listener = socket.create_server((ray.util.get_node_ip_address(), 0))  # type: ignore[no-untyped-call]
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        accept_each(self.listener, self._join)

    @property
    def spec(self) -> dict[str, Any]:
        """What the node's actor needs (``RemoteRun.start``'s ``relay``)."""
        return {"env": SOCKET_ENV, "address": list(self.address), "token": self.token.hex()}

    def _join(self, conn: socket.socket) -> None:
        conn.settimeout(RELAY_CONNECT_S)
        said = b""
        try:
            while len(said) < RELAY_TOKEN_BYTES and (chunk := conn.recv(RELAY_TOKEN_BYTES - len(said))):
                said += chunk
        except OSError:
            pass
        if not hmac.compare_digest(said, self.token):
            conn.close()
            return
        conn.settimeout(None)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.connect(self.server)
        except OSError:  # the server has stopped: the run is over
            server.close()
            conn.close()
            return
        pump(conn, server)

    def close(self) -> None:
        stop_listening(self.listener)


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
        self._relay = _Relay(launch.env[SOCKET_ENV]) if SOCKET_ENV in launch.env else None
        self._actor: Any = _actor_class().options(
            name=self._name, namespace=NAMESPACE, num_gpus=runner.num_gpus, num_cpus=runner.num_cpus, max_restarts=0,
        ).remote()
        self._started = self._actor.start.remote(
            tree, script, list(launch.args), dict(launch.env), launch.artifact.name if launch.artifact else "",
            _node_seal(launch), self._relay.spec if self._relay is not None else None,
        )
        self._pending = self._actor.read.remote(0)
        self._gcs = ray.get_runtime_context().gcs_address

    @property
    def relay_address(self) -> tuple[str, int] | None:
        """Where this machine listens for the node's data connections; None without a data server."""
        return None if self._relay is None else self._relay.address

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
            self._close()
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

    def _close(self) -> None:
        self._log.close()
        if self._relay is not None:
            self._relay.close()

    def _end(self, result: dict[str, Any]) -> Exit:
        ray.kill(self._actor, no_restart=True)
        self._close()
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
