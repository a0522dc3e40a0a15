"""The example project's settings come from the environment: a bad one is a usage error with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Project

EXAMPLE = Path(__file__).parents[2] / "example_project"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("AUTORESEARCH_PROFILE", "huge", "*AUTORESEARCH_PROFILE='huge' is not a profile; use one of: cpu, gpu*"),
    ("AUTORESEARCH_TIME_BUDGET", "soon", "*AUTORESEARCH_TIME_BUDGET='soon' is not a number of seconds*"),
    ("AUTORESEARCH_TIME_BUDGET", "-5", "*AUTORESEARCH_TIME_BUDGET='-5' must be a positive number of seconds*"),
])
def test_bad_environment_is_a_usage_error(project: Project, monkeypatch: pytest.MonkeyPatch,
                                          variable: str, value: str, message: str) -> None:
    (project.path / "conftest.py").write_text((EXAMPLE / "conftest.py").read_text())
    project.bench()
    project.train(1.5)
    monkeypatch.setenv(variable, value)
    result = project.run_subprocess()  # the lm kit loads numpy, which loads once per process
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: autoresearch: {message.lstrip('*')}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert project.runs() == [], "nothing ran"
