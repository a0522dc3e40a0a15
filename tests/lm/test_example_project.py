"""The example project under `pytest --autoresearch`: green as the baseline, red when train.py gets worse."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")
git = pytest.importorskip("git")

from pytest_autoresearch.dataserver import EXPORT_ALLOWANCE_S  # noqa: E402
from pytest_autoresearch.ledger import Ledger  # noqa: E402


PROJECT_FILES = [".gitignore", "prepare.py", "train.py", "test_train.py", "conftest.py", "pytest.ini"]


def commit(repo: git.Repo, message: str) -> None:
    repo.git.add(*PROJECT_FILES)
    repo.index.commit(message)


@pytest.mark.usefixtures("lm_env")
def test_marker_judges_green_then_red(pytester: pytest.Pytester, tiny_project: Path,
                                      edit_train: Callable[..., None]) -> None:
    for path in tiny_project.iterdir():
        shutil.copy(path, pytester.path / path.name)
    (pytester.path / ".gitignore").write_text("__pycache__/\nrunpytest-*/\nstdout\nstderr\n")
    # closed on the way out: no git helper process outlives the test
    with git.Repo.init(pytester.path, initial_branch="autoresearch/test") as repo:
        with repo.config_writer() as cw:
            cw.set_value("user", "name", "Agent")
            cw.set_value("user", "email", "agent@example.com")
        commit(repo, "baseline")

        first = pytester.runpytest_subprocess("--autoresearch", "-p", "no:cacheprovider", timeout=300)
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines(["*test_train*val_bpb*keep*"])
        [kept] = [r for r in Ledger(pytester.path / ".git" / "autoresearch" / "ledger.tsv").runs() if r.status == "keep"]
        # trained on served batches (at least its 3 steps' worth: a loaded machine may not leave warm-up), on the server's clock
        assert int(kept.extra["served_tokens"]) >= 4 * 16 * 256
        assert 0 <= float(kept.extra["trained_s"]) <= 3 + EXPORT_ALLOWANCE_S

        edit_train(pytester.path / "train.py", EMBEDDING_LR="0.0", UNEMBEDDING_LR="0.0", MATRIX_LR="0.0", SCALAR_LR="0.0")
        commit(repo, "try: no learning at all")
        second = pytester.runpytest_subprocess("--autoresearch", "-p", "no:cacheprovider", timeout=300)
        second.assert_outcomes(failed=1)
        second.stdout.fnmatch_lines(["*DISCARD val_bpb*", "*revert: git reset --hard *", "*test_train*val_bpb*discard*"])
