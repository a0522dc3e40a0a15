"""The BPE tokenizer: round trip, byte lengths, special tokens, save and load."""

from __future__ import annotations

import pytest

pytest.importorskip("rustbpe")
pytest.importorskip("tiktoken")

from pytest_autoresearch.lm.dataset import PreparedData  # noqa: E402
from pytest_autoresearch.lm.tokenizer import BOS_TOKEN, SPECIAL_TOKENS, Tokenizer  # noqa: E402

SAMPLES = [
    "def f(x):\n    return x ** 2\n",
    "Unicode: 你好, émigré, 🐍 — and\ttabs\r\n",
    "",
    "   \n\n\n    leading and trailing spaces   ",
    "class A(B, metaclass=M):\n    '''doc'''\n    x: int = 0x1F\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(tiny_data: PreparedData, text: str) -> None:
    tokenizer = tiny_data.tokenizer
    assert tokenizer.decode(tokenizer.encode(text)) == text


@pytest.mark.parametrize("text", SAMPLES)
def test_token_bytes_add_up_to_the_text(tiny_data: PreparedData, text: str) -> None:
    ids = tiny_data.tokenizer.encode(text)
    assert int(tiny_data.token_bytes[ids].sum()) == len(text.encode("utf-8"))


def test_special_tokens_have_no_bytes(tiny_data: PreparedData) -> None:
    tokenizer = tiny_data.tokenizer
    specials = [tokenizer.enc.encode_single_token(name) for name in SPECIAL_TOKENS]
    assert tokenizer.bos_token_id == tokenizer.enc.encode_single_token(BOS_TOKEN)
    assert all(tiny_data.token_bytes[i] == 0 for i in specials)
    assert (tiny_data.token_bytes[: min(specials)] > 0).all()
    assert tokenizer.get_vocab_size() == len(tiny_data.token_bytes) <= tiny_data.profile.vocab_size


def test_special_token_text_is_encoded_as_ordinary_text(tiny_data: PreparedData) -> None:
    ids = tiny_data.tokenizer.encode(BOS_TOKEN)
    assert tiny_data.tokenizer.bos_token_id not in ids


def test_saved_tokenizer_loads_identically(tiny_data: PreparedData) -> None:
    loaded = Tokenizer.load(tiny_data.directory)
    for text in SAMPLES:
        assert loaded.encode(text) == tiny_data.tokenizer.encode(text)


def test_training_learns_merges_and_checks_itself() -> None:
    tokenizer = Tokenizer.train(["def foo(bar):\n    return bar\n"] * 50, vocab_size=300)
    assert len(tokenizer.encode("def foo(bar):")) < len("def foo(bar):")
    tokenizer.check_round_trip()
