"""A repeat of a pytest-benchmark test: the test alone, in a fresh pytest process.

pytest-benchmark's fixture measures once per test, and the noise that decides whether a speedup
is real is the noise between processes; so every repeat is a new ``python -m pytest`` of that one
test, with the project's own configuration and pytest-benchmark's calibration options, its
statistic read from the JSON pytest-benchmark writes. Autoresearch stays off in that process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from .experiment import tail
from .runner.local import kill_group
from .runner.watchdog import Watchdog

DRAW_ENV = "AUTORESEARCH_BENCHMARK_DRAW"  # set in the fresh process: autoresearch stays off there
NOT_FORWARDED = ("--benchmark-json", "--benchmark-save", "--benchmark-autosave", "--benchmark-compare",
                 "--benchmark-histogram", "--benchmark-cprofile-dump")  # they write or compare saved runs
FLAGS = ("--benchmark-disable-gc", "--benchmark-enable", "--benchmark-only", "--benchmark-verbose",
         "--benchmark-quiet", "--benchmark-skip", "--benchmark-disable")  # options that take no value


@dataclass(frozen=True)
class Drawn:
    """What the fresh process measured: its exit code (None: stopped at the time limit)."""

    returncode: int | None
    value: float | None
    duration: float
    error: str  # the line saying why the test failed
    tail: str


def forwarded(args: Sequence[str]) -> list[str]:
    """pytest-benchmark's options from the command line (its calibration: rounds, timer, warmup),
    without those that save or compare results; each written as one word (see :func:`split_options`)."""
    return [arg for arg in args if arg.startswith("--benchmark-") and not arg.startswith(NOT_FORWARDED)
            and ("=" in arg or arg in FLAGS)]


def split_options(args: Sequence[str]) -> list[str]:
    """pytest-benchmark options given as two words (``--benchmark-min-rounds 9``): a repeat could
    not be sure to measure the same way, so they must be written ``--benchmark-min-rounds=9``."""
    return [arg for arg in args if arg.startswith("--benchmark-") and not arg.startswith(NOT_FORWARDED)
            and "=" not in arg and arg not in FLAGS]


def run(config: pytest.Config, item: pytest.Function, stat: str, log: Path, timeout: float,
        watchdog: Watchdog | None) -> Drawn:
    """Run ``item`` alone in a fresh pytest process; its process group never outlives this call."""
    report = log.with_suffix(".json")
    target = f"{item.path}::{item.nodeid.split('::', 1)[1]}" if "::" in item.nodeid else str(item.path)
    command = [sys.executable, "-m", "pytest", target, "-q", "-rfE", "-p", "no:cacheprovider",
               f"--rootdir={config.rootpath}", *(["-c", str(config.inipath)] if config.inipath else []),
               f"--benchmark-json={report}", *forwarded(config.invocation_params.args)]
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=config.invocation_params.dir, env={**os.environ, DRAW_ENV: "1"},
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    if watchdog is not None:
        watchdog.guard({"runner": "local", "pgid": proc.pid})
    returncode: int | None = None
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        kill_group(proc.pid, proc.poll)
    text = tail(log)
    return Drawn(returncode, _statistic(report, stat), time.monotonic() - start, _why(text), text)


def _statistic(report: Path, stat: str) -> float | None:
    try:
        benchmarks = json.loads(report.read_text())["benchmarks"]
        value = benchmarks[0]["stats"][stat]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    finally:
        report.unlink(missing_ok=True)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _why(text: str) -> str:
    """pytest's short summary line for the failure, else the last line of output."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return (failed or lines or ["no output"])[-1]
