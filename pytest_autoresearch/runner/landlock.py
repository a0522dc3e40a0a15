"""The seal itself: a Landlock ruleset a process puts on itself before it becomes the target.

Run by path as the wrapper of a sealed run (``python -I -S landlock.py --read P.. --write P..
--hide P.. [--network] -- command..``): it restricts itself — read the allowed paths, write only
the run's own folders, no network, no signals or abstract sockets outside the seal — then starts
the command as its child, which inherits the seal and can never lift it. The wrapper stays: it
adopts every process the target leaves behind (a child subreaper), and when the target exits, or
the runner ends the run, it kills and reaps them all, so nothing a run started outlives it, not
even a process that left the run's process group. Landlock closes TCP; a seccomp filter
closes the rest of the network (no IP socket of any kind: UDP, raw, SCTP), since Landlock has no
rule for those. It imports only ``os``, ``signal``, ``sys``
and ``ctypes`` (each import is start-up time of every run), so a Ray node can also run it from its
source text. :mod:`.sandbox` is the plugin's side.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same number on every Linux architecture
_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_SECCOMP, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 21, 22, 2
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
    for finder in sys.meta_path:  # editable installs (pip install -e) map packages to folders not on sys.path
        module = sys.modules.get(getattr(finder, "__module__", None) or "")
        if module is not None and module.__name__.startswith("__editable__"):
            paths.update(p for p in getattr(module, "MAPPING", {}).values() if isinstance(p, str))
    return sorted(paths)


def sealed(command: list[str], run_dir: str, worktree: str, read: list[str], write: list[str], hide: list[str],
           network: bool, env: dict[str, str], wrapper: str = __file__,
           lent: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """``command`` wrapped in a seal on this machine, and the variables its run gets.

    Readable: the system, this Python installation, ``worktree``, ``read`` and the ``lent`` files,
    which TMPDIR holds as links (path in it → file); writable: the fresh ``run_dir`` (HOME and
    TMPDIR inside it) and ``write``; ``hide`` is cut out of both.
    """
    home, tmp = os.path.join(run_dir, "home"), os.path.join(run_dir, "tmp")
    os.makedirs(home, exist_ok=True)
    os.makedirs(tmp, exist_ok=True)
    for name, source in (lent or {}).items():
        link = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(source, link)
    run_env = {"HOME": home, "TMPDIR": tmp, "TMP": tmp, "TEMP": tmp, "XDG_CACHE_HOME": os.path.join(home, ".cache"), **env}
    readable = [*SYSTEM, *python_paths(), worktree, *read, *(lent or {}).values()]
    return wrapped(command, readable, [run_dir, *write], hide, network, wrapper), run_env


def wrapped(command: list[str], read: list[str], write: list[str], hide: list[str], network: bool,
            wrapper: str = __file__) -> list[str]:
    """``command`` behind this wrapper, reading exactly ``read`` and writing exactly ``write``."""
    args = [*_flag("--read", read), *_flag("--write", write), *_flag("--hide", hide)]
    return [sys.executable, "-I", "-S", wrapper, *args, *(["--network"] if network else []), "--", *command]


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


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


# Per architecture: the audit arch seccomp reports, socket()'s number, and where a second syscall
# table on the same arch starts (x32 on x86_64), whose numbers would otherwise bypass the filter.
_ARCHES: dict[str, tuple[int, int, int | None]] = {"x86_64": (0xC000003E, 41, 0x40000000),
                                                   "aarch64": (0xC00000B7, 198, None)}
_IO_URING_SETUP = 425  # io_uring opens sockets without the socket() syscall (same number on every arch)
_AF_INET, _AF_INET6 = 2, 10
_LD_W_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06  # classic BPF: load word, jump if ==, if >=, return
_ALLOW, _EACCES = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EACCES


def network_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """The seccomp program that makes every IP socket fail with EACCES, as ``(code, jt, jf, k)``.

    Reads ``struct seccomp_data``: offset 4 the arch, 0 the syscall number, 16 the low word of the
    first argument (the arches listed are little-endian). A syscall of another arch (32-bit
    compat, where socketcall multiplexes sockets), of x32, or io_uring_setup is refused whole.
    """
    arch, socket_nr, second_table = _ARCHES[machine]
    # (code, jump target when true, when false, k): targets are labels, resolved to relative offsets below
    program: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, 4), (_JEQ, None, "deny", arch), (_LD_W_ABS, None, None, 0),
        *([(_JGE, "deny", None, second_table)] if second_table is not None else []),
        (_JEQ, "deny", None, _IO_URING_SETUP), (_JEQ, None, "allow", socket_nr), (_LD_W_ABS, None, None, 16),
        (_JEQ, "deny", None, _AF_INET), (_JEQ, "deny", None, _AF_INET6),
    ]
    labels = {"allow": len(program), "deny": len(program) + 1}

    def offset(index: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - index - 1

    return [(code, offset(i, jt), offset(i, jf), k) for i, (code, jt, jf, k) in enumerate(program)] + [
        (_RET, 0, 0, _ALLOW), (_RET, 0, 0, _EACCES)]


def network_unclosable() -> str | None:
    """Why :func:`close_network` cannot work on this machine, or None when it can."""
    machine = os.uname().machine
    if machine not in _ARCHES:
        return f"no seccomp network filter for the {machine} architecture (only {', '.join(_ARCHES)})"
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return "this kernel has no seccomp (CONFIG_SECCOMP), which closes UDP and the other IP sockets"
    return None


def close_network(libc: ctypes.CDLL) -> None:
    """Install :func:`network_filter` on this process (no_new_privs must be set already)."""
    machine = os.uname().machine
    if machine not in _ARCHES:
        raise OSError(f"no seccomp network filter for {machine}")
    program = network_filter(machine)
    filters = (_SockFilter * len(program))(*(_SockFilter(*instruction) for instruction in program))
    prog = _SockFprog(len(program), filters)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) < 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


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
    if not network:
        close_network(libc)
    if libc.syscall(_RESTRICT_SELF, ruleset, 0) < 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(ruleset)


def main(argv: list[str]) -> None:
    """Seal, run the command after ``--`` as a child, end what it leaves behind, and exit as it did."""
    at = argv.index("--")
    options, command = [o for o in argv[:at] if o != "--network"], argv[at + 1 :]
    paths: dict[str, list[str]] = {"--read": [], "--write": [], "--hide": []}
    for flag, path in zip(options[::2], options[1::2]):
        paths[flag].append(path)
    try:
        restrict(paths["--read"], paths["--write"], paths["--hide"], "--network" in argv[:at])
        # the target's orphans come to this wrapper: a process that leaves its group is still the run's
        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    except OSError as exc:
        print(f"autoresearch: the sandbox could not seal this run: {exc}", file=sys.stderr, flush=True)
        os._exit(126)
    target = os.fork()
    if target == 0:
        try:
            os.execv(command[0], command)
        except OSError as exc:
            print(f"autoresearch: could not start {command[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    for ending in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # the runner ends the run: end all of it
        signal.signal(ending, _end_and_die)
    _, status = os.waitpid(target, 0)
    end_adopted()
    if os.WIFSIGNALED(status):
        _die(os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def end_adopted() -> None:
    """SIGKILL and reap every child of this process, again and again until none is left (a killed
    child's own children come here next: the wrapper is their subreaper)."""
    me = str(os.getpid())
    while True:
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as stat:
                        if stat.read().rpartition(b")")[2].split()[1].decode() == me:
                            children.append(int(entry))
                except OSError:
                    continue  # gone meanwhile
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _end_and_die(signum: int, _frame: object) -> None:
    end_adopted()
    _die(signum)


def _die(signum: int) -> None:
    """Exit by `signum`, as the target did (the runner reads a signal's death, not an exit code)."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


if __name__ == "__main__":
    main(sys.argv[1:])
