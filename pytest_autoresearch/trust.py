"""Trust: may the code pytest loads judge this run? A person decides, once, and the ledger keeps it.

The pytest surface (conftests, the ini file, plugins and their versions, ``-p``/``-o`` options)
can rewrite a verdict, so a change to it stops the session until a person accepts it. Whether
results stay comparable after that is another question, answered by :mod:`.identity`.
"""

from __future__ import annotations

import getpass
import hashlib
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .identity import SURFACE
from .ledger import Entry


def surface(root: Path, conftests: Iterable[Path], ini: Path | None, plugins: Iterable[str],
            args: Sequence[str], addopts: str) -> dict[str, str]:
    """The pytest surface that judges a run, one part per name in :data:`SURFACE`: a plugin that
    rewrites outcomes or a conftest added above the project changes it.

    Paths are named relative to ``root`` (so worktrees compare), with a hash of their content;
    ``plugins`` are "name==version"; of the options in ``args`` and ``addopts``
    (PYTEST_ADDOPTS) only ``-p NAME`` (code loaded into the judge) and ``-o`` count: ``-q``,
    ``-x`` or ``-p no:cacheprovider`` change what is printed or cached, not what is judged.
    """
    def named(path: Path) -> str:
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        except OSError:
            digest = "unreadable"
        where = path.relative_to(root) if path.is_relative_to(root) else path
        return f"{where.as_posix()}:{digest}"

    options: list[str] = []
    words = [*shlex.split(addopts), *args]
    for i, word in enumerate(words):
        if word in ("-p", "-o", "--override-ini") and i + 1 < len(words):
            options.append(f"{'-p' if word == '-p' else '-o'} {words[i + 1]}")
        elif word.startswith("--override-ini="):
            options.append(f"-o {word.split('=', 1)[1]}")
        elif word[:2] in ("-p", "-o") and len(word) > 2 and not word.startswith("--"):
            options.append(f"{word[:2]} {word[2:]}")
    options = [o for o in options if not o.startswith("-p no:")]
    parts = {
        "pytest conftests": ", ".join(sorted({named(p) for p in conftests})) or "none",
        "pytest ini": named(ini) if ini else "none",
        "pytest plugins": ", ".join(sorted(set(plugins))) or "none",
        "pytest options": " ".join(sorted(options)) or "none",
    }
    assert tuple(parts) == SURFACE
    return parts


def changes(before: dict[str, str], now: dict[str, str]) -> tuple[str, ...]:
    """What differs between two recorded surfaces, one ``part (before -> now)`` each."""
    return tuple(f"{part} ({before[part]} -> {now.get(part)})" for part in SURFACE
                 if part in before and before[part] != now.get(part))


def user() -> str:
    """Who accepts: the login name, as far as the system knows it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def acceptance(what: Sequence[str]) -> dict[str, Any]:
    """The extra of an ``accepted`` ledger row: what a person accepted, and who (the row has when and host)."""
    return {"accepted": list(what), "user": user()}


def acceptances(runs: Iterable[Entry]) -> list[str]:
    """One line per recorded acceptance, oldest first: when, who and where, the commit, what."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for run in runs:
        what = "; ".join(str(w) for w in run.extra.get("accepted") or [run.description])
        who = f"{run.extra.get('user', 'unknown')}@{run.host}"
        if run.status != "accepted" or (run.sha, who + what) in seen:
            continue
        seen.add((run.sha, who + what))  # one line per acceptance, not per benchmark it covered
        lines.append(f"{run.timestamp} {who} at {run.commit}: {what}")
    return lines
