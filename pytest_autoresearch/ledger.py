"""The results ledger: an append-only TSV of every judged run, shared by all runs of a repository.

Karpathy's five columns come first (commit, value, memory_gb, status, description) so the
file reads like his results.tsv. A run is written ahead as ``running`` and completed by a
second line with the same run id; readers fold lines by run id, so a run that never
completed still shows up (as ``crash`` once its process is gone). Appends happen under a
file lock and never rewrite earlier lines; a corrupt line is skipped with a warning. Each line
is sealed into a hash chain with the line before it and with its run log (:mod:`.chain`), so an
edit made by anything but the ledger shows.
"""

from __future__ import annotations

import json
import math
import os
import socket
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from filelock import FileLock
from pytest import PytestWarning

from . import chain, identity

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
STATUSES = frozenset({"running", "keep", "discard", "crash", "timeout", "interrupted", "accepted"})
# "accepted" (a person accepted a change to frozen files) was written "baseline" before 0.2
LEGACY_STATUSES = {"baseline": "accepted"}
LOCK_TIMEOUT_S = 120.0
EXTRA_AT = COLUMNS.index("extra")
TAIL_BYTES = 4096  # read back from the end for the last line: a row is a few hundred bytes


class LedgerWarning(PytestWarning):
    """A ledger line could not be read and was skipped; the rest of the ledger is intact."""


def _warn(message: str) -> None:
    warnings.warn(LedgerWarning(message), stacklevel=4)


@dataclass(slots=True)
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
        """The completing line of this run, stamped now unless ``timestamp`` says when it ended."""
        return replace(self, **{"timestamp": now_iso(), **changes})


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
        "commit": entry.commit, "sha": entry.sha, "status": entry.status,
        "description": clean_text(entry.description), "metric": clean_text(entry.metric),
        "test": clean_text(entry.test), "branch": clean_text(entry.branch),
        "identity": entry.identity, "run_id": entry.run_id, "measurement": entry.measurement,
        "timestamp": entry.timestamp, "host": clean_text(entry.host),
        "value": _format_number(entry.value),
        "memory_gb": "" if entry.memory_gb is None else f"{entry.memory_gb:.1f}",
        "duration_s": "" if entry.duration_s is None else f"{entry.duration_s:.1f}",
        "pid": "" if entry.pid is None else str(entry.pid),
        "extra": json.dumps(dict(entry.extra), sort_keys=True) if entry.extra else "",
    }
    return "\t".join(cells[name] for name in COLUMNS) + "\n"


ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def parse_line(header: tuple[str, ...], line: str) -> Entry:
    """Parse one data line; raises ValueError when the line is not a complete, sane row."""
    return _Parser(header)(line)


