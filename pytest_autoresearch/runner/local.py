"""Run a target on this machine, in its own process group, its output streamed to the log.

Whatever ends a run (normal exit, a pytest-timeout signal, Ctrl-C), ``cancel`` kills the
whole process group before the plugin goes on; the watchdog covers the exits that run no
Python code at all (``os._exit``, SIGKILL) through :func:`reap`.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from . import Exit, Launch

KILL_GRACE_S = 3.0
POLL_S = 0.02


def kill_group(pgid: int, reap_leader: Callable[[], object] | None = None) -> None:
    """End a process group: SIGTERM, a grace period, then SIGKILL.

    ``reap_leader`` (the parent's ``Popen.poll``) collects the leader once it exits, or the
    group never empties while its zombie lingers.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if reap_leader is not None:
                reap_leader()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(POLL_S)


class LocalRun:
    """One target process group started here."""

    def __init__(self, launch: Launch) -> None:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **launch.env}
        if launch.artifact is not None:
            launch.artifact.parent.mkdir(parents=True, exist_ok=True)
            env["AUTORESEARCH_ARTIFACT"] = str(launch.artifact)
        self.last_output = ""
        self._exit: Exit | None = None
        self._start = time.monotonic()
        command = [sys.executable, "-u", str(launch.script), *launch.args]
        if launch.sealing is not None:
            command, sealed_env = launch.sealing.command(command, str(launch.worktree or launch.script.parent))
            env.update(sealed_env)
        self._log = open(launch.log_path, "wb")
        self._proc = subprocess.Popen(
            command, cwd=launch.script.parent, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._copier = threading.Thread(target=self._copy, args=(self._proc.stdout,), daemon=True)
        self._copier.start()

    def _copy(self, pipe: BinaryIO) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
            self._log.write(chunk)
            self._log.flush()
            text = chunk.decode(errors="replace").replace("\r", "\n").strip().splitlines()
            if text:
                self.last_output = text[-1].strip()

    def poll(self) -> Exit | None:
        if self._exit is not None:
            return self._exit
        pid, status, rusage = os.wait4(self._proc.pid, os.WNOHANG)
        if not pid:
            return None
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        duration = time.monotonic() - self._start
        self._finish()
        self._exit = Exit(self._proc.returncode, duration, _peak_rss_mb(rusage), {"host": os.uname().nodename})
        return self._exit

    def cancel(self) -> None:
        self._finish()

    def _finish(self) -> None:
        """Kill what is left of the group and let the copier write the last output."""
        kill_group(self._proc.pid, self._proc.poll)
        self._copier.join(timeout=KILL_GRACE_S)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()

    def orphan_token(self) -> dict[str, Any]:
        return {"runner": "local", "pgid": self._proc.pid}


class LocalRunner:
    """Runs each target as a child process group of the pytest process."""

    name = "local"

    def start(self, launch: Launch) -> LocalRun:
        return LocalRun(launch)


def reap(token: dict[str, Any]) -> None:
    """The watchdog's way to end a run whose pytest process died."""
    kill_group(int(token["pgid"]))


def _peak_rss_mb(rusage: resource.struct_rusage) -> float | None:
    if rusage.ru_maxrss <= 0:
        return None
    return rusage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes vs KiB
