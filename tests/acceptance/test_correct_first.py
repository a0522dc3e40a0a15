"""Correct first: a keep needs every selected test to pass, and a wrong change costs no benchmark run.

The project is the README's non-ML recipe: ``fastmath.py`` is the one mutable file, a benchmark
records how long ``factor`` takes, and ordinary tests check that it is right.
"""

from __future__ import annotations

import json

import pytest

from conftest import Project, run_cli

SLOW = """
def factor(n):
    out, d = [], 2
    while d * d <= n:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    return out + [n] if n > 1 else out
"""

# faster and wrong: stops looking early, so large prime factors come out as one composite
WRONG = SLOW.replace("while d * d <= n:", "while d * d <= n and d < 50:")

PERF = """
import time
import pytest
from fastmath import factor

@pytest.mark.autoresearch(metric="seconds", goal="min"{extra})
def test_speed(autoresearch):
    start = time.perf_counter()
    for n in range(10**6, 10**6 + {count}):
        factor(n)
    autoresearch.record(time.perf_counter() - start)
"""

CORRECT = """
from fastmath import factor

def test_small():
    assert factor(12) == [2, 2, 3]

def test_primes():
    assert factor(999953 * 999983) == [999953, 999983]
"""


def setup(project: Project, count: int = 2000, extra: str = "") -> None:
    project.pytester.makeini("[pytest]\nautoresearch_mutable = fastmath.py\n")
    # test_a_... sorts before test_correct.py: the plugin, not the file names, puts the benchmark last
    project.pytester.makepyfile(test_a_perf=PERF.format(count=count, extra=extra), test_correct=CORRECT)


def fastmath(project: Project, source: str, message: str) -> str:
    (project.path / "fastmath.py").write_text(source)
    return project.commit(message)


def test_a_faster_wrong_change_is_not_kept_and_not_run(project: Project) -> None:
    setup(project)
    fastmath(project, SLOW, "baseline")
    first = project.run("-v")
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines([
        "autoresearch: 1 benchmark run after the 2 other selected tests; a keep needs every test to pass*",
        "test_correct.py::test_small PASSED*",
        "test_correct.py::test_primes PASSED*",
        "test_a_perf.py::test_speed PASSED*",
    ])
    fastmath(project, WRONG, "stop trial division at 50")
    result = project.run("-q")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "autoresearch: discard test_a_perf.py::test_speed seconds=-*"
        " | not run: 1 other test failed: test_correct.py::test_primes | revert: git reset --hard *",
    ])
    row = project.runs()[-1]
    assert row.status == "discard" and row.value is None, "the expensive run was never made"
    assert row.extra["failed"] == ["test_correct.py::test_primes"]
    assert "keep" not in result.stdout.str()
    assert len([line for line in result.outlines if line.startswith("autoresearch: ")]) == 1, \
        "with -q the verdict is the only line an agent's grep finds"
    status = run_cli(project.path, "status").stdout
    assert "  ideas: keep 1, discard 1, crash 0, timeout 0 (wrong 1: tests failed);" in status, status


def test_failures_after_a_keep_turn_it_into_a_discard(project: Project) -> None:
    """Whatever fails after the benchmark was judged (another benchmark, a teardown) still decides:
    no keep is recorded or printed in a session that exits non-zero."""
    setup(project)
    (project.path / "test_z_late.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.autoresearch(metric='seconds')\n"
        "def test_late(autoresearch):\n"
        "    raise RuntimeError('the second benchmark breaks')\n"
    )
    fastmath(project, SLOW, "baseline")
    result = project.run("-q", "--autoresearch-json", "verdicts.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "autoresearch: discard test_a_perf.py::test_speed seconds=*"
        " | 1 other test failed: test_z_late.py::test_late*",
    ])
    speed = [r for r in project.runs() if r.test == "test_a_perf.py::test_speed"]
    assert [r.status for r in speed] == ["discard"], "the keep was recorded again as a discard"
    assert speed[0].extra["was"] == "keep" and speed[0].extra["failed"] == ["test_z_late.py::test_late"]
    payload = json.loads((project.path / "verdicts.json").read_text())
    assert payload["session"] == {"exitstatus": 1, "failed": ["test_z_late.py::test_late"]}
    assert [v["status"] for v in payload["verdicts"]] == ["discard", "crash"]
    assert payload["verdicts"][0]["revert"] is None, "the first commit has nothing to go back to"