class _Parser:
    """Parses the lines of one file: the header's column positions are looked up once."""

    def __init__(self, header: tuple[str, ...]) -> None:
        self.width = len(header)
        # A column missing from an older or hand-made file reads as the empty cell past the end.
        self.missing = any(name not in header for name in ENTRY_FIELDS)
        self.header = header
        self.pick = itemgetter(*(self.column(n) for n in ENTRY_FIELDS))
        self.run_id_at = header.index("run_id")
        self.status_at = header.index("status")

    def column(self, name: str) -> int:
        """The cell index of a column; a missing one is the empty cell that ``padded`` adds."""
        return self.header.index(name) if name in self.header else self.width

    def padded(self, cells: list[str]) -> list[str]:
        return cells + [""] if self.missing else cells

    def __call__(self, line: str) -> Entry:
        return self.entry(line.rstrip("\n").split("\t"))

    def entry(self, cells: list[str]) -> Entry:
        if len(cells) != self.width:
            raise ValueError(f"expected {self.width} fields, found {len(cells)}")
        (run_id, status, commit, sha, value, memory_gb, description, metric, test, branch,
         identity, measurement, duration_s, timestamp, host, pid, extra) = self.pick(self.padded(cells))
        status = LEGACY_STATUSES.get(status, status)
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if not run_id:
            raise ValueError("no run_id")
        extra_obj = json.loads(extra) if extra else {}
        if not isinstance(extra_obj, dict):
            raise ValueError("extra is not a JSON object")
        extra_obj.pop(chain.KEY, None)  # the seal belongs to the line, not to the run: chain.verify reads it
        return Entry(
            run_id, status, commit, sha, float(value) if value else None,
            float(memory_gb) if memory_gb else None, description, metric, test, branch, identity,
            measurement, float(duration_s) if duration_s else None, timestamp, host,
            int(pid) if pid else None, extra_obj,
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
    """An append-only TSV ledger with a file lock beside it (``<path>.lock``).

    ``warn`` receives the message of each line that cannot be read (default: a
    :class:`LedgerWarning`); the plugin and the command line report them their own way.
    """

    @staticmethod
    def default_path(run_folder: Path) -> Path:
        """The ledger every run of a repository shares, in its run folder."""
        return run_folder / "ledger.tsv"

    def __init__(self, path: Path, warn: Callable[[str], None] = _warn, logs: Path | None = None) -> None:
        self.path = path
        self.logs = logs  # the run logs, <run_id>.log: a final row's log is sealed into its hash
        self._warn = warn
        self._lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ledger lock: use around read-judge-append so no other run judges in between."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    def append(self, *entries: Entry) -> None:
        """Append whole lines under the lock, after mending a torn last line if there is one.

        Each line is sealed to the one before it: only the file's last line is read for its hash.
        Run logs are hashed before the lock is taken (they are final once their row is).
        """
        logs = [self._log(e) for e in entries]
        with self.locked():
            with open(self.path, "a+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                prefix, prev = b"", ""
                if size == 0:
                    prefix = ("\t".join(COLUMNS) + "\n").encode()
                else:
                    last = _last_line(fh, size)
                    if last is None:
                        prefix = b"\n"
                    else:
                        cells = last.decode("utf-8", errors="replace").split("\t")
                        prev = chain.hash_of(cells[EXTRA_AT]) if len(cells) == len(COLUMNS) else ""
                lines = []
                for entry, (log, log_sha256) in zip(entries, logs):
                    line, prev = sealed_line(entry, prev, log, log_sha256)
                    lines.append(line)
                fh.write(prefix + "".join(lines).encode())
                fh.flush()
                os.fsync(fh.fileno())

    def _log(self, entry: Entry) -> tuple[str, str]:
        """A final row's run log, as its seal names it, and its digest; empty when it has none on disk."""
        if entry.status == "running":
            return "", ""
        named = entry.extra.get("log")
        candidates = [self.logs / f"{entry.run_id}.log"] if self.logs is not None else []
        candidates += [Path(named)] if isinstance(named, str) and named else []
        for path in candidates:
            digest = chain.file_digest(path)
            if digest is not None:
                return chain.log_name(path, self.path.parent), digest
        return "", ""

    def _read(self) -> tuple[_Parser, int, list[str]]:
        """The header's parser, the line number of the first data line, and the data lines.

        Lines stay strings until a run is selected: a list of a hundred thousand split rows
        is that many objects for the garbage collector to scan, which cost more than the
        parsing itself.
        """
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return _Parser(COLUMNS), 1, []
        lines = text.split("\n")
        if lines.pop():
            self._warn(f"{self.path}: last line is truncated (skipped)")
        if not lines:
            return _Parser(COLUMNS), 1, []
        header = tuple(lines[0].split("\t"))
        if "status" not in header or "run_id" not in header:
            self._warn(f"{self.path}:1: no header line; assuming the standard columns")
            return _Parser(COLUMNS), 1, lines
        return _Parser(header), 2, lines[1:]

    def _parse(self, parser: _Parser, number: int, cells: list[str]) -> Entry | None:
        try:
            return parser.entry(cells)
        except (ValueError, KeyError, TypeError) as exc:
            self._warn(f"{self.path}:{number}: corrupt line skipped ({exc})")
            return None

    def runs(self, statuses: Collection[str] | None = None, shas: Collection[str] | None = None,
             **equal: str) -> list[Entry]:
        """One entry per run, in order of first appearance, each at its latest readable line.

        ``statuses``, ``shas`` (e.g. a lineage: the commits a bar can come from) and ``equal``
        (column=value, e.g. ``test=...``) select runs before their lines are parsed, which
        keeps a long ledger fast to read. A run still ``running`` whose process is gone never
        completed (killed, ``os._exit``): it reads as ``crash``.
        """
        parser, first, lines = self._read()
        latest: dict[str, int] = {}  # run id -> index of its latest line; a key keeps its first position
        for index, line in enumerate(lines):
            if not line:
                continue
            cells = line.split("\t")
            if len(cells) != parser.width:
                self._warn(f"{self.path}:{first + index}: corrupt line skipped "
                           f"(expected {parser.width} fields, found {len(cells)})")
                continue
            latest[cells[parser.run_id_at]] = index
        wanted = None if statuses is None else set(statuses) | ({"running"} if "crash" in statuses else set())
        raw = None if wanted is None else wanted | {old for old, new in LEGACY_STATUSES.items() if new in wanted}
        legacy = self._digests()[1]
        pick = itemgetter(parser.status_at, parser.column("sha"), *(parser.column(name) for name in equal))
        values = [({value} - legacy.keys()) | {old for old, (new, _) in legacy.items() if new == value}
                  if name == "identity" else {value}  # the digests that read as this identity
                  for name, value in equal.items()]
        runs = []
        for run_id, index in latest.items():
            cells = lines[index].split("\t")
            status, sha, *others = pick(parser.padded(cells))
            if ((raw is not None and status not in raw) or (shas is not None and sha not in shas)
                    or not all(cell in allowed for cell, allowed in zip(others, values))):
                continue
            entry = self._parse(parser, first + index, cells) or self._earlier(parser, first, lines, run_id, index)
            if entry is not None:
                entry = resolve_orphan(_migrated(entry, legacy))
                if wanted is None or entry.status in wanted:
                    runs.append(entry)
        return runs

    def _earlier(self, parser: _Parser, first: int, lines: list[str], run_id: str, before: int) -> Entry | None:
        """The latest readable line of a run before a corrupt one (a rare, slow path)."""
        for index in range(before - 1, -1, -1):
            cells = lines[index].split("\t")
            if len(cells) == parser.width and cells[parser.run_id_at] == run_id:
                entry = self._parse(parser, first + index, cells)
                if entry is not None:
                    return entry
        return None

    @property
    def identities_path(self) -> Path:
        """Beside the ledger: what each recorded digest (an evaluation identity, a pytest surface) was made of."""
        return self.path.with_name(self.path.stem + ".identities.jsonl")

    def identity_parts(self, digest: str) -> dict[str, str]:
        """What the identity or surface ``digest`` was made of; empty when it was never recorded."""
        return dict(self._digests()[0].get(digest, {}))

    def _digests(self) -> tuple[dict[str, dict[str, str]], dict[str, tuple[str, str]]]:
        """The parts of every recorded digest; and each identity recorded before 0.3, which held the
        pytest surface too, as the (identity, surface) digests it stands for now."""
        try:
            text = self.identities_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}, {}
        table: dict[str, dict[str, str]] = {}
        legacy: dict[str, tuple[str, str]] = {}
        same: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                record = json.loads(line)
                if "same_as" in record:
                    same[str(record["identity"])] = str(record["same_as"])
                    continue
                digest, parts = str(record["identity"]), {str(k): str(v) for k, v in record["parts"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                self._warn(f"{self.identities_path}:{number}: corrupt line skipped")
                continue
            table.setdefault(digest, parts)
            if any(part in parts for part in identity.SURFACE):
                measured = identity.measured(parts)
                surface = {k: v for k, v in parts.items() if k in identity.SURFACE}
                legacy[digest] = (identity.digest(measured), identity.digest(surface))
                table.setdefault(legacy[digest][0], measured)
                table.setdefault(legacy[digest][1], surface)
        return table, {old: (same.get(measured, measured), surface) for old, (measured, surface) in legacy.items()}

    def register_same(self, before: str, now: str) -> None:
        """Record that the measurement ``before``, as an identity recorded before 0.3 stands for it
        (its frozen files hashed with their judging settings), is the measurement ``now``; only
        when such an identity exists."""
        with self.locked():
            _, legacy = self._digests()
            if before == now or not any(measured == before for measured, _ in legacy.values()):
                return
            with open(self.identities_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"identity": before, "same_as": now}, sort_keys=True) + "\n")

    def register_identity(self, digest: str, parts: Mapping[str, str]) -> None:
        """Record what ``digest`` is made of, once, so a later session can say what changed."""
        with self.locked():
            if self.identity_parts(digest):
                return
            line = json.dumps({"identity": digest, "parts": dict(parts)}, sort_keys=True)
            with open(self.identities_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def _migrated(entry: Entry, legacy: Mapping[str, tuple[str, str]]) -> Entry:
    """A row written before 0.3 as a row of now: its identity without the pytest surface, which
    becomes the row's ``surface`` (so its results stay comparable, and trusted, as they were)."""
    if entry.identity not in legacy:
        return entry
    measured, surface = legacy[entry.identity]
    return replace(entry, identity=measured, extra={"surface": surface, **entry.extra})


def sealed_line(entry: Entry, prev: str, log: str = "", log_sha256: str = "") -> tuple[str, str]:
    """The line of ``entry`` sealed after a row hashed ``prev``, and its own hash (the next row's ``prev``)."""
    if chain.KEY in entry.extra:
        entry = replace(entry, extra={k: v for k, v in entry.extra.items() if k != chain.KEY})
    seal = chain.seal(prev, format_line(entry)[:-1], log, log_sha256)
    return format_line(replace(entry, extra={**entry.extra, chain.KEY: seal})), seal["sha256"]


def _last_line(fh: IO[bytes], size: int) -> bytes | None:
    """The file's last line, without its newline; None when it is torn (no newline at the end)."""
    fh.seek(size - 1)
    if fh.read(1) != b"\n":
        return None
    block = TAIL_BYTES
    while True:
        start = max(0, size - 1 - block)
        fh.seek(start)
        data = fh.read(size - 1 - start)
        cut = data.rfind(b"\n")
        if cut >= 0:
            return data[cut + 1:]
        if start == 0:
            return data
        block *= 4


def resolve_orphan(entry: Entry) -> Entry:
    if entry.status == "running" and not _process_alive(entry):
        return replace(entry, status="crash", extra={**entry.extra, "reason": "never completed"})
    return entry
