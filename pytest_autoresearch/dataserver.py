"""A frozen data server: the target's training batches, served over a Unix socket, on the budget's clock.

How long a target trains is measured here, outside its process, so editing its own clock buys
nothing. The plugin opens the socket in the run folder and starts the server in an isolated
interpreter (scoring's bootstrap: frozen code only); the target finds it in
AUTORESEARCH_DATA_SOCKET. The rule (see :class:`Clock`): the first WARMUP_BATCHES batches are
untimed (compilation); the clock starts when the next one is handed over, or WARMUP_LIMIT_S
after the server opened, whichever comes first; no batch is served once budget + export
allowance have passed; and the target must have exited by then, or the run is red:
``over budget: trained 331 s, budget 300 s``. On a sealed CPU run a loaded machine stretches
the last step and the export, and a slow CPU's step in progress at the budget's end may be
longer than the allowance, so a late exit is excused when the work the target did after the
budget, less that step's measured work, would have fit into the allowance on an idle machine
(see :func:`over_budget`); the server reads that work from /proc, where the target cannot touch it.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import proctable
from .scoring import forbidden_loaded, isolated_command, refuse_mutable

SOCKET_ENV = "AUTORESEARCH_DATA_SOCKET"  # where the target's loader connects
WARMUP_BATCHES = 4  # untimed batches: the model compiles on the first; train.py's 2 untimed steps of 2 micro-batches
# The clock starts this long after the server opened even if warm-up goes on: generous, since a cold
# compile took over 200 s on 2 loaded cores, and replaying 4 batches for minutes teaches little.
WARMUP_LIMIT_S = 600.0
EXPORT_ALLOWANCE_S = 20.0  # after the budget: the last step, the export, the summary and the exit
STEP_BATCHES = 3  # the step in progress at the budget's end: the batch in training and at most 2 more asked for
# after it (train.py's cpu profile takes 2 micro-batches a step), excused by their measured work (Served.step_in_progress)
CPU_SAMPLE_S = 0.1  # after the budget: how often the server reads the target's CPU time (a /proc scan, ~2 ms)
PREFETCH = 4  # batches made ahead of the requests, per connection
HEADER = struct.Struct("!cQQ")  # kind (b"B" batch, b"E" end), tokens in the batch, payload bytes
REQUEST = b"n"  # one byte asks for the next batch
MAX_SOCKET_PATH = 100  # sun_path holds 104 (macOS) or 108 (Linux) bytes
TEMP_PREFIX = "autoresearch-data-"  # the private folder of a socket whose run folder's path is too long


class DataServerError(Exception):
    """The data server could not start or report: its log says why."""


@dataclass(frozen=True)
class Clock:
    """The budget rule, in seconds: simple enough to state in one sentence per field."""

    budget: float  # training seconds allowed, from the clock's start
    allowance: float = EXPORT_ALLOWANCE_S  # after the budget, until the target has exited
    warmup_batches: int = WARMUP_BATCHES  # served before the clock starts
    warmup_limit: float = WARMUP_LIMIT_S  # from the server's opening: the latest the clock starts
    cores: int = 0  # a sealed CPU run's cores: a late exit may be load (see over_budget); 0: never (GPU, unsealed)

    @property
    def closes(self) -> float:
        """Seconds after the clock's start when serving stops and the target must be gone."""
        return self.budget + self.allowance

    def work(self, cpu: float | None, thread: float | None) -> float | None:
        """The least wall time CPU work takes on ``cores`` idle cores; None if unknown or not counted.

        That is its busiest thread's CPU time, or all its CPU time spread over every core, whichever
        is more: no schedule of the same work on ``cores`` idle cores finishes sooner.
        """
        if not self.cores or cpu is None or thread is None:
            return None
        return max(thread, cpu / self.cores)


