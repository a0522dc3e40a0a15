"""Shared test setup: pytester, throwaway git repositories holding a benchmark project, a Ray cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

# Ray reads these once, at import: keep every address on the loopback (on Linux it otherwise
# swaps 127.0.0.1 for the address of the default route) and report nothing anywhere. Set
# here, so that every pytest this suite starts inherits them too.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import git
import pytest

from pytest_autoresearch.ledger import Entry, Ledger

pytest_plugins = ["pytester", "tests.lm.lm_fixtures"]

BENCH_TEST = """
import pytest

@pytest.mark.autoresearch(metric="score", goal="{goal}", script="train.py"{extra})
def test_train(experiment):
    assert experiment.returncode == 0
"""

TRAIN = """
print("step 1 ...")
print("---")
print("score: {value}")
print("peak_vram_mb: 512.0")
"""


# pytester's subprocess runs leave their output files beside the project: never part of a commit
IGNORED = "__pycache__/\n.pytest_cache/\nrunpytest-*\nstdout\nstderr\n"

# A report hook that passes every failed test: what an agent could add as a conftest or a pip plugin.
PASS_EVERY_REPORT = """
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.outcome = "passed"
    return report
"""


class Project:
    """A benchmark project in a real git repository: train.py prints the score it is given."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.repo = git.Repo.init(self.path, initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "Test Agent")
            cw.set_value("user", "email", "agent@example.com")
        (self.path / ".gitignore").write_text(IGNORED)
        self.options: tuple[str, ...] = ()  # given to every run

    def bench(self, goal: str = "min", **marker: object) -> None:
        extra = "".join(f", {k}={v!r}" for k, v in marker.items())
        self.pytester.makepyfile(test_bench=BENCH_TEST.format(goal=goal, extra=extra))

    def train(self, value: object, message: str | None = None, body: str | None = None) -> str:
        """Write train.py (printing ``value`` unless ``body`` is given) and commit it."""
        (self.path / "train.py").write_text(body if body is not None else TRAIN.format(value=value))
        return self.commit(message or f"score {value}")

    def commit(self, message: str) -> str:
        self.repo.git.add("-A")
        self.repo.git.commit("-m", message, "--allow-empty")
        return self.repo.head.commit.hexsha

    def unseal(self) -> None:
        """Run the target unsealed from now on: for a fake target that counts its draws in a file,
        state carried between runs, which is exactly what a sealed run refuses."""
        self.options += ("--autoresearch-isolation=none",)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("--autoresearch", *self.options, *args)

    def run_subprocess(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("--autoresearch", *self.options, *args, timeout=timeout)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.path / ".git" / "autoresearch" / "ledger.tsv")

    def runs(self) -> list[Entry]:
        return self.ledger.runs()

    def statuses(self) -> list[str]:
        return [r.status for r in self.runs()]


def two_kept_runs(project: Project) -> Path:
    """A baseline and a gain, both kept (lines 2-3 and 4-5 of the ledger: running, then keep)."""
    project.bench()
    project.train(1.5, "baseline")
    project.run().assert_outcomes(passed=1)
    project.train(1.2, "halve lr")
    project.run().assert_outcomes(passed=1)
    return project.ledger.path


@pytest.fixture
def project(pytester: pytest.Pytester) -> Iterator[Project]:
    project = Project(pytester)
    yield project
    project.repo.close()  # its git helper processes must not outlive the test


def pids_in(path: Path, within: float = 60.0) -> list[int]:
    """The pids a target wrote to ``path``, once it has written them."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text:
            return [int(p) for p in text.split()]
        time.sleep(0.05)
    raise AssertionError(f"the target never wrote its pids to {path}")


def all_gone(pids: list[int], within: float = 10.0) -> bool:
    """Whether every one of ``pids`` has ended within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


CLI_TIMEOUT_S = 60
PYTHON_M = (sys.executable, "-m", "pytest_autoresearch")


def run_cli(cwd: Path, *args: str, python: Sequence[str] = PYTHON_M) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_autoresearch ARGS`` in ``cwd``, output captured as text."""
    done = subprocess.run([*python, *args], cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert "Traceback" not in done.stderr, done.stderr
    return done


RAY_ENV = dict(os.environ)
RAY = str(Path(sys.executable).parent / "ray")  # the CLI next to this interpreter, venv activated or not


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and pid_alive(int(entry.name)):
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


@contextlib.contextmanager
def ray_cluster(num_gpus: int) -> Iterator[str]:
    """A head node in a session of its own, ended with everything in it; yields its address.

    ``ray start --block`` stays in the foreground and stops the cluster on SIGTERM; the
    cluster's processes share its session id, which is how teardown checks none is left.
    Every port is a free one, so two clusters (or another user's) never collide.
    """
    import ray

    ray.shutdown()  # this process drives one cluster at a time
    temp = tempfile.mkdtemp(prefix="ar-ray-")  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         f"--num-gpus={num_gpus}", "--include-dashboard=false", f"--dashboard-port={_free_port()}",
         f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats", f"--temp-dir={temp}"],
        env=RAY_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        _wait_ready(address, head)
        yield address
    finally:
        ray.shutdown()
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 15
        while _session_pids(head.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _session_pids(head.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        head.wait(timeout=10)
        subprocess.run(["rm", "-rf", temp], check=False)
        assert not left, f"Ray processes outlived the cluster: {left}"


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The suite's Ray cluster, started once for every test that asks: 2 CPUs, no GPU, on 127.0.0.1."""
    with ray_cluster(num_gpus=0) as address:
        yield address


def _wait_ready(address: str, head: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        status = subprocess.run([RAY, "status", f"--address={address}"], env=RAY_ENV, capture_output=True, text=True)
        if status.returncode == 0 and "CPU" in status.stdout:
            return
        time.sleep(0.5)
    raise RuntimeError("the Ray head did not come up within 60 s")
