"""The kernel store: sealed runs' C++ kernels, built by frozen code, so a commit that changes no kernel finds them built.

On a CPU, inductor writes each kernel as C++ and builds it with ``$CXX``: about three quarters
of a cold step 0 (docs/architecture.md). A sealed run's compile cache is keyed by the mutable
files, so any new commit compiles every kernel again. Here the compiler a sealed run finds first
on its PATH under inductor's name for it (``$CXX``, else ``g++``) is a client
that sends one build (its arguments and the source's bytes) over a Unix socket to this service
in the plugin's process, which answers with the library: found in a store under the plugin's
folder, or built by a compiler sealed as a run is, reading only the system, the toolchain,
Python's and torch's headers and libraries and the lent precompiled header, and writing one
scratch folder. Only allow-listed flags are served; an entry is keyed by the flags and the
source, so it is a function of its request alone: a later idea reads only what it can already
name. Anything refused, failed or unreachable is built by the target itself, as before. A
``$CXX`` given as a path is not served: the client would have to take its place in inductor's
cache keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import util
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from .identity import cpuinfo
from .runner import landlock
from .runner.local import kill_group
from .runner.sandbox import Sealing

ADDRESS = "AUTORESEARCH_KERNELS"  # a sealed run's variable: the service's socket and the run's token
MAX_REQUESTS = 400  # per run: a cold train.py asks for 52; bounds the one bit a reply's speed tells
MAX_SOURCE = 64 << 20  # bytes of one kernel's source
BUILD_TIMEOUT_S = 300.0  # one kernel; a slower one is the target's to build
HEADER_WAIT_S = 30.0  # a connection that sends nothing is closed
MAX_CONNECTIONS = 64  # open at once, all runs together
KEEP = 4096  # entries kept, the least recently used dropped first (~100 kB each)

# The flags inductor passes, and nothing that runs another program, loads a plugin, reads a file
# the request does not hold, or changes where the output's paths point.
_ALLOWED = re.compile(r"-(O\w*|g\d?|std=[\w+]+|m[\w=.-]+|pedantic|shared|pthread|"
                      r"W[\w=-]+|f[\w=+.-]+|[DU]\w+(=[\w.+-]*)?|[IL]/[^,@]*|l[\w.+-]+)")
_REFUSED_F = ("-fplugin", "-fprofile", "-fauto-profile", "-fdump", "-fcallgraph-info", "-fstack-usage",
              "-ffile-prefix-map", "-fdebug-prefix-map", "-fmacro-prefix-map", "-fprofile-prefix-map")
CLIENT = '''#!{python} -IS
"""{name} of a sealed run: a library built from one C++ source comes from autoresearch's kernel
service; anything else, or anything it does not serve, is built by the next {name} on PATH."""
import json, os, sys
from multiprocessing.connection import Client

here = os.path.dirname(os.path.abspath(sys.argv[0]))
args = sys.argv[1:]
sources = [a for a in args if a.endswith(".cpp")]
address, _, token = os.environ.get("{address}", "").rpartition(" ")
library = None
if len(sources) == 1 and args.count("-o") == 1 and address:
    try:
        with open(sources[0], "rb") as source, Client(address, family="AF_UNIX") as conn:
            conn.send_bytes(json.dumps({{"token": token, "args": args}}).encode())
            conn.send_bytes(source.read())
            if json.loads(conn.recv_bytes())["status"] in ("built", "found"):
                library = conn.recv_bytes()
    except (OSError, EOFError, ValueError, KeyError):
        library = None
if library is None:  # the compiler the target would have run, called as it would have called it
    os.environ["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                         if p and os.path.abspath(p) != here)
    os.execvp({name!r}, [{name!r}, *args])
with open(args[args.index("-o") + 1], "wb") as out:
    out.write(library)
'''


class Refused(Exception):
    """A request the service does not serve: the target builds it itself."""


@dataclass
class Reply:
    status: str  # built, found (both with the library), failed (the compiler's error), refused
    detail: str = ""
    library: bytes | None = None


@dataclass
class Served:
    """One run's requests, as its ledger row records them."""

    requests: int = 0
    built: int = 0
    found: int = 0
    failed: int = 0
    refused: int = 0
    reasons: list[str] = field(default_factory=list)  # the first few refusals and failures, distinct

    def count(self, reply: Reply) -> None:
        setattr(self, reply.status, getattr(self, reply.status) + 1)
        if reply.library is None and len(self.reasons) < 5 and reply.detail[-300:] not in self.reasons:
            self.reasons.append(reply.detail[-300:])


