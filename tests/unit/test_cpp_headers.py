"""The precompiled C++ header sealed runs borrow: where inductor looks for it, when it is built, a failed build."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pytest_autoresearch import cpp_headers


def test_the_headers_folder_is_where_inductor_keeps_them_under_tmpdir(tmp_path: Path) -> None:
    code = "from torch._inductor.codecache import _HEADER_DIR; print(_HEADER_DIR)"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == str(tmp_path / cpp_headers.folder()), done.stderr


def test_headers_are_wanted_once_a_compile_cache_holds_a_cpp_source(tmp_path: Path) -> None:
    caches = tmp_path / "compile-cache"
    (caches / "0ba7d59629a5ee5a" / "fxgraph").mkdir(parents=True)
    assert not cpp_headers.wanted(caches)
    (caches / "0ba7d59629a5ee5a" / "ab").mkdir()
    (caches / "0ba7d59629a5ee5a" / "ab" / "kernel.cpp").write_text("// a kernel")
    assert cpp_headers.wanted(caches)


def test_built_headers_are_lent_by_their_place_in_tmpdir_and_not_built_again(tmp_path: Path) -> None:
    built = tmp_path / "cpp-headers" / metadata.version("torch")
    built.mkdir(parents=True)
    for name in ("prefix.h", "prefix.h.gch"):
        (built / name).write_text(name)
    said: list[str] = []
    lent = cpp_headers.lend(tmp_path / "cpp-headers", tmp_path / "no caches", said.append, said.append)
    assert lent == {os.path.join(cpp_headers.folder(), name): str(built / name) for name in ("prefix.h", "prefix.h.gch")}
    assert said == []


def test_nothing_is_built_before_a_run_compiled_cpp_kernels(tmp_path: Path) -> None:
    said: list[str] = []
    assert cpp_headers.lend(tmp_path / "cpp-headers", tmp_path / "compile-cache", said.append, said.append) == {}
    assert said == [] and not (tmp_path / "cpp-headers").exists()


def test_a_build_that_fails_warns_once_lends_nothing_and_is_not_tried_again(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kernels = tmp_path / "compile-cache" / "0ba7d59629a5ee5a" / "ab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.cpp").write_text("// a kernel")
    monkeypatch.setenv("CXX", str(tmp_path / "no-compiler"))  # inductor's compiler: one that is not there
    said: list[str] = []
    warned: list[str] = []
    for _ in range(2):
        assert cpp_headers.lend(tmp_path / "cpp-headers", tmp_path / "compile-cache", said.append, warned.append) == {}
    failed = tmp_path / "cpp-headers" / metadata.version("torch") / cpp_headers.FAILED
    assert len(said) == 1 and "building torch" in said[0], "built twice"
    assert warned == [f"torch's precompiled C++ header could not be built (see {failed}): each sealed run "
                      "builds its own, as unsealed runs do in their TMPDIR"]
    assert "no-compiler" in failed.read_text()
