"""A frozen scorer computes the value from the target's artifact; what the target prints is a self-report."""

from __future__ import annotations

import pytest

from conftest import Project
from pytest_autoresearch.archive import night_cost, wall_s

# The target: predicts labels and writes them where the plugin says; it may print anything.
PREDICT = """
import json, os
predictions = {predictions}
with open(os.environ["AUTORESEARCH_ARTIFACT"], "w") as out:
    json.dump(predictions, out)
print("---")
print("accuracy: {claim}")
"""

# Frozen: scores predictions against answers the target is never given.
SCORER = """
import json
from pytest_autoresearch.scoring import Rejected

ANSWERS = {"a": 1, "b": 0, "c": 1, "d": 1}

def score(artifact):
    predictions = json.loads(artifact.read_text())
    if set(predictions) != set(ANSWERS):
        raise Rejected("predictions must cover exactly the held-out items")
    return {"accuracy": sum(predictions[k] == v for k, v in ANSWERS.items()) / len(ANSWERS)}
"""

BENCH = """
import pytest

@pytest.mark.autoresearch(metric="accuracy", goal="max", script="train.py",
                          scorer="score_predictions:score", artifact="predictions.json"{extra})
def test_accuracy(experiment):
    pass
"""


def setup(project: Project, extra: str = "") -> None:
    (project.path / "score_predictions.py").write_text(SCORER)
    project.pytester.makepyfile(test_bench=BENCH.format(extra=extra))


def predict(project: Project, predictions: dict[str, int], claim: float, message: str) -> str:
    return project.train(None, message, body=PREDICT.format(predictions=predictions, claim=claim))


def test_the_scored_value_is_judged_and_a_forged_print_is_caught(project: Project) -> None:
    setup(project)
    predict(project, {"a": 1, "b": 1, "c": 0, "d": 1}, 0.5, "baseline")
    [first] = [line for line in project.run("-q").outlines if line.startswith("autoresearch: ")]
    assert first.startswith("autoresearch: keep test_bench.py::test_accuracy accuracy=0.5 ")
    predict(project, {"a": 1, "b": 1, "c": 1, "d": 0}, 1.0, "print a perfect score")
    result = project.run("-q")
    result.assert_outcomes(failed=1)
    [line] = [line for line in result.outlines if line.startswith("autoresearch: ")]
    assert line.startswith("autoresearch: discard test_bench.py::test_accuracy accuracy=0.5 ")
    assert "| self-reported 1, scored 0.5 |" in line
    run = project.runs()[-1]
    assert (run.value, run.extra["self_report"]) == (0.5, 1.0)
    predict(project, {"a": 1, "b": 0, "c": 1, "d": 0}, 0.75, "better, honestly")
    project.run().assert_outcomes(passed=1)
    assert project.runs()[-1].value == 0.75 and "self_report" in project.runs()[-1].extra


def test_a_rejected_artifact_is_red_with_the_scorers_reason(project: Project) -> None:
    setup(project)
    predict(project, {"a": 1}, 1.0, "only the easy item")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["DISCARD accuracy = - (max) — predictions must cover exactly the held-out items"])
    assert project.statuses() == ["discard"]


def test_no_artifact_is_a_crash_that_says_so(project: Project) -> None:
    setup(project)
    project.train(None, "forgot to write", body="print('---'); print('accuracy: 1.0')\n")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["CRASH accuracy = - (max) — artifact */predictions.json was not written"])
    assert project.statuses() == ["crash"]


def test_a_scorer_that_imports_the_mutable_file_is_refused(project: Project) -> None:
    setup(project)
    (project.path / "score_predictions.py").write_text("import train\n" + SCORER)
    predict(project, {"a": 1, "b": 0, "c": 1, "d": 1}, 1.0, "perfect")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["CRASH accuracy*imported the mutable file */train.py"])


