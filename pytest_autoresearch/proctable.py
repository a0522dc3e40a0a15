"""The machine's process table, from /proc: who is below whom, and the CPU time each used.

Read by the plugin's side only, never by a target: the data server (a target's CPU work after its
budget, :func:`pytest_autoresearch.dataserver.target_cpu`) and the load gauge (this process tree's
CPU, other processes' runnable threads, :mod:`pytest_autoresearch.covariate`). Processes come and
go while it is read: one that is gone is left out. None where there is no /proc (macOS).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

STATE, PARENT, GROUP, UTIME, STIME, CUTIME, CSTIME, NICE = 0, 1, 2, 11, 12, 13, 14, 16  # fields after the name


@dataclass(frozen=True)
class Process:
    parent: int
    group: int  # its process group
    ticks: int  # CPU jiffies it used, its reaped children's included (utime, stime, cutime, cstime)


def stat(path: str) -> list[bytes] | None:
    """The fields of a stat file after the command name (which may hold spaces): state, ppid, pgrp, ...;
    None when the process is gone."""
    try:
        with open(path, "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return fields if len(fields) > NICE else None


def table(proc: str = "/proc") -> dict[int, Process] | None:
    """Every process now, by pid; None without /proc."""
    try:
        names = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return None
    processes = {}
    for name in names:
        fields = stat(f"{proc}/{name}/stat")
        if fields is not None:
            processes[int(name)] = Process(int(fields[PARENT]), int(fields[GROUP]),
                                           sum(int(f) for f in fields[UTIME:CSTIME + 1]))
    return processes


def below(pid: int, ancestor: int, processes: Mapping[int, Process]) -> bool:
    """Whether ``ancestor`` is among the ancestors of ``pid`` (not ``pid`` itself)."""
    seen = set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        pid = processes[pid].parent
        if pid == ancestor:
            return True
    return False


def threads(pid: int, proc: str = "/proc") -> Iterator[tuple[int, list[bytes]]]:
    """Each thread of ``pid`` still there, with its stat fields."""
    try:
        tids = os.listdir(f"{proc}/{pid}/task")
    except OSError:
        return
    for tid in tids:
        fields = stat(f"{proc}/{pid}/task/{tid}/stat")
        if fields is not None:
            yield int(tid), fields