def test_a_wrong_answer_inside_the_benchmark_is_a_discard_with_its_whole_message(project: Project) -> None:
    project.pytester.makeini("[pytest]\nautoresearch_mutable = fastmath.py\n")
    project.pytester.makepyfile(test_perf="""
        import pytest
        from fastmath import factor

        @pytest.mark.autoresearch(metric="seconds")
        def test_speed(autoresearch):
            autoresearch.record(0.5)
            assert factor(999953 * 999983) == [999953, 999983], "big primes\\nare lost"
    """)
    fastmath(project, WRONG, "wrong from the start")
    result = project.run("-q")
    result.assert_outcomes(failed=1)
    row = project.runs()[-1]
    assert row.status == "discard" and row.value == 0.5, "measured, then wrong: not a crash"
    assert row.extra["failed"] == ["test_perf.py::test_speed"]
    assert "big primes are lost" in row.extra["reason"] and "999936000799" in row.extra["reason"]


def test_requires_narrows_the_suite_and_deselects_the_rest(project: Project) -> None:
    setup(project)
    project.pytester.makeini("[pytest]\nautoresearch_mutable = fastmath.py\n"
                             "autoresearch_requires = test_correct.py::test_small\n")
    project.pytester.makepyfile(test_unrelated="def test_flaky():\n    assert False, 'unrelated'\n")
    fastmath(project, SLOW, "baseline")
    result = project.run()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["autoresearch: 1 benchmark run after the 1 other selected test;*"
                                 "2 tests outside autoresearch_requires deselected"])
    assert project.statuses() == ["keep"]


def test_a_markers_requires_joins_the_ini_and_a_k_selection_is_said(project: Project) -> None:
    setup(project, extra=", requires=['test_correct.py::test_primes']")
    fastmath(project, SLOW, "baseline")
    result = project.run("-k", "speed or primes or small")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["autoresearch: 1 benchmark run after the 1 other selected test;*"
                                 "1 test outside autoresearch_requires deselected"])
    narrowed = project.run("-k", "speed")
    narrowed.assert_outcomes(passed=1, deselected=2)
    narrowed.stdout.fnmatch_lines(["*2 not selected (-k, -m, --lf, ...) and not checked"])


def test_exitfirst_records_the_benchmark_it_never_reached(project: Project) -> None:
    setup(project)
    fastmath(project, SLOW, "baseline")
    project.run().assert_outcomes(passed=3)
    fastmath(project, WRONG, "stop trial division at 50")
    result = project.run("-x", "-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["autoresearch: discard test_a_perf.py::test_speed seconds=-*"
                                 " | not run: 1 other test failed: test_correct.py::test_primes | revert: *"])
    assert project.statuses() == ["keep", "discard"]


@pytest.mark.parametrize("requires", ["'test_correct.py'", "[3]", "['']"])
def test_a_bad_requires_is_a_collection_error(project: Project, requires: str) -> None:
    setup(project, extra=f", requires={requires}")
    fastmath(project, SLOW, "baseline")
    result = project.run()
    result.stdout.fnmatch_lines(["*marker on test_speed: requires must be a list of test ids or globs*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert project.statuses() == []


def test_with_xdist_the_verdict_waits_for_every_worker(project: Project) -> None:
    pytest.importorskip("xdist")
    setup(project)
    fastmath(project, SLOW, "baseline")
    project.run_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=3)
    fastmath(project, WRONG, "stop trial division at 50")
    result = project.run_subprocess("-n", "2", "-p", "xdist", "-q")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["autoresearch: discard test_a_perf.py::test_speed * | revert: *"])
    latest = project.runs()[-1]
    assert latest.status == "discard" and latest.extra["failed"] == ["test_correct.py::test_primes"]