def test_over_budget_is_red_whatever_the_script_printed(project: Project) -> None:
    project.bench(max_seconds=0.5)
    project.train(None, "trains past the budget", body="import time; time.sleep(1.5); print('---'); print('score: 0.1')\n")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["TIMEOUT score = - (min) — over the wall limit: ran 2 s, limit 0.5 s*"])
    assert project.statuses() == ["timeout"]


@pytest.mark.parametrize(("arguments", "message"), [
    ("script='train.py', scorer='score_predictions', artifact='p.json'", 'scorer must be "module:function"'),
    ("script='train.py', scorer='m:f'", "give script=, scorer= and artifact= together"),
    ("scorer='m:f', artifact='p.json'", "give script=, scorer= and artifact= together"),
    ("script='train.py', scorer='m:f', artifact='out/p.json'", "artifact must be a file name"),
    ("script='train.py', max_seconds=0", "max_seconds limits a script's wall time"),
])
def test_bad_scorer_arguments_are_collection_errors(project: Project, arguments: str, message: str) -> None:
    project.pytester.makepyfile(test_bench=f"""
import pytest

@pytest.mark.autoresearch(metric="accuracy", {arguments})
def test_accuracy(experiment):
    pass
""")
    project.train(1.0)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


COUNTED_SCORER = SCORER.replace('return {"accuracy"', 'return {"correct": sum(predictions[k] == v for k, v in '
                                'ANSWERS.items()), "accuracy"')
TWO_DRAWS = """
import json, os, time
from pathlib import Path
count = Path("count.txt")
n = int(count.read_text()) if count.exists() else 0
count.write_text(str(n + 1))
predictions = [{"a": 1, "b": 1, "c": 0, "d": 1}, {"a": 1, "b": 0, "c": 1, "d": 1}][n]
with open(os.environ["AUTORESEARCH_ARTIFACT"], "w") as out:
    json.dump(predictions, out)
time.sleep(1.1)  # the two draws end in different seconds
print("---")
print("accuracy: 0")
"""


def test_each_draw_keeps_its_own_scoring_facts_and_finish_time(project: Project) -> None:
    """A repeat group's rows: each its own scoring seconds, scored values and finish time; the cost counts scoring."""
    (project.path / "score_predictions.py").write_text(COUNTED_SCORER)
    project.pytester.makepyfile(test_bench=BENCH.format(extra=""))
    (project.path / ".gitignore").write_text("__pycache__/\ncount.txt\n")
    project.unseal()
    project.train(None, "two draws", body=TWO_DRAWS)
    project.run("--autoresearch-repeat", "2").assert_outcomes(passed=1)
    first, second = project.runs()
    assert (first.value, second.value) == (0.5, 1.0)
    assert (first.extra["scored_correct"], second.extra["scored_correct"]) == (2, 4)
    assert all(isinstance(r.extra["scoring_s"], float) for r in (first, second))
    assert first.timestamp < second.timestamp
    assert wall_s(first) == pytest.approx((first.duration_s or 0) + first.extra["scoring_s"])
    assert night_cost([first, second])["wall_s"]["keep"] == pytest.approx(wall_s(first) + wall_s(second))


# Frozen, and slow to import (as a model's scorer is: torch).
SLOW_SCORER = """
import time
time.sleep(3)

def score(artifact):
    return {"accuracy": 1.0}
"""


def test_the_scorer_imports_while_the_target_runs(project: Project) -> None:
    """A run pays, after its target, only the scoring: the interpreter started with the target."""
    (project.path / "score_predictions.py").write_text(SLOW_SCORER)
    project.pytester.makepyfile(test_bench=BENCH.format(extra=""))
    project.train(None, "a target that takes longer than the scorer's import",
                  body="import time\ntime.sleep(5)\n" + PREDICT.format(predictions={"a": 1}, claim=1.0))
    project.run().assert_outcomes(passed=1)
    [run] = project.runs()
    assert run.value == 1.0 and run.extra["scoring_s"] < 1.5, run.extra  # 3 s and more when imported after the target
