"""Wall time a run gains by going through RayRunner instead of a plain local subprocess.

Starts a private one-node Ray cluster on 127.0.0.1 (no dashboard, no usage stats), commits a
target that sleeps N seconds, and times, in the same process and interleaved, ``python -u
train.py`` run directly and the same commit run through ``RayRunner`` (snapshot, actor start,
log streaming, exit) polled every 20 ms. The first Ray run (driver connect, first worker) is
reported apart as ``cold``.

    python benchmarks/ray_overhead.py [--repeats 3] [--sleeps 1 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before Ray is imported: keep every address on the loopback, report nothing.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from _repo import git, init  # noqa: E402

from pytest_autoresearch.runner import Launch  # noqa: E402
from pytest_autoresearch.runner.ray import RayRunner  # noqa: E402

TRAIN = """
import time
print("start", flush=True)
time.sleep({seconds})
print("---")
print("score: 1.0")
"""


def start_cluster(temp: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    for _ in range(120):
        status = subprocess.run([ray, "status", f"--address={address}"], capture_output=True, text=True)
        if status.returncode == 0 and "CPU" in status.stdout:
            return head, address
        time.sleep(0.5)
    raise RuntimeError("the Ray head did not come up")


def stop_cluster(head: subprocess.Popen[bytes]) -> None:
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # whatever of this cluster is left: its session only
    except ProcessLookupError:
        pass
    head.wait()


def local_run(script: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-u", str(script)], cwd=script.parent, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def ray_run(runner: RayRunner, repo: Path, commit: str, log: Path) -> float:
    start = time.perf_counter()
    handle = runner.start(Launch(script=repo / "train.py", args=(), env={}, log_path=log, worktree=repo, commit=commit))
    while (end := handle.poll()) is None:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    assert end.returncode == 0 and "score: 1.0" in log.read_text(), log.read_text()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (default: 3)")
    parser.add_argument("--sleeps", type=float, nargs="+", default=[1.0, 10.0], help="target durations in s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as tmp:
        head, address = start_cluster(Path(tmp) / "ray")
        try:
            runner = RayRunner(address)
            repo = Path(tmp) / "repo"
            init(repo)
            print(f"{'target':>9} {'local s':>8} {'ray s':>8} {'added s':>8} {'ratio':>6}")
            cold_done = False
            for seconds in args.sleeps:
                (repo / "train.py").write_text(TRAIN.format(seconds=seconds))
                git(repo, "add", "-A")
                git(repo, "commit", "-qm", f"sleep {seconds}")
                commit = git(repo, "rev-parse", "HEAD").strip()
                if not cold_done:
                    cold = ray_run(runner, repo, commit, Path(tmp) / "cold.log")
                    local = local_run(repo / "train.py")
                    print(f"{'cold ' + format(seconds, 'g'):>9} {local:8.3f} {cold:8.3f} {cold - local:8.3f} {cold / local:6.3f}")
                    cold_done = True
                local_s, ray_s = [], []
                for i in range(args.repeats):
                    local_s.append(local_run(repo / "train.py"))
                    ray_s.append(ray_run(runner, repo, commit, Path(tmp) / f"run{i}.log"))
                local, on_ray = statistics.median(local_s), statistics.median(ray_s)
                print(f"{'sleep ' + format(seconds, 'g'):>9} {local:8.3f} {on_ray:8.3f} {on_ray - local:8.3f} "
                      f"{on_ray / local:6.3f}")
        finally:
            import ray

            ray.shutdown()
            stop_cluster(head)


if __name__ == "__main__":
    main()
