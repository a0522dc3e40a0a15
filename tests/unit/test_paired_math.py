"""The pure part of paired re-measurement: when to pair, the order of the pairs, the margin."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from pytest_autoresearch import paired
from pytest_autoresearch.ledger import Entry
from pytest_autoresearch.noise import Noise

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def bar_run(host: str = "here", device: str | None = None, age: timedelta = timedelta(minutes=5)) -> Entry:
    return Entry(run_id="r", status="keep", value=1.0, host=host, timestamp=(NOW - age).isoformat(),
                 extra={"device": device} if device else {})


def doubt(mode: str = "auto", gain: float = 0.0, se: float | None = 0.01, device: str | None = None,
          runs: tuple[Entry, ...] = (bar_run(),)) -> str:
    return paired.doubt(mode, gain=gain, margin=2 * se if se else 0.0, se=se, k=2.0, bar_runs=list(runs),
                        host="here", device=device, now=NOW)


@pytest.mark.parametrize(("text", "mode"), [("auto", "auto"), (" Always ", "always"), ("never", "never")])
def test_modes_parse(text: str, mode: str) -> None:
    assert paired.parse_mode(text, "ini autoresearch_paired") == mode


def test_a_bad_mode_names_where_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"ini autoresearch_paired: expected one of auto, always, never, got 'often'"):
        paired.parse_mode("often", "ini autoresearch_paired")


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"gain": 0.001}, "within the noise of the bar (+0.1σ of gain, 2.0σ needed)"),
    ({"gain": 0.03}, "within the noise of the bar (+3.0σ of gain, 2.0σ needed)"),  # a keep: confirmed beside the bar
    ({"gain": 0.0001}, "within the noise of the bar (+0.0σ of gain, 2.0σ needed)"),
    ({"gain": -0.001}, ""),  # no better than the bar: its own draws discard it
    ({"gain": 0.03, "se": None}, ""),  # no noise floor: doubt cannot be told from difference
    ({"mode": "always", "gain": -1.0}, "autoresearch_paired = always"),
    ({"mode": "never", "gain": 0.001}, ""),
    ({"gain": -1.0, "runs": (bar_run(host="gpu-box"),)}, "the bar was measured on another host (gpu-box)"),
    ({"gain": -1.0, "device": "1", "runs": (bar_run(device="0"),)}, "the bar was measured on another device than 1"),
    ({"gain": -1.0, "device": "0", "runs": (bar_run(device="0"),)}, ""),
    ({"gain": -1.0, "runs": (bar_run(age=timedelta(hours=3)),)}, "the bar's newest draw is 3.0 h old"),
    ({"gain": -1.0, "runs": (bar_run(age=timedelta(hours=3)), bar_run())}, ""),
])
def test_when_a_verdict_is_in_doubt(kwargs: dict[str, object], reason: str) -> None:
    assert doubt(**kwargs) == reason  # type: ignore[arg-type]


def test_pairs_follow_the_repeat_budget_with_three_at_least() -> None:
    assert [paired.pairs_for(n) for n in (1, 2, 3, 5)] == [3, 3, 3, 5]


@pytest.mark.parametrize("pairs", [2, 3, 4, 5])
def test_the_order_is_balanced_and_replayable(pairs: int) -> None:
    orders = {tuple(paired.order(pairs, "bar", "head", seed)) for seed in range(40)}
    for firsts in orders:
        assert len(firsts) == pairs and abs(2 * sum(firsts) - pairs) <= 1
    assert len(orders) > 1  # shuffled, not one fixed order
    assert paired.order(pairs, "bar", "head", 7) == paired.order(pairs, "bar", "head", 7)


def test_drift_cancels_in_the_paired_differences() -> None:
    drift = [0.1 * i for i in range(6)]  # the machine changes between every two draws
    pairs = paired.Pairs(bar=(1.0 + drift[0], 1.0 + drift[2], 1.0 + drift[4]),
                         candidate=(1.0 + drift[1], 1.0 + drift[3], 1.0 + drift[5]))
    assert pairs.differences == pytest.approx([0.1, 0.1, 0.1])
    judged = paired.judge(pairs, k=2.0, min_delta=0.0, floor=Noise(0.01, 20, 4))
    assert judged.delta == pytest.approx(0.1) and judged.n == 3 and judged.dof == 22
    assert judged.text() == f"paired: 3 pairs, delta +0.1 +/- {judged.se:.2g}"


def test_the_margin_is_the_t_quantile_of_the_pooled_standard_error() -> None:
    pairs = paired.Pairs(bar=(1.0, 1.0, 1.0), candidate=(0.99, 1.01, 1.0))
    alone = paired.judge(pairs, k=2.0, min_delta=0.0, floor=None)
    assert alone.dof == 2 and alone.se == pytest.approx(0.01 / 3**0.5)
    assert alone.margin == pytest.approx(paired.t_quantile(0.97725, 2) * alone.se, rel=1e-4)
    assert paired.judge(pairs, k=2.0, min_delta=0.5, floor=None).margin == 0.5  # a larger fixed min_delta holds


@pytest.mark.parametrize(("p", "dof", "quantile"), [(0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 5, 2.5706),
                                                    (0.975, 30, 2.0423), (0.95, 10, 1.8125)])
def test_t_quantiles_match_the_tables(p: float, dof: int, quantile: float) -> None:
    assert paired.t_quantile(p, dof) == pytest.approx(quantile, abs=2e-3)


def test_pure_noise_pairs_keep_at_the_nominal_rate() -> None:
    """5000 verdicts on three pairs of pure noise, sigma unknown: kept (gain beyond the margin)
    at one-sided P(Z > 2) = 2.3%, as min_delta = auto with a known sigma."""
    rng = random.Random(21)
    keeps = 0
    for _ in range(5000):
        pairs = paired.Pairs(tuple(rng.gauss(0, 1) for _ in range(3)), tuple(rng.gauss(0, 1) for _ in range(3)))
        judged = paired.judge(pairs, k=2.0, min_delta=0.0, floor=None)
        keeps += -judged.delta > judged.margin
    assert 0.015 < keeps / 5000 < 0.031


def test_one_pair_cannot_be_judged() -> None:
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired.judge(paired.Pairs((1.0,), (0.9,)), k=2.0, min_delta=0.0, floor=None)
