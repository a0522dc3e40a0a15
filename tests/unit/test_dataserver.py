"""The data server's budget rule (pure) and a real server on a socket: warm-up, the clock, refusal, counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_autoresearch.dataserver import (
    MAX_SOCKET_PATH, SOCKET_ENV, TEMP_PREFIX, BudgetSpent, Clock, DataServer, DataServerError, Served, over_budget,
    Unreachable, receive, socket_path, target_cpu,
)
from pytest_autoresearch.runner import landlock, sandbox
from pytest_autoresearch.runner.sandbox import Sealing

CLOCK = Clock(budget=300, allowance=20, warmup_batches=10, warmup_limit=180)


@pytest.mark.parametrize(("first_timed", "ended", "trained"), [
    (1000.0, 1300.0, 300.0),  # the clock starts at the first timed batch
    (1000.0, 900.0, 0.0),  # exited before it: trained nothing
    (None, 1380.0, 200.0),  # no timed batch: the clock started at the warm-up limit (opened 1000 + 180)
    (1500.0, 1700.0, 520.0),  # a warm-up longer than the limit counts against the budget
])
def test_the_clock_starts_at_the_first_timed_batch_or_the_warmup_limit(
        first_timed: float | None, ended: float, trained: float) -> None:
    assert Served(opened=1000.0, first_timed=first_timed).trained(CLOCK, ended) == trained


@pytest.mark.parametrize(("ended", "red"), [(1300.0, False), (1320.0, False), (1320.5, True), (1331.0, True)])
def test_over_budget_is_past_the_budget_and_its_export_allowance(ended: float, red: bool) -> None:
    reason = over_budget(Served(opened=990.0, first_timed=1000.0), CLOCK, ended)
    assert (reason is not None) == red
    if red:
        assert reason is not None and reason.startswith(f"over budget: trained {ended - 1000:.0f} s, budget 300 s")


LOADED = Clock(budget=300, allowance=20, cores=4)


@pytest.mark.parametrize(("cpu", "thread", "refused", "red"), [
    (8.0, 2.0, 0, False),  # an export on 4 busy cores: 2 s of work, waited 40 s for them
    (70.0, 5.0, 0, False),  # 70 CPU seconds spread over 4 cores: 17.5 s on an idle machine
    (90.0, 5.0, 0, True),  # 22.5 s of work on 4 idle cores: training
    (21.0, 21.0, 0, True),  # one thread busy for 21 s: no number of idle cores does it faster
    (1.0, 1.0, 2, True),  # asked for batches after serving stopped: it meant to train
    (None, None, 0, True),  # never measured: only the clock counts
])
def test_a_late_exit_is_excused_only_by_little_work_after_the_budget(
        cpu: float | None, thread: float | None, refused: int, red: bool) -> None:
    served = Served(opened=990.0, first_timed=1000.0, refused=refused, cpu_after_budget=cpu, thread_after_budget=thread)
    reason = over_budget(served, LOADED, 1360.0)
    assert (reason is not None) == red
    if reason is not None and cpu is not None:
        assert f"its work after the budget takes {max(thread or 0, cpu / 4):.1f} s on 4 idle cores" in reason


SLOW_STEPS = Clock(budget=30, allowance=20, warmup_batches=4, cores=2)


def slow_steps(after: float, asked_after: int, batches_in_budget: int | None = 11) -> Served:
    """A run of 6 s of work a batch on 2 cores: in its 30 s budget, 5 batches finished and one in training
    (11 asked for: 4 untimed, 6 timed, and the next)."""
    return Served(opened=990.0, first_timed=1000.0, batches=(batches_in_budget or 0) + asked_after,
                  cpu_in_budget=60.0, thread_in_budget=30.0, batches_in_budget=batches_in_budget,
                  cpu_after_budget=2 * after, thread_after_budget=after)


@pytest.mark.parametrize(("after", "asked_after", "step", "red"), [
    (27.0, 1, 12.0, False),  # finished the batch in training and the one it asked for, then 15 s of export
    (27.0, 0, 6.0, True),  # the same work, but no batch asked for after the budget: it trained on replayed ones
    (39.0, 5, 18.0, True),  # asked for 5 batches after the budget: the excuse stops at STEP_BATCHES of them
    (38.0, 5, 18.0, False),
])
def test_the_step_in_progress_at_the_budgets_end_is_excused_by_its_measured_work(
        after: float, asked_after: int, step: float, red: bool) -> None:
    served = slow_steps(after, asked_after)
    assert served.step_in_progress(SLOW_STEPS) == step
    reason = over_budget(served, SLOW_STEPS, 1080.0)
    assert (reason is not None) == red
    if reason is not None:
        assert f"its work after the budget takes {after:.1f} s on 2 idle cores, {step:.1f} s of it the step in progress" \
            in reason


def test_no_step_is_excused_where_the_budget_was_not_measured() -> None:
    assert slow_steps(22.0, 1, batches_in_budget=None).step_in_progress(SLOW_STEPS) == 0.0
    assert slow_steps(22.0, 1).step_in_progress(CLOCK) == 0.0  # cores = 0: the clock alone
    assert replace(slow_steps(22.0, 1), first_timed=None).step_in_progress(SLOW_STEPS) == 0.0  # never timed


def test_a_gpu_or_unsealed_run_is_judged_by_the_clock_alone() -> None:
    served = Served(opened=990.0, first_timed=1000.0, cpu_after_budget=0.0, thread_after_budget=0.0)
    assert over_budget(served, CLOCK, 1360.0) is not None  # cores = 0
    assert served.work_after_budget(CLOCK) is None and served.work_after_budget(LOADED) == 0.0


# Burns CPU in a process that left the target's group (setsid), and in the target itself.
ESCAPE = """
import os, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
child = os.fork()
if child == 0:
    os.setsid()
    burn(0.6)
    time.sleep(30)
    os._exit(0)
