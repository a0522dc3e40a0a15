"""The noise arithmetic: pooled sigma, the auto bar, the decision at its edges, the false keep rate."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest

from pytest_autoresearch.noise import CALIBRATE, Noise, pooled, required_delta, spread
from pytest_autoresearch.verdict import Best, judge


def test_pooled_sigma_weights_groups_by_degrees_of_freedom() -> None:
    a, b = [1.0, 2.0, 3.0], [10.0, 14.0]  # variances 1 (2 dof) and 8 (1 dof)
    noise = pooled([a, b, [5.0]])  # a single run carries no information about noise
    assert noise is not None
    assert noise.dof == 3 and noise.groups == 2
    assert noise.sigma == pytest.approx(math.sqrt((1 * 2 + 8 * 1) / 3))


def test_no_repeats_no_noise_floor() -> None:
    assert pooled([[1.0], [2.0], []]) is None


def test_required_delta_is_k_standard_errors_of_the_difference() -> None:
    noise = Noise(sigma=0.01, dof=10, groups=2)
    assert noise.of_difference(1, 1) == pytest.approx(0.01 * math.sqrt(2))
    assert required_delta(noise, 4, 4, k=2) == pytest.approx(2 * 0.01 * math.sqrt(0.5))
    assert required_delta(noise, 1, 5, k=3) == pytest.approx(3 * 0.01 * math.sqrt(1.2))


def test_spread_of_one_measurement() -> None:
    assert spread([1.0]) is None
    assert spread([1.0, 3.0]) == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize(("value", "keep"), [(0.9799, True), (0.9801, False), (0.99, False)])
def test_decision_at_the_edge_of_the_auto_bar(value: float, keep: bool) -> None:
    """Bar 1.0 and sigma such that the required improvement is 0.02: more is kept, less is not."""
    noise = Noise(sigma=0.01 / math.sqrt(2), dof=10, groups=1)
    min_delta = required_delta(noise, 1, 1, k=2)
    assert min_delta == pytest.approx(0.02)
    assert judge(value, goal="min", best=Best(1.0, "abc1234"), min_delta=min_delta).keep is keep


def test_improvement_exactly_equal_to_min_delta_is_not_kept() -> None:
    assert not judge(1.5, goal="max", best=Best(1.0, "abc1234"), min_delta=0.5).keep


def test_pure_noise_is_kept_at_the_expected_rate() -> None:
    """Known sigma, bar = mean of 10 runs, one new run of the same distribution, k = 2.

    A false keep needs the new run to beat the bar by 2 standard errors: P(Z > 2) = 2.28%.
    Over 20,000 seeded trials the rate must be within 0.4 points of that (about 3.8 binomial
    standard deviations), and far below the 50% that a plain comparison keeps.
    """
    rng = random.Random(1234)
    sigma, trials, kept, plain = 0.01, 20_000, 0, 0
    noise = Noise(sigma, dof=1000, groups=100)
    for _ in range(trials):
        bar = statistics.fmean(rng.gauss(1.0, sigma) for _ in range(10))
        new = rng.gauss(1.0, sigma)
        best = Best(bar, "c", n=10)
        kept += judge(new, goal="min", best=best, min_delta=required_delta(noise, 1, 10, 2.0)).keep
        plain += judge(new, goal="min", best=best).keep
    assert abs(kept / trials - 0.0228) < 0.004
    assert 0.48 < plain / trials < 0.52


def test_every_noise_hint_names_the_one_command() -> None:
    """The -q line, status, the README and program.md tell the agent one way to measure the floor."""
    root = Path(__file__).resolve().parents[2]
    readme, program = (root / "README.md").read_text(), (root / "program.md").read_text()
    for text in (readme, program):
        assert f"noise unknown on this host: {CALIBRATE}" in text
    assert f"no commit measured twice here ({CALIBRATE})" in readme
    assert f"{CALIBRATE} 8        # the best commit against itself" in readme
    for source in [readme, program, *(p.read_text() for p in (root / "pytest_autoresearch").rglob("*.py"))]:
        assert "--autoresearch-repeat 5" not in source
