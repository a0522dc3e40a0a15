"""The Ray runner on a real local Ray cluster (127.0.0.1, 2 CPUs, no GPU, no dashboard)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import RAY_ENV, pid_alive, ray_cluster
from pytest_autoresearch.dataserver import SOCKET_ENV
from pytest_autoresearch.runner import Exit, Launch
from pytest_autoresearch.runner.ray import RayHandle, RayRunner

STREAMING = """
import sys, time
for i in range(3):
    print(f"tick {i}")
    time.sleep(0.7)
print("---")
print("score: 1.5")
"""
# Prints its pid and a grandchild's (same process group), then waits to be ended.
LINGERING = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(f"pids {os.getpid()} {child.pid}")
time.sleep(120)
"""


class Repo:
    """A git repository holding the fake target."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "t")
        self.git("config", "user.email", "t@example.com")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, check=True).stdout.strip()

    def commit(self, body: str, name: str = "train.py") -> str:
        (self.path / name).write_text(body)
        self.git("add", "-A")
        self.git("commit", "-qm", "target")
        return self.git("rev-parse", "HEAD")

    def launch(self, commit: str, artifact: Path | None = None, env: dict[str, str] | None = None,
               log: str = "run.log") -> Launch:
        return Launch(
            script=self.path / "train.py", args=("--flag",), env=env or {}, log_path=self.path.parent / "logs" / log,
            worktree=self.path, commit=commit, artifact=artifact,
        )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
def runner(ray_address: str) -> RayRunner:
    return RayRunner(ray_address)


def _until(handle: RayHandle, timeout: float = 60) -> Exit:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        end = handle.poll()
        if end is not None:
            return end
        time.sleep(0.05)
    handle.cancel()
    raise AssertionError("the run did not end in time")


def _printed_pids(log: Path, handle: RayHandle | None = None, timeout: float = 60) -> list[int]:
    """The pids the target printed, once its output reached the log (``handle`` polled meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle is not None:
            assert handle.poll() is None
        if m := re.search(r"pids (\d+) (\d+)", log.read_text() if log.exists() else ""):
            return [int(m.group(1)), int(m.group(2))]
        time.sleep(0.05)
    raise AssertionError(f"the target printed no pids: {log.read_text()!r}")


def _gone(pids: list[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(pid_alive(pid) for pid in pids)


def test_output_streams_into_the_log_while_it_runs(runner: RayRunner, repo: Repo) -> None:
    launch = repo.launch(repo.commit(STREAMING + "import os, sys; print(sys.argv[1:], os.environ['GREETING'])\n"),
                         env={"GREETING": "hello"})
    handle = runner.start(launch)
    seen_while_running = ""
    deadline = time.monotonic() + 60
    while (end := handle.poll()) is None and time.monotonic() < deadline:
        if "tick 0" in launch.log_path.read_text() and not seen_while_running:
            seen_while_running = handle.last_output
        time.sleep(0.05)
    assert end is not None and end.returncode == 0
    assert seen_while_running.startswith("tick")  # the log had output before the run ended
    text = launch.log_path.read_text()
    assert "tick 2\n---\nscore: 1.5\n['--flag'] hello" in text
    assert handle.last_output == "['--flag'] hello"
    assert end.where["device"] == "cpu" and end.where["ip"] == "127.0.0.1" and end.where["host"]
    assert 2.0 < end.duration < 30
    assert end.peak_memory_mb is not None and end.peak_memory_mb > 1


def test_a_crash_exits_non_zero_with_its_tail(runner: RayRunner, repo: Repo) -> None:
    launch = repo.launch(repo.commit("import sys\nprint('step 1')\nraise SystemExit('boom')\n"))
    end = _until(runner.start(launch))
    assert end.returncode == 1
    assert launch.log_path.read_text().splitlines()[-2:] == ["step 1", "boom"]


def test_cancel_ends_the_whole_remote_process_group(runner: RayRunner, repo: Repo) -> None:
    launch = repo.launch(repo.commit(LINGERING))
    handle = runner.start(launch)
    pids = _printed_pids(launch.log_path, handle)
    assert all(pid_alive(pid) for pid in pids)
    handle.cancel()
    assert not any(pid_alive(pid) for pid in pids)  # gone by the time cancel returns
    end = handle.poll()
    assert end is not None and end.returncode == -signal.SIGTERM
    handle.cancel()  # idempotent


def test_only_the_committed_tree_runs(runner: RayRunner, repo: Repo) -> None:
    commit = repo.commit("print('committed version')\n")
    (repo.path / "train.py").write_text("print('dirty version')\n")  # not committed
    (repo.path / "untracked.txt").write_text("x")
    launch = repo.launch(commit)
    end = _until(runner.start(launch))
    assert end.returncode == 0
    assert launch.log_path.read_text() == "committed version\n"


def test_the_artifact_comes_back(runner: RayRunner, repo: Repo, tmp_path: Path) -> None:
    body = "import os\npath = os.environ['AUTORESEARCH_ARTIFACT']\nopen(path, 'wb').write(b'weights')\nprint(path)\n"
    artifact = tmp_path / "out" / "model.bin"
    launch = repo.launch(repo.commit(body), artifact=artifact)
    end = _until(runner.start(launch))
    assert end.returncode == 0
    assert artifact.read_bytes() == b"weights"
    remote = launch.log_path.read_text().strip()
    assert remote.endswith("model.bin") and Path(remote) != artifact
    assert not Path(remote).exists()  # the node's copy of the run is cleaned up


# Says hello through the socket it was given, and where that socket is.
DATA_CLIENT = """
import os, socket
path = os.environ["AUTORESEARCH_DATA_SOCKET"]
with socket.socket(socket.AF_UNIX) as conn:
    conn.connect(path)
    conn.sendall(b"hello from the node\\n")
    print(conn.makefile().readline().strip(), "via", path)
"""


def test_a_data_server_here_is_reached_from_the_node_through_a_relay(runner: RayRunner, repo: Repo,
                                                                       tmp_path: Path) -> None:
    heard: list[bytes] = []
    path = tmp_path / "data.sock"
    with socket.socket(socket.AF_UNIX) as server:  # the data server's socket on this machine
        server.bind(str(path))
        server.listen(4)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                heard.append(conn.makefile("rb").readline())
                conn.sendall(b"batch 1\n")

        threading.Thread(target=answer, daemon=True).start()
        launch = repo.launch(repo.commit(DATA_CLIENT), env={SOCKET_ENV: str(path)})
        handle = runner.start(launch)
        relay = handle.relay_address
        assert relay is not None
        with socket.create_connection(relay) as stranger:  # no secret: dropped, never joined to the server
            stranger.sendall(b"x" * 16)
            assert stranger.recv(100) == b""
        end = _until(handle)
    assert end.returncode == 0, launch.log_path.read_text()
    said, _, where = launch.log_path.read_text().strip().partition(" via ")
    assert said == "batch 1" and heard == [b"hello from the node\n"]
    assert "autoresearch-run-" in where and Path(where) != path  # the node's own socket, in its run folder
    with pytest.raises(OSError):
        socket.create_connection(relay, timeout=2)  # the relay closed with the run


def test_reap_from_another_process_ends_a_running_run(runner: RayRunner, repo: Repo, ray_address: str) -> None:
    launch = repo.launch(repo.commit(LINGERING))
    handle = runner.start(launch)
    pids = _printed_pids(launch.log_path, handle)
    token = handle.orphan_token()
    assert token["runner"] == "ray"
    reap = [sys.executable, "-c", "import json, sys\nfrom pytest_autoresearch.runner.ray import reap\n"
            "reap(json.loads(sys.argv[1]))", json.dumps(token)]
    subprocess.run(reap, env=RAY_ENV, check=True, timeout=60)
    assert _gone(pids, timeout=1)
    end = _until(handle)
    assert end.returncode != 0
    subprocess.run(reap, env=RAY_ENV, check=True, timeout=60)  # nothing left to reap: a no-op


def test_a_run_waiting_for_resources_can_be_cancelled(ray_address: str, repo: Repo) -> None:
    handle = RayRunner(ray_address, num_cpus=3).start(repo.launch(repo.commit("print(1)\n")))  # the cluster has 2
    time.sleep(0.5)
    assert handle.poll() is None
    assert handle.last_output == "waiting for a Ray node with 3 CPU free"
    handle.cancel()
    end = handle.poll()
    assert end is not None and end.returncode == -signal.SIGTERM and end.where == {}


DRIVER = """
import sys, time
from pathlib import Path
from pytest_autoresearch.runner import Launch
from pytest_autoresearch.runner.ray import RayRunner
address, repo, commit, log = sys.argv[1:5]
handle = RayRunner(address).start(Launch(script=Path(repo) / "train.py", args=(), env={}, log_path=Path(log),
                                         worktree=Path(repo), commit=commit))
while True:
    handle.poll()
    time.sleep(0.05)
"""


def test_a_killed_driver_takes_its_run_with_it(repo: Repo, ray_address: str, tmp_path: Path) -> None:
    commit = repo.commit(LINGERING)
    log = tmp_path / "driver.log"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, ray_address, str(repo.path), commit, str(log)], env=RAY_ENV)
    try:
        pids = _printed_pids(log)
    finally:
        driver.send_signal(signal.SIGKILL)  # as pytest-timeout's os._exit or the OOM killer would
        driver.wait()
    assert _gone(pids, timeout=30), "the target outlived its Ray driver"
    deadline = time.monotonic() + 10
    while _run_folders(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _run_folders(pids), "the orphaned run's folder was left on the node"


def _run_folders(pids: list[int]) -> list[Path]:
    """The node's folders of the run that printed these pids (the node is this machine)."""
    found = []
    for folder in Path(tempfile.gettempdir()).glob("autoresearch-run-*"):
        try:
            if f"pids {pids[0]} {pids[1]}" in (folder / "log").read_text(errors="replace"):
                found.append(folder)
        except FileNotFoundError:
            pass
    return found


def test_each_run_sees_only_the_gpu_ray_assigned(repo: Repo, ray_address: str) -> None:
    # Ray only counts the GPUs a node declares: this cluster's two are never touched.
    commit = repo.commit("import os, time\nprint(os.environ['CUDA_VISIBLE_DEVICES'])\ntime.sleep(1)\n")
    with ray_cluster(num_gpus=2) as address:
        runner = RayRunner(address)
        assert runner.num_gpus == 1  # the default on a cluster with GPUs
        launches = [repo.launch(commit, env={"CUDA_VISIBLE_DEVICES": "7"}, log=f"gpu{i}.log") for i in range(2)]
        handles = [runner.start(launch) for launch in launches]  # both at once: one GPU each
        ends = [_until(handle) for handle in handles]
    assert sorted(end.where["device"] for end in ends) == ["0", "1"]
    for launch, end in zip(launches, ends):
        assert launch.log_path.read_text() == end.where["device"] + "\n"  # Ray's assignment wins


def test_start_refuses_what_it_cannot_ship(repo: Repo) -> None:
    runner = RayRunner("127.0.0.1:1")  # never reached: the checks come first
    commit = repo.commit("print(1)\n")
    with pytest.raises(ValueError, match="launch.commit"):
        runner.start(Launch(script=repo.path / "train.py", args=(), env={}, log_path=repo.path / "log"))
    (repo.path / "new.py").write_text("print(2)\n")
    with pytest.raises(ValueError, match="new.py is not in commit"):
        runner.start(Launch(script=repo.path / "new.py", args=(), env={}, log_path=repo.path / "log",
                            worktree=repo.path, commit=commit))


def test_the_package_never_imports_ray() -> None:
    code = (
        "import sys\nimport pytest_autoresearch, pytest_autoresearch.runner, pytest_autoresearch.leases\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