@dataclass(frozen=True)
class Served:
    """What the server saw, in time.monotonic() seconds (one clock for the whole machine)."""

    opened: float
    first_timed: float | None = None  # when batch warmup_batches + 1 was handed over (the next one asked for)
    batches: int = 0
    tokens: int = 0  # tokens in the batches served (the ledger's served_tokens)
    refused: int = 0  # requests answered "budget spent"
    cpu_after_budget: float | None = None  # CPU seconds the target's processes used after the budget
    thread_after_budget: float | None = None  # of which its busiest thread's (None: not measured)
    cpu_in_budget: float | None = None  # the same from the clock's start to the budget's end
    thread_in_budget: float | None = None
    batches_in_budget: int | None = None  # batches asked for by the budget's end (warm-up included)

    def clock_start(self, clock: Clock) -> float:
        """When the budget's clock started: the first timed batch, or the warm-up limit."""
        latest = self.opened + clock.warmup_limit
        return latest if self.first_timed is None else min(self.first_timed, latest)

    def trained(self, clock: Clock, ended: float) -> float:
        """Seconds from the clock's start to `ended` (the target's exit); 0 if it never started."""
        return max(0.0, ended - self.clock_start(clock))

    def work_after_budget(self, clock: Clock) -> float | None:
        """The least wall time the target's work after the budget takes on an idle machine; None if unknown."""
        return clock.work(self.cpu_after_budget, self.thread_after_budget)

    def step_in_progress(self, clock: Clock) -> float:
        """The work after the budget excused as the step in progress.

        The batch in training when the budget ended and each batch asked for after it, STEP_BATCHES
        at most, at the timed part's work per batch: its work over the batches it finished (the loader asks for each batch
        as it hands over the one before, so the last one asked for by the budget's end is not yet
        handed over and the one before it is in training). Counting the part of the batch in training
        done by then, but not the batch, errs on the generous side: by at most one batch's work
        spread over the finished ones. 0 when not measured.
        """
        work = clock.work(self.cpu_in_budget, self.thread_in_budget)
        if work is None or self.batches_in_budget is None or self.first_timed is None:
            return 0.0  # not measured, or no timed batch was ever asked for: no step to excuse
        finished = self.batches_in_budget - clock.warmup_batches - 2
        per_batch = work / max(1, finished)
        return per_batch * min(STEP_BATCHES, 1 + self.batches - self.batches_in_budget)


def over_budget(served: Served, clock: Clock, ended: float) -> str | None:
    """The reason a run is red for its training time, or None.

    Green when the target exited within budget + allowance on the server's clock, or, on a
    sealed CPU run, later but with work after the budget that fits into the allowance on an idle
    machine (:meth:`Served.work_after_budget`) once the step in progress is taken off
    (:meth:`Served.step_in_progress`), and no batch asked for once serving stopped: training on
    replayed batches is CPU work on a quiet machine and a loaded one alike, while a last step and
    an export slowed by other jobs only wait longer for the cores.
    """
    trained = served.trained(clock, ended)
    if trained <= clock.closes:
        return None
    work, step = served.work_after_budget(clock), served.step_in_progress(clock)
    if work is not None and work - step <= clock.allowance and not served.refused:
        return None
    used = "" if work is None else f"; its work after the budget takes {work:.1f} s on {clock.cores} idle cores"
    used += f", {step:.1f} s of it the step in progress" if work is not None and step else ""
    used += f"; it asked for {served.refused} batch{'es' if served.refused > 1 else ''} after that" if served.refused else ""
    return (f"over budget: trained {trained:.0f} s, budget {clock.budget:g} s (measured by the data server from "
            f"its first timed batch to the exit, with {clock.allowance:g} s for the export{used}; "
            "whatever the script printed)")


def socket_path(run_folder: Path) -> Path:
    """Where the run's socket goes: in its run folder, or a short private folder when that path is too long."""
    path = run_folder / "data.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) / "data.sock"


