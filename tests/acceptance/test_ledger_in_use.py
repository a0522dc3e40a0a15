"""A damaged ledger never crashes a run and never loses rows."""

from __future__ import annotations

import pytest

from conftest import Project
from pytest_autoresearch.ledger import LedgerWarning


def test_corrupt_line_warns_and_the_run_goes_on(project: Project) -> None:
    project.pytester.makeini("[pytest]\nfilterwarnings = error\n")
    project.bench()
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    with open(project.ledger.path, "a") as fh:
        fh.write("garbage line without tabs\n")
    project.train(1.2, "better")
    result = project.run()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*LedgerWarning*ledger.tsv:4: corrupt line skipped*"])
    with pytest.warns(LedgerWarning):
        assert [(r.status, r.value) for r in project.runs()] == [("keep", 1.5), ("keep", 1.2)]
    assert "garbage line without tabs" in project.ledger.path.read_text()


def test_ledger_option_moves_it_beside_the_project(project: Project) -> None:
    project.bench()
    (project.path / ".gitignore").write_text("results.tsv\nresults.identities.jsonl\n")
    project.train(1.5)
    project.run("--autoresearch-ledger", "results.tsv").assert_outcomes(passed=1)
    text = (project.path / "results.tsv").read_text()
    assert text.startswith("commit\tvalue\tmemory_gb\tstatus\tdescription\t")
    assert not project.ledger.path.exists()
