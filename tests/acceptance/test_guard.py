"""The evaluation cannot be redefined by the one it judges: dirty trees and frozen files."""

from __future__ import annotations

import pytest

from conftest import Project


def test_uncommitted_change_is_a_usage_error(project: Project) -> None:
    project.bench()
    project.train(1.5)
    (project.path / "train.py").write_text("print('---'); print('score: 0.1')\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*uncommitted changes to train.py*commit first*"])
    assert project.runs() == []


def test_untracked_python_file_is_a_usage_error(project: Project) -> None:
    project.bench()
    project.train(1.5)
    (project.path / "conftest.py").write_text("# could redefine the evaluation\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*untracked files*conftest.py*commit them or add them to .gitignore*"])


def test_frozen_change_is_refused_then_accepted_explicitly(project: Project) -> None:
    project.bench()
    (project.path / "prepare.py").write_text("SCALE = 1\n")
    kept = project.train(1.5)
    project.run().assert_outcomes(passed=1)
    (project.path / "prepare.py").write_text("SCALE = 100  # makes every score look better\n")
    project.train(1.6, "tweak the evaluation")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"autoresearch: FROZEN files changed since {kept[:7]} (the last kept result on this branch): "
        f"prepare.py; revert: git reset --hard {kept[:7]}",
        "*only train.py may change*",
        "*--autoresearch-accept-frozen*",
    ])
    assert project.statuses() == ["keep"], "a refused run is not measured"

    accepted = project.run("--autoresearch-accept-frozen")
    accepted.assert_outcomes(passed=1)
    accepted.stdout.fnmatch_lines(["*new leaderboard: frozen changed since the earlier results*"])
    runs = project.runs()
    assert [r.status for r in runs] == ["keep", "accepted", "keep"]
    assert runs[1].description == "accepted change to frozen files: prepare.py"
    assert runs[1].identity == runs[2].identity != runs[0].identity

    project.train(1.7, "worse under the new rules")
    project.run().assert_outcomes(failed=1)
    assert project.statuses()[-1] == "discard"


def test_mutable_globs_from_ini(project: Project) -> None:
    project.pytester.makeini("[pytest]\nautoresearch_mutable =\n    train.py\n    configs/*.yaml\n")
    project.bench()
    (project.path / "configs").mkdir()
    (project.path / "configs" / "lr.yaml").write_text("lr: 0.1\n")
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    (project.path / "configs" / "lr.yaml").write_text("lr: 0.05\n")
    project.train(1.4, "lower lr")
    project.run().assert_outcomes(passed=1)


def test_change_to_the_test_file_is_refused(project: Project) -> None:
    project.bench(threshold=2.0)
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.bench(threshold=9.0)
    project.train(1.6, "loosen the threshold")
    result = project.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FROZEN files changed*test_bench.py*"])


def test_outside_git_thresholds_still_judge(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bench="""
        import pytest

        @pytest.mark.autoresearch(metric="score", threshold=2.0)
        def test_fast(autoresearch):
            autoresearch.record(1.5)

        @pytest.mark.autoresearch(metric="score", threshold=1.0)
        def test_slow(autoresearch):
            autoresearch.record(1.5)
    """)
    result = pytester.runpytest("--autoresearch")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*not a git repository*thresholds judge, no branch bar applies*nothing is recorded*",
    ])
    assert not (pytester.path / ".autoresearch" / "ledger.tsv").exists()


def test_no_commit_yet_is_a_usage_error(project: Project) -> None:
    project.bench()
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no commit yet*"])
