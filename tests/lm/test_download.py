"""Downloads from a local HTTP server on 127.0.0.1: retries, .tmp + rename, offline errors; climbmix end to end."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_autoresearch.lm.download import DownloadError, download
from pytest_autoresearch.lm.sources import ClimbMix, TinyStories
from tests.lm.lm_fixtures import STDLIB, TINY


class Server:
    """Serves `files` by name; answers 500 to the first `failures[name]` requests for a name."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                server.requests[name] += 1
                if server.failures[name] > 0:
                    server.failures[name] -= 1
                    self.send_error(500, "flaky")
                elif name in server.files:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(server.files[name])))
                    self.end_headers()
                    self.wfile.write(server.files[name])
                else:
                    self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_download_writes_the_file_once(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = b"x" * 100_000
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", backoff=0)
    assert dest.read_bytes() == server.files["a.bin"]
    download(f"{server.url}/a.bin", tmp_path / "a.bin", backoff=0)
    assert server.requests["a.bin"] == 1, "a finished file is not fetched again"


def test_a_failed_attempt_is_retried(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server.files["b.bin"] = b"payload"
    server.failures["b.bin"] = 2
    assert download(f"{server.url}/b.bin", tmp_path / "b.bin", backoff=0).read_bytes() == b"payload"
    assert server.requests["b.bin"] == 3
    assert "attempt 2/5 for b.bin failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "b.bin"], "no .tmp file is left behind"


def test_giving_up_leaves_nothing_and_names_the_offline_default(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="AUTORESEARCH_DATA=pystdlib"):
        download(f"{server.url}/missing.bin", tmp_path / "missing.bin", attempts=2, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_no_network_names_the_offline_default(tmp_path: Path) -> None:
    s = Server()  # bound but never served, then closed: connections are refused
    url = s.url
    s.httpd.server_close()
    with pytest.raises(DownloadError, match="pystdlib"):
        download(f"{url}/x.bin", tmp_path / "x.bin", attempts=1, backoff=0, timeout=2)


def test_tinystories_downloads_and_splits_stories(server: Server, tmp_path: Path) -> None:
    server.files["TinyStoriesV2-GPT4-train.txt"] = b"Once upon a time.<|endoftext|>\nThe end.\n<|endoftext|>"
    server.files["TinyStoriesV2-GPT4-valid.txt"] = "A valid story, caf\u00e9.<|endoftext|>".encode()
    server.failures["TinyStoriesV2-GPT4-valid.txt"] = 1
    source = TinyStories(tmp_path, base_url=server.url, backoff=0)
    assert len(source.fetch()) == 64
    assert list(source.documents("train")) == ["Once upon a time.", "The end."]
    assert list(source.documents("val")) == ["A valid story, caf\u00e9."]


def test_climbmix_fetches_train_shards_and_the_pinned_val_shard(server: Server, tmp_path: Path) -> None:
    names = ["shard_00000.parquet", "shard_00001.parquet", "shard_06542.parquet"]
    for name in names:
        server.files[name] = name.encode()
    server.failures["shard_00001.parquet"] = 1
    source = ClimbMix(tmp_path, base_url=server.url, num_train=2, backoff=0)
    source.fetch()
    assert sorted(p.name for p in source.dir.iterdir()) == names
    assert source.shard_names("val") == ["shard_06542.parquet"]
    assert server.requests["shard_00001.parquet"] == 2


def write_shard(path: Path, texts: list[str], pa: Any, pq: Any) -> bytes:
    """A parquet shard shaped like climbmix's: a `text` column beside others, several row groups."""
    table = pa.table({"id": list(range(len(texts))), "text": texts, "score": [0.5] * len(texts)})
    pq.write_table(table, path, row_group_size=4)
    return path.read_bytes()


def python_files(package: str) -> list[str]:
    texts = (p.read_text(encoding="utf-8") for p in sorted((STDLIB / package).rglob("*.py")))
    return list(dict.fromkeys(t for t in texts if t.strip()))


def test_climbmix_end_to_end_from_parquet_shards_served_over_http(server: Server, tmp_path: Path) -> None:
    """Download, shards, prepare(): the tokenizer and the training split come from the training
    shards, the validation rows from the pinned last shard and nothing else."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from pytest_autoresearch.lm.dataset import prepare
    from pytest_autoresearch.lm.packing import validation_rows

    train, val = python_files("email"), python_files("json")
    half = len(train) // 2
    shards = {"shard_00000.parquet": train[:half], "shard_00001.parquet": train[half:], "shard_06542.parquet": val}
    (tmp_path / "served").mkdir()
    for name, texts in shards.items():
        server.files[name] = write_shard(tmp_path / "served" / name, texts, pa, pq)
    server.failures["shard_06542.parquet"] = 1  # the pinned shard arrives on the second attempt
    cache = tmp_path / "cache"

    data = prepare(ClimbMix(cache, base_url=server.url, num_train=2, backoff=0), TINY, cache, progress=lambda m: None)

    assert set(server.requests) == set(shards), "the two training shards and the pinned one, nothing else"
    assert sorted(p.name for p in (cache / "raw" / "climbmix").iterdir()) == sorted(shards)
    assert data.source == "climbmix" and data.profile == TINY
    tokenizer = data.tokenizer

    def documents(split: str) -> list[str]:
        tokens, offsets = data.tokens(split), data.offsets(split)
        assert all(tokens[o] == tokenizer.get_bos_token_id() for o in offsets[:-1]), "each document opens with BOS"
        return [tokenizer.decode(tokens[a + 1 : b].tolist()) for a, b in zip(offsets[:-1], offsets[1:])]

    assert documents("val") == val, "validation is the pinned shard, every document whole and in order"
    trained, heldout = documents("train"), documents("heldout")
    assert heldout and not set(trained) & set(heldout)
    assert sorted(trained + heldout) == sorted(train), "the training shards, all of them, split once"
    pinned = validation_rows(data.tokens("val"), data.offsets("val"), TINY)
    assert all((a == b).all() for a, b in zip(data.val_rows, pinned)), "the scored rows come from that shard"
    assert data.val_rows[0].shape == (TINY.eval_tokens // TINY.max_seq_len, TINY.max_seq_len)

    again = prepare(ClimbMix(cache, base_url=server.url, num_train=2, backoff=0), TINY, cache, progress=lambda m: None)
    assert again.directory == data.directory and again.fingerprint == data.fingerprint
    assert sum(server.requests.values()) == 4, "the cache answers the second time: no request"
