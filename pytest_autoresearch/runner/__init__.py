"""Where a run executes: the Runner protocol and what a finished run reports.

A runner starts a target script, streams its output into a local log while it runs, and ends
it (with everything it started) on request. The plugin only ever talks to this protocol:
``local`` runs the script here in its own process group; another runner (a cluster) runs it
elsewhere and is one more module in this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .sandbox import Sealing


@dataclass(frozen=True)
class Launch:
    """What to run: the same for every runner."""

    script: Path  # the target script, inside the work tree (absolute)
    args: tuple[str, ...]
    env: Mapping[str, str]  # the run's own variables, on top of the runner's environment
    log_path: Path  # local file that receives the output while the run goes on
    worktree: Path | None = None  # the repository's work tree; None outside git
    commit: str | None = None  # HEAD's sha: the committed tree a remote runner ships
    artifact: Path | None = None  # where the target's artifact must be, locally, once the run ends;
    # the runner sets AUTORESEARCH_ARTIFACT for the target to a path where it runs and brings the file back
    sealing: Sealing | None = None  # run inside a kernel sandbox that reaches only these paths; None: unsealed


@dataclass(frozen=True)
class Exit:
    """How a run ended, as measured outside the target."""

    returncode: int
    duration: float  # wall seconds from start to exit
    peak_memory_mb: float | None = None  # peak resident memory of the target, if measurable
    where: Mapping[str, str] = field(default_factory=dict)  # e.g. {"host": ..., "device": ...}


class Handle(Protocol):
    """One started run."""

    last_output: str  # the last line printed so far (the progress line shows it)

    def poll(self) -> Exit | None:
        """The run's exit once it has ended (its output fully in the log); None while it runs."""

    def cancel(self) -> None:
        """End the run and everything it started, here or remote; idempotent; returns once gone."""

    def orphan_token(self) -> dict[str, Any]:
        """JSON-able data with which the watchdog ends this run if pytest dies.

        It holds ``"runner": name``; the watchdog, a separate process, imports
        ``pytest_autoresearch.runner.<name>`` and calls its module-level ``reap(token)``.
        """


class Runner(Protocol):
    """Starts runs; ``name`` is what ``--autoresearch-runner`` selects and the ledger records."""

    name: str

    def start(self, launch: Launch) -> Handle: ...
