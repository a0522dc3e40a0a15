"""The evaluation identity: equal exactly when what defines the evaluation is equal."""

from __future__ import annotations

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
