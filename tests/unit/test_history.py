"""The bar is the best kept result among proper ancestors; every draw of one commit counts in its mean."""

from __future__ import annotations

from pytest_autoresearch.history import best_before, kept_at, last_kept
from pytest_autoresearch.ledger import Entry

LINEAGE = ["c3", "c2", "c1", "c0"]  # HEAD first


def run(sha: str, value: float | None, status: str = "keep", measurement: str = "", test: str = "t") -> Entry:
    return Entry(run_id=f"{sha}-{value}-{measurement}", status=status, sha=sha, value=value,
                 measurement=measurement, test=test)


def test_best_among_proper_ancestors_only() -> None:
    runs = [run("c0", 1.5), run("c1", 1.2), run("c2", 1.3, "discard"), run("c3", 1.0), run("x9", 0.1)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.commit) == (1.2, "c1")


def test_goal_max_and_no_history() -> None:
    runs = [run("c0", 0.5), run("c1", 0.7)]
    best = best_before(runs, LINEAGE, "max")
    assert best is not None and best.value == 0.7
    assert best_before([], LINEAGE, "max") is None


def test_repeats_count_as_their_mean() -> None:
    runs = [run("c1", 1.0, measurement="m"), run("c1", 1.4, measurement="m"), run("c2", 1.25)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.commit) == (1.2, "c1")


def test_kept_at_and_last_kept() -> None:
    runs = [run("c1", 1.0), run("c2", None, "accepted"), run("c3", 2.0, "discard")]
    assert kept_at(runs, "c1") and not kept_at(runs, "c3")
    assert last_kept(runs, LINEAGE, ["t"]) == "c2"
    assert last_kept(runs, LINEAGE, ["other"]) is None


def test_separate_reruns_of_one_commit_pool_into_one_mean() -> None:
    runs = [run("c1", 1.0, measurement="a"), run("c1", 1.4, measurement="b"), run("c2", 1.25)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.commit, best.n) == (1.2, "c1", 2)


def test_a_kept_commit_pools_its_discarded_draws_too() -> None:
    runs = [run("c1", 1.0, "discard", "a"), run("c1", 1.2, "keep", "b"), run("c2", 1.15)]
    best = best_before(runs, LINEAGE, "min")
    assert best is not None and (best.value, best.n) == (1.1, 2)
