"""Text sources: where documents come from and which ones are held out for validation.

`pystdlib` (default) is the running interpreter's own standard library, `.py` files only:
present on every machine, no network. Its scored files (validation and held-out) are picked
by path hash among its `test/` suites only, which the interpreter never imports at run time,
so a sealed run can be kept from reading them without breaking Python. A folder path instead
of a name trains on that folder's `.py` files, 1 in 4 of them (by path hash) validation.
The split is pinned by paths alone and needs no list. `tinystories` and
`climbmix` (Karpathy's parquet shards, last shard pinned for validation) are downloaded
into the cache on first use; AUTORESEARCH_DATA_URL points them at a mirror.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from pytest_autoresearch.lm.download import download

URL_ENV = "AUTORESEARCH_DATA_URL"
SHARDS_ENV = "AUTORESEARCH_SHARDS"
DEFAULT_SHARDS = 10  # climbmix training shards unless AUTORESEARCH_SHARDS says otherwise
SPLITS: tuple[str, ...] = ("train", "val")


class Source(Protocol):
    """A corpus split into train and val documents (and held-out ones, when ``splits`` names them)."""

    name: str
    splits: tuple[str, ...]  # SPLITS, or SPLITS + ("heldout",) for a source that picks its own held-out documents

    def fetch(self) -> str:
        """Make the raw data available locally; return a digest naming exactly this content."""
        ...

    def documents(self, split: str) -> Iterator[str]:
        """The documents of `split` (one of ``splits``) in a fixed order."""
        ...

    def private_paths(self) -> list[Path]:
        """The files scored rows come from: a sealed run may not read them."""
        ...


class SourceFiles:
    """The `.py` files under a folder; 1 in `val_every` files (by path hash) is scored.

    Without ``scored_under`` the scored files are validation (the held-out split is then cut from
    train by the dataset). With it, only files under that top-level folder are scored, and they
    are split between validation and held-out by the hash too.
    """

    def __init__(self, root: Path, name: str, val_every: int = 20, scored_under: str | None = None) -> None:
        self.root = Path(root)
        self.name = name
        self.val_every = val_every
        self.scored_under = scored_under
        self.splits = SPLITS if scored_under is None else (*SPLITS, "heldout")
        self._docs: dict[str, list[str]] | None = None

    def _paths(self) -> list[Path]:
        """The .py files under root, installed packages and caches left out unwalked (site-packages
        alone can hold 50,000 files: 0.8 s a call here, where the rest takes 0.03 s)."""
        skip = {"site-packages", "dist-packages", "__pycache__"}
        found: list[Path] = []
        for folder, dirs, files in os.walk(self.root):  # like rglob: symlinked folders are not entered
            dirs[:] = [d for d in dirs if d not in skip]
            found.extend(Path(folder) / name for name in files if name.endswith(".py"))
        return sorted(found)

    def _load(self) -> dict[str, list[str]]:
        if self._docs is None:
            docs: dict[str, list[str]] = {split: [] for split in self.splits}
            for path in self._paths():
                try:
                    text = path.read_bytes().decode("utf-8")
                except (UnicodeDecodeError, OSError):
                    continue  # a few test fixtures are deliberately not UTF-8
                if text.strip():
                    docs[self.split_of(path.relative_to(self.root).as_posix())].append(text)
            self._docs = docs
        return self._docs

    def split_of(self, rel: str) -> str:
        """The split a file belongs to, from its path alone."""
        h = int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16)
        if self.scored_under is None:
            return "val" if h % self.val_every == 0 else "train"
        if rel.split("/")[0] != self.scored_under or h % self.val_every:
            return "train"
        return "val" if (h // self.val_every) % 2 == 0 else "heldout"

    def private_paths(self) -> list[Path]:
        """The scored files; a folder that is not the interpreter's own is private as a whole."""
        if self.scored_under is None:
            return [self.root]
        return [p for p in self._paths() if self.split_of(p.relative_to(self.root).as_posix()) != "train"]

    def fetch(self) -> str:
        """Digest of the file list with sizes and modification times: cheap, and changes with any edit."""
        digest = hashlib.sha256(f"{self.root}|{self.val_every}|{self.scored_under}".encode())
        for path in self._paths():
            stat = path.stat()
            digest.update(f"{path.relative_to(self.root).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def documents(self, split: str) -> Iterator[str]:
        return iter(self._load()[split])


class TinyStories:
    """Ronen Eldan's TinyStories (GPT-4 v2 files), stories separated by <|endoftext|>."""

    name = "tinystories"
    splits = SPLITS
    base_url = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
    files = {"train": "TinyStoriesV2-GPT4-train.txt", "val": "TinyStoriesV2-GPT4-valid.txt"}

    def __init__(self, cache: Path, base_url: str | None = None, backoff: float = 2.0) -> None:
        self.dir = cache / "raw" / self.name
        self.base_url = (base_url or os.environ.get(URL_ENV) or self.base_url).rstrip("/")
        self.backoff = backoff

    def fetch(self) -> str:
        for filename in self.files.values():
            download(f"{self.base_url}/{filename}", self.dir / filename, backoff=self.backoff)
        return hashlib.sha256(repr(sorted(self.files.values())).encode()).hexdigest()

    def private_paths(self) -> list[Path]:
        return [self.dir]  # a sealed run is served tokens, never the raw text

    def documents(self, split: str) -> Iterator[str]:
        text = (self.dir / self.files[split]).read_text(encoding="utf-8")
        return (story.strip() for story in text.split("<|endoftext|>") if story.strip())


class ClimbMix:
    """Karpathy's climbmix-400b-shuffle parquet shards; the last shard is the pinned validation set."""

    name = "climbmix"
    splits = SPLITS
    base_url = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
    max_shard = 6542
    val_shard = 6542

    def __init__(self, cache: Path, base_url: str | None = None, num_train: int | None = None, backoff: float = 2.0) -> None:
        self.dir = cache / "raw" / self.name
        self.base_url = (base_url or os.environ.get(URL_ENV) or self.base_url).rstrip("/")
        self.num_train = num_train if num_train is not None else train_shards()
        self.backoff = backoff

    def shard_names(self, split: str) -> list[str]:
        ids = [self.val_shard] if split == "val" else range(min(self.num_train, self.max_shard))
        return [f"shard_{i:05d}.parquet" for i in ids]

    def fetch(self) -> str:
        names = self.shard_names("train") + self.shard_names("val")
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda n: download(f"{self.base_url}/{n}", self.dir / n, backoff=self.backoff), names))
        return hashlib.sha256(repr(names).encode()).hexdigest()

    def private_paths(self) -> list[Path]:
        return [self.dir]  # a sealed run is served tokens, never the raw shards

    def documents(self, split: str) -> Iterator[str]:
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError:
            raise RuntimeError("reading climbmix shards needs pyarrow (part of the lm extra): pip install pyarrow") from None
        for name in self.shard_names(split):
            table = pq.ParquetFile(self.dir / name)
            for group in range(table.num_row_groups):
                yield from table.read_row_group(group, columns=["text"]).column("text").to_pylist()


def train_shards() -> int:
    """How many climbmix training shards to download: AUTORESEARCH_SHARDS, else DEFAULT_SHARDS."""
    return int(os.environ.get(SHARDS_ENV, DEFAULT_SHARDS))


def pystdlib() -> SourceFiles:
    """The running interpreter's standard library: the embedded, offline default."""
    return SourceFiles(Path(sysconfig.get_paths()["stdlib"]), "pystdlib", val_every=5, scored_under="test")


def get_source(name: str, cache: Path) -> Source:
    """The source called `name` (or the folder at that path), with downloads going under `cache`."""
    if name == "pystdlib":
        return pystdlib()
    if os.sep in name or Path(name).is_dir():
        root = Path(name).expanduser().resolve()
        if not root.is_dir():
            raise ValueError(f"data source {name!r} is not a folder")
        return SourceFiles(root, f"folder-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}", val_every=4)
    if name == "tinystories":
        return TinyStories(cache)
    if name == "climbmix":
        return ClimbMix(cache)
    raise ValueError(f"unknown data source {name!r}; use pystdlib (offline), tinystories, climbmix or a folder path")
