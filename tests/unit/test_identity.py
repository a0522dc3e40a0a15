"""The evaluation identity: equal exactly when what defines the evaluation is equal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_autoresearch import identity


def test_digest_is_stable_and_order_free() -> None:
    a = identity.digest({"device": "cpu: x", "frozen": "abc"})
    assert a == identity.digest({"frozen": "abc", "device": "cpu: x"})
    assert len(a) == 12 and int(a, 16) >= 0
    assert a != identity.digest({"device": "cpu: x", "frozen": "abd"})


def test_files_digest_sees_paths_and_contents() -> None:
    base = identity.files_digest([("prepare.py", "b1"), ("test_train.py", "b2")])
    assert base == identity.files_digest([("prepare.py", "b1"), ("test_train.py", "b2")])
    assert base != identity.files_digest([("prepare.py", "b9"), ("test_train.py", "b2")])
    assert base != identity.files_digest([("prep.py", "b1"), ("test_train.py", "b2")])


def test_device_names_the_hardware() -> None:
    assert identity.device().startswith(("cpu: ", "gpu: "))
    assert identity.device() == identity.device()


def test_an_ini_file_counts_without_its_judging_keys() -> None:
    ini = b"[pytest]\n# the project's settings\naddopts = -ra\n"
    judged = ini + b"autoresearch_min_delta = auto\n  autoresearch_repeat: 3\nautoresearch_noise_k=2.5"
    assert identity.without_judging_keys(judged) == ini
    toml = b'[tool.pytest.ini_options]\nautoresearch_timeout = "900"\ntestpaths = ["tests"]\n'
    assert identity.without_judging_keys(toml) == b'[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    measuring = ini + b"autoresearch_mutable = train.py\nautoresearch_devices = 0\n"
    assert identity.without_judging_keys(measuring) == measuring, "which files may change, and where it runs, are measurement"


def test_an_ini_file_without_judging_keys_keeps_its_git_blob_id(tmp_path: Path) -> None:
    """So identities recorded before judging keys were left out stay the same after the upgrade."""
    content = b"[pytest]\naddopts = -ra\n"
    (tmp_path / "pytest.ini").write_bytes(content)
    git_id = subprocess.run(["git", "hash-object", "pytest.ini"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert identity.blob_id(content) == git_id
    assert identity.measured_blob(git_id, content, identity.without_judging_keys) == git_id
    judged = content + b"autoresearch_min_delta = auto\n"
    assert identity.measured_blob("unused", judged, identity.without_judging_keys) == git_id


MARKED = b"""import pytest

@pytest.mark.autoresearch(metric="score", goal="min", script="train.py"{extra})
def test_train(experiment):
    assert experiment.returncode == 0
"""


@pytest.mark.parametrize("extra", [
    b", threshold=1.25",
    b", min_delta='auto', threshold=2",
    b",\n                          max_seconds=time_budget() + 180",
    b", threshold=1.0, max_seconds=60, min_delta=0.01",
])
def test_a_test_file_counts_without_its_judging_marker_arguments(extra: bytes) -> None:
    plain = MARKED.replace(b"{extra}", b"")
    assert identity.without_judging_arguments(MARKED.replace(b"{extra}", extra)) == plain


def test_judging_arguments_first_or_among_measured_ones_are_cut_cleanly() -> None:
    first = b'@pytest.mark.autoresearch(threshold=3, metric="m")\ndef test(): ...\n'
    assert identity.without_judging_arguments(first) == b'@pytest.mark.autoresearch(metric="m")\ndef test(): ...\n'
    between = b'mark.autoresearch("m", threshold=3, script="t.py")\n'
    assert identity.without_judging_arguments(between) == b'mark.autoresearch("m", script="t.py")\n'
    measured = b'mark.autoresearch("m", script="t.py", scorer="s:f", artifact="a")\n'
    assert identity.without_judging_arguments(measured) == measured, "what runs and what scores it are measurement"
    assert identity.without_judging_arguments(b"def broken(:\n") == b"def broken(:\n"


def test_parts_recorded_before_the_split_are_measured_without_the_surface() -> None:
    old = {"device": "cpu: x", "frozen": "abc", "dataset": "f00", "pytest conftests": "none",
           "pytest ini": "pytest.ini:1", "pytest plugins": "pytest-xdist==3.8.0", "pytest options": "none"}
    assert identity.measured(old) == {"device": "cpu: x", "frozen": "abc", "dataset": "f00"}
