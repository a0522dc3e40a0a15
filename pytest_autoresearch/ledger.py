"""The results ledger: an append-only TSV of every judged run, shared by all runs of a repository.

Karpathy's five columns come first (commit, value, memory_gb, status, description) so the
file reads like his results.tsv. A run is written ahead as ``running`` and completed by a
second line with the same run id; readers fold lines by run id, so a run that never
completed still shows up (as ``crash`` once its process is gone). Appends happen under a
file lock and never rewrite earlier lines; a corrupt line is skipped with a warning.
"""

from __future__ import annotations

import json
import math
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

COLUMNS: tuple[str, ...] = (
    "commit",
    "value",
    "memory_gb",
    "status",
    "description",
    "metric",
    "test",
    "branch",
    "identity",
    "run_id",
    "measurement",
    "sha",
    "duration_s",
    "timestamp",
    "host",
    "pid",
    "extra",
)
STATUSES = frozenset({"running", "keep", "discard", "crash", "timeout", "baseline"})
FINAL_STATUSES = STATUSES - {"running"}
LOCK_TIMEOUT_S = 120.0


class LedgerWarning(UserWarning):
    """A ledger line could not be read and was skipped; the rest of the ledger is intact."""


@dataclass(frozen=True)
class Entry:
    """One run (or one line of it: a ``running`` line is completed by a later one)."""

    run_id: str
    status: str
    commit: str = ""
    sha: str = ""
    value: float | None = None
    memory_gb: float | None = None
    description: str = ""
    metric: str = ""
    test: str = ""
    branch: str = ""
    identity: str = ""
    measurement: str = ""
    duration_s: float | None = None
    timestamp: str = field(default_factory=lambda: now_iso())
    host: str = field(default_factory=socket.gethostname)
    pid: int | None = field(default_factory=os.getpid)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def finished(self, **changes: Any) -> Entry:
        """The completing line of this run, stamped now."""
        return replace(self, timestamp=now_iso(), **changes)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def clean_text(text: str) -> str:
    """Make free text safe for one TSV cell: no tabs, no line breaks."""
    return " ".join(text.replace("\t", " ").splitlines()).strip()


def _format_number(value: float | None) -> str:
    if value is None:
        return ""
    return repr(float(value)) if math.isfinite(value) else str(value)


def format_line(entry: Entry) -> str:
    cells = {
        **{k: clean_text(str(v)) for k, v in asdict(entry).items() if isinstance(v, str)},
        "value": _format_number(entry.value),
        "memory_gb": "" if entry.memory_gb is None else f"{entry.memory_gb:.1f}",
        "duration_s": "" if entry.duration_s is None else f"{entry.duration_s:.1f}",
        "pid": "" if entry.pid is None else str(entry.pid),
        "extra": json.dumps(dict(entry.extra), sort_keys=True) if entry.extra else "",
    }
    return "\t".join(cells[name] for name in COLUMNS) + "\n"


def _optional_float(text: str) -> float | None:
    return float(text) if text else None


