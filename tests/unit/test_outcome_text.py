"""The value and delta texts of the verdict lines: significant digits, spread, sigmas; where notes go."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pytest_autoresearch.outcome import Outcome, delta_text, failure_message, value_text, verdict_line

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


SAID = "train.py: training data seen 2 times in 5 s"


def test_the_target_note_joins_the_verdict_line_green_or_red() -> None:
    green = replace(BASE, target_note=SAID, note="first result for this test on this branch")
    assert verdict_line(green) == f"autoresearch: keep t m=1 | {SAID}"
    red = replace(BASE, status="discard", reason="not better", revert="git reset --hard abc", target_note=SAID)
    assert verdict_line(red) == f"autoresearch: discard t m=1 | not better | revert: git reset --hard abc | {SAID}"
    hinted = replace(red, hint="noise unknown")
    assert verdict_line(hinted).endswith(f" | {SAID} | noise unknown"), "the plugin's next step still ends the line"
    assert verdict_line(BASE) == "autoresearch: keep t m=1", "no note, no trailing separator"


def test_the_failure_message_says_both_notes_on_one_line() -> None:
    red = replace(BASE, status="discard", reason="not better", note="new leaderboard", target_note=SAID)
    assert f"  note:   new leaderboard; {SAID}" in failure_message(red).splitlines()
    alone = replace(red, note="")
    assert f"  note:   {SAID}" in failure_message(alone).splitlines()


def test_the_target_note_travels_as_json() -> None:
    said = replace(BASE, target_note=SAID)
    assert Outcome.from_json(said.to_json()) == said
    older = json.loads(BASE.to_json())
    del older["target_note"]  # written by a worker of an older version
    assert Outcome.from_json(json.dumps(older)).target_note == ""
