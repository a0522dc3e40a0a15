"""Tiny corpora and prepared data for the language-model kit's tests, all under tmp dirs."""

from __future__ import annotations

import shutil
import sysconfig
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


@pytest.fixture(scope="session")
def tiny_data(tiny_corpus: Path, lm_cache: Path) -> PreparedData:
    """The tiny corpus prepared for the tiny profile."""
    from pytest_autoresearch.lm.dataset import prepare

    return prepare(str(tiny_corpus), TINY, lm_cache, progress=lambda message: None)
