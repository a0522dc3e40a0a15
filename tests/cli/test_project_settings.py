"""The command line reads the project's ini as pytest does: hints and diffs name its mutable files."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli

from conftest import Project
from pytest_autoresearch.cli import project
from pytest_autoresearch.cli.where import CliError

RECIPES = """
import time
def factor(n):
    time.sleep({seconds})
    return [n]
"""
TIMED = """
import time
import pytest
import recipes

@pytest.mark.autoresearch(metric="seconds")
def test_speed(autoresearch):
    start = time.perf_counter()
    recipes.factor(12)
    autoresearch.record(time.perf_counter() - start)
"""


@pytest.mark.parametrize(("name", "text"), [
    ("pytest.ini", "[pytest]\nautoresearch_mutable = recipes.py\n  util.py\nautoresearch_min_delta = auto\n"),
    ("pyproject.toml", '[tool.pytest.ini_options]\nautoresearch_mutable = ["recipes.py", "util.py"]\n'
                       'autoresearch_min_delta = "auto"\n'),
    ("tox.ini", "[pytest]\nautoresearch_mutable = recipes.py util.py\nautoresearch_min_delta = auto\n"),
    ("setup.cfg", "[tool:pytest]\nautoresearch_mutable = recipes.py util.py\nautoresearch_min_delta = auto\n"),
])
def test_every_ini_flavour_pytest_reads(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    (tmp_path / "sub").mkdir()
    found = project.read(tmp_path / "sub")  # from a folder below, as pytest finds its rootdir
    assert (found.rootdir, found.mutable, found.min_delta, found.noise_k) == (
        tmp_path, ("recipes.py", "util.py"), "auto", 2.0)
    assert found.files == "recipes.py and util.py"


def test_no_ini_or_no_section_keeps_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # no pytest section: not the ini
    assert project.read(tmp_path) == project.Project(None)
    assert project.read(tmp_path).files == "train.py"


def test_a_bad_value_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nautoresearch_noise_k = -1\n")
    with pytest.raises(CliError, match=r"pytest\.ini autoresearch_noise_k"):
        project.read(tmp_path)


def test_init_show_and_status_name_the_mutable_files_of_the_ini(project: Project) -> None:
    """The non-ML recipe: recipes.py is the mutable file, not train.py."""
    project.pytester.makeini("[pytest]\nautoresearch_mutable = recipes.py\n")
    project.pytester.makepyfile(test_timed=TIMED)
    (project.path / "recipes.py").write_text(RECIPES.format(seconds=0.01))
    project.commit("the library")
    done = run_cli(project.path, "init", "nov25")
    assert done.returncode == 0, done.stderr
    assert "then edit recipes.py, git commit" in done.stdout and "train.py" not in done.stdout
    project.run().assert_outcomes(passed=1)
    (project.path / "recipes.py").write_text(RECIPES.format(seconds=0.0))
    idea = project.commit("no sleep")
    project.run().assert_outcomes(passed=1)
    shown = run_cli(project.path, "show", idea[:7]).stdout
    assert "diff of recipes.py against" in shown and "-    time.sleep(0.01)" in shown
    status = run_cli(project.path, "status").stdout
    assert "  ideas: keep 2, discard 0, crash 0, timeout 0; keep rate 100% (2 commits)" in status
