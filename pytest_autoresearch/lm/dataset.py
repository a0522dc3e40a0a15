"""Prepare a source for one profile, once: tokenizer, token arrays, pinned evaluation rows, fingerprint.

Everything lands in one cache folder named by source, profile and content, written to a
temporary folder and renamed when complete, so a killed preparation never looks finished
and a second call costs only the load. The fingerprint hashes the validation rows, the
tokenizer and the constants: it names what a val_bpb was measured on. A held-out split
about the size of val (the source's own, else every k-th document of its train split) is
tokenized into rows that no training path serves: the scorer compares val_bpb with it to
detect training on val. A sealed run is served one prepared folder without its scored rows
(:func:`sealed`): AUTORESEARCH_PREPARED names it, and prepare() then loads it as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pytest_autoresearch.lm import profiles
from pytest_autoresearch.lm.packing import validation_rows
from pytest_autoresearch.lm.profiles import Profile
from pytest_autoresearch.lm.sources import Source, get_source
from pytest_autoresearch.lm.tokenizer import SPLIT_PATTERN, Tokenizer

FORMAT_VERSION = 3  # bump when the cache layout or the preparation changes meaning (2: held-out split, 3: pystdlib's from test/)
SPLITS = ("train", "val", "heldout")
PREPARED_ENV = "AUTORESEARCH_PREPARED"  # set for a sealed run: the one prepared folder it is served
SCORED_FILES = ("val_*", "heldout_*")  # the scored rows and the tokens they are cut from
Progress = Callable[[str], None]
_MEMO: dict[tuple[str, Profile, Path], PreparedData] = {}  # per-process: train.py asks three times


def _stderr(message: str) -> None:
    print(f"autoresearch: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PreparedData:
    """A prepared dataset on disk; arrays load lazily (memory-mapped)."""

    directory: Path
    source: str
    profile: Profile
    fingerprint: str

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return Tokenizer.load(self.directory)

    @cached_property
    def token_bytes(self) -> np.ndarray:
        return np.asarray(np.load(self.directory / "token_bytes.npy"))

    def tokens(self, split: str) -> np.ndarray:
        """All tokens of `split` back to back, each document opening with BOS."""
        tokens: np.ndarray = np.load(self.directory / f"{split}_tokens.npy", mmap_mode="r")
        return tokens

    def offsets(self, split: str) -> np.ndarray:
        """Document boundaries in tokens(split): document i is tokens[offsets[i]:offsets[i+1]]."""
        return np.asarray(np.load(self.directory / f"{split}_offsets.npy"))

    @cached_property
    def val_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The pinned evaluation rows: inputs and targets (N, T), -1 where a target is not scored."""
        return np.load(self.directory / "val_inputs.npy"), np.load(self.directory / "val_targets.npy")

    @cached_property
    def heldout_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows like val_rows from the held-out split: only the scorer reads them (leakage check)."""
        return np.load(self.directory / "heldout_inputs.npy"), np.load(self.directory / "heldout_targets.npy")

    def identity(self) -> dict[str, str]:
        """What a result depends on beyond the frozen files: data, profile, budget."""
        return {
            "dataset": self.fingerprint,
            "source": self.source,
            "profile": self.profile.name,
            "time_budget": f"{profiles.time_budget():g}",
            "lm_kit": kit_digest(),
        }


def kit_digest() -> str:
    """Hash of this kit's own source: a changed loader or evaluator is a different evaluation."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def prepare(
    source: str | Source | None = None,
    profile: Profile | None = None,
    cache: Path | None = None,
    progress: Progress = _stderr,
) -> PreparedData:
    """Return the prepared data for `source` × `profile`, building it first if the cache lacks it.

    Repeated calls in one process with the same arguments return the same object.
    """
    served = os.environ.get(PREPARED_ENV, "").strip()
    if served and source is None and profile is None and cache is None:
        return _served(Path(served))
    profile = profile or profiles.active_profile()
    cache = cache or profiles.cache_root()
    src = get_source(source or profiles.source_name(), cache) if source is None or isinstance(source, str) else source
    memo_key = (src.name, profile, cache)
    if isinstance(source, (str, type(None))) and memo_key in _MEMO:
        return _MEMO[memo_key]
    digest = src.fetch()
    key = hashlib.sha256(f"{FORMAT_VERSION}|{digest}|{asdict(profile)}|{SPLIT_PATTERN}".encode()).hexdigest()[:16]
    directory = cache / f"{src.name}-{profile.name}-{key}"
    if not (directory / "meta.json").exists():
        _build(src, profile, directory, progress)
    meta = json.loads((directory / "meta.json").read_text())
    data = PreparedData(directory, src.name, profile, meta["fingerprint"])
    if isinstance(source, (str, type(None))):
        _MEMO[memo_key] = data
    return data


