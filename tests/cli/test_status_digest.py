"""``autoresearch status --since``: the digest of a window of runs, in text, JSON and Markdown."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli

from pytest_autoresearch.cli.digest import parse_since
from pytest_autoresearch.ledger import Entry, Ledger

RETEST = "git cherry-pick {} && pytest --autoresearch --autoresearch-repeat auto"


def window_night(path: Path) -> None:
    """A keep at 20:00, then from 22:00: a near miss, a crash, a keep with its delta and sigma."""
    rows: list[tuple[str, str, float | None, str, dict[str, Any]]] = [
        ("r1", "keep", 1.5, "2026-11-26T20:00:00+00:00", {"mean": 1.5, "n": 1}),
        ("r2", "discard", 1.49, "2026-11-26T22:10:00+00:00",
         {"bar": 1.5, "bar_n": 1, "mean": 1.49, "n": 1, "delta": -0.01, "reason": "not better than the best by more than 0.05"}),
        ("r3", "crash", None, "2026-11-26T22:20:00+00:00", {"reason": "train.py exited with code 1: NameError: x"}),
        ("r4", "keep", 1.4, "2026-11-26T23:00:00+00:00",
         {"bar": 1.5, "bar_n": 1, "mean": 1.4, "n": 1, "delta": -0.1, "sigma": 0.025, "reason": "improved"}),
    ]
    Ledger(path).append(*(
        Entry(run_id, status, commit=(run_id * 4)[:7], sha=run_id * 20, value=value, duration_s=600, timestamp=stamp,
              measurement=run_id, description=f"idea {run_id}", extra={"goal": "min", **extra}, metric="score",
              test="test_x.py::test_x", branch="main", identity="id1")
        for run_id, status, value, stamp, extra in rows))


def test_the_digest_of_a_window(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.tsv"
    window_night(ledger)
    since = ("status", "--ledger", str(ledger), "--since", "2026-11-26T22:00")
    done = run_cli(tmp_path, *since)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "autoresearch digest: every run (not a git repository), since 2026-11-26T22:00:00+00:00: 3 runs of 3 ideas "
        "(1 keep, 1 discard, 1 crash, 0 timeout)",
        "",
        "test_x.py::test_x  score",
        "  best 1.4 at r4r4r4r (idea r4), from 1.5 at r1r1r1r when the window began: -0.1",
        "  kept r4r4r4r idea r4: 1.4, delta -0.1 (-4.0σ)",
        f"  near miss r2r2r2r idea r2: 1.49 against 1.5; retest: {RETEST.format('r2r2r2r')}",
        "",
        "crashes",
        "  r3r3r3r idea r3: crash: train.py exited with code 1: NameError: x",
        "",
        "cost: 3 runs in 1.00 h; wall time keep 10m, discard 10m, crash 10m, timeout 0s",
    ]
    digest = json.loads(run_cli(tmp_path, *since, "--format", "json").stdout)
    assert (digest["runs"], digest["ideas"]) == (3, {"keep": 1, "discard": 1, "crash": 1})
    [bench] = digest["benchmarks"]
    assert (bench["best_before"]["value"], bench["best_now"]["value"], bench["change"]) == (
        1.5, 1.4, pytest.approx(-0.1))
    assert bench["kept"] == [{"commit": "r4r4r4r", "sha": "r4" * 20, "description": "idea r4", "mean": 1.4, "n": 1,
                              "delta": -0.1, "sigma": 0.025}]
    assert [m["commit"] for m in bench["near_misses"]] == ["r2r2r2r"]
    assert digest["crashes"] == [{"commit": "r3r3r3r", "description": "idea r3", "status": "crash",
                                  "reason": "train.py exited with code 1: NameError: x"}]
    assert digest["cost"]["runs"] == 3
    markdown = run_cli(tmp_path, *since, "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("### autoresearch digest: ")
    assert "- kept `r4r4r4r` idea r4: 1.4, delta -0.1 (-4.0σ)" in markdown
    assert f"- near miss `r2r2r2r` idea r2: 1.49 against 1.5; retest: `{RETEST.format('r2r2r2r')}`" in markdown


def test_a_window_with_nothing_before_it_and_markdown_needs_since(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.tsv"
    window_night(ledger)
    out = run_cli(tmp_path, "status", "--ledger", str(ledger), "--since", "2026-11-26T19:00").stdout
    assert "  best 1.4 at r4r4r4r (idea r4): the first result" in out.splitlines()
    assert "  kept r1r1r1r idea r1: 1.5, first result" in out.splitlines()
    done = run_cli(tmp_path, "status", "--ledger", str(ledger), "--format", "markdown")
    assert (done.returncode, done.stderr) == (1, "autoresearch: --format markdown is the digest's: add --since 8h "
                                                 "(or a date)\n")


@pytest.mark.parametrize(("text", "expected"), [
    ("8h", datetime(2026, 12, 1, 22, tzinfo=timezone.utc)),
    ("90m", datetime(2026, 12, 2, 4, 30, tzinfo=timezone.utc)),
    ("2026-12-01", datetime(2026, 12, 1, tzinfo=timezone.utc)),
    ("2026-12-01T23:00+01:00", datetime(2026, 12, 1, 22, tzinfo=timezone.utc)),
])
def test_since_is_an_age_or_a_date(text: str, expected: datetime) -> None:
    assert parse_since(text, now=datetime(2026, 12, 2, 6, tzinfo=timezone.utc)) == expected


def test_a_bad_since_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "status", "--since", "yesterday")
    assert done.returncode == 2
    assert "expected an age such as 8h, 90m or 2d, or a date such as 2026-12-01" in done.stderr
