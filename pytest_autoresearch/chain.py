"""The ledger's hash chain: every row sealed to the row before it and to its run log, and the check.

A row's seal, ``extra["chain"]``, holds the sha256 of the previous row's hash, the row's own line
without the seal, and its run log's path and digest where it has one; editing, deleting or
inserting a line, or changing a run log, breaks the chain at that place and :func:`verify` says
where. Rows written before the chain existed are unchained history. The chain makes edits
evident, it does not prevent them: whoever can write the file can also write a new chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY = "chain"
LINK = 16  # hex digits of the previous hash a seal keeps: enough to find which row it followed
KINDS = ("edited", "deleted", "inserted", "log changed", "unchained", "corrupt")
FORGED = ("inserted", "unchained")  # rows added by hand: leaving them out restores what the plugin wrote
ALTERED = ("edited", "deleted")  # rows the plugin wrote, changed or removed: what they said is lost


# -- sealing a row (under the ledger lock, once per appended line) --------------------------


def seal(prev: str, line: str, log: str = "", log_sha256: str = "") -> dict[str, str]:
    """The seal of ``line`` (a ledger line without seal or newline) written after a row hashed ``prev``.

    ``prev`` is "" where the line follows the header, an unchained row or an unreadable line.
    """
    digest = hashlib.sha256("\n".join((prev, line, log, log_sha256)).encode()).hexdigest()
    sealed = {"prev": prev[:LINK], "sha256": digest}
    if log:
        sealed.update(log=log, log_sha256=log_sha256)
    return sealed


def hash_of(extra_cell: str) -> str:
    """The hash a row's extra cell seals it with; "" for a row without a (readable) seal."""
    try:
        _, sealed = unseal(extra_cell)
    except ValueError:
        return ""
    digest = sealed.get("sha256") if sealed is not None else None
    return digest if isinstance(digest, str) else ""


def file_digest(path: Path) -> str | None:
    """The sha256 of a file's bytes, or None when it is not there."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return h.hexdigest()


def log_name(log: Path, ledger_folder: Path) -> str:
    """A run log as a seal names it: relative to the ledger's folder, so a moved repository still verifies."""
    try:
        return Path(os.path.relpath(log, ledger_folder)).as_posix()
    except ValueError:  # another drive
        return str(log.absolute())


OPEN = f'"{KEY}": {{'  # how the seal starts in an extra cell written with sorted keys
CLOSE = '"sha256": "'  # its last key (sorted after log, log_sha256 and prev), then 64 hex digits and "}


def unseal(extra_cell: str) -> tuple[str, dict[str, Any] | None]:
    """The extra cell as it was before its seal was added, and the seal (None: no seal).

    The seal is cut out of the text, not parsed and re-serialised with the rest: every other
    byte of the cell stays in what is hashed, and a long ledger verifies fast. (A quote inside a
    JSON string is escaped, so ``"chain": {`` in the text is a key.) Raises ValueError when the
    seal is not where and how the ledger writes it.
    """
    at = extra_cell.find(OPEN)
    if at < 0:
        return extra_cell, None
    close = extra_cell.find(CLOSE, at)
    end = close + len(CLOSE) + 66
    if close < 0 or extra_cell[end - 2:end] != '"}':
        raise ValueError("its seal is damaged")
    try:
        sealed = json.loads(extra_cell[at + len(OPEN) - 1:end])
    except ValueError:
        raise ValueError("its seal is damaged") from None
    if not isinstance(sealed, dict):
        raise ValueError("its seal is damaged")
    before, after = extra_cell[:at], extra_cell[end:]
    if before == "{" and after == "}":
        return "", sealed
    if before == "{" and after.startswith(", "):
        return "{" + after[2:], sealed
    if before.endswith(", ") and before.startswith("{"):
        return before[:-2] + after, sealed
    raise ValueError("its seal was moved")


