"""Profiles and the environment that selects them: part of the evaluation identity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_autoresearch.lm import profiles

if TYPE_CHECKING:
    from pytest_autoresearch.lm.dataset import PreparedData


def test_cpu_is_the_default_and_gpu_has_karpathys_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTORESEARCH_PROFILE", raising=False)
    assert profiles.active_profile().name == "cpu"
    monkeypatch.setenv("AUTORESEARCH_PROFILE", "gpu")
    gpu = profiles.active_profile()
    assert (gpu.max_seq_len, gpu.vocab_size, gpu.eval_tokens) == (2048, 8192, 40 * 524288)


def test_unknown_profile_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORESEARCH_PROFILE", "tpu")
    with pytest.raises(ValueError, match="use one of: cpu, gpu"):
        profiles.active_profile()


@pytest.mark.parametrize(("raw", "expected"), [("", 300.0), ("5", 5.0), (" 2.5 ", 2.5)])
def test_time_budget_override(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv("AUTORESEARCH_TIME_BUDGET", raw)
    assert profiles.time_budget() == expected


@pytest.mark.parametrize("raw", ["soon", "0", "-3", "nan"])
def test_bad_time_budget_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AUTORESEARCH_TIME_BUDGET", raw)
    with pytest.raises(ValueError, match="AUTORESEARCH_TIME_BUDGET"):
        profiles.time_budget()


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AUTORESEARCH_CACHE", raising=False)
    assert profiles.cache_root() == Path.home() / ".cache" / "autoresearch"
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path))
    assert profiles.cache_root() == tmp_path


def test_identity_names_data_profile_budget_and_kit(monkeypatch: pytest.MonkeyPatch, tiny_data: PreparedData) -> None:
    monkeypatch.setenv("AUTORESEARCH_TIME_BUDGET", "7")
    identity = tiny_data.identity()
    assert identity["time_budget"] == "7" and identity["profile"] == "tiny"
    assert identity["dataset"] == tiny_data.fingerprint
    assert set(identity) == {"dataset", "source", "profile", "time_budget", "lm_kit"}


def test_importing_the_package_does_not_import_the_kit() -> None:
    import subprocess
    import sys

    code = "import sys, pytest_autoresearch, pytest_autoresearch.plugin; print('torch' in sys.modules, 'pytest_autoresearch.lm.dataset' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
