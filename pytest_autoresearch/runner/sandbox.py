"""Sealed runs, the plugin's side: what a run may reach (a ``Launch`` field), and whether this machine can seal.

A runner wraps the target's command in :mod:`.landlock`, which seals itself with a Landlock
ruleset and ``exec``s the target: read the work tree, the Python installation and what the
project serves; write only a fresh run folder; no network (Landlock for TCP, seccomp for every IP socket). The wrapper is the process-group
leader the runner started, so ending a run is unchanged. Landlock needs no root, no user
namespace and no system package; why it and not bubblewrap: docs/architecture.md.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import landlock

SEALED = "sandbox"  # the isolation names the ledger records
UNSEALED = "none"
ISOLATIONS = (SEALED, UNSEALED)
REFUSED = ("refused by the seal: a sealed run reads only its inputs, writes only its run folder "
           "(HOME, TMPDIR, the artifact) and has no network; autoresearch_isolation = none turns sealing off")
NEEDED_ABI = 4  # TCP rules (Linux 6.7): below it the network could not be closed


class SandboxUnavailable(RuntimeError):
    """This machine cannot seal a run; the message names the cause."""


@dataclass(frozen=True)
class Sealing:
    """How a run is to be sealed: the ``Launch`` field both runners read (``None`` there: unsealed)."""

    run_dir: str  # fresh, writable, removed after the run; HOME and TMPDIR point inside it
    read: tuple[str, ...] = ()  # beyond the system, the Python installation and the work tree
    write: tuple[str, ...] = ()  # beyond run_dir (e.g. the artifact's folder, a compile cache)
    hide: tuple[str, ...] = ()  # never readable, even inside a readable tree
    network: bool = False  # IP sockets allowed (TCP, UDP)
    env: Mapping[str, str] = field(default_factory=dict)  # variables the seal needs set (data cache paths)
    lent: Mapping[str, str] = field(default_factory=dict)  # read-only files linked into TMPDIR: path in it → file

    def command(self, command: Sequence[str], worktree: str) -> tuple[list[str], dict[str, str]]:
        """``command`` run in ``worktree`` under this seal on this machine, and the variables it gets."""
        return landlock.sealed(list(command), self.run_dir, worktree, list(self.read), list(self.write),
                               list(self.hide), self.network, dict(self.env), lent=dict(self.lent))


def check(network: bool = False) -> None:
    """Raise :class:`SandboxUnavailable` naming the cause when runs cannot be sealed here (with ``network``
    closed unless it is allowed)."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"sealed runs need Linux's Landlock; {sys.platform} has no sandbox we support")
    version = landlock.abi()
    if version == 0:
        raise SandboxUnavailable("Landlock is not enabled in this kernel (needs Linux 5.13+ with "
                                 "'landlock' in the lsm= boot parameter)")
    if version < NEEDED_ABI:
        raise SandboxUnavailable(f"this kernel's Landlock (ABI {version}) cannot close the network; "
                                 f"sealing needs ABI {NEEDED_ABI} (Linux 6.7+)")
    unclosable = None if network else landlock.network_unclosable()
    if unclosable is not None:
        raise SandboxUnavailable(unclosable)