# -- checking a whole ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One place where the ledger differs from what the plugin wrote."""

    line: int
    kind: str  # one of KINDS
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.detail}"


@dataclass
class Report:
    """What :func:`verify` found: rows, where the chain starts, each problem, logs gone."""

    path: Path
    rows: int = 0
    start: int | None = None  # the line of the first sealed row; the rows above it are unchained history
    first_row: int = 2
    problems: list[Problem] = field(default_factory=list)
    logs_gone: list[int] = field(default_factory=list)  # lines whose run log no longer exists (pruned?)

    @property
    def intact(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        rows = f"{self.rows} row{'' if self.rows == 1 else 's'}"
        if self.problems:
            places = len(self.problems)
            return f"{rows}, the hash chain is broken in {places} place{'' if places == 1 else 's'}"
        if self.start is None:
            return f"{rows}, none chained yet (written before the hash chain)"
        return f"{rows}, chain intact since line {self.start}"

    def details(self) -> list[str]:
        """Lines under the summary: each problem, then what was not checked and why."""
        lines = [str(p) for p in self.problems]
        if self.start is not None and self.start > self.first_row:
            lines.append(f"lines {self.first_row}-{self.start - 1}: unchained history "
                         "(written before the hash chain), not checked")
        if self.logs_gone:
            shown = ", ".join(map(str, self.logs_gone[:10])) + (", ..." if len(self.logs_gone) > 10 else "")
            lines.append(f"{len(self.logs_gone)} run log(s) no longer on disk, not checked (lines {shown})")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "ledger": str(self.path), "rows": self.rows, "intact": self.intact, "chain_starts_at": self.start,
            "problems": [{"line": p.line, "kind": p.kind, "detail": p.detail} for p in self.problems],
            "logs_gone": self.logs_gone,
        }


