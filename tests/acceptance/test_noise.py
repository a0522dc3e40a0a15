"""Repeated measurements and the noise-aware bar, end to end with a seeded random target."""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import statistics

from conftest import Project, run_cli
from pytest_autoresearch.outcome import fmt, fmt_delta

# Each run draws the next value of one seeded stream (the counter file is ignored by git),
# so every run differs like a real noisy training run, and the whole test is deterministic.
NOISY = """
import random
from pathlib import Path
counter = Path("draws.txt")
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
print("---")
print("score:", {values} if {listed} else random.Random(n).gauss(1.0, 0.01))
"""




def noisy(values: list[float] | None = None) -> str:
    listed = values is not None
    return NOISY.format(values=f"{values}[n % {len(values)}]" if listed else "0", listed=listed)


def _setup(project: Project, **marker: object) -> None:
    project.bench(**marker)
    project.unseal()
    project.options += ("--autoresearch-paired=never",)  # the rule on one series of draws; pairing: test_paired.py
    (project.path / ".gitignore").write_text("__pycache__/\ndraws.txt\n")


def test_repeat_records_every_run_and_judges_their_mean(project: Project) -> None:
    _setup(project)
    project.train(None, "baseline", body=noisy([1.0, 1.2, 1.1]))
    result = project.run("--autoresearch-repeat", "3")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_train*score*1.1 ± 0.1 (mean of 3)*keep*"])
    runs = project.runs()
    assert [r.value for r in runs] == [1.0, 1.2, 1.1]
    assert len({r.measurement for r in runs}) == 1 and len({r.run_id for r in runs}) == 3
    assert {r.status for r in runs} == {"keep"}


def test_auto_without_repeats_says_the_floor_is_unknown(project: Project) -> None:
    _setup(project, min_delta="auto")
    project.train(1.5)
    project.run().assert_outcomes(passed=1)
    project.train(1.4, "better")
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*noise floor unknown on this host, judged strictly: measure it with autoresearch calibrate*"])


def test_auto_shows_the_delta_in_sigmas(project: Project) -> None:
    _setup(project, min_delta="auto")
    project.train(None, "baseline", body=noisy([1.0, 1.02, 1.01, 0.99, 1.03]))
    project.run("--autoresearch-repeat", "5").assert_outcomes(passed=1)  # sigma = 0.0158
    project.train(0.99, "a small gain")
    small = project.run()
    small.assert_outcomes(failed=1)
    small.stdout.fnmatch_lines(["*DISCARD score = 0.99*by more than 0.0346*",
                                "*best 1.01 at * (mean of 5); delta -0.02 = -1.2σ*"])
    project.repo.git.reset("--hard", "HEAD~1")
    project.train(0.95, "a real gain")
    big = project.run()
    big.assert_outcomes(passed=1)
    big.stdout.fnmatch_lines(["*0.95*1.01 @ *-0.06 = -3.5σ*keep*"])


def test_auto_discards_pure_noise_at_the_expected_rate(project: Project) -> None:
    """60 commits that change nothing, each built on the baseline and measured once.

    The baseline is measured 10 times (sigma from 9 degrees of freedom). For pure noise the
    chance of a keep is P(T_9 > 2) = 3.8% at k = 2 (2.3% were sigma known): about 2 of 60.
    We accept at most 6 (10%); a plain comparison keeps about half of them.
    """
    _setup(project, min_delta="auto")
    base = project.train(None, "baseline", body=noisy())
    project.run("--autoresearch-repeat", "10").assert_outcomes(passed=1)
    bar = statistics.fmean(r.value for r in project.runs() if r.value is not None)
    kept = 0
    for trial in range(60):
        project.repo.git.checkout("-B", "trial", base)
        project.commit(f"trial {trial}: changes nothing")
        kept += project.run("-q").ret == 0
    trials = project.runs()[10:]
    assert len(trials) == 60
    plain = sum(r.value is not None and r.value < bar for r in trials)
    assert kept <= 6, f"{kept} of 60 noise commits kept"
    assert 20 <= plain <= 40, f"a plain comparison would keep {plain} of 60"
    assert kept == sum(r.status == "keep" for r in trials)


