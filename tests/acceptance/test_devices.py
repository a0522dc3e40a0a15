"""One device per run: leased before the time limit starts, seen alone, recorded in the ledger."""

from __future__ import annotations

import itertools

from conftest import Project, run_cli

# Each benchmark records which device it saw and when it held it.
TARGET = """
import os, sys, time
start = time.time()
time.sleep(1.0)
with open("spans.txt", "a") as out:
    out.write(f"{os.environ['CUDA_VISIBLE_DEVICES']} {start} {time.time()}\\n")
print("---")
print("score: 1.0")
"""

FOUR = """
import pytest

@pytest.mark.parametrize("n", range(4))
@pytest.mark.autoresearch(metric="score", script="train.py")
def test_train(experiment, n):
    pass
"""


def test_four_parallel_runs_on_two_devices_never_overlap(project: Project) -> None:
    project.pytester.makepyfile(test_bench=FOUR)
    project.pytester.makeini("[pytest]\nautoresearch_devices = 0,1\nautoresearch_isolation = none\n")  # spans.txt: written into the project
    (project.path / ".gitignore").write_text("__pycache__/\nspans.txt\n")
    project.train(None, "baseline", body=TARGET)
    result = project.run_subprocess("-n", "4", "-p", "xdist")
    result.assert_outcomes(passed=4)
    spans = [line.split() for line in (project.path / "spans.txt").read_text().splitlines()]
    assert sorted(device for device, _, _ in spans) == ["0", "0", "1", "1"], "each run saw exactly one device"
    for (d1, s1, e1), (d2, s2, e2) in itertools.combinations(spans, 2):
        if d1 == d2:
            assert float(e1) <= float(s2) or float(e2) <= float(s1), "two runs shared a device"
    assert sorted(r.extra["device"] for r in project.runs()) == ["0", "0", "1", "1"]
    log = run_cli(project.path, "log").stdout.splitlines()
    assert log[0].split()[8:10] == ["run", "device"]  # "finished (UTC)" is two words


def test_no_devices_means_no_lease(project: Project) -> None:
    project.bench()
    project.pytester.makeini("[pytest]\nautoresearch_devices = none\n")
    project.train(1.0)
    project.run().assert_outcomes(passed=1)
    assert "device" not in project.runs()[0].extra