burn(0.4)
print(child, flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(landlock.abi() < sandbox.NEEDED_ABI, reason="this kernel cannot seal (Landlock ABI < 4)")
def test_the_target_cpu_counts_every_process_below_the_sealed_target(tmp_path: Path) -> None:
    (tmp_path / "escape.py").write_text(ESCAPE)
    command, env = Sealing(str(tmp_path / "run")).command([sys.executable, str(tmp_path / "escape.py")], str(tmp_path))
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        time.sleep(0.5)  # the escaped child finishes its 0.6 s too
        cpu = target_cpu(proc.pid)
        assert cpu is not None and cpu.total >= 0.95, cpu
        busiest = sorted(cpu.threads.values())[-2:]
        assert busiest[0] >= 0.35 and busiest[1] >= 0.55, cpu.threads
        assert os.getpgid(child) != proc.pid, "the child left the target's group"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        if "child" in locals():
            os.kill(child, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_run_folder_too_deep_for_a_socket_gets_a_short_private_one(tmp_path: Path) -> None:
    assert socket_path(Path("/tmp/run")) == Path("/tmp/run/data.sock")
    deep = tmp_path / ("x" * MAX_SOCKET_PATH)
    path = socket_path(deep)
    assert path.parent.name.startswith(TEMP_PREFIX) and len(str(path)) <= MAX_SOCKET_PATH
    path.parent.rmdir()


COUNTER = """
def serve(request):
    n = 0
    while True:
        n += 1
        yield n.to_bytes(4, "big") * request["width"], request["width"]
"""


def start(tmp_path: Path, clock: Clock, source: str = COUNTER, forbidden: tuple[Path, ...] = ()) -> DataServer:
    (tmp_path / "counter.py").write_text(source)
    return DataServer("counter:serve", clock, tmp_path / "run" / "data.sock", search_path=[tmp_path],
                      forbidden=forbidden)


def test_batches_arrive_in_order_and_are_counted(tmp_path: Path) -> None:
    server = start(tmp_path, Clock(budget=60, allowance=1, warmup_batches=3))
    assert server.env == {SOCKET_ENV: str(tmp_path / "run" / "data.sock")}
    batches = receive(server.path, {"width": 2})
    got = [next(batches) for _ in range(5)]
    assert [(tokens, bytes(payload)) for tokens, payload in got] == [
        (2, n.to_bytes(4, "big") * 2) for n in range(1, 6)]
    served = server.stop()
    assert served.batches in (5, 6) and served.tokens == 2 * served.batches  # the 6th is asked for as the 5th is taken
    assert served.first_timed is not None and served.opened < served.first_timed <= time.monotonic()
    assert not server.path.exists(), "the socket goes with the server"


def test_warmup_batches_are_untimed(tmp_path: Path) -> None:
    server = start(tmp_path, Clock(budget=60, allowance=1, warmup_batches=3))
    batches = receive(server.path, {"width": 1})
    for _ in range(3):
        next(batches)
    time.sleep(0.3)  # a slow compile on the last warm-up batch
    asked = time.monotonic()
    next(batches)  # the first timed batch: the loader asks for the next one as it hands this one over
    next(batches)
    answered = time.monotonic()
    served = server.stop()
    assert served.first_timed is not None and asked <= served.first_timed <= answered


def test_no_batch_after_the_budget_and_its_allowance(tmp_path: Path) -> None:
    server = start(tmp_path, Clock(budget=0.3, allowance=0.1, warmup_batches=0))
    batches = receive(server.path, {"width": 1})
    next(batches)
    time.sleep(0.5)
    next(batches)  # asked for and sent in time, as the first was handed over
    with pytest.raises(BudgetSpent, match="the data server's budget is spent: 0.3 s of training and 0.1 s"):
        next(batches)
    served = server.stop()
    assert (served.batches, served.refused) == (2, 1)


def test_a_data_server_that_imports_a_mutable_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("SECRET = 1\n")
    server = start(tmp_path, Clock(budget=60), source="import train\n" + COUNTER, forbidden=(tmp_path / "train.py",))
    with pytest.raises(DataServerError, match="imported the mutable file .*train.py"):
        server.stop()


def test_the_server_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    """pytest ended by os._exit (pytest-timeout's thread method) leaves no server behind."""
    (tmp_path / "counter.py").write_text(COUNTER)
    starter = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from pytest_autoresearch.dataserver import Clock, DataServer\n"
        f"server = DataServer('counter:serve', Clock(budget=60), Path({str(tmp_path / 'data.sock')!r}), "
        f"search_path=[Path({str(tmp_path)!r})])\n"
        "print(server._proc.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, check=True)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # Linux: a zombie waiting for init to reap it is gone too
    return not stat.exists() or stat.read_text().split(") ")[-1].split()[0] != "Z"


def test_a_loader_that_cannot_reach_the_server_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(Unreachable, match=r"cannot reach the data server at .*nowhere.sock .*pytest --autoresearch"):
        next(receive(tmp_path / "nowhere.sock", {"width": 1}))


def test_a_target_that_exits_mid_request_leaves_no_traceback(tmp_path: Path) -> None:
    """The loader asks for the next batch as it hands one over, so a run always ends with a request in flight."""
    server = start(tmp_path, Clock(budget=60, allowance=1, warmup_batches=0))
    batches = receive(server.path, {"width": 1})
    next(batches)
    batches.close()  # the target exits: its socket closes with the next request unanswered
    time.sleep(0.3)
    server.stop()
    assert "Traceback" not in server.log_tail(), server.log_tail()
