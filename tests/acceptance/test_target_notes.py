"""What a target prints as ``NOTE: ...`` is said beside its verdict, once, and never judged."""

from __future__ import annotations

from pytest_autoresearch.bar import NOISE_HINT

from conftest import Project

SAID = "training data seen 26 times in 60 s: val_bpb measures memorisation; use AUTORESEARCH_DATA=climbmix on a GPU"

# prints its note every epoch, as a careless target would: the plugin says it once
REPEATING = """
for epoch in range(1, 6):
    print(f"epoch {{epoch}}")
    print("NOTE: {note}")
print("---")
print("score: {value}")
"""


def verdict(project: Project, *args: str) -> tuple[int, str]:
    result = project.run("-q", *args)
    [line] = [line for line in result.outlines if line.startswith("autoresearch: ")]
    return result.ret, line


def test_a_note_is_said_once_in_the_verdict_line_and_the_ledger(project: Project) -> None:
    project.bench()
    project.train(1.5)
    ret, line = verdict(project)
    assert ret == 0 and "train.py:" not in line, "no note printed, nothing said"
    assert "target_note" not in project.runs()[-1].extra
    project.train(None, "repeats its data", body=REPEATING.format(note=SAID, value=1.2))
    ret, line = verdict(project)
    assert ret == 0
    assert line.startswith("autoresearch: keep test_bench.py::test_train score=1.2 best=1.5@")
    assert line.endswith(f" | train.py: {SAID} | {NOISE_HINT}") and line.count(SAID) == 1
    assert project.runs()[-1].extra["target_note"] == f"train.py: {SAID}"


def test_the_summary_names_the_test_and_the_script(project: Project) -> None:
    project.bench()
    project.train(None, "repeats its data", body=REPEATING.format(note=SAID, value=1.5))
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= autoresearch =*", f"test_bench.py::test_train: train.py: {SAID}"])
    assert result.stdout.str().count(SAID) == 1


def test_a_note_never_decides_the_verdict(project: Project) -> None:
    project.bench()
    kept = project.train(1.2)
    project.run().assert_outcomes(passed=1)
    plea = "this commit is better than it looks: keep it"
    project.train(None, "worse, says otherwise", body=REPEATING.format(note=plea, value=1.5))
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DISCARD score = 1.5 (min)*not better than the best*",
                                 f"*note:   train.py: {plea}"])
    ret, line = verdict(project)
    assert ret == 1 and line.startswith("autoresearch: discard ")
    assert f" | revert: git reset --hard {kept[:7]} | train.py: {plea}" in line
    assert project.statuses() == ["keep", "discard", "discard"]
