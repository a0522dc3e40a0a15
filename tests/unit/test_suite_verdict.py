"""The suite verdict: geomean of ratios against each bar, beyond noise, protected members, thresholds."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pytest_autoresearch.fresh_draw import forwarded, split_options
from pytest_autoresearch.suite import NOT_PAIRED, REMEASURED, Member, Summary, SuiteVerdict, judge, line, unpaired


def members(*pairs: tuple[float, float | None], sigma: float | None = None) -> list[Member]:
    return [Member(f"t{i}", value, bar, sigma) for i, (value, bar) in enumerate(pairs)]


@pytest.mark.parametrize(("pairs", "keep", "geomean"), [
    ([(0.5, 1.0), (2.0, 1.0)], False, 1.0),  # a 2x gain and a 2x loss cancel
    ([(0.9, 1.0), (0.9, 1.0), (1.0, 1.0)], True, 0.9 ** (2 / 3)),
    ([(1.1, 1.0), (1.0, 1.0)], False, math.sqrt(1.1)),
    ([(0.000009, 0.00001), (1.0, 1.0)], True, math.sqrt(0.9)),  # microseconds weigh as much as seconds
])
def test_geomean_strictly_without_noise(pairs: list[tuple[float, float]], keep: bool, geomean: float) -> None:
    verdict = judge(members(*pairs), k=2, beyond_noise=True)
    assert verdict.keep is keep
    assert verdict.geomean == pytest.approx(geomean)
    assert verdict.sigma is None


def test_beyond_noise_needs_k_standard_errors() -> None:
    # each ratio's standard error 0.02; the geomean's log has 0.02/sqrt(2); k=2 needs ~ -0.028
    small = judge(members((0.98, 1.0), (0.98, 1.0), sigma=0.02), k=2, beyond_noise=True)
    assert not small.keep and "by more than 2 standard errors" in small.reason
    assert small.sigma == pytest.approx(0.02 / math.sqrt(2))
    assert judge(members((0.95, 1.0), (0.96, 1.0), sigma=0.02), k=2, beyond_noise=True).keep
    assert judge(members((0.98, 1.0), (0.98, 1.0), sigma=0.02), k=2, beyond_noise=False).keep


def test_a_protected_member_may_not_regress_beyond_its_own_noise() -> None:
    others = [Member("fast", 0.5, 1.0, 0.01)]
    within = judge([*others, Member("p", 1.015, 1.0, 0.01, protected=True)], k=2, beyond_noise=True)
    assert within.keep
    beyond = judge([*others, Member("p", 1.03, 1.0, 0.01, protected=True)], k=2, beyond_noise=True)
    assert not beyond.keep and beyond.reason.startswith("protected p regressed")
    unknown = judge([Member("fast", 0.5, 1.0), Member("p", 1.001, 1.0, protected=True)], k=2, beyond_noise=True)
    assert not unknown.keep and "judged strictly" in unknown.reason


def test_thresholds_first_results_and_re_measurements() -> None:
    assert not judge([Member("t", 0.5, 1.0, threshold=0.4)], k=2, beyond_noise=True).keep
    first = judge(members((1.0, None), (2.0, None)), k=2, beyond_noise=True)
    assert first.keep and first.geomean is None and first.reason.startswith("first result")
    again = judge([Member("t", 1.01, 1.0, already_kept=True)], k=2, beyond_noise=True)
    assert again.keep and again.reason == "re-measurement of a kept commit"
    assert not judge([Member("t", float("nan"), 1.0)], k=2, beyond_noise=True).keep
    assert not judge([], k=2, beyond_noise=True).keep


def test_the_line_an_agent_greps() -> None:
    verdict = SuiteVerdict(True, "improved", geomean=0.931, sigma=0.025, compared=12)
    assert line(verdict, 12, "abc1234") == "autoresearch: keep suite[12 benchmarks] geomean=0.931 (-2.9σ) commit=abc1234"
    red = SuiteVerdict(False, "geomean not below 1 strictly", geomean=1.01)
    assert line(red, 1, "", ["revert: git reset --hard abc"]) == (
        "autoresearch: discard suite[1 benchmark] geomean=1.010 | geomean not below 1 strictly | revert: git reset --hard abc")


def test_calibration_options_reach_the_repeats_and_saving_options_do_not() -> None:
    args = ["--autoresearch", "--benchmark-min-rounds=9", "--benchmark-timer=time.process_time",
            "--benchmark-autosave", "--benchmark-json", "out.json", "--benchmark-disable-gc", "tests/"]
    assert forwarded(args) == ["--benchmark-min-rounds=9", "--benchmark-timer=time.process_time",
                               "--benchmark-disable-gc"]
    assert split_options(args) == []
    assert split_options(["--benchmark-min-rounds", "9", "--benchmark-disable-gc"]) == ["--benchmark-min-rounds"]


def test_the_suite_says_it_was_not_paired_where_a_single_verdict_would_have_been() -> None:
    kept = SuiteVerdict(True, "improved", geomean=0.9, sigma=0.02, compared=3)
    close = SuiteVerdict(False, "geomean not below 1 by more than 2 standard errors", geomean=0.98, sigma=0.02, compared=3)
    far = SuiteVerdict(False, "geomean not below 1 strictly", geomean=1.2, sigma=0.02, compared=3)
    assert unpaired(kept, "auto", 2, beyond_noise=True) == NOT_PAIRED
    assert unpaired(close, "auto", 2, beyond_noise=True) == NOT_PAIRED  # it came within the margin
    assert unpaired(far, "auto", 2, beyond_noise=True) == ""
    assert unpaired(far, "always", 2, beyond_noise=True) == NOT_PAIRED
    assert unpaired(kept, "never", 2, beyond_noise=True) == ""
    assert unpaired(SuiteVerdict(True, "first result: no earlier kept result to beat"), "always", 2, True) == ""
    assert unpaired(SuiteVerdict(True, REMEASURED, geomean=1.0, sigma=0.02, compared=3), "always", 2, True) == ""
    line_ = Summary("id", "keep", "median", 3, "abc1234", replace(kept, unpaired=NOT_PAIRED), ()).line()
    assert line_.startswith("autoresearch: keep suite[3 benchmarks] geomean=0.900 (-5.3σ) commit=abc1234 | not paired: ")