class KernelService:
    """Listens beside a session's sealed runs; :meth:`admit` gives each run its token and the client on its PATH."""

    def __init__(self, store: Path, name: str, compiler: str, lent: Mapping[str, str], cores: int,
                 hide: Iterable[str] = ()) -> None:
        self.store = store
        self.compiler = compiler  # what ``name`` is on this session's PATH
        self.headers = {os.path.basename(inside): path for inside, path in lent.items()}  # inductor's name → lent file
        self.reads = _compiler_reads(lent.values(), compiler)
        self.hide = list(hide)  # the project, even where it lies in a system folder the compiler reads
        self.identity = _identity(compiler)
        self.folder = Path(tempfile.mkdtemp(prefix="autoresearch-kernels-"))  # short: a socket path has 108 bytes
        self.folder.chmod(0o755)
        self.client = self.folder / "bin" / name  # inductor calls it by name: the name is in its cache keys
        self.client.parent.mkdir()
        self.client.write_text(CLIENT.format(python=sys.executable, address=ADDRESS, name=name))
        self.client.chmod(0o755)
        self._listener = Listener(str(self.folder / "socket"), family="AF_UNIX")
        self._runs: dict[str, Served] = {}
        self._builds: set[int] = set()  # process groups of the compilers running now
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(cores, 1))
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = False
        store.mkdir(parents=True, exist_ok=True)
        self._secret = _secret(store)
        threading.Thread(target=self._accept, name="autoresearch-kernels", daemon=True).start()

    def admit(self, env: Mapping[str, str]) -> dict[str, str]:
        """A new run's variables, given those it has so far: the client first on its PATH, and where
        the client reaches this service with the run's token."""
        token = secrets.token_hex(16)
        with self._lock:
            self._runs[token] = Served()
        path = env.get("PATH", os.environ.get("PATH", os.defpath))
        return {**env, "PATH": f"{self.client.parent}{os.pathsep}{path}", ADDRESS: f"{self.folder / 'socket'} {token}"}

    def served(self, env: Mapping[str, str]) -> Served | None:
        """What the run with these variables asked for, or None when it had no token of this service."""
        token = env.get(ADDRESS, "").rpartition(" ")[2]
        with self._lock:
            return self._runs.get(token)

    def close(self) -> None:
        """Stop listening, end the compilers still running, and drop the least recently used entries."""
        self._closed = True
        try:  # wakes the accepting thread, which sees the service closed
            Client(str(self.folder / "socket"), family="AF_UNIX").close()
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            groups = list(self._builds)
        for group in groups:
            kill_group(group)
        shutil.rmtree(self.folder, ignore_errors=True)
        entries = sorted(self.store.glob("*.so"), key=_last_used, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)

    def handle(self, token: str, args: list[str], source: bytes) -> Reply:
        """One request: the library from the store or built here, or why not."""
        with self._lock:
            served = self._runs.get(token)
            if served is not None:
                served.requests += 1
        if served is None:
            return Reply("refused", "not a sealed run of this session")
        try:
            if served.requests > MAX_REQUESTS:
                raise Refused(f"more than {MAX_REQUESTS} builds in one run")
            reply = self._found_or_built(self.command(args), source)
        except Refused as exc:
            reply = Reply("refused", str(exc))
        with self._lock:
            served.count(reply)
        return reply

    def command(self, args: list[str]) -> list[str]:
        """The compiler's arguments for a request: the source and output in a scratch folder, the lent
        header for inductor's ``-include``; raises :class:`Refused` for anything else."""
        command: list[str] = []
        rest = iter(args)
        for arg in rest:
            if arg == "-o":
                if not next(rest, "").endswith(".so"):
                    raise Refused("builds only a shared library (-o X.so)")
                command += ["-o", "kernel.so"]
            elif arg.endswith(".cpp") and not arg.startswith("-"):
                command.append("kernel.cpp")
            elif arg == "-include":
                name = os.path.basename(next(rest, ""))
                if name not in self.headers:
                    raise Refused(f"-include of a header it did not lend: {name}")
                command += ["-include", self.headers[name]]
            elif arg == "-D" or arg == "-I":  # the flag and its value apart, as inductor writes -D
                value = next(rest, "")
                command.append(self._allowed(arg + value))
            else:
                command.append(self._allowed(arg))
        return command

    def _allowed(self, arg: str) -> str:
        if _ALLOWED.fullmatch(arg) is None or arg.startswith(_REFUSED_F):
            raise Refused(f"a flag it does not pass on: {arg[:80]}")
        return arg

    def _found_or_built(self, command: list[str], source: bytes) -> Reply:
        request = json.dumps([self.identity, command]).encode() + b"\0" + source
        key = hmac.new(self._secret, request, hashlib.sha256).hexdigest()  # a sealed run can list the names
        entry = self.store / f"{key}.so"
        try:
            library = entry.read_bytes()
            os.utime(entry)  # recently used: pruned last
            return Reply("found", library=library)
        except FileNotFoundError:
            pass
        with self._slots:  # no more compilers at once than the run has cores
            return self._build(command, source, entry)

    def _build(self, command: list[str], source: bytes, entry: Path) -> Reply:
        scratch = Path(tempfile.mkdtemp(prefix="autoresearch-kernel-"))
        try:
            (scratch / "kernel.cpp").write_bytes(source)
            sealed = landlock.wrapped([self.compiler, *command, f"-ffile-prefix-map={scratch}=."],
                                      self.reads, [str(scratch)], self.hide, network=False)
            env = {"PATH": f"{os.path.dirname(self.compiler)}:{os.defpath}", "HOME": str(scratch),
                   "TMPDIR": str(scratch), "LC_ALL": "C"}
            proc = subprocess.Popen(sealed, cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            with self._lock:
                self._builds.add(proc.pid)
            try:
                output = proc.communicate(timeout=BUILD_TIMEOUT_S)[0].decode(errors="replace")
            except subprocess.TimeoutExpired:
                return Reply("refused", f"the build took over {BUILD_TIMEOUT_S:g} s")
            finally:
                kill_group(proc.pid, proc.poll)
                with self._lock:
                    self._builds.discard(proc.pid)
            if proc.returncode != 0 or not (scratch / "kernel.so").is_file():
                lines = output.strip().splitlines() or [""]
                error = next((line for line in lines if "error" in line), lines[-1])
                return Reply("failed", f"the sealed compiler exited with code {proc.returncode}: {error.strip()}")
            library = (scratch / "kernel.so").read_bytes()
            staged = entry.with_name(f"{entry.name}.{os.getpid()}.{threading.get_ident()}")
            staged.write_bytes(library)
            os.replace(staged, entry)
            return Reply("built", library=library)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            self._connections.acquire()
            try:
                conn = self._listener.accept()
            except OSError:
                self._connections.release()
                return
            if self._closed:
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        try:
            if not conn.poll(HEADER_WAIT_S):
                return
            header = json.loads(conn.recv_bytes(1 << 20))
            token, args = str(header["token"]), [str(a) for a in header["args"]]
            source = conn.recv_bytes(MAX_SOURCE)
            reply = self.handle(token, args, source)
            conn.send_bytes(json.dumps({"status": reply.status, "detail": reply.detail}).encode())
            if reply.library is not None:
                conn.send_bytes(reply.library)
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            pass  # a broken request: the client builds it itself
        finally:
            conn.close()
            self._connections.release()


def record(service: KernelService | None, sealing: Sealing | None) -> dict[str, object]:
    """A run's ledger fields: the kernels the service built, found, failed to build and refused; none if it asked for none."""
    served = service.served(sealing.env) if service is not None and sealing is not None else None
    if served is None or served.requests == 0:
        return {}
    counts = {"built": served.built, "found": served.found, "failed": served.failed, "refused": served.refused}
    return {"kernels": {**counts, **({"why": served.reasons} if served.reasons else {})}}


def start(store: Path, lent: Mapping[str, str], cores: int, hide: Iterable[str] = ()) -> KernelService | None:
    """The session's service, or None where there is no C++ compiler to serve by name (``$CXX``, else g++)."""
    name = os.environ.get("CXX", "g++")
    compiler = shutil.which(name) if os.sep not in name else None
    if compiler is None:
        return None
    return KernelService(store, name, os.path.abspath(compiler), lent, cores, hide)


def _compiler_reads(lent: Iterable[str], compiler: str) -> list[str]:
    """What the sealed compiler may read: the system, the toolchain, Python's and torch's headers and
    libraries, and the lent headers' folders; never the project, never a run's folder."""
    reads = [*landlock.SYSTEM, os.path.dirname(compiler), os.path.dirname(os.path.realpath(compiler))]
    reads += [p for p in (sysconfig.get_path("include"), sysconfig.get_path("platinclude"),
                          sysconfig.get_config_var("LIBDIR")) if p]
    torch = util.find_spec("torch")
    for location in (torch.submodule_search_locations or []) if torch is not None else []:
        reads += [os.path.join(location, "include"), os.path.join(location, "lib")]
    reads += sorted({os.path.dirname(path) for path in lent})
    return [p for p in dict.fromkeys(reads) if os.path.exists(p)]


def _identity(compiler: str) -> list[str]:
    """What a build depends on besides its request: this CPU, the compiler and torch's headers, as files
    (a lent header's path names its content: inductor hashes it into the name, torch's version into the folder)."""
    files = [os.path.realpath(compiler)]
    torch = util.find_spec("torch")
    if torch is not None and torch.origin:
        files.append(torch.origin.replace("__init__.py", "version.py"))
    parts = [cpuinfo("flags") or cpuinfo("Features")]  # -march=native means this machine's instructions (x86, Arm)
    for path in files:
        try:
            stat = os.stat(path)
            parts.append(f"{path} {stat.st_size} {stat.st_mtime_ns}")
        except OSError:
            parts.append(path)
    return parts


def _last_used(entry: Path) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:  # pruned by a parallel session meanwhile
        return 0.0


def _secret(store: Path) -> bytes:
    """The store's key for entry names: a run sees the names in a folder it cannot read, and must not
    learn from them which sources were built without asking (see MAX_REQUESTS)."""
    path = store / "secret"
    if not path.exists():  # written whole, then linked in: a parallel session reads one key or the other, never half
        staged = store / f"secret.{os.getpid()}.{threading.get_ident()}"
        staged.write_bytes(secrets.token_bytes(32))
        staged.chmod(0o600)
        try:
            os.link(staged, path)
        except FileExistsError:
            pass
        finally:
            staged.unlink()
    return path.read_bytes()
