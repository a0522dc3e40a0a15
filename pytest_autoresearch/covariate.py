"""What the machine gave a run, and the verdict's correction for it (CUPED).

A wall-clock budget turns the machine's speed into the metric: a neighbour's job takes cores, the
run trains fewer steps, the value moves with no change of code. :class:`Gauge` measures, from the
plugin's process and never from the target's, what the machine gave each run: the share of the
machine's CPU that other processes used while the target ran (``/proc/stat`` less this process
tree's CPU), steal time, other processes' runnable threads (sampled while the run goes), and the
speed of a fixed reference workload just before and just after (the covariate the verdict uses:
the target cannot move it, see README).
The pure core (:func:`fit`, :class:`Adjustment`) estimates how much of the value one unit of
load moves (theta, from draws of the same commit only) and corrects each draw for its own load.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import proctable
from .ledger import Entry
from .noise import Noise
from .paired import Pairs

KEY = "machine"  # the ledger field (in extra) that holds a run's gauge readings
COVARIATE = "reference"  # the reading the verdict corrects for (README: why this one, measured against the others)
MIN_DOF = 6  # within-commit degrees of freedom before theta is estimated at all
MIN_T = 3.0  # theta is used only this many standard errors from 0: pure noise passes |t| >= 3 in 0.3% of fits
MAX_RATIO = 0.9  # ... and only when it takes the pooled sigma to at most this fraction of the raw one
REFERENCE_CHUNK = bytes(1 << 18)  # the reference workload: hashing this 256 KiB block, again and again ...
REFERENCE_S = 0.1  # ... on every usable core for this long, before the run and again after it
SAMPLE_S = 1.0  # while the run goes: how often the gauge counts the other processes' runnable threads


# -- the gauge: frozen code in the plugin's process -------------------------------------------


def _machine_ticks(proc: str) -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs since boot, from /proc/stat; None without it."""
    try:
        with open(f"{proc}/stat", "rb") as stat:
            fields = [int(f) for f in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    return user + nice + system + irq + softirq, steal, sum(fields)


def _own_ticks(proc: str) -> int | None:
    """CPU jiffies of this process and everything below it: reaped children through os.times, live
    descendants (the target, the data server) through /proc. A process reaped between two readings
    moves from the second sum to the first, so the difference of two readings loses nothing."""
    processes = proctable.table(proc)
    if processes is None:
        return None
    times, me = os.times(), os.getpid()
    own = round((times.user + times.system + times.children_user + times.children_system) * os.sysconf("SC_CLK_TCK"))
    return own + sum(p.ticks for pid, p in processes.items() if proctable.below(pid, me, processes))


def _competing(proc: str) -> float | None:
    """Other processes' runnable threads now, each weighted as the scheduler weighs it against this
    process (nice n against ours: 1.25 ** (ours - n)); this process tree and kernel threads left
    out. Runnable, not running: it does not fall when the target takes the CPU from them."""
    processes = proctable.table(proc)
    if processes is None:
        return None
    me, ours, kthreadd = os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), 2
    weight = 0.0
    for pid in processes:
        if pid in (me, kthreadd) or proctable.below(pid, me, processes) or proctable.below(pid, kthreadd, processes):
            continue  # this process tree, or a kernel thread
        for _, fields in proctable.threads(pid, proc):
            if fields[proctable.STATE] == b"R":
                weight += 1.25 ** (ours - int(fields[proctable.NICE]))
    return weight


def reference_speed(seconds: float = REFERENCE_S) -> float:
    """GB/s a fixed workload reaches on every usable core at once for ``seconds``: what the machine
    gives a run now. A fixed time, not a fixed amount of work, so a loaded machine costs no more.

    hashlib releases the GIL on large blocks, so the threads run in parallel as a multi-core
    target would; a busy neighbour on any core slows them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    done = [0] * cores
    end = time.perf_counter() + seconds

    def work(index: int) -> None:
        digest = hashlib.sha256()
        while time.perf_counter() < end:
            digest.update(REFERENCE_CHUNK)
            done[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(cores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) * len(REFERENCE_CHUNK) / (time.perf_counter() - started) / 1e9


class Gauge:
    """Started just before a run, stopped just after: what the machine gave it (:meth:`stop`)."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc  # where the kernel's process information is mounted
        self.before = reference_speed()
        self.machine, self.own = _machine_ticks(proc), _own_ticks(proc)
        self.competing: list[float] = []  # the samples of :func:`_competing` while the run goes
        self.next_sample = time.monotonic() + SAMPLE_S

    def sample(self) -> None:
        """Called while the run goes (often): every :data:`SAMPLE_S`, count the competing threads."""
        if time.monotonic() >= self.next_sample:
            self.next_sample = time.monotonic() + SAMPLE_S
            found = _competing(self.proc)
            if found is not None:
                self.competing.append(found)

    def stop(self) -> dict[str, float]:
        """The run's readings: ``others`` (share of all CPU time that other processes used while it ran),
        ``steal`` (share stolen by the hypervisor), ``reference`` (the workload's GB/s, the mean of
        before and after), ``competing`` (the mean of :func:`_competing` over the run). Without /proc only ``reference``, which is all the adjustment reads."""
        machine, own = _machine_ticks(self.proc), _own_ticks(self.proc)
        readings = {"reference": round((self.before + reference_speed()) / 2, 5)}
        if self.competing:
            readings["competing"] = round(sum(self.competing) / len(self.competing), 4)
        if machine is None or own is None or self.machine is None or self.own is None:
            return readings
        busy, steal, total = (now - then for now, then in zip(machine, self.machine))
        if total <= 0:
            return readings
        others = max(0.0, (busy - (own - self.own)) / total)
        return {**readings, "others": round(min(1.0, others), 5), "steal": round(steal / total, 5)}


