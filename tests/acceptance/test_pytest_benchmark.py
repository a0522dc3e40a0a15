"""An existing pytest-benchmark suite judged as it stands: no marker, one process per draw,
correct first, a suite verdict, and the settings under which nothing could be measured."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import Project, run_cli

pytest.importorskip("pytest_benchmark")

# The suite under test: three routines in lib.py (the mutable file), timed by pytest-benchmark,
# each answer checked after the timed call. Sleeps make "slow" and "fast" unmistakable on a busy box.
SUITE = """
import lib

def test_a(benchmark):
    assert benchmark.pedantic(lib.a, rounds=3) == 1

def test_b(benchmark):
    assert benchmark.pedantic(lib.b, rounds=3) == 2

def test_c(benchmark):
    assert benchmark(lib.c) == 3
"""
LIB = """
import os, time

def a():
    time.sleep({a})
    return {answer}

def b():
    time.sleep({b})
    return 2

def c():
    time.sleep({c})
    return 3
"""
INI = """
[pytest]
autoresearch_mutable = lib.py
addopts = --benchmark-max-time=0.02 --benchmark-min-rounds=3 --benchmark-warmup=off
"""
BENCH = ("--autoresearch-benchmark", "median")


def suite(project: Project, marker: str = "") -> None:
    project.pytester.makeini(INI)
    tests = SUITE if not marker else SUITE.replace("def test_b", f"{marker}\ndef test_b")
    project.pytester.makepyfile(test_speed=("import pytest\n" if marker else "") + tests)


def lib(project: Project, message: str, a: float = 0.01, b: float = 0.01, c: float = 0.001, answer: str = "1") -> str:
    write(project, LIB.format(a=a, b=b, c=c, answer=answer))
    return project.commit(message)


def write(project: Project, source: str) -> None:
    """A new lib.py; its old bytecode goes, as a rewrite of the same size in the same second looks unchanged."""
    (project.path / "lib.py").write_text(source)
    shutil.rmtree(project.path / "__pycache__", ignore_errors=True)


def rows(project: Project) -> list[tuple[str, str, str]]:
    return [(r.test.split("::")[1], r.metric, r.status) for r in project.runs()]


def test_every_benchmark_is_judged_without_a_marker(project: Project) -> None:
    suite(project)
    lib(project, "baseline")
    result = project.run(*BENCH, "-q")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["autoresearch: keep test_speed.py::test_a median=0.01*",
                                 "autoresearch: keep suite[[]3 benchmarks] commit=*"])
    assert sorted(rows(project)) == [("test_a", "median", "keep"), ("test_b", "median", "keep"),
                                     ("test_c", "median", "keep")]
    assert all(0.009 < (r.value or 0) < 0.5 for r in project.runs() if r.test.endswith(("test_a", "test_b")))


def test_a_suite_is_kept_when_its_geomean_improves(project: Project) -> None:
    suite(project)
    lib(project, "baseline")
    project.run(*BENCH).assert_outcomes(passed=3)
    lib(project, "a is ten times faster", a=0.001)
    result = project.run(*BENCH, "-q", "--autoresearch-json", "verdicts.json")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["autoresearch: keep suite[[]3 benchmarks] geomean=0.* commit=*"])
    kept = [r for r in project.runs() if r.status == "keep" and r.description == "a is ten times faster"]
    assert len(kept) == 3 and {r.extra["suite"] for r in kept} == {"keep of 3"}
    ratio = {r.test.split("::")[1]: r.extra["ratio"] for r in kept}
    assert ratio["test_a"] < 0.5, ratio
    report = json.loads((project.path / "verdicts.json").read_text())
    assert report["suite"]["status"] == "keep" and report["suite"]["benchmarks"] == 3
    assert report["suite"]["geomean"] < 0.9 and len(report["verdicts"]) == 3
    member = next(r for r in kept if r.test.endswith("test_a"))
    shown = run_cli(project.path, "show", member.run_id)
    assert "  suite     keep suite[3 benchmarks] geomean=0." in shown.stdout, shown.stdout
    logged = run_cli(project.path, "log", "-v")
    assert logged.stdout.count("suite: improved (this benchmark x") == 3, logged.stdout


def test_a_slower_suite_is_red_and_every_row_a_discard(project: Project) -> None:
    suite(project)
    lib(project, "baseline")
    project.run(*BENCH).assert_outcomes(passed=3)
    lib(project, "everything slower", a=0.03, b=0.03, c=0.005)
    result = project.run(*BENCH, "-q")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["autoresearch: discard suite[[]3 benchmarks] geomean=* commit=* | "
                                 "geomean not below 1 strictly | revert: git reset --hard *"])
    assert [s for _, _, s in rows(project)][-3:] == ["discard"] * 3


def test_a_protected_benchmark_may_not_regress_for_the_others(project: Project) -> None:
    suite(project, marker="@pytest.mark.autoresearch(protected=True)")
    lib(project, "baseline", a=0.04, b=0.004)
    project.run(*BENCH).assert_outcomes(passed=3)
    lib(project, "a far faster, b (protected) slower", a=0.001, b=0.015)
    result = project.run(*BENCH, "-q")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["autoresearch: discard suite[[]3 benchmarks] geomean=0.* | "
                                 "protected test_speed.py::test_b regressed: *"])


def test_fast_and_wrong_is_never_kept(project: Project) -> None:
    suite(project)
    lib(project, "baseline")
    project.run(*BENCH).assert_outcomes(passed=3)
    lib(project, "a is instant and wrong", a=0.0, answer="0")
    result = project.run(*BENCH, "-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "autoresearch: discard test_speed.py::test_a median=* | test failed: AssertionError*",
        "autoresearch: discard suite[[]3 benchmarks] commit=* | the suite is not green (test_speed.py::test_a)*",
    ])
    latest = [r for r in project.runs() if r.description == "a is instant and wrong"]
    assert {r.status for r in latest} == {"discard"}, "no row of a red suite is a keep"
    fast = next(r for r in latest if r.test.endswith("test_a"))
    assert fast.value is not None and fast.value < 0.005, "the fast wrong value is recorded, and not kept"


def test_each_repeat_is_a_fresh_pytest_process(project: Project) -> None:
    suite(project)
    lib(project, "baseline")
    result = project.run(*BENCH, "--autoresearch-repeat", "3", "-q")
    result.assert_outcomes(passed=3)
    runs = project.runs()
    assert len(runs) == 9 and {r.status for r in runs} == {"keep"}
    assert len({r.value for r in runs if r.test.endswith("test_a")}) == 3, "three draws, three measurements"
    logs = sorted((project.path / ".git" / "autoresearch" / "runs").glob("*.log"))
    assert len(logs) == 6, "two repeats of each of three benchmarks, each a pytest process with its log"
    assert all("1 passed" in log.read_text() for log in logs)


def test_a_repeat_that_fails_makes_the_suite_red(project: Project) -> None:
    suite(project)
    write(project, LIB.format(a=0.0, b=0.01, c=0.001, answer="1")
          .replace("return 1", "return 1 if 'AUTORESEARCH_BENCHMARK_DRAW' not in os.environ else 0"))
    project.commit("right in the first process, wrong in the repeats")
    result = project.run(*BENCH, "--autoresearch-repeat", "2", "-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["autoresearch: discard test_speed.py::test_a * | test failed in a fresh pytest "
                                 "process (draw 2): FAILED *test_a - assert 0 == 1*"])
    assert "keep" not in {r.status for r in project.runs()}


def test_the_ini_key_chooses_the_statistic(project: Project) -> None:
    suite(project)
    project.pytester.makeini(INI + "autoresearch_benchmark = min\n")
    lib(project, "baseline")
    project.run().assert_outcomes(passed=3)
    assert {m for _, m, _ in rows(project)} == {"min"}


def test_a_marked_benchmark_test_is_an_ordinary_test_without_autoresearch(project: Project) -> None:
    suite(project, marker="@pytest.mark.autoresearch(protected=True)")
    lib(project, "baseline")
    project.pytester.runpytest().assert_outcomes(passed=3)


@pytest.mark.parametrize(("args", "message"), [
    (("--benchmark-disable",), "*--benchmark-disable measures nothing: remove it*"),
    (("--benchmark-skip",), "*--benchmark-skip skips every benchmark: remove it*"),
    (("-n", "2"), "*pytest-benchmark turns itself off under xdist: run without -n*"),
    (("-p", "no:benchmark"), "*pytest-benchmark is not installed*pip install 'pytest-autoresearch[[]benchmark]'*"),
    (("--benchmark-min-rounds", "5"), "*write --benchmark-min-rounds and its value as one word*"),
    (("-p", "codspeed", "--codspeed"), "*pytest-codspeed is active*run without --codspeed*"),
])
def test_settings_that_measure_nothing_are_usage_errors(project: Project, args: tuple[str, ...], message: str) -> None:
    suite(project)
    # a stand-in registered under pytest-codspeed's plugin name, with its switch
    project.pytester.makepyfile(codspeed="def pytest_addoption(parser):\n    parser.addoption('--codspeed', action='store_true')\n")
    if "no:benchmark" in args:  # without pytest-benchmark its options in addopts would be unknown
        project.pytester.makeini("[pytest]\nautoresearch_mutable = lib.py\n")
    lib(project, "baseline")
    result = project.pytester.runpytest_subprocess("--autoresearch", *BENCH, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert project.runs() == [], "nothing ran"


def test_a_bad_statistic_names_the_choices(project: Project) -> None:
    suite(project)
    lib(project, "baseline")
    result = project.pytester.runpytest("--autoresearch", "--autoresearch-benchmark", "fastest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--autoresearch-benchmark: expected one of min, median, mean, got 'fastest'*"])


def test_a_marker_without_metric_needs_the_statistic(project: Project) -> None:
    suite(project, marker="@pytest.mark.autoresearch(protected=True)")
    lib(project, "baseline")
    result = project.pytester.runpytest_subprocess("--autoresearch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_b is a pytest-benchmark test marked without a metric: choose the "
                                 "statistic to judge with --autoresearch-benchmark median*"])