class DataServer:
    """One server for one run of a target, listening once made: run the target with `env`, then `stop`."""

    def __init__(self, target: str, clock: Clock, path: Path, *, search_path: Sequence[Path] = (),
                 forbidden: Sequence[Path] = (), env: Mapping[str, str] | None = None, log_path: Path | None = None) -> None:
        module, _, function = target.partition(":")
        if not module or not function:
            raise ValueError(f"data server {target!r} must be 'module:function'")
        self.target, self.clock, self.path = target, clock, path
        self.env = {SOCKET_ENV: str(path)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))  # bound before the target starts: it never races the server
        listener.listen(8)
        self._control, child_control = socket.socketpair()
        request = {
            "target": target, "clock": asdict(clock), "opened": time.monotonic(),
            "search_path": [str(Path(p).resolve()) for p in search_path],
            "forbidden": [str(Path(p).resolve()) for p in forbidden],
        }
        self._log_path = log_path or path.with_suffix(".log")
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self._log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    isolated_command(__name__, str(listener.fileno()), str(child_control.fileno()), json.dumps(request)),
                    cwd=tempfile.gettempdir(), env=dict(os.environ if env is None else env),
                    pass_fds=(listener.fileno(), child_control.fileno()), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
        except BaseException:
            self._control.close()
            raise
        finally:
            listener.close()
            child_control.close()

    def watch(self, token: Mapping[str, Any]) -> None:
        """Name the started target's process group (a local run's orphan token), whose CPU time the server samples."""
        if "pgid" in token:
            self._control.sendall(f"{int(token['pgid'])}\n".encode())

    def stop(self) -> Served:
        """End the server and return what it served; raises DataServerError if it died without a report."""
        try:
            self._control.shutdown(socket.SHUT_WR)  # EOF: the server writes its report and exits
            self._control.settimeout(10)
            chunks = []
            while chunk := self._control.recv(65536):
                chunks.append(chunk)
        except OSError:
            chunks = []
        finally:
            self.kill()
        raw = b"".join(chunks)
        if not raw:
            raise DataServerError(f"data server {self.target} ended without a report: {self.log_tail()}")
        report = json.loads(raw)
        if "error" in report:
            raise DataServerError(f"data server {self.target} failed: {report['error']}")
        return Served(**report["served"])

    def settle(self, ended: float) -> tuple[dict[str, float | int], str | None]:
        """Stop the server once the target has exited (at ``ended``): the fields its ledger row records
        (trained_s, served_tokens, work_after_budget_s, step_in_progress_s) and why the run is over
        budget, or None. Raises DataServerError when the server ended without a report."""
        served = self.stop()
        work = served.work_after_budget(self.clock)
        record: dict[str, float | int] = {"trained_s": round(served.trained(self.clock, ended), 2),
                                          "served_tokens": served.tokens}
        if work is not None:
            record["work_after_budget_s"] = round(work, 2)
            record["step_in_progress_s"] = round(served.step_in_progress(self.clock), 2)
        return record, over_budget(served, self.clock, ended)

    def kill(self) -> None:
        """End the server's process group now and remove its socket (idempotent)."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()
        self._control.close()
        self.path.unlink(missing_ok=True)
        if self.path.parent.name.startswith(TEMP_PREFIX):
            self.path.parent.rmdir()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-chars:].strip() or "no output"
        except FileNotFoundError:
            return "no output"


# ---------------------------------------------------------------------------
# The child's side: runs in the isolated interpreter
# ---------------------------------------------------------------------------


class _Budget:
    """The server's bookkeeping, shared by its connections: which batch may go, and what went."""

    def __init__(self, clock: Clock, opened: float) -> None:
        self.clock, self.lock = clock, threading.Lock()
        self.served = Served(opened=opened)
        self.group: int | None = None  # the target's process group (its leader's pid), as the plugin names it
        self._start: Cpu | None = None  # the target's CPU time when the clock started
        self._mark: Cpu | None = None  # ... when the budget ended

    def budget_ends(self) -> float:
        with self.lock:
            return self.served.clock_start(self.clock) + self.clock.budget

    def sample(self) -> None:
        """Read the target's CPU time as the clock starts (for the step in progress) and after the
        budget (the first reading after it is the mark the rest count from)."""
        with self.lock:
            group, starts = self.group, self.served.clock_start(self.clock)
        now = time.monotonic()
        wanted = group is not None and now >= starts and (self._start is None or now >= starts + self.clock.budget)
        cpu = target_cpu(group) if group is not None and wanted else None
        if cpu is None:
            return
        with self.lock:
            s, start, mark = self.served, self._start, self._mark
            if start is None:
                self._start = cpu
            elif mark is None:
                self._mark = cpu
                self.served = replace(s, cpu_after_budget=0.0, thread_after_budget=0.0,
                                      cpu_in_budget=cpu.total - start.total, thread_in_budget=_busiest(start, cpu),
                                      batches_in_budget=s.batches)
            else:
                self.served = replace(s, cpu_after_budget=max(cpu.total - mark.total, s.cpu_after_budget or 0.0),
                                      thread_after_budget=max(_busiest(mark, cpu), s.thread_after_budget or 0.0))

    def admit(self, tokens: int) -> bool:
        """Count a batch asked for now; False once the budget and its allowance are spent."""
        with self.lock:
            now, s = time.monotonic(), self.served
            # the loader asks for batch n + 1 as it hands over batch n: the clock starts with the first timed batch
            first_timed = now if s.first_timed is None and s.batches == self.clock.warmup_batches + 1 else s.first_timed
            s = replace(s, first_timed=first_timed)
            if now - s.clock_start(self.clock) > self.clock.closes:
                self.served = replace(s, refused=s.refused + 1)
                return False
            self.served = replace(s, batches=s.batches + 1, tokens=s.tokens + tokens)
            return True


