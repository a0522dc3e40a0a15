"""The data server's budget rule (pure) and a real server on a socket: warm-up, the clock, refusal, counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_autoresearch.dataserver import (
    MAX_SOCKET_PATH, SOCKET_ENV, TEMP_PREFIX, BudgetSpent, Clock, DataServer, DataServerError, Served, over_budget,
    receive, socket_path,
)

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
