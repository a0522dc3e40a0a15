"""Tiny corpora and prepared data for the language-model kit's tests, all under tmp dirs (a plugin of the root conftest)."""

from __future__ import annotations

import os
import shutil
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_autoresearch.lm.profiles import Profile

if TYPE_CHECKING:
    from pytest_autoresearch.lm.dataset import PreparedData

TINY = Profile("tiny", max_seq_len=64, vocab_size=512, eval_tokens=4096, eval_batch_size=16)
STDLIB = Path(sysconfig.get_paths()["stdlib"])
CORPUS_PACKAGES = ("json", "email", "logging", "importlib")  # ~0.9 MB of Python source


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real Python source: a few standard library packages."""
    root = tmp_path_factory.mktemp("corpus")
    for package in CORPUS_PACKAGES:
        shutil.copytree(STDLIB / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="session")
def lm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def rounded_matmuls() -> Iterator[Callable[[bool], None]]:
    """Turns torch's float32 matmuls to the scorer's rounded operands (True) or exact (False); restored after.

    Skips on a CPU without fast bf16 matmuls: the scorer never rounds there.
    """
    torch = pytest.importorskip("torch")
    from pytest_autoresearch.lm.scorer import matmul_precision

    rounded = matmul_precision(torch.device("cpu"))
    if rounded == "highest":
        pytest.skip("this CPU has no fast bf16 matmuls: the scorer runs every matmul exactly here")
    before = torch.get_float32_matmul_precision()
    yield lambda on: torch.set_float32_matmul_precision(rounded if on else "highest")
    torch.set_float32_matmul_precision(before)


@pytest.fixture(scope="session")
def tiny_data(tiny_corpus: Path, lm_cache: Path) -> PreparedData:
    """The tiny corpus prepared for the tiny profile."""
    from pytest_autoresearch.lm.dataset import prepare

    return prepare(str(tiny_corpus), TINY, lm_cache, progress=lambda message: None)


REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_project"
# train.py's hyper-parameters shrunk so a run takes seconds on two cores (the agent edits them the same way)
TINY_TRAIN = {"DEPTH": "2", "ASPECT_RATIO": "32", "HEAD_DIM": "32", "TOTAL_BATCH_SIZE": "2**12",
              "DEVICE_BATCH_SIZE": "16", "COMPILE": "False", "EVAL_BATCH_SIZE": "16"}


def edit_train(path: Path, **constants: str) -> None:
    """Set UPPER_CASE constants in a train.py, keeping their trailing comments."""
    lines = path.read_text().splitlines(keepends=True)
    for name, value in constants.items():
        hits = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        assert len(hits) == 1, f"{name} is not a constant of train.py"
        comment = lines[hits[0]].partition("  #")[2]
        lines[hits[0]] = f"{name} = {value}" + (f"  #{comment}" if comment else "\n")
    path.write_text("".join(lines))


def copy_example(dest: Path) -> Path:
    """The example project's files in `dest`, train.py shrunk to TINY_TRAIN."""
    for name in ("prepare.py", "train.py", "test_train.py", "conftest.py", "pytest.ini"):
        shutil.copy(EXAMPLE / name, dest / name)
    edit_train(dest / "train.py", **TINY_TRAIN)
    return dest


@pytest.fixture
def lm_env(monkeypatch: pytest.MonkeyPatch, tiny_corpus: Path, lm_cache: Path) -> None:
    """Environment for a train.py run: the tiny corpus, a tmp cache, a 3 s budget."""
    monkeypatch.setenv("AUTORESEARCH_DATA", str(tiny_corpus))
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(lm_cache))
    monkeypatch.setenv("AUTORESEARCH_PROFILE", "cpu")
    monkeypatch.setenv("AUTORESEARCH_TIME_BUDGET", "3")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A copy of the example project with a train.py small enough for tests."""
    project = tmp_path / "project"
    project.mkdir()
    return copy_example(project)


@pytest.fixture(name="edit_train")
def edit_train_fixture() -> object:
    return edit_train
