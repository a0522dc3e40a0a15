"""Every report tells a pytest-benchmark suite's verdicts: a first result, a kept speedup, a protected
member that regressed, a failed member; then ``status``, ``log``, ``show`` and the plot are each held
to the suite verdicts the plugin gave (its ``-q`` line and its ``--autoresearch-json``)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli

from conftest import Project
from pytest_autoresearch import history
from pytest_autoresearch.suite import NOT_PAIRED

pytest.importorskip("pytest_benchmark")

from tests.acceptance.test_pytest_benchmark import BENCH, lib, suite  # noqa: E402


def judged(project: Project, message: str, **speeds: float | str) -> tuple[str, dict[str, object]]:
    """One session of the suite at a new commit: the suite's ``-q`` line and its JSON object."""
    lib(project, message, **speeds)  # type: ignore[arg-type]
    result = project.run(*BENCH, "-q", "--autoresearch-json", "verdicts.json")
    [line] = [x for x in result.outlines if x.startswith("autoresearch: ") and " suite[" in x]
    return line, json.loads((project.path / "verdicts.json").read_text())["suite"]


def test_every_report_tells_the_suite_verdicts(project: Project) -> None:
    # test_b is protected, with a tolerance of its own that a busy machine's noise stays within
    suite(project, marker="@pytest.mark.autoresearch(protected=True, min_delta=0.005)")
    with (project.path / ".gitignore").open("a") as ignore:
        ignore.write("verdicts.json\n")
    said = [judged(project, "baseline", a=0.04, b=0.004),
            judged(project, "a far faster", a=0.002, b=0.004),
            judged(project, "a faster still, b (protected) slower", a=0.001, b=0.03),
            judged(project, "a wrong", a=0.001, b=0.004, answer="0")]
    assert [s["status"] for _, s in said] == ["keep", "keep", "discard", "discard"]
    assert said[0][1]["geomean"] is None and said[0][1]["reason"].startswith("first result")
    assert said[1][1]["geomean"] < 0.9 and said[1][1]["paired"] == NOT_PAIRED  # a keep beside no re-run bar
    assert f"| {NOT_PAIRED}" in said[1][0]
    assert said[2][1]["regressed"] == "test_speed.py::test_b" and said[2][1]["reason"].startswith("protected")
    assert said[3][1]["reason"].startswith("the suite is not green (test_speed.py::test_a)")
    assert len(said[3][1]["members"]) == 2  # the failed member has its own verdict; the suite still counts 3

    # the ledger: every member row names its suite verdict; history reads back exactly what was said
    runs = project.runs()
    found = history.suites(runs)
    assert [s.summary.id for s in found] == [s["id"] for _, s in said]
    for (line, plugin), recorded in zip(said, found):
        summary = recorded.summary.to_json()
        assert {k: v for k, v in summary.items() if k != "ratios"} == {k: v for k, v in plugin.items() if k != "ratios"}
        assert summary["ratios"] == {k: None if v is None else pytest.approx(v, rel=1e-5)  # rounded in the rows
                                     for k, v in plugin["ratios"].items()}
        assert line.startswith(summary["line"]), (line, summary["line"])  # the -q line, its revert after it

    # status --json and the status text: the same verdicts, newest last
    status = json.loads(run_cli(project.path, "status", "--json").stdout)
    assert [s["id"] for s in status["suites"]] == [s["id"] for _, s in said]
    assert [s["line"] for s in status["suites"]] == [s.summary.line() for s in found]
    assert status["suites"][2]["description"] == "a faster still, b (protected) slower"
    text = run_cli(project.path, "status").stdout
    assert "suite of 3 benchmarks (median, pytest-benchmark): 4 verdicts, 2 kept" in text, text
    assert f"  last verdict: {said[3][0].removeprefix('autoresearch: ').split(' | revert')[0]}" in text, text
    assert "  its members: test_b x" in text

    # log: each verdict under the last of its rows; --json: each member row carries its suite
    log = run_cli(project.path, "log").stdout.splitlines()
    verdicts = [line for line in log if line.startswith("  └ suite: ")]
    assert verdicts == [f"  └ suite: {s['line'].removeprefix('autoresearch: ')}" for s in status["suites"]]
    last_rows = {s.rows[-1].run_id[:12] for s in found}
    assert all(any(run in log[i - 1] for run in last_rows) for i, line in enumerate(log) if line in verdicts)
    logged = json.loads(run_cli(project.path, "log", "--json").stdout)
    members = [r for r in logged if "suite" in r]
    assert len(members) == sum(len(s.rows) for s in found) == len([r for r in runs if "suite_id" in r.extra])
    assert all(r["suite"]["id"] == r["extra"]["suite_id"] for r in members)

    # show: the member's suite verdict, its own ratio, the protected member that regressed
    regressed = found[2]
    member = next(r for r in regressed.rows if r.test.endswith("test_a"))
    shown = json.loads(run_cli(project.path, "show", member.run_id, "--json").stdout)
    assert shown["suite"]["id"] == said[2][1]["id"] and shown["suite"]["regressed"] == "test_speed.py::test_b"
    shown_text = run_cli(project.path, "show", member.run_id).stdout
    assert f"  suite     {regressed.summary.line().removeprefix('autoresearch: ')}; this benchmark x" in shown_text
    assert "test_b x" in shown_text and "(protected: regressed)" in shown_text, shown_text


def test_the_plot_draws_the_suite_verdicts(project: Project) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PathCollection

    from pytest_autoresearch.cli.plot import figure

    suite(project)
    for message, a in (("baseline", 0.01), ("a faster", 0.002), ("a slower", 0.03)):
        lib(project, message, a=a)
        project.run(*BENCH)
    found = history.suites(project.runs())
    fig = figure([], 800, 600, 100, found)
    [ax] = fig.axes
    assert ax.get_title().startswith("autoresearch: suite[3 benchmarks] median, geomean")
    assert "3 verdicts, 2 kept" in ax.get_title()
    geomeans = sorted(float(y) for c in ax.collections if isinstance(c, PathCollection) for _, y in c.get_offsets())
    assert geomeans == pytest.approx(sorted(s.summary.verdict.geomean for s in found[1:]))
    out = run_cli(project.path, "plot", "-o", "chart.png")
    assert out.returncode == 0 and (project.path / "chart.png").is_file(), out.stderr
