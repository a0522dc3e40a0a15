"""Trust is not comparability: a changed pytest surface stops the session until a person accepts
it (recorded in the ledger, shown by status and verify), and the leaderboard goes on unless how
values are measured changed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from conftest import Project, run_cli
from pytest_autoresearch import identity
from pytest_autoresearch.ledger import Entry, Ledger

MEASURED_BY_INI = """
def pytest_addoption(parser):
    parser.addini("bench_budget", "seconds of training per run")


def pytest_autoresearch_identity(config):
    return {"budget": config.getini("bench_budget")}
"""


def install_plugin(site: Path) -> None:
    """A pytest plugin installed the way pip installs one: a module and a dist-info with a pytest11 entry point."""
    (site / "harmless_plugin.py").write_text("def pytest_configure(config):\n    pass\n")
    info = site / "pytest_harmless-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-harmless\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nharmless = harmless_plugin\n")


def test_a_plugin_installed_between_two_runs_is_accepted_once_and_the_leaderboard_goes_on(
        project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    project.bench()
    base = project.train(1.0, "baseline")
    project.run_subprocess().assert_outcomes(passed=1)
    site = tmp_path_factory.mktemp("site")
    install_plugin(site)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH")))))
    project.train(0.9, "a real gain")

    stopped = project.run_subprocess()
    assert stopped.ret == pytest.ExitCode.USAGE_ERROR, "stopped before any test runs"
    stopped.stderr.fnmatch_lines([f"ERROR: autoresearch: the pytest surface changed since {base[:7]} *: "
                                  "pytest plugins (* -> *pytest-harmless==1.0*)*--autoresearch-accept-frozen "
                                  "(how values are measured did not change, so the results stay comparable)"])
    assert project.statuses() == ["keep"]

    accepted = project.run_subprocess("--autoresearch-accept-frozen", "-q")
    accepted.assert_outcomes(passed=1)
    accepted.stdout.fnmatch_lines([f"autoresearch: keep test_bench.py::test_train score=0.9 best=1@{base[:7]} *"])
    assert "new leaderboard" not in accepted.stdout.str()
    runs = project.runs()
    assert [r.status for r in runs] == ["keep", "accepted", "keep"]
    assert runs[2].identity == runs[0].identity, "a plugin does not change how the score is measured"
    what = runs[1].extra["accepted"]
    assert len(what) == 1 and what[0].startswith("pytest plugins (") and "pytest-harmless==1.0" in what[0]
    assert runs[1].host == socket.gethostname() and runs[1].extra["user"] and runs[1].timestamp

    project.train(0.8, "the next idea")
    project.run_subprocess().assert_outcomes(passed=1)  # trusted now: no second stop

    for command in ("status", "verify"):
        shown = run_cli(project.path, command).stdout
        assert "accepted by a person" in shown, (command, shown)
        assert f"{runs[1].extra['user']}@{socket.gethostname()} at {runs[1].commit}: pytest plugins (" in shown


def test_a_judging_setting_in_the_ini_is_accepted_and_judges_against_the_earlier_best(project: Project) -> None:
    project.bench()
    (project.path / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    base = project.train(1.0, "baseline")
    project.run().assert_outcomes(passed=1)
    (project.path / "pytest.ini").write_text("[pytest]\naddopts = -ra\nautoresearch_min_delta = 0.2\n")
    project.train(0.9, "a gain smaller than the new min_delta")

    stopped = project.run()
    assert stopped.ret == pytest.ExitCode.USAGE_ERROR
    stopped.stderr.fnmatch_lines(["*the pytest surface changed since *: pytest ini (pytest.ini:* -> pytest.ini:*)*"
                                  "(how values are measured did not change, so the results stay comparable)"])
    assert project.statuses() == ["keep"]

    accepted = project.run("--autoresearch-accept-frozen")
    accepted.assert_outcomes(failed=1)
    accepted.stdout.fnmatch_lines(["*DISCARD score = 0.9*by more than 0.2*", f"*best 1 at {base[:7]}*"])
    runs = project.runs()
    assert [r.status for r in runs] == ["keep", "accepted", "discard"]
    assert runs[2].identity == runs[0].identity, "min_delta judges the value; it does not measure it"


def test_a_measurement_setting_in_the_ini_starts_a_new_leaderboard_said_plainly(project: Project) -> None:
    project.bench()
    (project.path / "conftest.py").write_text(MEASURED_BY_INI)
    (project.path / "pytest.ini").write_text("[pytest]\nbench_budget = 1\n")
    project.train(1.0, "baseline")
    project.run().assert_outcomes(passed=1)
    (project.path / "pytest.ini").write_text("[pytest]\nbench_budget = 2\n")
    project.train(1.2, "a longer budget, a worse score")

    stopped = project.run()
    assert stopped.ret == pytest.ExitCode.USAGE_ERROR
    stopped.stderr.fnmatch_lines(["*pytest ini (pytest.ini:* -> pytest.ini:*)*"
                                  "(how values are measured changed too: a new leaderboard)"])

    accepted = project.run("--autoresearch-accept-frozen")
    accepted.assert_outcomes(passed=1)
    accepted.stdout.fnmatch_lines(["*new leaderboard: budget, frozen changed since the earlier results*"])
    runs = project.runs()
    assert [r.status for r in runs] == ["keep", "accepted", "keep"]
    assert runs[2].identity != runs[0].identity, "not compared with the result under the old budget"


@pytest.mark.parametrize("marker", [{}, {"max_seconds": 60}], ids=["plain", "judging-argument"])
def test_a_ledger_written_before_the_split_keeps_its_leaderboard(project: Project, marker: dict[str, object],
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """Rows whose identity held the pytest surface, and frozen files hashed with their judging
    settings (before 0.3), are compared with new ones when they were measured the same way, and
    their surface is trusted as it was."""
    project.bench(**marker)
    base = project.train(1.0, "baseline")
    probe = tmp_path_factory.mktemp("probe") / "ledger.tsv"
    project.run(f"--autoresearch-ledger={probe}").assert_outcomes(passed=1)
    probed = Ledger(probe)
    row = probed.runs()[-1]
    tree = [line.split("\t") for line in project.repo.git.ls_tree("-r", "--full-tree", base).splitlines()]
    whole = identity.files_digest(sorted((path, meta.split()[2]) for meta, path in tree if path != "train.py"))
    parts = {**probed.identity_parts(row.identity), "frozen": whole, **probed.identity_parts(row.extra["surface"])}
    assert set(identity.SURFACE) <= parts.keys() and {"device", "frozen"} <= parts.keys()
    old = Ledger(tmp_path_factory.mktemp("old") / "ledger.tsv")
    old.register_identity(identity.digest(parts), parts)  # the identity as 0.2 recorded it
    old.append(Entry("before", "keep", commit=base[:7], sha=base, value=1.0, metric="score",
                     test="test_bench.py::test_train", branch="main", identity=identity.digest(parts),
                     extra={"goal": "min"}))
    project.train(0.9, "a gain after the upgrade")
    result = project.run(f"--autoresearch-ledger={old.path}", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"autoresearch: keep test_bench.py::test_train score=0.9 best=1@{base[:7]} *"])


def test_a_threshold_tightened_in_the_marker_is_accepted_and_the_bar_stays(project: Project) -> None:
    project.bench(threshold=2.0)
    base = project.train(1.0, "baseline")
    project.run().assert_outcomes(passed=1)
    project.bench(threshold=0.95)
    project.train(0.97, "better than the best, not within the new threshold")

    refused = project.run()
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines([f"autoresearch: FROZEN files changed since {base[:7]} *: test_bench.py*"])

    accepted = project.run("--autoresearch-accept-frozen", "-q")
    accepted.assert_outcomes(failed=1)
    accepted.stdout.fnmatch_lines([f"autoresearch: discard *score=0.97 best=1@{base[:7]} *threshold*"])
    assert "new leaderboard" not in accepted.stdout.str()
    runs = project.runs()
    assert [r.status for r in runs] == ["keep", "accepted", "discard"]
    assert runs[2].identity == runs[0].identity, "a threshold judges the value; it does not measure it"
