"""What runs on a Ray node for one run: the actor and the guard process it starts.

Standard library only (plus ray), and sent to the node by value, so a node needs Ray and
Python but not this package. The controller's side is :mod:`pytest_autoresearch.runner.ray`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

READ_WAIT_S = 0.25  # how long one read waits on the node for new output (a long poll)
READ_LIMIT = 1 << 20
GRACE_S = 3.0
RELAY_CHUNK = 1 << 20  # bytes a relay moves per call: a gpu-profile batch (2 MB) in two
RELAY_TOKEN_BYTES = 16  # the secret a node's connection opens with, so the controller relays only its own run's
RELAY_CONNECT_S = 10.0
ACCEPT_POLL_S = 0.5  # how often a relay's listener looks whether it was closed


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


class RemoteRun:
    """The actor's side of one run, on the node Ray picked. Standard library only (plus ray)."""

    def __init__(self) -> None:
        self.guard: subprocess.Popen[bytes] | None = None  # exits at once; its fork is the guard
        self.guard_pid = 0
        self.folder = ""
        self.artifact = ""
        self.relay: socket.socket | None = None

    def start(self, tree: bytes, script: str, args: list[str], env: dict[str, str], artifact_name: str,
              seal: dict[str, Any] | None = None, relay: dict[str, Any] | None = None) -> dict[str, str]:
        """Unpack ``tree`` and start the script in it under a guard (sealed when ``seal`` says how).

        ``relay`` (``env``, ``address``, ``token``): the run's data server listens on the controller;
        the target finds a socket of this node in ``env`` instead, whose connections go there.
        """
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
        if relay is not None:
            run_env[relay["env"]] = self._relay_data(relay)
        path = os.path.join(root, script)
        cmd = [sys.executable, "-u", path, *args]
        if seal is not None:
            artifacts = [os.path.dirname(self.artifact)] if self.artifact else []
            cmd = sealed_command(self.folder, root, artifacts, cmd, run_env, seal)
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

    def _relay_data(self, relay: dict[str, Any]) -> str:
        """Listen on a socket in the run's folder and join each connection to the controller's data server."""
        path = os.path.join(self.folder, "data.sock")
        self.relay = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.relay.bind(path)
        self.relay.listen(8)
        address, token = (str(relay["address"][0]), int(relay["address"][1])), bytes.fromhex(relay["token"])

        def forward(conn: socket.socket) -> None:
            try:
                upstream = socket.create_connection(address, timeout=RELAY_CONNECT_S)
            except OSError as exc:
                with open(self._log, "a") as log:  # the run's log tail says why the loader found no data
                    log.write(f"autoresearch: this node cannot reach the data server's relay at "
                              f"{address[0]}:{address[1]} ({exc}); the controller must be reachable from every node\n")
                conn.close()
                return
            upstream.settimeout(None)
            upstream.sendall(token)
            pump(conn, upstream)

        accept_each(self.relay, forward)
        return path

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

        if self.relay is not None:
            stop_listening(self.relay)
        data = None
        if self.artifact and os.path.isfile(self.artifact):
            with open(self.artifact, "rb") as f:
                data = f.read()
        shutil.rmtree(self.folder, ignore_errors=True)
        return data


def sealed_command(folder: str, root: str, writable: list[str], cmd: list[str], env: dict[str, str],
                   seal: dict[str, Any]) -> list[str]:
    """``cmd`` wrapped in the seal on this node, ``env`` given the run's HOME and TMPDIR.

    ``seal`` carries the controller's ``runner/landlock.py`` as text (``source``; the node needs
    no package) and the session's ``read``, ``hide``, ``network`` and ``env``. The node's own
    Python installation and the shipped tree are readable; only the run's folders are writable.
    """
    wrapper = os.path.join(folder, "landlock.py")
    with open(wrapper, "w") as f:
        f.write(seal["source"])
    landlock: dict[str, Any] = {"__name__": "autoresearch_landlock", "__file__": wrapper}
    exec(compile(seal["source"], wrapper, "exec"), landlock)  # noqa: S102  # our own file, shipped as text
    command, run_env = landlock["sealed"](cmd, os.path.join(folder, "sealed"), root, list(seal["read"]), writable,
                                          list(seal["hide"]), bool(seal["network"]), dict(seal["env"]), wrapper)
    env.update(run_env)
    return list(command)


def accept_each(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Call ``handle(conn)`` in a thread of its own for each connection, until ``listener`` is closed
    (its ``accept`` wakes every ACCEPT_POLL_S to look)."""
    listener.settimeout(ACCEPT_POLL_S)

    def accept() -> None:
        while listener.fileno() != -1:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed
            conn.settimeout(None)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def stop_listening(listener: socket.socket) -> None:
    """Refuse new connections at once (a close alone waits for the accepting thread's poll) and close."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not every system shuts down a listening socket; the close still ends it
    listener.close()


def pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways between two connected sockets until each side has closed; then close both.

    An end of stream is passed on (``shutdown``), so a loader that stops asking ends the other side's
    connection as it would directly; a reset ends both directions at once.
    """
    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(RELAY_CHUNK):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for end in (a, b):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    back = threading.Thread(target=one_way, args=(b, a), daemon=True)
    back.start()
    one_way(a, b)
    back.join()
    a.close()
    b.close()