def usable_cores() -> int:
    """The cores this process (and so the target it starts) may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Cpu:
    """CPU seconds a target has used so far: all its processes' (reaped children included), and each thread's."""

    total: float
    threads: Mapping[int, float]


def _busiest(since: Cpu, now: Cpu) -> float:
    """The most CPU time one thread used between two readings."""
    return max((t - since.threads.get(tid, 0.0) for tid, t in now.threads.items()), default=0.0)


def target_cpu(leader: int) -> Cpu | None:
    """The CPU time of a target, from /proc: the processes in its leader's group or below the leader.

    The sealed wrapper makes the leader its descendants' subreaper, so a process that leaves the
    group (setsid) or is orphaned still counts. None where there is no /proc.
    """
    processes = proctable.table()
    if processes is None:
        return None
    members = [pid for pid, p in processes.items() if p.group == leader or proctable.below(pid, leader, processes)]
    tick = os.sysconf("SC_CLK_TCK")
    threads = {tid: (int(fields[proctable.UTIME]) + int(fields[proctable.STIME])) / tick
               for pid in members for tid, fields in proctable.threads(pid)}
    return Cpu(sum(processes[pid].ticks for pid in members) / tick, threads)


def _child_main() -> None:
    """Entry point of the isolated interpreter: argv = [listening fd, control fd, request JSON]."""
    listener = socket.socket(fileno=int(sys.argv[1]))
    control = socket.socket(fileno=int(sys.argv[2]))
    request = json.loads(sys.argv[3])
    sys.path[0:0] = request["search_path"]
    guard = refuse_mutable(request["forbidden"])
    budget = _Budget(Clock(**request["clock"]), float(request["opened"]))
    error: list[str] = []
    module_name, _, attribute = request["target"].partition(":")
    try:
        function: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            function = getattr(function, part)
    except Exception as exc:  # noqa: BLE001 - the plugin reports it
        error.append(f"{type(exc).__name__}: {exc}")
        function = None
    if function is not None:
        threading.Thread(target=_accept, args=(listener, function, budget, error), daemon=True).start()
        threading.Thread(target=_sample, args=(budget,), daemon=True).start()
    for line in control.makefile("rb"):  # the target's process group, then EOF once it has exited
        with budget.lock:
            budget.group = int(line)
    loaded = guard.hit or forbidden_loaded(request["forbidden"])
    if loaded is not None:
        error.insert(0, f"imported the mutable file {loaded}")
    with budget.lock:
        reply = {"error": error[0]} if error else {"served": asdict(budget.served)}
    try:
        control.sendall(json.dumps(reply).encode())
        control.close()
    finally:
        os._exit(0)  # connection threads may still block on a socket the target left open


def _sample(budget: _Budget) -> None:
    """Read the target's CPU time as its clock starts and from its budget's end (both may come late: keep checking)."""
    while True:
        budget.sample()
        time.sleep(min(CPU_SAMPLE_S, max(budget.budget_ends() - time.monotonic(), 0.001)))


def _accept(listener: socket.socket, function: Any, budget: _Budget, error: list[str]) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, function, budget, error), daemon=True).start()


def _serve(conn: socket.socket, function: Any, budget: _Budget, error: list[str]) -> None:
    """One loader's connection: a JSON request line, then one batch per request byte until the budget ends."""
    try:
        _serve_batches(conn, function, budget, error)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the target exited with a request or a batch in flight: the normal end of a run, not an error


