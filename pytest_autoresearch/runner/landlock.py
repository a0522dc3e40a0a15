"""The seal itself: a Landlock ruleset a process puts on itself before it becomes the target.

Run by path as the wrapper of a sealed run (``python -I -S landlock.py --read P.. --write P..
--hide P.. [--network] -- command..``): it restricts itself — read the allowed paths, write only
the run's own folders, no TCP, no signals or abstract sockets outside the seal — then ``exec``s
the command, which inherits the seal and can never lift it. It imports only ``os``, ``sys`` and
``ctypes`` (each import is start-up time of every run), so a Ray node can also run it from its
source text. :mod:`.sandbox` is the plugin's side.
"""

from __future__ import annotations

import ctypes
import os
import sys

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
DEVICE = READ | _WRITE_FILE | _IOCTL_DEV  # /dev: use devices (the leased GPU), create nothing there

SYSTEM = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys")


def python_paths() -> list[str]:
    """The Python installation this process runs on: its prefixes, standard library and packages."""
    import sysconfig  # not in the wrapper: only the side that builds the command asks

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(sysconfig.get_paths().values())
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    return sorted(paths)


def sealed(command: list[str], run_dir: str, worktree: str, read: list[str], write: list[str], hide: list[str],
           network: bool, env: dict[str, str], wrapper: str = __file__) -> tuple[list[str], dict[str, str]]:
    """``command`` wrapped in a seal on this machine, and the variables its run gets.

    Readable: the system, this Python installation, ``worktree`` and ``read``; writable: the
    fresh ``run_dir`` (HOME and TMPDIR inside it) and ``write``; ``hide`` is cut out of both.
    """
    home, tmp = os.path.join(run_dir, "home"), os.path.join(run_dir, "tmp")
    os.makedirs(home, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    run_env = {"HOME": home, "TMPDIR": tmp, "TMP": tmp, "TEMP": tmp, "XDG_CACHE_HOME": os.path.join(home, ".cache"), **env}
    readable = [*SYSTEM, *python_paths(), worktree, *read]
    args = [*_flag("--read", readable), *_flag("--write", [run_dir, *write]), *_flag("--hide", hide)]
    return [sys.executable, "-I", "-S", wrapper, *args, *(["--network"] if network else []), "--", *command], run_env


def _flag(name: str, paths: list[str]) -> list[str]:
    return [part for path in paths for part in (name, path)]


def abi() -> int:
    """This kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION))
    return max(int(version), 0)


def visible(read: list[str], hide: list[str]) -> tuple[list[str], list[str]]:
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


def restrict(read: list[str], write: list[str], hide: list[str], network: bool) -> None:
    """Seal this process and everything it will ``exec`` or start; raises OSError when the kernel refuses."""
    version = abi()
    if version == 0:
        raise OSError("Landlock is not available")
    libc = ctypes.CDLL(None, use_errno=True)
    handled = _handled(version)
    attr = _RulesetAttr(handled, 0 if network or version < 4 else _TCP, _SCOPES if version >= 6 else 0)
    size = 8 if version < 4 else 16 if version < 6 else 24
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    rules: list[tuple[str, int]] = []
    for paths, rights in ((read, READ), (write, WRITE)):
        whole, listed = visible(paths, hide)
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
    """Seal, then become the command after ``--``."""
    at = argv.index("--")
    options, command = [o for o in argv[:at] if o != "--network"], argv[at + 1 :]
    paths: dict[str, list[str]] = {"--read": [], "--write": [], "--hide": []}
    for flag, path in zip(options[::2], options[1::2]):
        paths[flag].append(path)
    try:
        restrict(paths["--read"], paths["--write"], paths["--hide"], "--network" in argv[:at])
    except OSError as exc:
        print(f"autoresearch: the sandbox could not seal this run: {exc}", file=sys.stderr, flush=True)
        os._exit(126)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
