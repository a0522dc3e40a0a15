"""Downloads against a local HTTP server on 127.0.0.1: retries, .tmp + rename, a clear offline error."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_autoresearch.lm.download import DownloadError, download
from pytest_autoresearch.lm.sources import ClimbMix, TinyStories


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
