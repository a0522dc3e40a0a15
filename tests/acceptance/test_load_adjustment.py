"""The load adjustment end to end: a target whose value is the machine's speed, draws under a load
the test sets, a verdict that corrects for the load the gauge measured and keeps the raw values.

The fake target hashes on every core for a fixed wall time and scores worse the less it got done:
busy processes beside it (started by the test, outside pytest's process tree) slow it, as a
neighbour's job slows a training run under a time budget.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conftest import Project
from pytest_autoresearch.covariate import COVARIATE, KEY

TIMED = """
import hashlib, os, threading, time
block, cores, done = bytes(1 << 18), len(os.sched_getaffinity(0)), []
end = time.perf_counter() + 1.0

def work():
    digest, n = hashlib.sha256(), 0
    while time.perf_counter() < end:
        digest.update(block)
        n += 1
    done.append(n)

threads = [threading.Thread(target=work) for _ in range(cores)]
[t.start() for t in threads]
[t.join() for t in threads]
print("---")
print("score:", 10 - sum(done) * len(block) / 1.0 / 1e9)  # the slower the machine, the worse
"""
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
LOADS = [0, 4, 4, 0, 4, 0, 0, 4, 4, 0, 4, 0, 4, 0, 0, 4]  # busy processes per core beside each draw: two levels, so any
# monotone effect of load on the value is a straight line through them


@contextmanager
def busy(per_core: int) -> Iterator[None]:
    """That many busy processes per core, as this test's children (not pytest's: a neighbour's load)."""
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(per_core * CORES)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def test_draws_are_corrected_for_the_load_they_ran_under(project: Project) -> None:
    project.bench()
    project.unseal()
    project.train(None, "baseline", body=TIMED)
    for load in LOADS:
        with busy(load):
            result = project.run_subprocess("-q")
        result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["autoresearch: keep *score=*n=16* | adjusted for load: sigma * -> *"])
    runs = [r for r in project.runs() if r.status == "keep"]
    assert len(runs) == len(LOADS)
    loads = [r.extra[KEY][COVARIATE] for r in runs]
    assert statistics.fmean(loads[i] for i, n in enumerate(LOADS) if n == 4) < \
        statistics.fmean(loads[i] for i, n in enumerate(LOADS) if n == 0)  # the reference workload ran slower
    last = runs[-1]
    raw = [r.value for r in runs]
    assert last.value == raw[-1] and "adjusted" in last.extra and last.extra["load_theta"] < 0  # a slower machine, a worse score
    assert "adjustment" in last.extra and "adjusted" not in runs[0].extra  # the first verdict had nothing to fit
    theta, reference = last.extra["load_theta"], last.extra["load_reference"]
    fixed = [y - theta * (x - reference) for y, x in zip(raw, loads)]  # the rule README states, on the recorded fields
    assert last.extra["adjusted"] == pytest.approx(fixed[-1])
    assert statistics.stdev(fixed) < statistics.stdev(raw)  # by how much depends on the machine's other load

    with busy(0):
        result = project.run_subprocess("-q", "--autoresearch-adjust=off")
    result.assert_outcomes(passed=1)
    assert "adjusted" not in result.stdout.str()
    assert "adjusted" not in project.runs()[-1].extra


def test_a_bad_adjust_value_names_where_it_came_from(project: Project) -> None:
    project.bench()
    project.train(1.0)
    project.pytester.makeini("[pytest]\nautoresearch_adjust = sometimes\n")
    result = project.run()
    result.stderr.fnmatch_lines(["*ini autoresearch_adjust: expected on or off, got 'sometimes'*"])
