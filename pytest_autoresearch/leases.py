"""Device leases on one machine: each judged run holds one device and sees only that one.

One OS file lock per device, under a folder every pytest process, worktree and xdist worker of
the repository shares (the git common dir's ``autoresearch/devices/``). The kernel drops a lock
when its holder dies, however it dies, so a crashed run never keeps a device busy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from filelock import Timeout, UnixFileLock

POLL_S = 0.5
_GPU_LINE = re.compile(r"^GPU (\d+):")


def detect_devices(setting: str | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The devices runs may lease, in order; ``()`` on a machine without any (run as today).

    ``setting`` is the ini ``autoresearch_devices`` value: a comma-separated list ("0,1,2,3")
    is taken as given, ``"none"`` turns leasing off, and ``None`` or blank means detect:
    ``CUDA_VISIBLE_DEVICES`` when set (its ids as written, UUIDs included), else the GPUs
    ``nvidia-smi -L`` lists (no torch import), else none.
    """
    if setting is not None and setting.strip():
        if setting.strip().lower() == "none":
            return ()
        return _split(setting)
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _split(visible)
    return _nvidia_smi_gpus()


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _nvidia_smi_gpus() -> tuple[str, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(m.group(1) for line in out.splitlines() if (m := _GPU_LINE.match(line.strip())))


class Lease:
    """One device held by this process until ``release()`` (or the end of a ``with`` block)."""

    def __init__(self, device: str, lock: UnixFileLock) -> None:
        self.device = device
        self._lock = lock

    @property
    def env(self) -> dict[str, str]:
        """Variables that make a target see only the leased device."""
        return {"CUDA_VISIBLE_DEVICES": self.device}

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        """Free the device; idempotent."""
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease(device={self.device!r}, held={self.held})"


class Leases:
    """The devices of this machine and the folder holding one lock file per device."""

    def __init__(self, folder: Path, devices: Sequence[str]) -> None:
        if not devices:
            raise ValueError("Leases needs at least one device (a machine without any runs unleased)")
        self.folder = folder
        self.devices = tuple(devices)

    def _lock(self, device: str) -> UnixFileLock:
        # An flock(2) lock: the kernel drops it when the last descriptor of its open file
        # closes, so a SIGKILLed holder frees the device. Python opens that descriptor
        # close-on-exec (PEP 446), so the target a lease holder starts never inherits it.
        name = re.sub(r"[^\w.-]", "_", device)
        return UnixFileLock(self.folder / f"{name}.lock", thread_local=False)

    def try_acquire(self) -> Lease | None:
        """A free device now, or None when every device is in use."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for device in self.devices:
            lock = self._lock(device)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            return Lease(device, lock)
        return None

    def acquire(self, on_wait: Callable[[int, int], None] | None = None, poll_s: float = POLL_S) -> Lease:
        """Block until a device is free and lease it.

        While every device is in use, ``on_wait(in_use, total)`` is called once per poll (the
        caller throttles its progress line: ``waiting for a device: 4 of 4 in use``).
        """
        while True:
            lease = self.try_acquire()
            if lease is not None:
                return lease
            if on_wait is not None:
                # Every lock was taken a moment ago; probing them again would only race the
                # other waiters for a device that frees up.
                on_wait(len(self.devices), len(self.devices))
            time.sleep(poll_s)
