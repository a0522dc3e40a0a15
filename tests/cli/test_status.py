"""``autoresearch status``: the morning summary of a branch, from a ledger the plugin wrote."""

from __future__ import annotations

import re
import socket

from cli_helpers import night, run_cli

from conftest import Project


def section(text: str, title: str) -> list[str]:
    """The lines after ``title`` up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    return lines[start + 1 : lines.index("", start) if "" in lines[start:] else None]


def test_status_of_the_current_branch(project: Project) -> None:
    shas = night(project)
    done = run_cli(project.path, "status")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"autoresearch status: branch autoresearch/nov25 at {shas['warmdown 0.5'][:7]}, 5 runs, last ")
    assert "test_bench.py::test_train  score: lower is better\n" in out
    block = section(out, "test_bench.py::test_train  score")
    assert re.fullmatch(rf"  best +1\.1 +{shas['warmdown 0.5'][:7]}  warmdown 0\.5", block[0])
    assert re.fullmatch(rf"  baseline +1\.5 +{shas['baseline'][:7]}  baseline", block[1])
    assert block[2] == "  improvement -0.4 (-26.7%) in 2 kept changes since the baseline"
    assert block[3] == "  ideas: keep 3, discard 1, crash 1, timeout 0; keep rate 60% (5 commits)"
    assert block[4] == "  draws: keep 3, discard 1, crash 1, timeout 0 (5 runs)"
    assert block[5] == (f"  noise: unknown on this host ({socket.gethostname()}), no commit measured twice here "
                        "(autoresearch calibrate)")
    recent = section(out, "last 5 runs:")
    assert recent[0].split() == ["finished", "(UTC)", "commit", "branch", "value", "mem_gb", "status", "secs", "run",
                                "description"]
    assert [line.split()[2] for line in recent[1:]] == [shas[d][:7] for d in shas]
    assert [line.split()[6] for line in recent[1:]] == ["keep", "keep", "discard", "crash", "keep"]
    assert done.stderr == ""


def test_last_runs_count_is_an_option(project: Project) -> None:
    night(project)
    recent = section(run_cli(project.path, "status", "--last", "2").stdout, "last 2 runs:")
    assert [line.split()[6] for line in recent[1:]] == ["crash", "keep"]


def two_sessions(project: Project) -> tuple[str, str]:
    """Two session branches from one base commit: a reaches 1.2, b reaches 1.1."""
    project.bench()
    base = project.train(1.5, "baseline")
    project.repo.git.checkout("-b", "autoresearch/a")
    project.run().assert_outcomes(passed=1)
    a = project.train(1.2, "idea a")
    project.run().assert_outcomes(passed=1)
    project.repo.git.checkout("-b", "autoresearch/b", base)
    project.run().assert_outcomes(passed=1)  # a re-measurement of the kept base
    project.train(1.4, "idea b1")
    project.run().assert_outcomes(passed=1)
    b = project.train(1.1, "idea b2")
    project.run().assert_outcomes(passed=1)
    project.train(1.3, "idea b3")
    project.run().assert_outcomes(failed=1)
    project.repo.git.reset("--hard", "HEAD~1")
    return a, b


def test_a_branch_sees_its_own_history_not_its_siblings(project: Project) -> None:
    """Best follows the branch: b's status knows the shared base, not a's 1.2."""
    a, b = two_sessions(project)
    out = run_cli(project.path, "status").stdout
    block = section(out, "test_bench.py::test_train  score")
    assert re.fullmatch(rf"  best +1\.1 +{b[:7]}  idea b2", block[0])
    assert "  ideas: keep 3, discard 1, crash 0, timeout 0; keep rate 75% (4 commits)" in block
    assert "  draws: keep 4, discard 1, crash 0, timeout 0, re-measured 1 (5 runs)" in block
    assert a[:7] not in out
    project.repo.git.checkout("autoresearch/a")
    out = run_cli(project.path, "status").stdout
    assert re.fullmatch(rf"  best +1\.2 +{a[:7]}  idea a", section(out, "test_bench.py")[0])


def test_all_branches_best_first(project: Project) -> None:
    a, b = two_sessions(project)
    done = run_cli(project.path, "status", "--all-branches")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("autoresearch status: 6 runs on 2 branches")
    rows = section(done.stdout, "test_bench.py::test_train  score: lower is better")
    assert rows[0].split()[:6] == ["branch", "best", "commit", "ideas", "kept", "rate"]
    assert [r.split()[:6] for r in rows[1:]] == [
        ["autoresearch/b", "1.1", b[:7], "4", "3", "75%"],  # its first run re-measured the kept base
        ["autoresearch/a", "1.2", a[:7], "2", "2", "100%"],
    ]
    assert rows[1].endswith("idea b2")


def test_best_survives_a_branch_rename(project: Project) -> None:
    """Kept results are found through HEAD's history, not through the branch name they had."""
    shas = night(project)
    project.repo.git.branch("-m", "autoresearch/nov25", "keepers")
    out = run_cli(project.path, "status").stdout
    assert out.startswith("autoresearch status: branch keepers at ")
    assert re.fullmatch(rf"  best +1\.1 +{shas['warmdown 0.5'][:7]}  warmdown 0\.5", section(out, "test_bench.py")[0])