def test_noise_aware_by_default_once_the_floor_is_known_strict_when_asked(project: Project) -> None:
    """No min_delta anywhere: strict while the floor is unknown (the line says how to measure it),
    k standard errors once it is measured; --autoresearch-min-delta 0 asks for strict."""
    _setup(project)
    baseline = project.train(None, "baseline", body=noisy([1.0, 1.02, 1.01, 0.99, 1.03]))
    project.run().assert_outcomes(passed=1)
    project.train(0.999, "a hair better")
    before = project.run("-q")
    before.assert_outcomes(passed=1)
    before.stdout.fnmatch_lines(["autoresearch: keep *score=0.999 *| noise unknown on this host: autoresearch calibrate"])

    project.repo.git.reset("--hard", baseline)
    project.run("--autoresearch-repeat", "4").assert_outcomes(passed=1)  # 5 draws, mean 1.01, sigma 0.0158
    project.train(0.99, "a gain within the noise")
    auto = project.run()
    auto.assert_outcomes(failed=1)
    auto.stdout.fnmatch_lines(["*DISCARD score = 0.99*by more than 0.0346*"])
    strict = project.run("--autoresearch-min-delta", "0")
    strict.assert_outcomes(passed=1)


def test_the_repeat_line_says_the_noise_and_what_an_idea_needs(project: Project) -> None:
    """sigma, from how many draws of how many commits, and the margin the next idea must beat (k = 2)."""
    _setup(project, min_delta="auto")
    draws = [1.0, 1.02, 1.01, 0.99, 1.03]
    project.train(None, "baseline", body=noisy(draws))
    result = project.run("-q", "--autoresearch-repeat", "5")
    result.assert_outcomes(passed=1)
    sigma = statistics.stdev(draws)
    one, three = (fmt_delta(-2 * sigma * math.sqrt(1 / n + 1 / 5)) for n in (1, 3))  # against this 5-draw bar
    [line] = [x for x in result.outlines if x.startswith("autoresearch: ")]
    assert line.endswith(f" | noise: sigma {fmt(sigma)} from 5 draws of 1 commit; an idea needs {one} at one draw, "
                         f"{three} at three")
    project.train(0.95, "a real gain")
    [single] = [x for x in project.run("-q").outlines if x.startswith("autoresearch: ")]
    assert "noise:" not in single  # one draw measures no noise: the line stays short


def test_the_floor_is_this_hosts_draws_made_elsewhere_do_not_set_it(project: Project) -> None:
    """Five draws of the baseline recorded on another machine (written with the ledger API, as
    that machine's plugin writes them): its floor is said in status, never used here."""
    _setup(project)
    project.train(1.0, "baseline")
    project.run().assert_outcomes(passed=1)
    [first] = project.runs()
    elsewhere = [dataclasses.replace(first, run_id=f"gpu{i}", measurement="gpu", host="gpu-box", value=value)
                 for i, value in enumerate([1.0, 1.02, 0.98, 1.01, 0.99])]
    project.ledger.append(*elsewhere)
    project.train(0.999, "a hair better")
    here = project.run("-q")
    here.assert_outcomes(passed=1)  # strict: any gain keeps, as no floor of this host is known
    here.stdout.fnmatch_lines(["autoresearch: keep *score=0.999 *| noise unknown on this host: autoresearch calibrate"])
    status = run_cli(project.path, "status")
    assert status.returncode == 0, status.stderr
    assert f"  noise: unknown on this host ({socket.gethostname()})" in status.stdout
    assert "  other hosts: gpu-box sigma 0.0158114 from 5 draws (not this host's floor)" in status.stdout, status.stdout
    [benchmark] = json.loads(run_cli(project.path, "status", "--json").stdout)["benchmarks"]
    assert benchmark["host"] == socket.gethostname() and benchmark["noise"] is None
    assert benchmark["noise_elsewhere"]["gpu-box"]["draws"] == 5

    project.ledger.append(*(dataclasses.replace(e, run_id=f"here{i}", measurement="here", host=socket.gethostname())
                            for i, e in enumerate(elsewhere)))
    project.train(0.998, "another hair")
    floor_known = project.run("-q")
    floor_known.assert_outcomes(failed=1)  # the same draws, made here: now they are this host's floor
    floor_known.stdout.fnmatch_lines(["autoresearch: discard *score=0.998 *(-0.1σ)*| not better than the best by more than 0.04 *"])
