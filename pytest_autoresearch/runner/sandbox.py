"""Sealed runs: the target's process reaches only its inputs, through a Landlock ruleset.

A runner wraps the target's command in this file (run by path, standard library only): it
restricts itself with Landlock — read the allowed paths, write only the run's own folders, no
TCP, no signals or abstract sockets outside the run — and then ``exec``s the target, which
inherits the seal and can never lift it. The wrapper is the process-group leader the runner
started, so ending a run is unchanged. Landlock needs no root, no user namespace and no system
package (Linux 5.13+; TCP rules from 6.7); why it and not bubblewrap: docs/architecture.md.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

SEALED = "sandbox"  # the isolation names the ledger records
UNSEALED = "none"
ISOLATIONS = (SEALED, UNSEALED)
REFUSED = ("refused by the seal: a sealed run reads only its inputs, writes only its run folder "
           "(HOME, TMPDIR, the artifact) and has no network; autoresearch_isolation = none turns sealing off")
NEEDED_ABI = 4  # TCP rules (Linux 6.7): below it the network could not be closed

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same number on every Linux architecture
_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_AND_REMOVE = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_ONLY = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # rights a rule on a file may carry
_TCP = (1 << 0) | (1 << 1)  # bind, connect
_SCOPES = (1 << 0) | (1 << 1)  # abstract unix sockets, signals: none outside the sealed processes
READ = _EXECUTE | _READ_FILE | _READ_DIR
WRITE = READ | _WRITE_FILE | _MAKE_AND_REMOVE | _REFER | _TRUNCATE
DEVICE = READ | _WRITE_FILE | _IOCTL_DEV  # /dev: use devices (the leased GPU), create nothing

SYSTEM = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys")


class SandboxUnavailable(RuntimeError):
    """This machine cannot seal a run; the message names the cause."""


@dataclass(frozen=True)
class Seal:
    """What a sealed target may reach: everything else is out of reach."""

    read: tuple[str, ...]  # readable trees or files
    write: tuple[str, ...]  # readable and writable trees (the run folder, its HOME and TMPDIR)
    hide: tuple[str, ...] = ()  # never readable, even inside a readable tree
    network: bool = False  # TCP allowed

    def wrap(self, command: Sequence[str]) -> list[str]:
        """The command that runs ``command`` inside this seal."""
        return [sys.executable, "-I", "-S", __file__, json.dumps(asdict(self)), "--", *command]


@dataclass(frozen=True)
class Sealing:
    """How a run is to be sealed: the Launch field both runners read (``None`` there: unsealed)."""

    run_dir: str  # fresh, writable, removed after the run; HOME and TMPDIR point inside it
    read: tuple[str, ...] = ()  # beyond the system, the Python installation and the work tree
    write: tuple[str, ...] = ()  # beyond run_dir (e.g. the artifact's folder, a compile cache)
    hide: tuple[str, ...] = ()
    network: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # variables the seal needs set (data cache paths)

    def seal(self, worktree: str | None) -> tuple[Seal, dict[str, str]]:
        """The seal for a run in ``worktree`` on this machine, and the variables the target gets."""
        home, tmp = Path(self.run_dir, "home"), Path(self.run_dir, "tmp")
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(exist_ok=True)
        read = [*SYSTEM, *python_paths(), *self.read, *([worktree] if worktree else [])]
        env = {"HOME": str(home), "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp),
               "XDG_CACHE_HOME": str(home / ".cache"), **self.env}
        seal = Seal(tuple(read), (self.run_dir, *self.write), self.hide, self.network)
        return seal, env


def python_paths() -> list[str]:
    """The Python installation the target runs on: its prefixes, standard library and packages."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent)}
    paths.update(v for v in sysconfig.get_paths().values())
    paths.update(p for p in sys.path if p and Path(p).is_absolute())
    return sorted(paths)


def abi() -> int:
    """This kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION))
    return max(int(version), 0)


def check() -> None:
    """Raise :class:`SandboxUnavailable` naming the cause when runs cannot be sealed here."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"sealed runs need Linux's Landlock; {sys.platform} has no sandbox we support")
    version = abi()
    if version == 0:
        raise SandboxUnavailable("Landlock is not enabled in this kernel (needs Linux 5.13+ with "
                                 "'landlock' in the lsm= boot parameter)")
    if version < NEEDED_ABI:
        raise SandboxUnavailable(f"this kernel's Landlock (ABI {version}) cannot close the network; "
                                 f"sealing needs ABI {NEEDED_ABI} (Linux 6.7+)")


def visible(read: Iterable[str], hide: Iterable[str]) -> tuple[list[str], list[str]]:
    """The readable paths with the hidden ones cut out, and the folders only listed on the way.

    A tree holding a hidden path is replaced by its entries, down to the hidden path's siblings
    (Landlock only ever adds access, never removes it); the folders so split stay listable
    (names only: the import system lists the folders it searches), their files are not opened.
    """
    hidden = {os.path.realpath(h) for h in hide}
    whole: set[str] = set()
    listed: set[str] = set()

    def add(path: str) -> None:
        if path in hidden or not os.path.exists(path):
            return
        if not any(h.startswith(path.rstrip("/") + "/") for h in hidden):
            whole.add(path)
            return
        if not os.path.isdir(path):
            return
        listed.add(path)
        for entry in os.scandir(path):
            add(os.path.realpath(entry.path))

    for path in read:
        add(os.path.realpath(path))
    return sorted(whole), sorted(listed)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _handled(version: int) -> int:
    rights = READ | _WRITE_FILE | _MAKE_AND_REMOVE
    return rights | (_REFER if version >= 2 else 0) | (_TRUNCATE if version >= 3 else 0) | (_IOCTL_DEV if version >= 5 else 0)


def restrict(seal: Seal) -> None:
    """Seal this process and everything it will ``exec`` or start; raises OSError when the kernel refuses."""
    version = abi()
    if version == 0:
        raise OSError("Landlock is not available")
    libc = ctypes.CDLL(None, use_errno=True)
    handled = _handled(version)
    attr = _RulesetAttr(handled, 0 if seal.network or version < 4 else _TCP, _SCOPES if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    rules: list[tuple[str, int]] = []
    for paths, rights in ((seal.read, READ), (seal.write, WRITE)):
        whole, listed = visible(paths, seal.hide)
        rules += [(p, rights) for p in whole] + [(p, _READ_DIR) for p in listed]
    rules += [(p, DEVICE) for p in visible(["/dev"], ["/dev/shm"])[0]]
    for path, rights in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # vanished since it was listed: nothing to allow
        try:
            allowed = rights & handled & (_FILE_ONLY if not os.path.isdir(path) else ~0)
            rule = _PathBeneath(allowed, fd)
            if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
        finally:
            os.close(fd)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(_RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


def main(argv: list[str]) -> None:
    """``sandbox.py SEAL_JSON -- command...``: seal, then become the command."""
    spec, separator, *command = argv
    assert separator == "--" and command, "usage: sandbox.py SEAL_JSON -- command..."
    fields = json.loads(spec)
    seal = Seal(tuple(fields["read"]), tuple(fields["write"]), tuple(fields["hide"]), bool(fields["network"]))
    try:
        restrict(seal)
    except OSError as exc:
        print(f"autoresearch: the sandbox could not seal this run: {exc}", file=sys.stderr, flush=True)
        os._exit(126)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
