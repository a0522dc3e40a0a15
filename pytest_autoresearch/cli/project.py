"""The project's plugin settings as the ``autoresearch`` command reads them, outside pytest.

The command names the mutable files and judges margins as the plugin will, so it reads the same
ini file pytest would: from the working folder upwards, the first ``pytest.ini``, ``.pytest.ini``,
``pyproject.toml`` with ``[tool.pytest.ini_options]``, ``tox.ini`` with ``[pytest]`` or
``setup.cfg`` with ``[tool:pytest]`` (pytest's own order). Keys it does not find keep the plugin's
defaults; a bad value is the plugin's own error, naming the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import iniconfig

from ..settings import DEFAULT_NOISE_K, min_delta_value, positive_float
from .where import CliError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pytest depends on tomli before 3.11
    import tomli as tomllib

DEFAULT_MUTABLE = ("train.py",)
_SECTIONS = (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pyproject.toml", ""),
             ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest"))


@dataclass(frozen=True)
class Project:
    """What the command needs of the ini: where it is, the mutable files, the verdict's margin."""

    rootdir: Path | None  # the ini file's folder (the globs are relative to it), None without one
    mutable: tuple[str, ...] = DEFAULT_MUTABLE
    min_delta: float | str = 0.0
    noise_k: float = DEFAULT_NOISE_K

    @property
    def files(self) -> str:
        """The mutable files as a hint names them: 'train.py', 'recipes.py and util.py'."""
        names = list(self.mutable)
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def read(start: Path | None = None) -> Project:
    """The settings of the project around ``start`` (default: the working folder)."""
    folder = (start or Path.cwd()).resolve()
    for place in (folder, *folder.parents):
        for name, section in _SECTIONS:
            path = place / name
            if path.is_file():
                found = _keys(path, section)
                if found is not None:
                    return _project(place, path, found)
    return Project(None)


def _keys(path: Path, section: str) -> dict[str, Any] | None:
    """The ini section's keys, or None when the file has no pytest section (pytest.ini always counts)."""
    try:
        if path.suffix == ".toml":
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
            options = table.get("ini_options")
            return dict(options) if isinstance(options, dict) else None
        ini = iniconfig.IniConfig(str(path))
    except (OSError, ValueError, iniconfig.ParseError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    if section in ini:
        return dict(ini[section].items())
    return {} if path.name in ("pytest.ini", ".pytest.ini") else None


def _project(rootdir: Path, path: Path, keys: dict[str, Any]) -> Project:
    def text(key: str, default: str) -> str:
        value = keys.get(key, default)
        return value if isinstance(value, str) else str(value)

    mutable = keys.get("autoresearch_mutable", list(DEFAULT_MUTABLE))
    files = mutable.split() if isinstance(mutable, str) else [str(m) for m in mutable]
    try:
        return Project(rootdir, tuple(files) or DEFAULT_MUTABLE,
                       min_delta_value(text("autoresearch_min_delta", "0"), f"{path} autoresearch_min_delta"),
                       positive_float(text("autoresearch_noise_k", str(DEFAULT_NOISE_K)),
                                      f"{path} autoresearch_noise_k"))
    except ValueError as exc:
        raise CliError(str(exc)) from None
