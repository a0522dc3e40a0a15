"""``autoresearch calibrate``: the best commit against itself, through the plugin's run path.

The fake target draws value n of a seeded stream (n counts its runs in a file the test controls),
so the test knows every value the calibration saw; a planted order effect makes the first draw
of each pair slower.
"""

from __future__ import annotations

import json
import socket
import statistics
from pathlib import Path
from random import Random

import pytest

from conftest import Project, run_cli

SIGMA = 0.01
NOISY = """
import os
import random
from pathlib import Path
counter = Path(os.environ["CALIBRATION_COUNTER"])
n = int(counter.read_text())
counter.write_text(str(n + 1))
first_of_pair = n % 2 == 0 and os.environ.get("FIRST_SLOWER") == "1"  # the calibration's draws come in pairs
print("---")
print("score:", random.Random(n).gauss(1.0, {sigma}) + (3 * {sigma} if first_of_pair else 0))
"""
UNSEALED = "--autoresearch-isolation=none"  # the fake target counts its runs in a file outside its run folder


def drawn(n: int) -> float:
    return Random(n).gauss(1.0, SIGMA)


@pytest.fixture
def counter(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("counter") / "n"
    path.write_text("1000")  # the baseline's verdict draws from elsewhere in the stream
    monkeypatch.setenv("CALIBRATION_COUNTER", str(path))
    return path


@pytest.fixture
def baseline(project: Project, counter: Path) -> str:
    project.bench()
    project.unseal()
    sha = project.train(None, "baseline", body=NOISY.format(sigma=SIGMA))
    project.run().assert_outcomes(passed=1)
    counter.write_text("0")
    return sha


def calibrate(project: Project, pairs: int, *pytest_args: str) -> dict[str, object]:
    done = run_cli(project.path, "calibrate", str(pairs), "--json", "--", UNSEALED, *pytest_args)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["host"] == socket.gethostname()
    [report] = payload["calibrations"]
    assert isinstance(report, dict)
    return report


def test_calibrate_reports_the_targets_noise_and_records_every_draw(project: Project, baseline: str) -> None:
    report = calibrate(project, 8)
    assert report["commit"] == baseline[:7] and report["which"] == "the best commit" and report["pairs"] == 8
    values = [drawn(n) for n in range(16)]
    assert report["sigma"] == pytest.approx(statistics.stdev(values))  # the 16 draws it ran, as the target drew them
    assert abs(report["sigma"] - SIGMA) < 0.4 * SIGMA
    assert report["sigma_pair"] == pytest.approx(SIGMA * 2**0.5, rel=0.6)
    order, drift = report["order"], report["drift"]
    assert isinstance(order, dict) and isinstance(drift, dict)
    assert abs(order["z"]) < 3 and abs(drift["z"]) < 3  # no order effect, no drift planted
    assert report["kept"] <= 1  # pure noise, judged under the defaults (auto, k = 2, paired auto)
    rows = [r for r in project.runs() if "calibration" in r.extra]
    assert len(rows) == 16 and {r.sha for r in rows} == {baseline} and {r.status for r in rows} == {"keep"}
    assert sorted(r.value for r in rows) == sorted(values) and {r.host for r in rows} == {socket.gethostname()}
    assert sorted(r.extra["draw"] for r in rows) == list(range(16))
    status = run_cli(project.path, "status")
    assert "  noise on this host: sigma " in status.stdout and "from 17 draws of 1 commit" in status.stdout

    text = run_cli(project.path, "calibrate", "2", "--", UNSEALED)
    assert text.returncode == 0, text.stderr
    assert f"calibration of test_bench.py::test_train score on {socket.gethostname()}: {baseline[:7]} (the best " \
           "commit) against itself, 2 pairs in a random order" in text.stdout
    assert "no-change candidates kept: " in text.stdout and "under min_delta auto, noise_k 2, paired auto" in text.stdout


def test_calibrate_detects_a_planted_order_effect(project: Project, baseline: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRST_SLOWER", "1")
    report = calibrate(project, 8)
    order = report["order"]
    assert isinstance(order, dict)
    assert order["value"] == pytest.approx(-3 * SIGMA, abs=1.5 * SIGMA) and order["z"] < -3  # second faster
    assert report["sigma_pair"] > 2 * SIGMA  # a balanced order puts the effect in the differences, not their mean
    assert report["kept"] <= 2  # the order is drawn at random: of the 70 balanced orders of these draws, 4 keep 2


def test_calibrate_counts_what_strict_unpaired_settings_keep(project: Project, baseline: str) -> None:
    """Strict and unpaired, about half of the no-change candidates beat the bar: counted from the draws."""
    report = calibrate(project, 10, "--autoresearch-min-delta", "0", "--autoresearch-paired", "never")
    rows = [r for r in project.runs() if "calibration" in r.extra]
    a = [r.value for r in rows if r.extra["side"] == "a" and r.value is not None]
    b = [r.value for r in rows if r.extra["side"] == "b" and r.value is not None]
    expected = sum(v < statistics.fmean(a) for v in b)
    assert report["kept"] == report["kept_unpaired"] == expected
    assert 2 <= expected <= 8


def test_calibrate_before_any_verdict_says_what_to_run_first(project: Project, counter: Path) -> None:
    project.bench()
    project.train(None, "baseline", body=NOISY.format(sigma=SIGMA))
    done = run_cli(project.path, "calibrate", "2", "--", UNSEALED)
    assert done.returncode == 1
    assert "autoresearch calibrate: nothing judged yet for test_bench.py::test_train under this evaluation " \
           "identity: run pytest --autoresearch first" in done.stdout
    assert "autoresearch: the calibration recorded no draws (pytest exited with code 1" in done.stderr
    assert project.runs() == []


def test_a_calibration_of_fewer_than_two_pairs_is_a_usage_error(project: Project) -> None:
    project.bench()
    project.train(1.0)
    result = project.run("--autoresearch-calibrate", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--autoresearch-calibrate: a calibration needs at least 2 pairs, got 1*"])
    cli = run_cli(project.path, "calibrate", "1")
    assert cli.returncode == 2 and "a calibration needs at least 2 pairs" in cli.stderr


def test_the_unchanged_commit_after_a_calibration_is_judged_with_this_hosts_floor(project: Project,
                                                                                  baseline: str) -> None:
    """The calibration's draws are the floor: the next verdict line says noise, not 'noise unknown'."""
    calibrate(project, 4)
    project.commit("changes nothing")
    line = [x for x in project.run("-q", UNSEALED, "--autoresearch-paired=never").stdout.lines
            if x.startswith("autoresearch: ")]
    assert len(line) == 1 and "noise unknown" not in line[0] and "σ)" in line[0], line


SERVED = """
import os, time
from pathlib import Path
from pytest_autoresearch.dataserver import receive

batches = receive(os.environ["AUTORESEARCH_DATA_SOCKET"], {"B": 1, "T": 8})  # the frozen server, or a crash
started, count = time.monotonic(), 0
while time.monotonic() - started < 1.0:
    next(batches)
    count += 1
    time.sleep(0.002)
ledger = Path(os.environ["HIDDEN_LEDGER"])
try:
    ledger.read_bytes()
    count = 1  # read what a sealed run cannot: the score says so
except OSError:
    pass
Path(os.environ["AUTORESEARCH_ARTIFACT"]).write_text(str(count))
print("---")
"""
BATCHES = """
def serve(request):
    while True:
        yield bytes(range(8)), 8
"""
SCORER = """
def score(artifact):
    return {"score": 1.0 / int(artifact.read_text())}
"""


def test_calibration_draws_run_sealed_and_fed_by_the_data_server_as_verdict_draws_are(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A target that trains from the frozen data server (it crashes without it) and that reads the
    ledger when it can: each calibration draw scores as a sealed run fed by the server does."""
    monkeypatch.setenv("HIDDEN_LEDGER", str(project.ledger.path))
    (project.path / "batches.py").write_text(BATCHES)
    (project.path / "scorer.py").write_text(SCORER)
    project.bench(scorer="scorer:score", artifact="model.txt", data_server="batches:serve", budget=1.0,
                  export_allowance=0.5)
    project.train(None, "baseline", body=SERVED)
    project.run().assert_outcomes(passed=1)
    # the plugin's side of autoresearch calibrate, in this process: a sealed run started from a fresh
    # `python -m pytest` cannot import an editable install of the plugin (not on its sys.path)
    project.run("--autoresearch-calibrate", "2").assert_outcomes(passed=1)
    rows = [r for r in project.runs() if "calibration" in r.extra]
    assert len(rows) == 4 and {r.status for r in rows} == {"keep"}, [r.extra.get("reason") for r in rows]
    assert {r.extra["isolation"] for r in rows} == {"sandbox"}
    assert all(r.value is not None and r.value < 0.1 for r in rows)  # many batches served, the ledger unread
