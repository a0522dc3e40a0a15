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
from pytest_autoresearch.lm.sources import get_source, pystdlib  # noqa: E402

LM = Path(dataset.__file__).parent


def test_heldout_documents_are_never_training_documents(tiny_corpus: Path, lm_cache: Path) -> None:
    source = get_source(str(tiny_corpus), lm_cache)
    train, heldout, val = (set(split_documents(source, split)) for split in ("train", "heldout", "val"))
    assert heldout and not heldout & train and not heldout & val
    assert train | heldout == set(source.documents("train"))


def test_pystdlib_scores_only_test_suites_the_interpreter_never_imports() -> None:
    source = pystdlib()
    scored = source.private_paths()
    splits = {source.split_of(p.relative_to(source.root).as_posix()) for p in scored}
    assert splits == {"val", "heldout"}
    assert all(p.relative_to(source.root).parts[0] == "test" for p in scored)
    size = sum(p.stat().st_size for p in scored) / sum(p.stat().st_size for p in source._paths())
    assert 0.05 < size < 0.2, f"scored files are {size:.0%} of the source"


def test_a_sealed_run_is_served_the_prepared_folder_without_its_scored_rows(
        tiny_corpus: Path, lm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORESEARCH_PROFILE", "cpu")
    served = dataset.sealed(str(tiny_corpus), lm_cache)
    directory = Path(served["read"][0])
    hidden = {Path(p).name for p in served["hide"]}
    assert {"val_inputs.npy", "val_tokens.npy", "heldout_inputs.npy", "heldout_targets.npy"} <= hidden
    assert str(tiny_corpus) in served["hide"] and "train_tokens.npy" not in hidden
    monkeypatch.setenv("AUTORESEARCH_PREPARED", served["env"]["AUTORESEARCH_PREPARED"])
    data = dataset.prepare()
    assert data.directory == directory and data.fingerprint == dataset.prepare(str(tiny_corpus), cache=lm_cache).fingerprint
    monkeypatch.setenv("AUTORESEARCH_PROFILE", "gpu")
    with pytest.raises(ValueError, match="prepared for profile cpu, not gpu"):
        dataset.prepare()


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