def verify(path: Path, check_logs: bool = True) -> Report:
    """Walk the ledger at ``path`` and report every break in its chain (``check_logs``: re-hash run logs).

    Raises OSError when the file cannot be read. A torn last line is a write in progress and is
    left out; an unreadable line elsewhere after the chain starts is a problem.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    lines.pop()  # "" after the last newline, or a line still being written
    report = Report(path)
    if not lines:
        return report
    header = lines[0].split("\t")
    if "run_id" in header and "extra" in header:
        extra_at, width, report.first_row = header.index("extra"), len(header), 2
    else:  # no header: the ledger's readers assume the standard columns, extra last
        extra_at, width, report.first_row = -1, 0, 1
    _Walk(report, path.parent, extra_at, width, check_logs).run(
        enumerate(lines[report.first_row - 1:], start=report.first_row))
    return report


class _Walk:
    """One pass over the lines: each sealed row checked against the one before it."""

    def __init__(self, report: Report, folder: Path, extra_at: int, width: int, check_logs: bool) -> None:
        self.report, self.folder, self.extra_at, self.width = report, folder, extra_at, width
        self.check_logs = check_logs
        self.last = extra_at in (-1, width - 1)
        self.prev = ""  # the hash the next row must link to; "" after a line that is not a sealed row
        self.seen: dict[str, tuple[int, str]] = {}  # link prefix -> line and full hash of a sealed row
        self.pending: list[Problem] = []  # lines outside the chain since the last sealed row

    def run(self, numbered: Iterator[tuple[int, str]]) -> None:
        for number, line in numbered:
            if line:
                self.report.rows += 1
            self.line(number, line)
        self.report.problems += self.pending
        self.report.problems.sort(key=lambda p: p.line)

    def outside(self, problem: Problem) -> None:
        """A line that is not a sealed row: history before the chain starts, a problem after."""
        if self.report.start is not None:
            self.pending.append(problem)
        self.prev = ""

    def line(self, number: int, line: str) -> None:
        if not line or (self.width and line.count("\t") != self.width - 1):
            self.outside(Problem(number, "corrupt", "not a ledger row (torn write or hand edit)"))
            return
        if self.last:  # the usual layout: no need to split the line
            cut = line.rfind("\t") + 1
            head, cell, tail = line[:cut], line[cut:], ""
        else:
            cells = line.split("\t")
            head = "".join(c + "\t" for c in cells[:self.extra_at])
            cell, tail = cells[self.extra_at], "".join("\t" + c for c in cells[self.extra_at + 1:])
        try:
            extra, sealed = unseal(cell)
        except ValueError as exc:
            self.report.problems.append(Problem(number, "edited", str(exc)))
            self.report.start = self.report.start or number
            close = cell.find(CLOSE, cell.find(OPEN))  # the hash it claims, for the next row's link
            self.prev = cell[close + len(CLOSE):close + len(CLOSE) + 64] if close >= 0 else ""
            return
        if sealed is None:
            if self.report.start is not None and not _json_object(cell):
                self.outside(Problem(number, "corrupt", "its extra cell is not a JSON object"))
            else:
                self.outside(Problem(number, "unchained", "a row without a seal after the chain started: "
                                     "written by hand, or by a plugin older than the chain"))
            return
        self.report.start = self.report.start or number
        self.sealed(number, head + extra + tail, sealed)

    def sealed(self, number: int, plain: str, sealed: dict[str, Any]) -> None:
        digest, link = sealed.get("sha256"), sealed.get("prev")
        log, log_sha = sealed.get("log", ""), sealed.get("log_sha256", "")
        if not all(isinstance(v, str) for v in (digest, link, log, log_sha)):
            self.report.problems.append(Problem(number, "edited", "its seal is damaged"))
            self.prev = digest if isinstance(digest, str) else ""
            return
        assert isinstance(digest, str) and isinstance(link, str)
        base: str | None = self.prev
        if link == self.prev[:LINK]:
            self.report.problems += self.pending
        elif link in self.seen and seal(self.seen[link][1], plain, log, log_sha)["sha256"] != digest:
            # It claims to follow an earlier row, but was not sealed there: this row is the forgery,
            # not the rows between (an honest row verifies against the row it links to).
            self.report.problems += self.pending
            self.report.problems.append(Problem(
                number, "inserted", f"line {number} was not written by the plugin: it claims to follow "
                f"line {self.seen[link][0]}, but its cells do not match its seal"))
            base = None
        elif link in self.seen:
            after, base = self.seen[link]
            self.report.problems.append(Problem(
                after + 1, "inserted",
                f"line{'s' if number - after > 2 else ''} {_span(after + 1, number - 1)} "
                f"not written by the plugin: line {number} was written right after line {after}"))
        elif seal(self.prev, plain, log, log_sha)["sha256"] == digest:  # only the link text was changed
            self.report.problems += self.pending
            base = None
            self.report.problems.append(Problem(number, "edited", "its link to the row before was changed"))
        else:
            self.report.problems += self.pending
            base = None
            missing = "a line that is no longer there" if link == "" else "a row that is no longer there"
            self.report.problems.append(Problem(
                number, "deleted",
                f"line {number} was written after {missing}: rows deleted before it, or line {number - 1} rewritten"))
        self.pending = []
        if base is not None:
            if seal(base, plain, log, log_sha)["sha256"] != digest:
                self.report.problems.append(Problem(number, "edited", "its cells no longer match its seal"))
            elif log and self.check_logs:
                self.check_log(number, log, log_sha)
        self.seen.setdefault(digest[:LINK], (number, digest))
        self.prev = digest

    def check_log(self, number: int, log: str, log_sha: str) -> None:
        now = file_digest(self.folder / log)
        if now is None:
            self.report.logs_gone.append(number)
        elif now != log_sha:
            self.report.problems.append(Problem(number, "log changed", f"its run log {log} differs from the one sealed"))


def _json_object(cell: str) -> bool:
    try:
        return not cell or isinstance(json.loads(cell), dict)
    except ValueError:
        return False


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"
