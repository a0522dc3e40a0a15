"""Fetch files over HTTP into the cache: retries with backoff, `.tmp` + rename, no partial files.

Only the downloaded sources (`climbmix`, `tinystories`) come here; the default `pystdlib`
source never touches the network, and the error for a missing network says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ATTEMPTS = 5
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched after every attempt."""


def download(url: str, dest: Path, *, attempts: int = ATTEMPTS, backoff: float = 2.0, timeout: float = 30.0) -> Path:
    """Fetch `url` to `dest` unless it is already there; retry failures with exponential backoff.

    The body streams into `dest.tmp`, renamed only once complete, so an interrupted run never
    leaves a file that looks finished.
    """
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, CHUNK)
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError) as exc:  # HTTPError is a URLError
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the response's socket
            last = exc
            tmp.unlink(missing_ok=True)
            print(f"  attempt {attempt}/{attempts} for {dest.name} failed: {exc}", file=sys.stderr, flush=True)
            if attempt < attempts:
                time.sleep(backoff * 2 ** (attempt - 1))
    raise DownloadError(
        f"could not download {url} after {attempts} attempts ({last}). "
        "Without network access use the embedded data: AUTORESEARCH_DATA=pystdlib (the default)"
    )
