"""The evaluation identity: equal exactly when what defines the evaluation is equal."""

from __future__ import annotations

from pathlib import Path

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


def test_pytest_surface(tmp_path: Path) -> None:
    conftest, ini = tmp_path / "conftest.py", tmp_path / "pytest.ini"
    conftest.write_text("")
    ini.write_text("[pytest]\n")
    base = identity.surface(tmp_path, [conftest], ini, ["pytest-timeout==2.4.0"], ["--autoresearch", "-q"], "")
    assert base == {"pytest conftests": f"conftest.py:{base['pytest conftests'][-12:]}",
                    "pytest ini": f"pytest.ini:{base['pytest ini'][-12:]}",
                    "pytest plugins": "pytest-timeout==2.4.0", "pytest options": "none"}
    same = identity.surface(tmp_path, [conftest], ini, ["pytest-timeout==2.4.0"], ["-x", "-p", "no:cacheprovider"], "")
    assert same == base, "printing and caching options judge nothing"
    loaded = identity.surface(tmp_path, [conftest], ini, ["pytest-timeout==2.4.0"], ["-pevil"], "-o timeout=0")
    assert loaded["pytest options"] == "-o timeout=0 -p evil"
    conftest.write_text("def pytest_runtest_makereport(): ...\n")
    assert identity.surface(tmp_path, [conftest], ini, [], [], "")["pytest conftests"] != base["pytest conftests"]
