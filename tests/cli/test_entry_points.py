"""The command is reachable both ways: the ``autoresearch`` console script and ``python -m``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli

from pytest_autoresearch import __version__


def test_python_m(pytester: pytest.Pytester) -> None:
    done = run_cli(pytester.path, "--version")
    assert (done.returncode, done.stdout) == (0, f"autoresearch {__version__}\n")


def test_console_script(pytester: pytest.Pytester) -> None:
    script = shutil.which("autoresearch", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the package is not installed with its scripts in this environment")
    done = run_cli(pytester.path, "--version", python=[script])
    assert (done.returncode, done.stdout) == (0, f"autoresearch {__version__}\n")
