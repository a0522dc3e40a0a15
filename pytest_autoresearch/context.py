"""What every benchmark of one session shares, settled before the first test runs.

The session fills it (repository, HEAD and its lineage, ledger, evaluation identity, the frozen
files' state, where a red run goes back to) and hands it to each trial; trials read it and
write ledger rows through it, and never call back into the session.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import pytest
from pytest_timeout import PYTEST_FAILURE_MESSAGE  # type: ignore[import-untyped]

from . import gitstate
from .correctness import Correctness
from .kernels import KernelService
from .leases import Leases
from .ledger import Entry, Ledger, LedgerWarning
from .runner import Runner
from .runner.sandbox import Sealing
from .runner.watchdog import Watchdog, Watchdogs
from .settings import Settings, Spec


@dataclass
class Context:
    config: pytest.Config
    settings: Settings
    runner: Runner
    logs_dir: Path
    repo: git.Repo | None = None
    head: gitstate.Head | None = None
    scope: str = "."  # the project folder within the repository, as a git pathspec
    ledger: Ledger | None = None
    note: str = ""  # said once for the whole session (no repository, detached HEAD)
    identity: str = ""
    identity_parts: dict[str, str] = field(default_factory=dict)
    surface: dict[str, str] = field(default_factory=dict)  # the pytest surface that judges this session (.trust)
    surface_digest: str = ""
    lineage: tuple[str, ...] = ()  # HEAD, then every commit it builds on
    reference: str | None = None  # the last kept commit, HEAD included: frozen files are compared with it
    frozen_changes: tuple[str, ...] = ()  # frozen files changed since the reference
    revert_to: str | None = None  # the last kept commit HEAD builds on: where a red run goes back
    mutable_files: tuple[Path, ...] = ()  # what a frozen scorer must never import
    leases: Leases | None = None  # this machine's devices, one per script run; None without any
    seal: Sealing | None = None  # what every sealed run of the session may read and not; each draw adds its folders
    kernels: KernelService | None = None  # builds sealed runs' C++ kernels into a store ideas share (kernels.py)
    distrusted: frozenset[str] = frozenset()  # run ids of rows the hash chain says the plugin did not write
    correctness: Correctness = field(default_factory=Correctness)  # the session's other tests: what a keep needs, what failed
    _warned: set[str] = field(default_factory=set)
    _watchdogs: Watchdogs | None = None  # the session's watchdog process, started when a test first needs it

    @property
    def revert(self) -> str | None:
        """The command that discards HEAD's idea: back to the last kept commit it builds on.

        None when nothing before HEAD was kept: HEAD is the branch's baseline, which a reset would
        delete (the red message says to fix it instead: ``outcome.BASELINE_FAILED``).
        """
        return f"git reset --hard {self.revert_to[:7]}" if self.revert_to is not None else None

    @property
    def compile_caches(self) -> Path:
        """Where torch.compile's caches of sealed runs live, one folder per code (see ``Trial._compile_cache``)."""
        return self.logs_dir.parent / "compile-cache"

    def watchdog(self, deadline: float | None) -> Watchdog:
        """The watchdog of one judged test: a scope of the session's one watchdog process."""
        if self._watchdogs is None:
            self._watchdogs = Watchdogs(self.ledger.path if self.ledger else None, self.logs_dir)
        return self._watchdogs.open(deadline)

    def release_watchdog(self) -> None:
        """At the end of the session: the watchdog ends what is still open and exits."""
        if self._watchdogs is not None:
            self._watchdogs.release()
            self._watchdogs = None

    def open_ledger(self, path: Path) -> None:
        self.ledger = Ledger(path, warn=self.warn, logs=self.logs_dir)

    def warn(self, message: str, category: type[Warning] = LedgerWarning) -> None:
        """Report an unreadable ledger line (or another ``category`` of trouble) once, in pytest's warnings summary.

        Recorded straight into the summary rather than raised: a damaged ledger must never stop
        a run, not even under ``filterwarnings = error``.
        """
        if message in self._warned:
            return
        self._warned.add(message)
        record = warnings.WarningMessage(category(message), category, __file__, 0)
        self.config.hook.pytest_warning_recorded.call_historic(
            kwargs={"warning_message": record, "when": "runtest", "nodeid": "", "location": None}
        )

    def runs(self, statuses: tuple[str, ...], **equal: str) -> list[Entry]:
        """The runs of HEAD and the commits it builds on: the only ones a verdict looks at."""
        if self.ledger is None:
            return []
        runs = self.ledger.runs(statuses, shas=frozenset(self.lineage), **equal)
        return [r for r in runs if r.run_id not in self.distrusted] if self.distrusted else runs

    def append(self, *entries: Entry) -> None:
        if self.ledger is not None:
            self.ledger.append(*entries)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ledger lock: read the bar, judge and record with no other run in between."""
        if self.ledger is None:
            yield
        else:
            with self.ledger.locked():
                yield

    def entry(self, test: str, spec: Spec, run_id: str, status: str, *, description: str | None = None,
              measurement: str = "", extra: dict[str, Any] | None = None) -> Entry:
        """A ledger row of this session's commit."""
        head = self.head
        return Entry(
            run_id=run_id, status=status, commit=head.short if head else "", sha=head.sha if head else "",
            description=description if description is not None else head.subject if head else "",
            metric=spec.metric, test=test, branch=(head.branch or "(detached)") if head else "",
            identity=self.identity, measurement=measurement or run_id,
            extra={"goal": spec.goal, **({"surface": self.surface_digest} if self.surface_digest else {}), **(extra or {})},
        )


def is_timeout(exc: BaseException) -> bool:
    """Whether pytest-timeout's signal method failed the test, by its own message."""
    before, after = PYTEST_FAILURE_MESSAGE.split("%s")
    text = str(exc)
    return isinstance(exc, pytest.fail.Exception) and text.startswith(before) and text.endswith(after)