def parse_line(header: tuple[str, ...], line: str) -> Entry:
    """Parse one data line; raises ValueError when the line is not a complete, sane row."""
    cells = line.rstrip("\n").split("\t")
    if len(cells) != len(header):
        raise ValueError(f"expected {len(header)} fields, found {len(cells)}")
    raw = dict(zip(header, cells))
    status = raw.get("status", "")
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if not raw.get("run_id"):
        raise ValueError("no run_id")
    extra = json.loads(raw["extra"]) if raw.get("extra") else {}
    if not isinstance(extra, dict):
        raise ValueError("extra is not a JSON object")
    return Entry(
        run_id=raw["run_id"],
        status=status,
        commit=raw.get("commit", ""),
        sha=raw.get("sha", ""),
        value=_optional_float(raw.get("value", "")),
        memory_gb=_optional_float(raw.get("memory_gb", "")),
        description=raw.get("description", ""),
        metric=raw.get("metric", ""),
        test=raw.get("test", ""),
        branch=raw.get("branch", ""),
        identity=raw.get("identity", ""),
        measurement=raw.get("measurement", ""),
        duration_s=_optional_float(raw.get("duration_s", "")),
        timestamp=raw.get("timestamp", ""),
        host=raw.get("host", ""),
        pid=int(raw["pid"]) if raw.get("pid") else None,
        extra=extra,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_alive(entry: Entry) -> bool:
    """Whether the pytest process that wrote a ``running`` line, or its watchdog, is still there."""
    if entry.host != socket.gethostname():
        return False
    pids = [entry.pid, entry.extra.get("watchdog")]
    return any(isinstance(pid, int) and _pid_alive(pid) for pid in pids)


class Ledger:
    """An append-only TSV ledger with a file lock beside it (``<path>.lock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ledger lock: use around read-judge-append so no other run judges in between."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    def append(self, *entries: Entry) -> None:
        """Append whole lines under the lock, after mending a torn last line if there is one."""
        with self.locked():
            with open(self.path, "a+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                prefix = b""
                if size == 0:
                    prefix = ("\t".join(COLUMNS) + "\n").encode()
                else:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        prefix = b"\n"
                body = "".join(format_line(e) for e in entries).encode()
                fh.write(prefix + body)
                fh.flush()
                os.fsync(fh.fileno())

    def lines(self) -> list[Entry]:
        """Every readable line in file order; unreadable ones are skipped with a LedgerWarning."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        raw_lines = text.split("\n")
        complete = raw_lines[:-1]
        if raw_lines[-1]:
            warnings.warn(
                LedgerWarning(f"{self.path}: last line is truncated (skipped)"), stacklevel=2
            )
        if not complete:
            return []
        header = tuple(complete[0].split("\t"))
        body_start = 1
        if "status" not in header or "run_id" not in header:
            warnings.warn(
                LedgerWarning(f"{self.path}:1: no header line; assuming the standard columns"),
                stacklevel=2,
            )
            header, body_start = COLUMNS, 0
        entries = []
        for number, line in enumerate(complete[body_start:], start=body_start + 1):
            if not line.strip():
                continue
            try:
                entries.append(parse_line(header, line))
            except (ValueError, KeyError, TypeError) as exc:
                warnings.warn(
                    LedgerWarning(f"{self.path}:{number}: corrupt line skipped ({exc})"),
                    stacklevel=2,
                )
        return entries

    def runs(self) -> list[Entry]:
        """One entry per run, in order of first appearance, each at its latest line.

        A run still ``running`` whose process is gone never completed (killed, ``os._exit``):
        it is reported as ``crash``.
        """
        latest: dict[str, Entry] = {}
        for entry in self.lines():
            latest[entry.run_id] = entry
        return [resolve_orphan(e) for e in latest.values()]


    @property
    def identities_path(self) -> Path:
        """Beside the ledger: what each evaluation identity was made of, to say what changed."""
        return self.path.with_name(self.path.stem + ".identities.jsonl")

    def identity_parts(self, digest: str) -> dict[str, str]:
        try:
            text = self.identities_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                record = json.loads(line)
                if record["identity"] == digest:
                    return {str(k): str(v) for k, v in record["parts"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                warnings.warn(
                    LedgerWarning(f"{self.identities_path}:{number}: corrupt line skipped"),
                    stacklevel=2,
                )
        return {}

    def register_identity(self, digest: str, parts: Mapping[str, str]) -> None:
        with self.locked():
            if self.identity_parts(digest):
                return
            line = json.dumps({"identity": digest, "parts": dict(parts)}, sort_keys=True)
            with open(self.identities_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def resolve_orphan(entry: Entry) -> Entry:
    if entry.status == "running" and not _process_alive(entry):
        return replace(entry, status="crash", extra={**entry.extra, "reason": "never completed"})
    return entry


def filter_runs(
    runs: Iterable[Entry],
    *,
    statuses: Iterable[str] | None = None,
    test: str | None = None,
    metric: str | None = None,
    identity: str | None = None,
) -> list[Entry]:
    wanted = set(statuses) if statuses is not None else None
    return [
        r
        for r in runs
        if (wanted is None or r.status in wanted)
        and (test is None or r.test == test)
        and (metric is None or r.metric == metric)
        and (identity is None or r.identity == identity)
    ]