def _served(directory: Path) -> PreparedData:
    """The prepared folder a sealed run is served, as it is: no source to fetch, nothing to build."""
    profile = profiles.active_profile()
    meta = json.loads((directory / "meta.json").read_text())
    if meta["profile"] != asdict(profile):
        raise ValueError(f"{PREPARED_ENV}={directory} was prepared for profile {meta['profile']['name']}, "
                         f"not {profile.name}")
    return PreparedData(directory, meta["source"], profile, meta["fingerprint"])


def sealed(source: str | None = None, cache: Path | None = None) -> dict[str, Any]:
    """What a sealed train.py is served, for the plugin's seal hook: the prepared folder without its
    scored rows, and not the documents those rows come from (nor the raw downloads)."""
    cache = cache or profiles.cache_root()
    data = prepare(source, cache=cache)
    src = get_source(source or profiles.source_name(), cache)
    hide = [p for pattern in SCORED_FILES for p in data.directory.glob(pattern)]
    return {"read": [str(data.directory)], "hide": [str(p) for p in [*hide, *src.private_paths()]],
            "env": {PREPARED_ENV: str(data.directory)}}


def _build(src: Source, profile: Profile, directory: Path, progress: Progress) -> None:
    started = time.monotonic()
    tmp = directory.with_name(f"{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"preparing {src.name} for profile {profile.name} in {directory} (first use only)")
    progress(f"training a {profile.vocab_size}-token BPE tokenizer ...")
    every = 0 if "heldout" in src.splits else heldout_every(src)
    tokenizer = Tokenizer.train(split_documents(src, "train", every), profile.vocab_size)
    tokenizer.save(tmp)
    token_bytes = tokenizer.token_bytes()
    np.save(tmp / "token_bytes.npy", token_bytes)
    for split in SPLITS:
        tokens, offsets = _tokenize(split_documents(src, split, every), split, tokenizer, progress)
        np.save(tmp / f"{split}_tokens.npy", tokens)
        np.save(tmp / f"{split}_offsets.npy", offsets)
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "heldout"):
        rows[split] = validation_rows(np.load(tmp / f"{split}_tokens.npy"), np.load(tmp / f"{split}_offsets.npy"), profile)
        np.save(tmp / f"{split}_inputs.npy", rows[split][0])
        np.save(tmp / f"{split}_targets.npy", rows[split][1])
    targets = rows["val"][1]
    fingerprint = hashlib.sha256()
    for part in (*rows["val"], token_bytes, *rows["heldout"]):
        fingerprint.update(np.ascontiguousarray(part).tobytes())
    fingerprint.update(repr(sorted(tokenizer.enc._mergeable_ranks.items())).encode())
    fingerprint.update(json.dumps({"source": src.name, **asdict(profile)}, sort_keys=True).encode())
    meta = {"fingerprint": fingerprint.hexdigest()[:16], "source": src.name, "profile": asdict(profile),
            "val_scored_tokens": int((targets >= 0).sum()), "heldout_every": every,
            "seconds": round(time.monotonic() - started, 1)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.replace(tmp, directory)
    except OSError:  # another process finished the same preparation first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    progress(f"prepared in {time.monotonic() - started:.0f}s: {meta['val_scored_tokens']:,} val tokens scored")


def heldout_every(src: Source) -> int:
    """k such that every k-th train document makes a held-out split with about as many documents as val."""
    train, val = (sum(1 for _ in src.documents(split)) for split in ("train", "val"))
    return max(2, round((train + val) / max(val, 1)))


def split_documents(src: Source, split: str, every: int | None = None) -> Iterator[str]:
    """The documents of a prepared split: the source's own, else "heldout" takes every `every`-th of
    the source's train split."""
    if split == "val" or "heldout" in src.splits:
        return src.documents(split)
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    every = every or heldout_every(src)
    held = split == "heldout"
    return (text for i, text in enumerate(src.documents("train")) if (i % every == every - 1) == held)


def _tokenize(documents: Iterator[str], split: str, tokenizer: Tokenizer,
              progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Encode every document of `split` with a leading BOS, concatenated, plus its offsets."""
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 1 << 16 else np.uint32
    chunks: list[np.ndarray] = []
    lengths: list[int] = []
    batch: list[str] = []
    done = False
    while not done:
        batch.clear()
        for text in documents:
            batch.append(text)
            if len(batch) == 256:
                break
        done = len(batch) < 256
        for ids in tokenizer.encode_batch(batch, prepend=tokenizer.bos_token_id):
            chunks.append(np.asarray(ids, dtype=dtype))
            lengths.append(len(ids))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    progress(f"{split}: {len(lengths):,} documents, {offsets[-1]:,} tokens")
    return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)), offsets
