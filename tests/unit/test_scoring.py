"""run_scorer with real isolated interpreters: values, rejections, crashes, timeouts, forbidden imports;
and a scorer started before its artifact exists (ScorerProcess)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import pid_alive
from pytest_autoresearch.scoring import AUTOGROUP_IDLE_NICE, Scored, ScorerProcess, ScoringError, run_scorer


@pytest.fixture
def frozen(tmp_path: Path) -> Path:
    """A folder holding the scorer module `myscorer` (a project's frozen side)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    (folder / "myscorer.py").write_text(textwrap.dedent(
        """
        import json, math, os, sys, time
        from pathlib import Path
        from pytest_autoresearch.scoring import Rejected

        def score(artifact):
            return {"size": float(len(artifact.read_bytes())), "cwd_is_empty": float(not os.listdir("."))}

        def bare(artifact):
            return 1.5

        def nan(artifact):
            return {"loss": math.nan, "other": math.inf}

        def reject(artifact):
            raise Rejected("the model's predictions depend on later tokens")

        def crash(artifact):
            print("some progress")
            raise ValueError("cannot read tensor 7")

        def hang(artifact):
            time.sleep(60)

        def liar(artifact):
            print(json.dumps({"values": {"size": 0.0}}))
            sys.stdout.flush()
            return {"size": 99.0}

        def sneaky(artifact):
            import train  # the mutable file
            return {"size": train.VALUE}

        def environment(artifact):
            return {"has_marker": float(os.environ.get("MARKER") == "1"), "paths": float("" in sys.path)}
        """
    ))
    return folder


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt2"
    path.write_bytes(b"x" * 42)
    return path


def score(target: str, artifact: Path, frozen: Path, **kwargs: object) -> Scored:
    return run_scorer(f"myscorer:{target}", artifact, timeout=30, search_path=[frozen], **kwargs)  # type: ignore[arg-type]


def test_values_come_back(artifact: Path, frozen: Path) -> None:
    result = score("score", artifact, frozen)
    assert result.values == {"size": 42.0, "cwd_is_empty": 1.0}
    assert result.rejected is None and result.seconds > 0


def test_a_bare_number_is_value(artifact: Path, frozen: Path) -> None:
    assert score("bare", artifact, frozen).values == {"value": 1.5}


def test_non_finite_values_pass_through(artifact: Path, frozen: Path) -> None:
    values = score("nan", artifact, frozen).values
    assert math.isnan(values["loss"]) and values["other"] == math.inf


def test_rejected_gives_the_reason(artifact: Path, frozen: Path) -> None:
    result = score("reject", artifact, frozen)
    assert result.rejected == "the model's predictions depend on later tokens" and result.values == {}


def test_a_crash_names_its_last_line(artifact: Path, frozen: Path) -> None:
    with pytest.raises(ScoringError, match="ValueError: cannot read tensor 7") as info:
        score("crash", artifact, frozen)
    assert "some progress" in info.value.log and "Traceback" in info.value.log


def test_a_missing_artifact(tmp_path: Path, frozen: Path) -> None:
    with pytest.raises(ScoringError, match=r"artifact .*model\.pt2 was not written"):
        score("score", tmp_path / "model.pt2", frozen)


def test_a_timeout_kills_the_scorer(artifact: Path, frozen: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ScoringError, match="timed out after 2s"):
        run_scorer("myscorer:hang", artifact, timeout=2, search_path=[frozen])
    assert time.monotonic() - started < 10


def test_printing_json_cannot_forge_the_result(artifact: Path, frozen: Path) -> None:
    result = score("liar", artifact, frozen)
    assert result.values == {"size": 99.0}
    assert '"size": 0.0' in result.log


def test_importing_a_forbidden_file_is_an_error(artifact: Path, frozen: Path) -> None:
    (frozen / "train.py").write_text("VALUE = 0.0\n")
    with pytest.raises(ScoringError, match=r"imported the mutable file .*train\.py"):
        score("sneaky", artifact, frozen, forbidden=[frozen / "train.py"])


