"""``autoresearch init TAG``: a session branch from the current commit, run files kept out of git."""

from __future__ import annotations

from cli_helpers import run_cli

from conftest import Project


def started(project: Project) -> str:
    project.bench()
    return project.train(1.5, "baseline")


def test_starts_a_session_branch(project: Project) -> None:
    base = started(project)
    tracked = project.repo.git.ls_files()
    done = run_cli(project.path, "init", "nov25")
    assert done.returncode == 0, done.stderr
    assert project.repo.active_branch.name == "autoresearch/nov25"
    head = project.repo.head.commit
    assert (head.parents[0].hexsha, head.message.strip()) == (base, "baseline: nov25")
    assert not head.diff(base), "the baseline commit changes nothing"
    lines = done.stdout.splitlines()
    assert lines[0] == f"autoresearch: on new branch autoresearch/nov25 from {base[:7]} (baseline)"
    assert 'next: pytest --autoresearch -q > run.log 2>&1; echo "exit $?"; grep "^autoresearch: " run.log' in lines
    exclude = (project.path / ".git" / "info" / "exclude").read_text().splitlines()
    assert {".autoresearch/", "results.tsv", "run.log", "calibrate.log", "progress.png"} <= set(exclude)
    assert project.repo.git.ls_files() == tracked and not project.repo.is_dirty(untracked_files=True)
    # the next step it prints works: the baseline is recorded on the new branch, under its own name
    result = project.run("-q")
    result.assert_outcomes(passed=1)
    (project.path / "run.log").write_text(result.stdout.str())
    (project.path / "progress.png").write_bytes(b"")
    assert not project.repo.is_dirty(untracked_files=True), "the loop's own files are ignored"
    [run] = project.runs()
    assert (run.branch, run.status, run.description) == ("autoresearch/nov25", "keep", "baseline: nov25")


def test_ignores_are_added_once(project: Project) -> None:
    started(project)
    exclude = project.path / ".git" / "info" / "exclude"
    exclude.write_text("*.swp")  # a user's own line, without a final newline
    assert run_cli(project.path, "init", "a").returncode == 0
    project.repo.git.checkout("main")
    again = run_cli(project.path, "init", "b")
    assert again.returncode == 0 and "(already there)" in again.stdout
    lines = exclude.read_text().splitlines()
    assert lines[0] == "*.swp"
    assert lines.count(".autoresearch/") == 1 and lines.count("results.tsv") == 1


def test_warns_about_untracked_python(project: Project) -> None:
    """Allowed here, but the plugin would refuse to measure: say so now."""
    started(project)
    (project.path / "scratch.py").write_text("print('not committed')\n")
    done = run_cli(project.path, "init", "nov25")
    assert done.returncode == 0
    assert "  note: untracked scratch.py would stop pytest --autoresearch: commit or ignore them" in done.stdout.splitlines()


def test_refuses_a_dirty_tree(project: Project) -> None:
    started(project)
    (project.path / "train.py").write_text("print('half-done edit')\n")
    done = run_cli(project.path, "init", "nov25")
    assert done.returncode == 1
    assert done.stderr == "autoresearch: uncommitted changes to train.py: a session starts from a commit; commit or stash them first\n"
    assert project.repo.active_branch.name == "main"
    assert "autoresearch/nov25" not in [h.name for h in project.repo.heads]


def test_refuses_an_existing_branch(project: Project) -> None:
    started(project)
    project.repo.git.branch("autoresearch/nov25")
    done = run_cli(project.path, "init", "nov25")
    assert done.returncode == 1
    assert done.stderr == (
        "autoresearch: branch autoresearch/nov25 already exists: pick another tag, "
        "or resume it with git checkout autoresearch/nov25\n"
    )
    assert project.repo.active_branch.name == "main"


def test_refuses_a_bad_tag(project: Project) -> None:
    started(project)
    done = run_cli(project.path, "init", "no..dots")
    assert done.returncode == 1
    assert "'no..dots' does not make a valid branch name" in done.stderr


def test_from_a_detached_head(project: Project) -> None:
    base = started(project)
    project.train(1.4, "second")
    project.repo.git.checkout(base)
    done = run_cli(project.path, "init", "old")
    assert done.returncode == 0, done.stderr
    assert project.repo.active_branch.name == "autoresearch/old"
    assert project.repo.head.commit.parents[0].hexsha == base


def test_needs_a_commit(project: Project) -> None:
    done = run_cli(project.path, "init", "nov25")
    assert (done.returncode, done.stderr) == (1, "autoresearch: the repository has no commit yet: commit your project first\n")
