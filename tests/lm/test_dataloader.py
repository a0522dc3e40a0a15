"""The packing dataloader: no padding, BOS at every document start, every token scored once; repeats said once."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pytest_autoresearch.lm.dataloader import PASSES_BEFORE_NOTE, make_dataloader, repeat_note  # noqa: E402
from pytest_autoresearch.lm.dataset import PreparedData  # noqa: E402
from pytest_autoresearch.lm.packing import IGNORE, pack_rows, pieces_of, split_rows, validation_rows  # noqa: E402
from pytest_autoresearch.lm.profiles import Profile  # noqa: E402

from conftest import Project  # noqa: E402

BOS = -7  # a marker no position index can equal


def corpus(lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Documents whose tokens are their global positions, each opening with BOS."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.arange(offsets[-1], dtype=np.int64)
    tokens[offsets[:-1]] = BOS
    return tokens, offsets


LENGTHS = [2, 5, 17, 1, 33, 64, 65, 66, 200, 9, 3, 130, 12, 7, 48, 31, 500, 2, 4, 19]


@pytest.mark.parametrize("capacity", [8, 17, 65])
@pytest.mark.parametrize("rows", [1, 3])
def test_every_token_is_a_target_exactly_once(capacity: int, rows: int) -> None:
    tokens, offsets = corpus(LENGTHS)
    batches = list(pack_rows(tokens, pieces_of(offsets, range(len(LENGTHS)), capacity), rows, capacity, buffer_size=8))
    seen: Counter[int] = Counter()
    for batch, scored in batches:
        assert batch.shape == (rows, capacity) and scored.shape == (rows, capacity - 1)
        _, targets = split_rows(batch, scored)
        seen.update(int(t) for t in targets.ravel() if t not in (IGNORE, BOS))
    assert max(seen.values()) == 1, "a token was scored twice"
    body = set(range(len(tokens))) - set(offsets[:-1].tolist())
    missing = body - set(seen)
    assert len(missing) < rows * capacity, "only the last, partial batch may be left out"


def test_no_padding_and_bos_opens_every_document() -> None:
    tokens, offsets = corpus(LENGTHS)
    capacity = 16
    firsts = {int(o) + 1 for o, n in zip(offsets[:-1], LENGTHS) if n > 1}
    scored_firsts = set()
    for batch, scored in pack_rows(tokens, pieces_of(offsets, range(len(LENGTHS)), capacity), 2, capacity):
        inputs, targets = split_rows(batch, scored)
        assert not (batch == IGNORE).any()
        follows_bos = targets[inputs == BOS]
        assert set(follows_bos.tolist()) <= firsts | {BOS, IGNORE}, "BOS is followed by its document's first token"
        for first in firsts & set(targets.ravel().tolist()):
            assert (inputs[targets == first] == BOS).all(), "a document's first token is predicted from BOS"
            scored_firsts.add(first)
    assert len(firsts - scored_firsts) <= 2 * capacity // 2  # only documents left in the unfinished tail


def test_long_documents_are_split_not_cropped() -> None:
    tokens, offsets = corpus([1000])
    pieces = list(pieces_of(offsets, [0], 65))
    assert pieces[0].opening and not any(p.opening for p in pieces[1:])
    covered = set()
    for piece in pieces:
        assert piece.length <= 65
        covered.update(range(piece.start, piece.start + piece.length))
    assert covered == set(range(1000))
    assert all(b.start == a.start + a.length - 1 for a, b in zip(pieces, pieces[1:]))  # one token of overlap


def test_validation_rows_are_deterministic_and_spread() -> None:
    tokens, offsets = corpus(LENGTHS * 20)
    profile = Profile("t", max_seq_len=16, vocab_size=0, eval_tokens=16 * 10, eval_batch_size=4)
    inputs, targets = validation_rows(tokens, offsets, profile)
    again = validation_rows(tokens, offsets, profile)
    assert inputs.shape == targets.shape == (10, 16)
    assert (inputs == again[0]).all() and (targets == again[1]).all()
    assert inputs.max() > 0.9 * len(tokens), "the sample reaches the end of the split"
    assert inputs[inputs >= 0].min() < 0.1 * len(tokens), "and its beginning"


def test_train_loader_shapes_and_values(tiny_data: PreparedData) -> None:
    loader = make_dataloader(None, 4, 64, "train", data=tiny_data)
    vocab = tiny_data.tokenizer.get_vocab_size()
    for _ in range(5):
        x, y, epoch = next(loader)
        assert x.shape == y.shape == (4, 64) and x.dtype == y.dtype == torch.int64
        assert 0 <= int(x.min()) and int(x.max()) < vocab
        assert ((y == IGNORE) | ((y >= 0) & (y < vocab))).all()
        assert (x[:, 1:] == y[:, :-1])[y[:, :-1] != IGNORE].all(), "targets are the inputs shifted by one"
        assert epoch == 1


def test_train_loader_is_seeded(tiny_data: PreparedData) -> None:
    a = make_dataloader(None, 2, 64, "train", data=tiny_data, seed=1)
    b = make_dataloader(None, 2, 64, "train", data=tiny_data, seed=1)
    c = make_dataloader(None, 2, 64, "train", data=tiny_data, seed=2)
    xa, xb, xc = next(a)[0], next(b)[0], next(c)[0]
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)


def test_train_batches_mix_documents_when_one_holds_most_tokens(tmp_path: Path) -> None:
    lengths = [20_000] + [100] * 200  # like a source tree: a few long files hold most of the tokens
    tokens, offsets = corpus(lengths)
    np.save(tmp_path / "train_tokens.npy", tokens)
    np.save(tmp_path / "train_offsets.npy", offsets)
    profile = Profile("t", max_seq_len=16, vocab_size=0, eval_tokens=16, eval_batch_size=1)
    data = PreparedData(tmp_path, "synthetic", profile, "none")
    document = np.searchsorted(offsets, np.arange(len(tokens)), side="right") - 1
    loader = make_dataloader(None, 8, 16, "train", data=data)
    long_rows = []
    for _ in range(20):
        x = next(loader)[0].numpy()
        documents = [set(document[row[row != BOS]].tolist()) for row in x]
        long_rows.append(sum(0 in d for d in documents))
    assert all(n < 8 for n in long_rows), "no batch is all one document"
    assert 2 < sum(long_rows) / len(long_rows) < 7, "the long document's share of rows is its share of tokens"


def test_val_loader_repeats_the_pinned_rows(tiny_data: PreparedData) -> None:
    rows = len(tiny_data.val_rows[0])
    first = [next(make_dataloader(None, 2, 64, "val", data=tiny_data))[0] for _ in range(2)]
    assert torch.equal(first[0], first[1])
    loader = make_dataloader(None, 2, 64, "val", data=tiny_data)
    batches = [next(loader)[1] for _ in range(rows // 2 + 1)]
    assert torch.equal(batches[0], batches[-1])


def test_loader_outpaces_training(tiny_data: PreparedData) -> None:
    import time

    loader = make_dataloader(None, 16, 64, "train", data=tiny_data)
    next(loader)
    start = time.perf_counter()
    for _ in range(50):
        next(loader)
    tokens_per_second = 50 * 16 * 64 / (time.perf_counter() - start)
    assert tokens_per_second > 200_000  # training on this CPU consumes ~20k tokens/s


def test_a_run_that_repeats_its_data_is_told_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tokens, offsets = corpus(LENGTHS * 10)
    np.save(tmp_path / "train_tokens.npy", tokens)
    np.save(tmp_path / "train_offsets.npy", offsets)
    profile = Profile("t", max_seq_len=16, vocab_size=0, eval_tokens=16, eval_batch_size=1)
    loader = make_dataloader(None, 4, 16, "train", data=PreparedData(tmp_path, "synthetic", profile, "none"))
    said: list[tuple[int, str]] = []
    served = 0
    while served < (PASSES_BEFORE_NOTE + 4) * len(tokens):
        y = next(loader)[1]
        served += int((y != IGNORE).sum())
        if out := capsys.readouterr().out:
            said.append((served, out))
    [(when, out)] = said
    assert PASSES_BEFORE_NOTE * len(tokens) < when <= PASSES_BEFORE_NOTE * len(tokens) + 4 * 16, \
        "said with the batch that starts the third pass, and never again"
    said_line = (rf"NOTE: training data seen {PASSES_BEFORE_NOTE} times in \d+ s "
                 rf"\({len(tokens):,} tokens of synthetic\): "
                 r"val_bpb measures memorisation; use AUTORESEARCH_DATA=climbmix on a GPU\n")
    assert re.fullmatch(said_line, out), out


def test_the_validation_loader_never_says_so(tiny_data: PreparedData, capsys: pytest.CaptureFixture[str]) -> None:
    loader = make_dataloader(None, 2, 64, "val", data=tiny_data)
    for _ in range(3 * len(tiny_data.val_rows[0])):
        next(loader)
    assert capsys.readouterr().out == ""


def test_climbmix_is_told_to_download_more_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORESEARCH_SHARDS", "10")
    assert repeat_note(2, 6.4, 2_700_000, "climbmix") == (
        "training data seen 2 times in 6 s (2,700,000 tokens of climbmix): val_bpb measures memorisation; "
        "download more shards: AUTORESEARCH_SHARDS=N (now 10)")


# A target that only reads batches, past the line, through the frozen loader on the prepared data
REPEATER = """
from pytest_autoresearch.lm.dataloader import make_dataloader
from pytest_autoresearch.lm.dataset import prepare

loader = make_dataloader(None, 64, 64, "train", data=prepare())
epoch = 1
while epoch <= {passes}:
    epoch = next(loader)[2]
print("---")
print("score: 1.0")
"""


@pytest.mark.usefixtures("lm_env")
def test_the_loaders_note_reaches_the_verdict(project: Project) -> None:
    project.bench()
    project.unseal()  # the target prepares its own data cache: a sealed run is served one
    project.train(None, "reads its data 4 times", body=REPEATER.format(passes=PASSES_BEFORE_NOTE + 2))
    result = project.run("-q")
    result.assert_outcomes(passed=1)
    [line] = [line for line in result.outlines if line.startswith("autoresearch: ")]
    said = (rf" \| train.py: training data seen {PASSES_BEFORE_NOTE} times in \d+ s \([\d,]+ tokens of folder-\w+\): "
            r"val_bpb measures memorisation; use AUTORESEARCH_DATA=climbmix on a GPU(?: \| |$)")
    assert re.search(said, line), line
    log = project.path / ".git" / "autoresearch" / "runs" / f"{project.runs()[-1].run_id}.log"
    assert log.read_text().count("NOTE: ") == 1, "printed once in the run's log"
