"""Correct first: which tests a keep needs, the order that runs them first, and what failed.

A faster change is worth keeping only when it is still right, so a benchmark is kept only in a
session whose every selected test passed: the exit code and the verdict always agree. Benchmarks
run after the other tests, and one whose required tests already failed is not run at all.
``autoresearch_requires`` (or a marker's ``requires=``) narrows the suite for projects with
unrelated failures: the tests outside it are deselected, never run and ignored.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
SHOWN = 5  # failed tests named in a reason; the ledger keeps up to KEPT
KEPT = 20


def matches(nodeid: str, pattern: str) -> bool:
    """Whether a test's node id is named by a ``requires`` pattern: a glob, or a node id prefix
    (a file, a class) without wildcards."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(nodeid, pattern)
    return nodeid == pattern or nodeid.startswith((pattern + "::", pattern.rstrip("/") + "/"))


def benchmarks_last(items: Sequence[T], is_benchmark: Callable[[T], bool]) -> list[T]:
    """The other tests first, then the benchmarks, each in their own order."""
    return [i for i in items if not is_benchmark(i)] + [i for i in items if is_benchmark(i)]


def required(nodeids: Iterable[str], patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """The node ids a keep needs and the ones outside ``patterns`` (every one is needed without any)."""
    needed: list[str] = []
    other: list[str] = []
    for nodeid in nodeids:
        (needed if not patterns or any(matches(nodeid, p) for p in patterns) else other).append(nodeid)
    return needed, other


def failed_text(failed: Sequence[str], what: str = "other test") -> str:
    """'2 other tests failed: a, b' (the first few named)."""
    names = ", ".join(failed[:SHOWN]) + (", ..." if len(failed) > SHOWN else "")
    return f"{len(failed)} {what}{'s' if len(failed) != 1 else ''} failed: {names}"


@dataclass
class Correctness:
    """What the session knows of its tests: the benchmarks, the required others, and the failures.

    Fed by the test reports of the process it lives in: on an xdist worker only that worker's,
    on the controller (and in a plain run) all of them.
    """

    benchmarks: frozenset[str] = frozenset()
    required: tuple[str, ...] = ()
    deselected: int = 0  # outside ``requires``: not run, not needed
    failed: dict[str, str] = field(default_factory=dict)  # node id -> the phase that failed
    reported: set[str] = field(default_factory=set)  # tests that ran to the end or failed on the way

    def record(self, nodeid: str, when: str, failed: bool) -> None:
        """One report: a failure in any phase (collection, setup, call, teardown) counts."""
        if failed and nodeid not in self.failed:
            self.failed[nodeid] = when
        if when == "teardown" or failed:
            self.reported.add(nodeid)

    def failures(self, besides: str = "") -> list[str]:
        """The failed tests other than ``besides``, in the order they failed."""
        return [nodeid for nodeid in self.failed if nodeid != besides]

    def header(self, unselected: int = 0) -> str:
        """The collection line: the order the plugin chose, what a keep needs, and what it does not check
        (``unselected``: tests that -k, -m, --lf ... left out)."""
        if not self.benchmarks or not (self.required or self.deselected or unselected):
            return ""
        b = len(self.benchmarks)
        line = f"autoresearch: {_count(b, 'benchmark')}"
        if self.required:
            line += f" run after the {_count(len(self.required), 'other selected test')}"
        line += "; a keep needs every test to pass (correct first)"
        if self.deselected:
            line += f"; {_count(self.deselected, 'test')} outside autoresearch_requires deselected"
        if unselected:
            line += f"; {unselected} not selected (-k, -m, --lf, ...) and not checked"
        return line


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"
