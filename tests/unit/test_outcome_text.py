"""The value and delta texts of the verdict lines: significant digits, spread, sigmas."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pytest_autoresearch.outcome import Outcome, delta_text, value_text

BASE = Outcome(test="t", metric="m", goal="min", status="keep", value=1.0, reason="")


@pytest.mark.parametrize(("fields", "text"), [
    ({"value": 1.870974}, "1.87097"),
    ({"value": float("nan")}, "nan"),
    ({"value": None}, "-"),
    ({"value": 1.870974, "n": 5, "spread": 0.00745106}, "1.87097 ± 0.0075 (mean of 5)"),
    ({"value": 1.1, "n": 3, "spread": 0.1}, "1.1 ± 0.1 (mean of 3)"),
])
def test_value_text(fields: dict[str, Any], text: str) -> None:
    assert value_text(replace(BASE, **fields)) == text


@pytest.mark.parametrize(("fields", "text"), [
    ({"delta": None}, "-"),
    ({"delta": -0.0012}, "-0.0012"),
    ({"delta": -0.0012, "sigma": 0.000387}, "-0.0012 = -3.1σ"),
    ({"delta": 0.0017318, "sigma": 0.00816}, "+0.0017318 = +0.2σ"),
])
def test_delta_text(fields: dict[str, Any], text: str) -> None:
    assert delta_text(replace(BASE, **fields)) == text
