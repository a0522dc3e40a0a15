"""The arithmetic of an A/A calibration's report: slopes, order effect, no-change keeps."""

from __future__ import annotations

import dataclasses
import math
import statistics
from random import Random

import pytest

from pytest_autoresearch import calibration
from pytest_autoresearch.calibration import Rule, keeps, report, slope
from pytest_autoresearch.covariate import COVARIATE, KEY
from pytest_autoresearch.ledger import Entry
from pytest_autoresearch.noise import Noise

STRICT_UNPAIRED = Rule(0.0, 2.0, "never", 3)
DEFAULTS = Rule("auto", 2.0, "auto", 3)


@pytest.mark.parametrize(("values", "expected"), [
    ([1.0, 2.0, 3.0, 4.0], 1.0),
    ([5.0, 5.0, 5.0], 0.0),
    ([3.0, 1.0, 3.0, 1.0], -0.4),
])
def test_slope_is_the_least_squares_trend_per_draw(values: list[float], expected: float) -> None:
    assert slope(values).value == pytest.approx(expected)


def test_slope_of_a_straight_line_has_no_error_and_of_two_points_no_estimate() -> None:
    assert slope([1.0, 2.0, 3.0]).se == pytest.approx(0.0)
    assert math.isinf(slope([1.0, 2.0]).se)


def test_strict_unpaired_keeps_every_candidate_below_the_bar() -> None:
    a, b = [1.0, 1.02, 0.98, 1.0], [0.99, 1.01, 0.97, 1.03]  # bar 1.0: 0.99 and 0.97 beat it
    assert keeps(a, b, "min", STRICT_UNPAIRED, Noise(0.02, 7, 1)) == (2, 2)
    assert keeps(a, b, "max", STRICT_UNPAIRED, Noise(0.02, 7, 1)) == (2, 2)  # 1.01 and 1.03


def test_the_defaults_keep_pure_noise_rarely() -> None:
    rng = Random(7)
    kept = 0
    for _ in range(40):
        a, b = [rng.gauss(1, 0.01) for _ in range(8)], [rng.gauss(1, 0.01) for _ in range(8)]
        kept += keeps(a, b, "min", DEFAULTS, Noise(statistics.stdev(a + b), 15, 1))[0]
    assert kept <= 0.05 * 40 * 8  # P(Z > 2) = 2.3% per verdict


def test_a_real_gain_is_kept_by_the_defaults() -> None:
    rng = Random(3)
    a, b = [rng.gauss(1, 0.01) for _ in range(8)], [rng.gauss(0.95, 0.01) for _ in range(8)]
    assert keeps(a, b, "min", DEFAULTS, Noise(0.01, 15, 1))[0] == 8


def rows(values: list[tuple[str, float]], rule: dict[str, object] | None = None) -> list[Entry]:
    """Draws in the order they ran: pair i is draws 2i and 2i + 1, sides as given."""
    return [Entry(run_id=f"r{i}", status="keep", value=v, commit="abc1234", sha="abc1234" * 5, test="t", metric="m",
                  host="box", extra={calibration.KEY: "c1", "pair": i // 2, "side": side, "first": i % 2 == 0,
                                     "draw": i, "goal": "min", "calibrated": "the best commit",
                                     "rule": rule or {"min_delta": "auto", "noise_k": 2.0, "paired": "auto", "pairs": 3}})
            for i, (side, v) in enumerate(values)]


def test_the_order_effect_is_second_minus_first_whatever_the_sides() -> None:
    # the first of each pair 0.03 slower, sides alternating who goes first
    drawn = [("a", 1.03), ("b", 1.0), ("b", 1.04), ("a", 1.01), ("a", 1.02), ("b", 0.99), ("b", 1.03), ("a", 1.0)]
    got = report(rows(drawn))
    assert got.order.value == pytest.approx(-0.03) and got.order.z < -3
    assert got.pairs == 4 and got.sigma == pytest.approx(statistics.stdev(v for _, v in drawn))
    assert got.sigma_pair == pytest.approx(statistics.stdev([1.0 - 1.03, 1.04 - 1.01, 0.99 - 1.02, 1.03 - 1.0]))
    assert got.which == "the best commit" and got.rule == Rule("auto", 2.0, "auto", 3)


def test_a_crashed_draw_leaves_its_pair_out_and_is_counted() -> None:
    drawn = rows([("a", 1.0), ("b", 1.01), ("a", 0.99), ("b", 1.0), ("a", 1.02), ("b", 1.0)])
    drawn[-1].status, drawn[-1].value = "crash", None
    got = report(drawn)
    assert got.pairs == 2 and got.crashed == 1


def test_fewer_than_two_pairs_make_no_report() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        report(rows([("a", 1.0), ("b", 1.01)]))


def test_the_report_says_what_the_load_adjustment_of_its_draws_would_do() -> None:
    speeds = [3.0, 1.5, 2.5, 1.0, 2.0, 3.0, 1.2, 2.8]  # the reference workload's GB/s around each draw
    noise = [0.003, -0.002, 0.001, 0.0, -0.003, 0.002, 0.001, -0.001]
    drawn = rows([("a" if i % 2 == 0 else "b", 2.0 - 0.1 * s + e) for i, (s, e) in enumerate(zip(speeds, noise))])
    loaded = [dataclasses.replace(r, extra={**r.extra, KEY: {COVARIATE: s}}) for r, s in zip(drawn, speeds)]
    got = report(loaded)
    assert got.loaded == 8 and got.adjustment is not None and got.adjustment.theta == pytest.approx(-0.1, abs=0.01)
    assert got.lines()[-1].startswith(f"  load-adjusted:     sigma {got.adjustment.sigma:.4g} "
                                      f"(theta {got.adjustment.theta:+.4g} per unit of the reference reading")
    assert got.adjustment.sigma < got.sigma / 10
    unloaded = report(drawn)
    assert unloaded.adjustment is None and "not used (0 draws with a load reading" in unloaded.lines()[-1]
