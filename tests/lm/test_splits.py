"""The held-out split no training path serves, and the kit's modules importing each other one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from pytest_autoresearch.lm import dataset  # noqa: E402
from pytest_autoresearch.lm.dataloader import make_dataloader  # noqa: E402
from pytest_autoresearch.lm.dataset import PreparedData, split_documents  # noqa: E402
from pytest_autoresearch.lm.sources import get_source  # noqa: E402

LM = Path(dataset.__file__).parent


def test_heldout_documents_are_never_training_documents(tiny_corpus: Path, lm_cache: Path) -> None:
    source = get_source(str(tiny_corpus), lm_cache)
    train, heldout, val = (set(split_documents(source, split)) for split in ("train", "heldout", "val"))
    assert heldout and not heldout & train and not heldout & val
    assert train | heldout == set(source.documents("train"))


def test_heldout_rows_are_prepared_and_fingerprinted(tiny_data: PreparedData) -> None:
    inputs, targets = tiny_data.heldout_rows
    assert inputs.shape[1] == tiny_data.profile.max_seq_len and (targets >= 0).any()
    assert not np.array_equal(inputs[: len(tiny_data.val_rows[0])], tiny_data.val_rows[0][: len(inputs)])
    assert len(tiny_data.tokens("train")) + len(tiny_data.tokens("heldout")) > len(tiny_data.tokens("train"))


def test_the_dataloader_does_not_serve_heldout(tiny_data: PreparedData) -> None:
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        next(make_dataloader(None, 2, tiny_data.profile.max_seq_len, "heldout", data=tiny_data))


def imports_of(path: Path) -> set[str]:
    """Sibling modules of lm/ that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "pytest_autoresearch.lm":
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n.split(".")[2] for n in names if n.startswith("pytest_autoresearch.lm.")}
    return found - {path.stem}


def test_no_module_of_the_kit_imports_one_that_imports_it_back() -> None:
    graph = {path.stem: imports_of(path) for path in LM.glob("*.py")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    cycles = sorted(name for name in graph if reaches(name, name, {name}))
    assert not cycles, {name: graph[name] for name in cycles}