# -- the pure core: theta, the adjustment, when it is used ------------------------------------


def reading(extra: Mapping[str, Any], name: str = COVARIATE) -> float | None:
    """The covariate a row's (or a draw's) extra fields recorded, or None (written before the gauge,
    or no /proc)."""
    machine = extra.get(KEY)
    value = machine.get(name) if isinstance(machine, Mapping) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


@dataclass(frozen=True)
class Adjustment:
    """adjusted = raw - theta * (covariate - reference), with theta from within-commit variation.

    The reference is the mean covariate of the draws theta was fitted on: an adjusted value is
    what the draw would have measured under the load typical of this machine."""

    theta: float
    reference: float
    se: float  # standard error of theta
    dof: int  # within-commit degrees of freedom behind it
    raw_sigma: float  # pooled standard deviation of the raw draws
    sigma: float  # pooled standard deviation of the adjusted draws (one more dof spent on theta)

    def value(self, raw: float, covariate: float | None) -> float:
        """A draw corrected for its load; a draw with no reading is taken as it is."""
        return raw if covariate is None else raw - self.theta * (covariate - self.reference)

    def floor(self, pooled: Noise | None) -> Noise | None:
        """A noise floor pooled from adjusted draws, with the degree of freedom spent on theta taken off."""
        if pooled is None or pooled.dof < 2:
            return pooled
        return Noise(pooled.sigma * math.sqrt(pooled.dof / (pooled.dof - 1)), pooled.dof - 1, pooled.groups)

    def pairs(self, pairs: Pairs) -> Pairs:
        """Paired draws, each corrected for its own load."""
        return Pairs(tuple(self.value(y, x) for y, x in zip(pairs.bar, pairs.bar_load or [None] * pairs.n)),
                     tuple(self.value(y, x) for y, x in zip(pairs.candidate, pairs.candidate_load or [None] * pairs.n)))

    def text(self) -> str:
        """What the ``-q`` line and ``show`` say of it."""
        return f"adjusted for load: sigma {self.raw_sigma:.3g} -> {self.sigma:.3g}"


def fit(groups: Iterable[Sequence[tuple[float, float]]]) -> Adjustment | None:
    """Theta pooled over groups of (value, covariate) draws of one commit each, or None when it is not used.

    Within-commit only: each group is centred on its own means, so a better commit measured on a
    busier night does not teach theta that load helps. Used when the groups give at least
    :data:`MIN_DOF` degrees of freedom, the covariate varied, and theta is :data:`MIN_T` standard
    errors from 0 and it takes the pooled sigma (a degree of freedom spent on theta) to at most
    :data:`MAX_RATIO` of the raw one. A verdict refits at every run, so a weak rule would be passed
    by chance sooner or later: a drift that happens to follow the machine's load, fitted at
    |t| >= 2 with 5% less sigma, kept two of twenty no-change commits in the paired drift test."""
    sxx = sxy = syy = total = 0.0
    dof = count = 0
    for draws in groups:
        if len(draws) < 2:
            continue
        ys, xs = [y for y, _ in draws], [x for _, x in draws]
        my, mx = sum(ys) / len(ys), sum(xs) / len(xs)
        sxx += sum((x - mx) ** 2 for x in xs)
        sxy += sum((x - mx) * (y - my) for y, x in draws)
        syy += sum((y - my) ** 2 for y in ys)
        dof += len(draws) - 1
        total, count = total + sum(xs), count + len(xs)
    if dof < MIN_DOF or sxx <= 0 or syy <= 0:
        return None
    theta = sxy / sxx
    residual = max(0.0, syy - theta * sxy)
    se = math.sqrt(residual / (dof - 1) / sxx)
    raw, adjusted = math.sqrt(syy / dof), math.sqrt(residual / (dof - 1))
    if se > 0 and abs(theta) / se < MIN_T or adjusted > MAX_RATIO * raw:
        return None
    return Adjustment(theta, total / count, se, dof, raw, adjusted)


def fit_runs(runs: Iterable[Entry], commits: Iterable[str], host: str | None,
             current: Sequence[tuple[float, float | None]] = (), head: str = "") -> Adjustment | None:
    """:func:`fit` over the judged draws with a reading of each commit in ``commits`` made on ``host``
    (as the noise floor pools them), HEAD's draws of this run (``current``) counted as HEAD's."""
    wanted = set(commits)
    groups: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        x = reading(run.extra)
        if (run.sha in wanted and (host is None or run.host == host) and run.status in ("keep", "discard")
                and run.value is not None and math.isfinite(run.value) and x is not None):
            groups.setdefault(run.sha, []).append((run.value, x))
    groups.setdefault(head, []).extend((y, x) for y, x in current if x is not None and math.isfinite(y))
    return fit(groups.values())


def adjusted(runs: Iterable[Entry], adjustment: Adjustment | None) -> list[Entry]:
    """The rows with each value corrected for its load (the ledger keeps the raw ones)."""
    if adjustment is None:
        return list(runs)
    return [replace(run, value=adjustment.value(run.value, reading(run.extra))) if run.value is not None else run
            for run in runs]
