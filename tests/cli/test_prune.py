"""``autoresearch prune``: drop the refs that keep judged commits, exactly those it names."""

from __future__ import annotations

import re

from cli_helpers import night, run_cli

from conftest import Project

REF = "refs/autoresearch/runs/"


def refs(project: Project) -> dict[str, str]:
    """run id -> sha of every run ref, as git lists them."""
    out = project.repo.git.for_each_ref("--format=%(refname) %(objectname)", REF)
    return {ref[len(REF):]: sha for ref, sha in (line.split() for line in out.splitlines())}


def deleted(stdout: str) -> dict[str, str]:
    """run id -> short sha of every 'deleted' line."""
    found = re.findall(rf"^deleted {REF}(\w+)  (\w+)  ", stdout, flags=re.MULTILINE)
    return dict(found)


def test_every_judged_run_keeps_its_commit(project: Project) -> None:
    shas = night(project)
    assert refs(project) == {r.run_id: r.sha for r in project.runs()}
    assert set(refs(project).values()) == set(shas.values())


def test_prune_by_status_removes_exactly_what_it_says(project: Project) -> None:
    shas = night(project)
    before = refs(project)
    done = run_cli(project.path, "prune", "--status", "discard", "--status", "crash")
    assert done.returncode == 0, done.stderr
    after = refs(project)
    said = deleted(done.stdout)
    assert set(said) == set(before) - set(after)
    assert {before[run_id][:7] for run_id in said} == {shas["wider mlp"][:7], shas["typo"][:7]}
    assert {sha[:7] for sha in said.values()} == {shas["wider mlp"][:7], shas["typo"][:7]}
    lines = done.stdout.splitlines()
    assert sorted(line.split("  ", 3)[3] for line in lines[:2]) == ["crash  typo", "discard  wider mlp"]
    assert lines[-1] == ("autoresearch: deleted 2 run refs; a commit no branch or other ref holds goes at "
                         "the next git gc")
    again = run_cli(project.path, "prune", "--status", "discard,crash")
    assert again.stdout == "autoresearch: no run ref matches; nothing deleted\n"
    assert refs(project) == after


def test_prune_by_age_takes_only_old_commits(project: Project) -> None:
    project.bench()
    old = project.train(1.5, "baseline")
    project.repo.git.commit("--amend", "--no-edit", "--allow-empty", env={"GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z"})
    old = project.repo.head.commit.hexsha
    project.run().assert_outcomes(passed=1)
    project.train(1.6, "worse")
    project.run().assert_outcomes(failed=1)
    before = refs(project)
    assert set(before.values()) == {old, project.repo.head.commit.hexsha}
    kept_only = run_cli(project.path, "prune", "--older-than", "30d", "--status", "discard")
    assert kept_only.stdout == "autoresearch: no run ref matches; nothing deleted\n"  # the old one was kept
    done = run_cli(project.path, "prune", "--older-than", "30d")
    assert done.returncode == 0, done.stderr
    said = deleted(done.stdout)
    assert list(said.values()) == [old[:7]]
    assert "committed 2020-01-01 00:00  keep  baseline" in done.stdout
    assert refs(project) == {k: v for k, v in before.items() if v != old}


def test_prune_refuses_without_a_selector(project: Project) -> None:
    night(project)
    before = refs(project)
    done = run_cli(project.path, "prune")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == ("autoresearch: prune needs --older-than AGE, --status STATUS, or both: "
                           "it never drops every kept run unasked\n")
    bad = run_cli(project.path, "prune", "--older-than", "soon")
    assert bad.returncode == 2 and "expected a duration such as 30d" in bad.stderr
    assert refs(project) == before
