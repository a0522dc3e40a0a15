"""Device leases: real file locks held by real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import pid_alive
from pytest_autoresearch.leases import Leases, detect_devices

# A fake target: says which device it sees and when it held it.
TARGET = """
import json, os, sys, time
start = time.time()
print(os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"device": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()}) + "\\n")
"""

# One pytest-like process: lease a device, run the target with the lease's env, release.
RUN = """
import subprocess, sys
from pathlib import Path
from pytest_autoresearch.leases import Leases
folder, devices, target, record, seconds = sys.argv[1:6]
with Leases(Path(folder), devices.split(",")).acquire(poll_s=0.05) as lease:
    subprocess.run([sys.executable, target, record, seconds], env={**__import__("os").environ, **lease.env}, check=True)
"""

# Holds the only device, starts a child that inherits every fd it can, then waits to be killed.
HOLDER = """
import subprocess, sys, time
from pathlib import Path
from pytest_autoresearch.leases import Leases
lease = Leases(Path(sys.argv[1]), ["0"]).acquire()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_concurrent_runs_never_share_a_device(tmp_path: Path) -> None:
    target = tmp_path / "target.py"
    target.write_text(TARGET)
    record = tmp_path / "record.jsonl"
    runs = [
        subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path / "devices"), "0,1", str(target), str(record), "1"])
        for _ in range(4)
    ]
    assert [run.wait(timeout=60) for run in runs] == [0, 0, 0, 0]
    spans = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(spans) == 4
    assert {span["device"] for span in spans} <= {"0", "1"}  # each saw exactly one id
    for device in ("0", "1"):
        held = sorted((s["start"], s["end"]) for s in spans if s["device"] == device)
        for (_, end), (start, _) in zip(held, held[1:]):
            assert start >= end, f"device {device} was used by two runs at once: {held}"


def test_a_killed_holder_frees_its_device_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "devices"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    child = int(holder.stdout.readline())
    leases = Leases(folder, ["0"])
    try:
        assert leases.try_acquire() is None
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert pid_alive(child)  # the holder's child lives on, with every fd it could inherit...
        lease = leases.try_acquire()  # ...and still the device is free at once
        assert lease is not None and lease.device == "0"
        lease.release()
    finally:
        os.kill(child, signal.SIGKILL)
        holder.stdout.close()


def test_acquire_reports_while_it_waits(tmp_path: Path) -> None:
    leases = Leases(tmp_path, ["0"])
    first = leases.acquire()
    waits: list[tuple[int, int]] = []
    got: list[str] = []
    waiter = threading.Thread(
        target=lambda: got.append(leases.acquire(on_wait=lambda n, total: waits.append((n, total)), poll_s=0.02).device)
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while len(waits) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == []
    first.release()
    waiter.join(timeout=10)
    assert got == ["0"]
    assert waits[0] == (1, 1)


def test_lease_env_context_and_release(tmp_path: Path) -> None:
    leases = Leases(tmp_path, ["GPU-1a/2", "3"])
    with leases.acquire() as a, leases.acquire() as b:
        assert (a.device, b.device) == ("GPU-1a/2", "3")
        assert a.env == {"CUDA_VISIBLE_DEVICES": "GPU-1a/2"}
        assert leases.try_acquire() is None
    assert not a.held
    a.release()  # idempotent
    lease = leases.try_acquire()
    assert lease is not None
    lease.release()


def test_no_devices_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one device"):
        Leases(Path("."), [])


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        ("0,1, 2,3", {"CUDA_VISIBLE_DEVICES": "7"}, ("0", "1", "2", "3")),  # explicit beats the env
        ("none", {"CUDA_VISIBLE_DEVICES": "7"}, ()),
        (None, {"CUDA_VISIBLE_DEVICES": "2,GPU-abc"}, ("2", "GPU-abc")),
        ("  ", {"CUDA_VISIBLE_DEVICES": "5"}, ("5",)),
        (None, {"CUDA_VISIBLE_DEVICES": ""}, ()),  # set but empty: no device visible
    ],
)
def test_detect_devices(setting: str | None, environ: dict[str, str], expected: tuple[str, ...]) -> None:
    assert detect_devices(setting, environ) == expected


def test_detect_devices_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaa)'\n"
        "echo '  MIG 1g.10gb Device 0: (UUID: MIG-bbb)'\n"
        "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-ccc)'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_devices(None, {}) == ("0", "1")


def test_a_cpu_only_machine_has_no_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi here
    assert detect_devices(None, {}) == ()
