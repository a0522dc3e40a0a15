"""The three ways to mark a benchmark, marker validation, and the reports that carry verdicts."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import Project


def test_recorded_value(project: Project) -> None:
    project.pytester.makepyfile(test_sort="""
        import pytest

        @pytest.mark.autoresearch(metric="seconds", goal="min")
        def test_sort_speed(autoresearch):
            autoresearch.record(0.25, note="10k ints", memory_gb=0.1)
    """)
    project.commit("sort benchmark")
    project.run().assert_outcomes(passed=1)
    [run] = project.runs()
    assert (run.metric, run.value, run.memory_gb, run.extra["note"]) == ("seconds", 0.25, 0.1, "10k ints")


def test_metric_fixture(project: Project) -> None:
    project.pytester.makepyfile(test_acc="""
        import pytest

        @pytest.fixture
        def accuracy():
            return 0.91

        @pytest.mark.autoresearch(metric="accuracy", goal="max", threshold=0.9)
        def test_classifier(accuracy):
            pass
    """)
    project.commit("accuracy benchmark")
    result = project.run()
    result.assert_outcomes(passed=1)
    assert [(r.metric, r.value, r.status) for r in project.runs()] == [("accuracy", 0.91, "keep")]


@pytest.mark.parametrize("output", [
    "---\nscore: 1.25\nsteps: 10",
    "METRIC score=1.25",
    "some log\n1.25",
    'noise\n{"score": 1.25, "steps": 10}',
])
def test_script_output_formats(project: Project, output: str) -> None:
    project.bench()
    project.train(None, "format", body=f"print({output!r})\n")
    project.run().assert_outcomes(passed=1)
    assert [r.value for r in project.runs()] == [1.25]


def test_no_value_at_all_is_a_crash(project: Project) -> None:
    project.pytester.makepyfile(test_x="""
        import pytest

        @pytest.mark.autoresearch(metric="score")
        def test_forgot(autoresearch):
            pass
    """)
    project.commit("forgot to record")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CRASH*no value for score*autoresearch.record(value)*"])


@pytest.mark.parametrize(("marker", "message"), [
    ('"score", goal="lower"', '*goal must be "min" or "max", not *lower*'),
    ('"score", threshold="fast"', "*threshold must be a finite number, e.g. threshold=1.25*"),
    ("", '*a metric name is required, e.g. metric="val_bpb"*'),
    ('"score", treshold=1.0', "*unknown argument(s) treshold*write @pytest.mark.autoresearch(metric*"),
    ('"score", min_delta=-1', "*min_delta must be >= 0*"),
])
def test_bad_marker_is_a_collection_error(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.autoresearch({marker})
        def test_bench():
            pass
    """)
    result = pytester.runpytest()  # caught even without --autoresearch
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting*", message])


@pytest.mark.parametrize(("args", "message"), [
    (["--autoresearch-timeout", "soon"], "*--autoresearch-timeout*expected a positive number such as 600*soon*"),
    (["--autoresearch-repeat", "0"], "*--autoresearch-repeat*at least 1 run*"),
    (["--autoresearch-repeat", "auto:1"], "*--autoresearch-repeat*adaptive repeats need a maximum of 2 runs or more*"),
    (["--autoresearch-repeat", "often"], '*--autoresearch-repeat*"auto" / "auto:5"*often*'),
])
def test_bad_option_is_a_usage_error(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_value_names_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nautoresearch_timeout = ten minutes\n")
    result = pytester.runpytest("--autoresearch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini autoresearch_timeout: expected a positive number such as 600*ten minutes*"])


def test_quiet_mode_prints_one_verdict_line(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.2, "better")
    result = project.run("-q")
    result.stdout.fnmatch_lines(["autoresearch: keep test_bench.py::test_train score=1.2 best=1.5@* delta=-0.3 commit=*"])
    assert "best before" not in result.stdout.str()


def test_metrics_reach_junit_xml(project: Project) -> None:
    project.bench()
    project.train(1.5)
    project.run("--junitxml=report.xml").assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(project.path / "report.xml").iter("property")}
    assert props["score"] == "1.5"
    assert '"status": "keep"' in props["autoresearch"]


def test_xdist_workers_judge_and_record(project: Project) -> None:
    pytest.importorskip("xdist")
    project.pytester.makepyfile(test_many="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        @pytest.mark.autoresearch(metric="score")
        def test_bench(autoresearch, n):
            autoresearch.record(1.0 + n)
    """)
    project.commit("four benchmarks")
    result = project.run_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*autoresearch*", "*test_bench?0?*keep*"])
    assert sorted(r.value for r in project.runs() if r.status == "keep") == [1.0, 2.0, 3.0, 4.0]


def test_help_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "autoresearch: benchmarks judged against the branch's best:",
        "*--autoresearch *Run tests marked*",
        "*--autoresearch-ledger=PATH*",
        "*--autoresearch-accept-frozen*",
    ])
    for key in ("autoresearch_ledger", "autoresearch_timeout", "autoresearch_mutable",
                "autoresearch_min_delta", "autoresearch_progress"):
        result.stdout.fnmatch_lines([f"*{key} *"])


def test_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:autoresearch", "--help")
    assert "--autoresearch-ledger" not in result.stdout.str()


def test_import_does_not_pull_in_torch() -> None:
    code = "import sys, pytest_autoresearch.plugin; print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