def _serve_batches(conn: socket.socket, function: Any, budget: _Budget, error: list[str]) -> None:
    with conn:
        reader = conn.makefile("rb")
        line = reader.readline()
        if not line:
            return
        try:
            batches: Iterator[tuple[bytes, int]] = iter(function(json.loads(line)))
        except Exception as exc:  # noqa: BLE001 - the target hears why, and so does the plugin
            message = f"{type(exc).__name__}: {exc}".encode()
            conn.sendall(HEADER.pack(b"E", 0, len(message)) + message)
            error.append(message.decode())
            return
        ready: queue.Queue[tuple[bytes, int] | str] = queue.Queue(PREFETCH)
        threading.Thread(target=_prefetch, args=(batches, ready), daemon=True).start()
        while reader.read(1) == REQUEST:
            item = ready.get()
            if isinstance(item, str):
                message = item.encode()
                conn.sendall(HEADER.pack(b"E", 0, len(message)) + message)
                return
            payload, tokens = item
            if not budget.admit(tokens):
                clock = budget.clock
                message = (f"the data server's budget is spent: {clock.budget:g} s of training and {clock.allowance:g} s "
                           "for the export have passed since the first timed batch; stop training when "
                           "TIME_BUDGET is reached").encode()
                conn.sendall(HEADER.pack(b"E", 0, len(message)) + message)
                return
            conn.sendall(HEADER.pack(b"B", tokens, len(payload)))
            conn.sendall(payload)


def _prefetch(batches: Iterator[tuple[bytes, int]], ready: queue.Queue[tuple[bytes, int] | str]) -> None:
    """Make batches ahead of the requests; a str in the queue is why there are no more."""
    try:
        for item in batches:
            ready.put(item)
        ready.put("the data server ran out of batches")
    except Exception as exc:  # noqa: BLE001 - the target hears why
        ready.put(f"the data server failed: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------
# The client: what a loader inside the target calls
# ---------------------------------------------------------------------------


class BudgetSpent(RuntimeError):
    """The data server serves no more batches: the budget (and its export allowance) is spent."""


class Unreachable(ConnectionError):
    """No data server listens where the loader was told to look."""


def receive(path: str | Path, request: Mapping[str, Any]) -> Iterator[tuple[int, memoryview]]:
    """Connect to the server at `path`, send `request`, and yield (tokens, payload) batch after batch.

    Each batch is asked for when the one before is handed over: the server makes and sends it
    while that one trains (nothing waits on a busy machine's scheduler), and its clock sees when
    training takes data. Raises BudgetSpent, with the server's reason, when it serves no more.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(str(path))
        except OSError as exc:
            raise Unreachable(f"cannot reach the data server at {path} ({exc.strerror}): the plugin starts one for "
                              "each run of a benchmark with data_server= (run it with pytest --autoresearch)") from exc
        conn.sendall(json.dumps(dict(request)).encode() + b"\n" + REQUEST)
        header = bytearray(HEADER.size)
        while True:
            _receive_into(conn, memoryview(header))
            kind, tokens, length = HEADER.unpack(header)
            payload = memoryview(bytearray(length))
            _receive_into(conn, payload)
            if kind != b"B":
                raise BudgetSpent(bytes(payload).decode(errors="replace"))
            conn.sendall(REQUEST)
            yield tokens, payload


def _receive_into(conn: socket.socket, view: memoryview) -> None:
    while view.nbytes:
        got = conn.recv_into(view)
        if not got:
            raise BudgetSpent("the data server closed the connection (the run is over)")
        view = view[got:]
