"""Throwaway git repositories for the benchmarks."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(path: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=path, input=stdin, capture_output=True, text=True,
                          check=True).stdout


def init(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "bench")
    git(path, "config", "user.email", "bench@example.com")
    (path / ".gitignore").write_text("__pycache__/\n")