def test_isolated_from_the_environment_and_cwd(artifact: Path, frozen: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(frozen)
    monkeypatch.setenv("PYTHONPATH", str(frozen))
    with pytest.raises(ScoringError, match="No module named 'myscorer'"):
        run_scorer("myscorer:score", artifact, timeout=30)  # neither cwd nor PYTHONPATH reach the child
    result = score("environment", artifact, frozen, env={"MARKER": "1"})
    assert result.values == {"has_marker": 1.0, "paths": 0.0}


def test_a_bad_target_is_a_value_error(artifact: Path) -> None:
    with pytest.raises(ValueError, match="module:function"):
        run_scorer("myscorer", artifact, timeout=5)



# Slow to import, as a model's scorer is (torch): says when its import is done, and when it scores.
SLOW_IMPORT = """
import os, time
time.sleep(1.5)
open(os.environ["MARKS"] + "/imported", "w").close()

def score(artifact):
    open(os.environ["MARKS"] + "/scored", "w").close()
    return {"size": float(len(artifact.read_bytes()))}
"""
# The plugin's side: starts that scorer for an artifact, says its pid, and dies (-9) once it has imported.
DYING_PLUGIN = """
import os, signal, sys, time
from pathlib import Path
from pytest_autoresearch.scoring import ScorerProcess
frozen, marks = sys.argv[1:3]
scorer = ScorerProcess("slowscorer:score", Path(marks) / "model.pt2", search_path=[Path(frozen)])
print(scorer._proc.pid, flush=True)
while not os.path.exists(os.path.join(marks, "imported")):
    time.sleep(0.05)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _slow_scorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The folder holding ``slowscorer`` and the one it leaves its marks in (``MARKS``)."""
    frozen, marks = tmp_path / "slow", tmp_path / "marks"
    frozen.mkdir()
    marks.mkdir()
    (frozen / "slowscorer.py").write_text(SLOW_IMPORT)
    monkeypatch.setenv("MARKS", str(marks))
    return frozen, marks


def _appears(path: Path, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def _gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def test_a_started_scorer_imports_before_the_artifact_exists_and_scores_on_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen, marks = _slow_scorer(tmp_path, monkeypatch)
    artifact = tmp_path / "model.pt2"
    scorer = ScorerProcess("slowscorer:score", artifact, search_path=[frozen])
    assert _appears(marks / "imported")  # while the target would still be running
    assert not (marks / "scored").exists()
    artifact.write_bytes(b"x" * 7)
    result = scorer.score(timeout=30)
    assert result.values == {"size": 7.0} and (marks / "scored").exists()
    assert result.seconds < 1.5  # counted from go: the import was paid before


def test_a_started_scorer_that_is_never_asked_ends_without_scoring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen, marks = _slow_scorer(tmp_path, monkeypatch)
    scorer = ScorerProcess("slowscorer:score", tmp_path / "model.pt2", search_path=[frozen])
    assert _appears(marks / "imported")
    pid = scorer._proc.pid
    scorer.close()
    assert not pid_alive(pid) and not (marks / "scored").exists()
    scorer.close()  # idempotent


def test_a_started_scorer_exits_when_the_plugin_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest killed (-9) during the run: the scorer sees its stdin close and exits, scoring nothing."""
    frozen, marks = _slow_scorer(tmp_path, monkeypatch)
    (marks / "model.pt2").write_bytes(b"x")
    plugin = subprocess.run([sys.executable, "-c", DYING_PLUGIN, str(frozen), str(marks)], capture_output=True,
                            text=True, timeout=60)
    assert plugin.returncode == -signal.SIGKILL, plugin.stderr
    assert _gone(int(plugin.stdout.split()[0])) and not (marks / "scored").exists()


# Says the scheduling policy its import ran at, and the one it scores at; its first import waits a minute.
POLICIES = """
import os, time
marks = os.environ["MARKS"]
if not os.path.exists(marks + "/once") and os.environ.get("FIRST_IMPORT_WAITS"):
    open(marks + "/once", "w").close()
    time.sleep(60)
IMPORTED_AT = os.sched_getscheduler(0)

def score(artifact):
    return {"imported_at": IMPORTED_AT, "scored_at": os.sched_getscheduler(0)}
"""


def _imported_scorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str,
                     source: str) -> tuple[ScorerProcess, Path, Path]:
    """A scorer of `module:score` started before its artifact, once its import is done; the artifact, the frozen folder."""
    frozen, _ = _slow_scorer(tmp_path, monkeypatch)
    (frozen / f"{module}.py").write_text(source)
    artifact = tmp_path / "model.pt2"
    artifact.write_bytes(b"x")
    scorer = ScorerProcess(f"{module}:score", artifact, search_path=[frozen])
    deadline = time.monotonic() + 30
    while not scorer.imported and time.monotonic() < deadline:
        time.sleep(0.05)
    return scorer, artifact, frozen


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="scheduling policies are Linux's")
def test_a_started_scorer_imports_on_idle_cores_and_scores_at_its_own_priority(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The target never waits for the scorer's import (train.py times its own start-up); scoring does not crawl."""
    scorer, artifact, frozen = _imported_scorer(tmp_path, monkeypatch, "policies", POLICIES)
    assert scorer.score(timeout=30).values == {"imported_at": os.SCHED_IDLE, "scored_at": os.SCHED_OTHER}
    cold = run_scorer("policies:score", artifact, timeout=30, search_path=[frozen])
    assert cold.values == {"imported_at": os.SCHED_OTHER, "scored_at": os.SCHED_OTHER}  # started after: no reason to wait


# Says the nice value of its session's scheduling group (autogroup) while it imported, and while it scores.
AUTOGROUP = """
def group_nice():
    with open("/proc/self/autogroup") as autogroup:
        return int(autogroup.read().split()[-1])
IMPORTED_NICE = group_nice()

def score(artifact):
    return {"imported": IMPORTED_NICE, "scored": group_nice()}
"""


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="the kernel has no autogroup")
def test_a_started_scorer_imports_in_a_session_the_target_outranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With autogroup each session is a scheduling group and SCHED_IDLE yields only within the scorer's own:
    its session's group is niced while it imports beside the target, and back at 0 when it scores."""
    scorer, artifact, frozen = _imported_scorer(tmp_path, monkeypatch, "autogroup", AUTOGROUP)
    assert scorer.score(timeout=30).values == {"imported": AUTOGROUP_IDLE_NICE, "scored": 0}
    assert run_scorer("autogroup:score", artifact, timeout=30, search_path=[frozen]).values == {"imported": 0, "scored": 0}


def test_a_started_scorer_still_importing_at_go_is_replaced_by_a_fresh_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No core was idle for its import (a busy machine): the run pays what it paid before, not more."""
    frozen, marks = _slow_scorer(tmp_path, monkeypatch)
    (frozen / "policies.py").write_text(POLICIES)
    monkeypatch.setenv("FIRST_IMPORT_WAITS", "1")
    artifact = tmp_path / "model.pt2"
    artifact.write_bytes(b"x")
    scorer = ScorerProcess("policies:score", artifact, search_path=[frozen])
    assert _appears(marks / "once")
    first = scorer._proc.pid
    started = time.monotonic()
    result = scorer.score(timeout=30)
    assert time.monotonic() - started < 20 and result.values["imported_at"] == os.SCHED_OTHER
    assert not pid_alive(first)