def test_detached_head(project: Project) -> None:
    shas = night(project)
    project.repo.git.checkout(shas["halve lr"])
    done = run_cli(project.path, "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"autoresearch status: detached HEAD at {shas['halve lr'][:7]} (only runs of commits it builds on), 2 runs")
    assert re.fullmatch(r"  best +1\.2 .*halve lr", section(done.stdout, "test_bench.py")[0])


def test_goal_max_is_recorded(project: Project) -> None:
    project.bench(goal="max")
    project.train(0.8, "baseline")
    project.run().assert_outcomes(passed=1)
    project.train(0.9, "more data")
    project.run().assert_outcomes(passed=1)
    project.train(0.7, "less data")
    project.run().assert_outcomes(failed=1)
    out = run_cli(project.path, "status").stdout
    assert "test_bench.py::test_train  score: higher is better\n" in out
    block = section(out, "test_bench.py")
    assert re.fullmatch(r"  best +0\.9 .*more data", block[0])
    assert "  improvement +0.1 (+12.5%) in 1 kept change since the baseline" in block


def test_a_lone_result_knows_its_goal(project: Project) -> None:
    project.bench(goal="max")
    project.train(0.8, "baseline")
    project.run().assert_outcomes(passed=1)
    out = run_cli(project.path, "status").stdout
    assert "test_bench.py::test_train  score: higher is better\n" in out
    assert ", 1 run, last " in out.splitlines()[0]
    assert "score: lower is better" in run_cli(project.path, "status", "--goal", "min").stdout


def test_lucky_draw_is_flagged(project: Project) -> None:
    """A commit kept on a good first draw whose later draws pull its mean behind the bar (judged strictly)."""
    project.bench(min_delta=0.0)
    with open(project.path / ".gitignore", "a") as ignore:
        ignore.write("draw.txt\n")
    project.train(1.5, "baseline")
    project.run().assert_outcomes(passed=1)
    draw = "print('---'); print('score:', open('draw.txt').read())\n"
    (project.path / "draw.txt").write_text("1.2")
    noisy = project.train(None, "noisy idea", body=draw)
    project.run().assert_outcomes(passed=1)
    for value in ("1.9", "1.9"):
        (project.path / "draw.txt").write_text(value)
        project.run().assert_outcomes(passed=1)
    out = run_cli(project.path, "status").stdout
    lucky = section(out, "suspected lucky draws")
    assert lucky == [f"  {noisy[:7]}  noisy idea: kept at 1.2, but the mean of 3 draws is 1.66667, not beating "
                     "the bar 1.5",
                     f"      re-measure: git checkout {noisy[:7]} && pytest --autoresearch --autoresearch-repeat 3; "
                     "git checkout -"]


def test_repeated_measurements_count_as_their_mean(project: Project) -> None:
    project.bench()
    project.train(1.5, "baseline")
    project.run().assert_outcomes(passed=1)
    better = project.train(1.2, "halve lr")
    project.run("--autoresearch-repeat", "2").assert_outcomes(passed=1)
    out = run_cli(project.path, "status").stdout
    assert re.fullmatch(rf"  best +1\.2 \(mean of 2\) +{better[:7]}  halve lr", section(out, "test_bench.py")[0])
    assert "  ideas: keep 2, discard 0, crash 0, timeout 0; keep rate 100% (2 commits)" in out
    assert "  draws: keep 3, discard 0, crash 0, timeout 0 (3 runs)" in out
