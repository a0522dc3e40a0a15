"""Every output format in use today is understood; progress lines with carriage returns too; NOTE: lines."""

from __future__ import annotations

import math

import pytest

from pytest_autoresearch.experiment import MAX_NOTES, NOTE_CHARS, parse_metrics, parse_notes

KARPATHY = """step 00953 (100.0%) | loss: 3.1 | dt: 300ms\r
---
val_bpb:          0.997900
training_seconds: 300.1
peak_vram_mb:     45060.2
num_steps:        953
depth:            8
"""


def test_karpathy_summary_block() -> None:
    metrics = parse_metrics(KARPATHY, "val_bpb")
    assert metrics == {"val_bpb": 0.9979, "training_seconds": 300.1, "peak_vram_mb": 45060.2,
                       "num_steps": 953.0, "depth": 8.0}


def test_only_the_last_block_counts() -> None:
    text = "---\nval_bpb: 9.9\nmore logging\n---\nval_bpb: 1.1\n"
    assert parse_metrics(text, "val_bpb")["val_bpb"] == 1.1


def test_key_value_lines_before_a_block_do_not_count() -> None:
    assert parse_metrics("loss: 3.2\nlr: 0.01\n", "loss") == {}


@pytest.mark.parametrize(("text", "expected"), [
    ("METRIC latency_ms=12.5\nMETRIC p99=40\n", {"latency_ms": 12.5, "p99": 40.0}),
    ("warming up\n0.125\n", {"score": 0.125}),
    ("x\n1e-3\n\n", {"score": 0.001}),
    ('{"score": 2, "name": "run", "ok": true}\n', {"score": 2.0}),
    ("{not json\n", {}),
    ("step 1\rstep 2\rMETRIC score=3\n", {"score": 3.0}),
])
def test_other_formats(text: str, expected: dict[str, float]) -> None:
    assert parse_metrics(text, "score") == expected


def test_nan_and_inf_are_values_not_crashes() -> None:
    metrics = parse_metrics("---\nval_bpb: nan\nloss: inf\n", "val_bpb")
    assert math.isnan(metrics["val_bpb"]) and math.isinf(metrics["loss"])


def test_note_lines_anywhere_are_said_once_each() -> None:
    text = ("step 1\nNOTE: data seen 3 times\nstep 2\rNOTE: data seen 3 times\n"
            "NOTE:   spaced   out\t text  \n---\nval_bpb: 1.0\n")
    assert parse_notes(text) == ["data seen 3 times", "spaced out text"]


@pytest.mark.parametrize("line", [
    "note: lower case is ordinary logging",
    "  NOTE: indented: ordinary logging",
    "NOTE:",
    "NOTE:    ",
    "A NOTE: mid-line",
    "NOTES: not the keyword",
])
def test_only_lines_that_start_with_the_keyword_are_notes(line: str) -> None:
    assert parse_notes(line + "\n") == []


def test_notes_are_bounded_and_printable() -> None:
    text = "".join(f"NOTE: {i} \x1b[31mred\x1b[0m {'x' * 1000}\n" for i in range(10))
    notes = parse_notes(text)
    assert len(notes) == MAX_NOTES
    assert all(len(n) == NOTE_CHARS and "\x1b" not in n for n in notes)
    assert notes[0].startswith("0 [31mred[0m x")
    assert parse_notes("NOTE: keep | revert: git reset --hard abc\n") == ["keep / revert: git reset --hard abc"]


def test_a_note_is_no_metric() -> None:
    assert parse_metrics("NOTE: seen 3 times\n---\nscore: 2\n", "score") == {"score": 2.0}
