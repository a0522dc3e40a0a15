"""Correct first, the pure pieces: which tests a ``requires`` pattern names, the order, the texts."""

from __future__ import annotations

import pytest

from pytest_autoresearch.correctness import Correctness, benchmarks_last, failed_text, matches, required


@pytest.mark.parametrize(("nodeid", "pattern", "named"), [
    ("tests/test_recipes.py::FactorTests::test_basic", "tests/test_recipes.py", True),
    ("tests/test_recipes.py::FactorTests::test_basic", "tests/test_recipes.py::FactorTests", True),
    ("tests/test_recipes.py::FactorTests::test_basic", "tests/test_recipes.py::Factor", False),
    ("tests/test_recipes.py::FactorTests::test_basic", "tests", True),
    ("tests/test_recipes.py::FactorTests::test_basic", "tests/", True),
    ("tests2/test_x.py::test_y", "tests", False),
    ("tests/test_recipes.py::FactorTests::test_basic", "*::test_basic", True),
    ("tests/test_recipes.py::test_factor[3]", "tests/test_recipes.py::test_factor*", True),
    ("tests/test_more.py::test_factor", "tests/test_recipes.py::test_factor*", False),
])
def test_a_pattern_is_a_glob_or_a_node_id_prefix(nodeid: str, pattern: str, named: bool) -> None:
    assert matches(nodeid, pattern) is named


def test_without_patterns_every_test_is_required() -> None:
    assert required(["a.py::t", "b.py::u"], []) == (["a.py::t", "b.py::u"], [])
    assert required(["a.py::t", "b.py::u"], ["b.py"]) == (["b.py::u"], ["a.py::t"])


def test_benchmarks_go_last_each_group_in_its_order() -> None:
    items = ["bench1", "t1", "bench2", "t2"]
    assert benchmarks_last(items, lambda i: i.startswith("bench")) == ["t1", "t2", "bench1", "bench2"]


def test_a_failure_in_any_phase_counts_once_and_the_first_few_are_named() -> None:
    known = Correctness(benchmarks=frozenset({"b.py::bench"}), required=("a.py::t1", "a.py::t2"))
    known.record("a.py::t1", "setup", True)
    known.record("a.py::t1", "teardown", True)
    known.record("a.py::t2", "call", False)
    known.record("b.py::bench", "call", True)
    assert known.failures() == ["a.py::t1", "b.py::bench"]
    assert known.failures(besides="b.py::bench") == ["a.py::t1"]
    assert known.reported == {"a.py::t1", "b.py::bench"}, "a passed test counts as reported at its teardown"
    names = [f"t.py::t{i}" for i in range(7)]
    assert failed_text(names) == "7 other tests failed: t.py::t0, t.py::t1, t.py::t2, t.py::t3, t.py::t4, ..."
    assert failed_text(names[:1]) == "1 other test failed: t.py::t0"


def test_the_header_says_the_order_and_what_is_not_checked() -> None:
    assert Correctness().header() == "", "no benchmark: nothing to say"
    assert Correctness(benchmarks=frozenset({"b"})).header() == "", "a benchmark alone: nothing to say"
    known = Correctness(benchmarks=frozenset({"b"}), required=("t1", "t2"), deselected=3)
    assert known.header(unselected=4) == (
        "autoresearch: 1 benchmark run after the 2 other selected tests; a keep needs every test to pass "
        "(correct first); 3 tests outside autoresearch_requires deselected; 4 not selected (-k, -m, --lf, ...) "
        "and not checked")
