"""Trust: the pytest surface a person accepts, and the acceptances the ledger keeps."""

from __future__ import annotations

from pathlib import Path

from pytest_autoresearch import trust
from pytest_autoresearch.ledger import Entry


def test_pytest_surface(tmp_path: Path) -> None:
    conftest, ini = tmp_path / "conftest.py", tmp_path / "pytest.ini"
    conftest.write_text("")
    ini.write_text("[pytest]\n")
    base = trust.surface(tmp_path, [conftest], ini, ["pytest-timeout==2.4.0"], ["--autoresearch", "-q"], "")
    assert base == {"pytest conftests": f"conftest.py:{base['pytest conftests'][-12:]}",
                    "pytest ini": f"pytest.ini:{base['pytest ini'][-12:]}",
                    "pytest plugins": "pytest-timeout==2.4.0", "pytest options": "none"}
    same = trust.surface(tmp_path, [conftest], ini, ["pytest-timeout==2.4.0"], ["-x", "-p", "no:cacheprovider"], "")
    assert same == base, "printing and caching options judge nothing"
    loaded = trust.surface(tmp_path, [conftest], ini, ["pytest-timeout==2.4.0"], ["-pevil"], "-o timeout=0")
    assert loaded["pytest options"] == "-o timeout=0 -p evil"
    conftest.write_text("def pytest_runtest_makereport(): ...\n")
    assert trust.surface(tmp_path, [conftest], ini, [], [], "")["pytest conftests"] != base["pytest conftests"]


def test_changes_name_each_part_that_differs() -> None:
    before = {"pytest conftests": "none", "pytest ini": "pytest.ini:aaa", "pytest plugins": "a==1", "pytest options": "none"}
    now = {**before, "pytest plugins": "a==1, pytest-xdist==3.8.0"}
    assert trust.changes(before, now) == ("pytest plugins (a==1 -> a==1, pytest-xdist==3.8.0)",)
    assert trust.changes(before, before) == ()
    assert trust.changes({}, now) == (), "nothing recorded to compare with: nothing to refuse"


def test_acceptances_say_when_who_where_and_what_once_per_acceptance() -> None:
    extra = trust.acceptance(["pytest ini (pytest.ini:aaa -> pytest.ini:bbb)"])
    assert extra["user"] == trust.user() and extra["user"]
    rows = [Entry("r1", "accepted", commit="abc1234", sha="abc1234" * 5, test=f"t::{name}", timestamp="2026-12-02T04:00:00+00:00",
                  host="box", extra=extra) for name in ("a", "b")]
    rows.append(Entry("r3", "keep", commit="abc1234", sha="abc1234" * 5, test="t::a"))
    assert trust.acceptances(rows) == [
        f"2026-12-02T04:00:00+00:00 {extra['user']}@box at abc1234: pytest ini (pytest.ini:aaa -> pytest.ini:bbb)"]
