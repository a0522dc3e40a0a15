"""The kernel service: what it builds, what it finds, what it refuses, and that a refusal costs the target nothing."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_autoresearch import kernels
from pytest_autoresearch.cpp_headers import folder
from pytest_autoresearch.runner.sandbox import Sealing

SOURCE = b'extern "C" int answer() { return 42; }\n'
BUILD = ["-O2", "-shared", "-fPIC"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[kernels.KernelService]:
    header = tmp_path / "lent" / "pch.h"
    header.parent.mkdir()
    header.write_text("#define LENT_ANSWER 7\n")
    started = kernels.start(tmp_path / "store", {os.path.join(folder(), "pch.h"): str(header)}, cores=2)
    assert started is not None, "no C++ compiler on this machine: torch.compile on a CPU needs one too"
    yield started
    started.close()


def build(service: kernels.KernelService, env: dict[str, str], source: Path, *flags: str,
          out: Path | None = None) -> Path:
    """g++ as inductor calls it, by name (the client first on PATH): one source, -o X.so."""
    out = out or source.with_suffix(".so")
    done = subprocess.run(["g++", str(source), *flags, "-o", str(out)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def answer(library: Path, name: str = "answer") -> int:
    return int(getattr(ctypes.CDLL(str(library)), name)())


def test_a_kernel_built_for_one_run_is_found_by_the_next(service: kernels.KernelService, tmp_path: Path) -> None:
    first, second = service.admit({}), service.admit({})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "k.cpp").write_bytes(SOURCE)
    (tmp_path / "b" / "other.cpp").write_bytes(SOURCE)  # the same source elsewhere, as another commit's cache holds it
    built = build(service, first, tmp_path / "a" / "k.cpp", *BUILD)
    found = build(service, second, tmp_path / "b" / "other.cpp", *BUILD)
    assert answer(built) == answer(found) == 42
    assert built.read_bytes() == found.read_bytes()
    assert kernels.record(service, _sealing(first)) == {"kernels": {"built": 1, "found": 0, "failed": 0, "refused": 0}}
    assert kernels.record(service, _sealing(second)) == {"kernels": {"built": 0, "found": 1, "failed": 0, "refused": 0}}
    assert len(list(service.store.glob("*.so"))) == 1


def test_an_entry_is_its_flags_and_source(service: kernels.KernelService) -> None:
    token = _token(service.admit({}))
    assert service.handle(token, ["k.cpp", *BUILD, "-o", "k.so"], SOURCE).status == "built"
    assert service.handle(token, ["/elsewhere/x.cpp", *BUILD, "-o", "/tmp/y.so"], SOURCE).status == "found"
    assert service.handle(token, ["k.cpp", "-O1", "-shared", "-fPIC", "-o", "k.so"], SOURCE).status == "built"
    assert service.handle(token, ["k.cpp", *BUILD, "-o", "k.so"], SOURCE.replace(b"42", b"43")).status == "built"
    assert len(list(service.store.glob("*.so"))) == 3


@pytest.mark.parametrize("flags", [["-B/tmp"], ["-wrapper", "/bin/sh"], ["@flags.txt"], ["-fplugin=/tmp/p.so"],
                                   ["-Wl,--script=/tmp/x.ld"], ["-specs=/tmp/s"], ["-ffile-prefix-map=/=/x"],
                                   ["-include", "/etc/passwd"], ["extra.o"], ["-x", "c"], ["-o", "k.o"]],
                         ids=lambda flags: flags[0])
def test_a_flag_reaching_beyond_the_request_is_refused(service: kernels.KernelService, flags: list[str]) -> None:
    token = _token(service.admit({}))
    reply = service.handle(token, ["k.cpp", *BUILD, *flags, "-o", "k.so"], SOURCE)
    assert (reply.status, reply.library) == ("refused", None), reply.detail
    assert not list(service.store.glob("*.so"))


def test_inductors_precompiled_header_is_the_lent_one(service: kernels.KernelService, tmp_path: Path) -> None:
    """Inductor names the header in the run's TMPDIR; the service compiles with the file it lent."""
    source = tmp_path / "k.cpp"
    source.write_text('extern "C" int lent() { return LENT_ANSWER; }\n')
    run_tmp_header = tmp_path / "run" / "tmp" / folder() / "pch.h"  # never written: only its name is read
    library = build(service, service.admit({}), source, *BUILD, "-include", str(run_tmp_header))
    assert answer(library, "lent") == 7


def test_a_refused_build_is_the_targets_own(service: kernels.KernelService, tmp_path: Path) -> None:
    env = service.admit({})
    source = tmp_path / "k.cpp"
    source.write_bytes(SOURCE)
    library = build(service, env, source, *BUILD, "-Wl,-soname,k.so")  # a flag inductor never passes
    assert answer(library) == 42
    served = service.served(env)
    assert served is not None and (served.refused, served.built) == (1, 0)
    assert served.reasons == ["a flag it does not pass on: -Wl,-soname,k.so"]


def test_with_the_service_gone_the_target_builds_alone(service: kernels.KernelService, tmp_path: Path) -> None:
    env = service.admit({})
    service.close()
    source = tmp_path / "k.cpp"
    source.write_bytes(SOURCE)
    client = tmp_path / "bin" / "g++"  # the client as it was lent: its folder went with the service
    client.parent.mkdir()
    client.write_text(kernels.CLIENT.format(python=sys.executable, address=kernels.ADDRESS, name="g++"))
    client.chmod(0o755)
    env["PATH"] = env["PATH"].replace(str(service.client.parent), str(client.parent))
    assert answer(build(service, env, source, *BUILD)) == 42
    assert not list(service.store.glob("*.so"))


def test_a_run_gets_a_bounded_number_of_builds(service: kernels.KernelService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "MAX_REQUESTS", 2)
    env = service.admit({})
    token = _token(env)
    statuses = [service.handle(token, ["k.cpp", *BUILD, "-o", "k.so"], SOURCE).status for _ in range(3)]
    assert statuses == ["built", "found", "refused"]
    assert service.handle("not-a-token", ["k.cpp", *BUILD, "-o", "k.so"], SOURCE).status == "refused"
    assert service.handle(_token(service.admit({})), ["k.cpp", *BUILD, "-o", "k.so"], SOURCE).status == "found"


def test_closing_keeps_the_most_recently_used_entries(service: kernels.KernelService,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "KEEP", 1)
    token = _token(service.admit({}))
    for value in (b"1", b"2"):
        assert service.handle(token, ["k.cpp", *BUILD, "-o", "k.so"], SOURCE.replace(b"42", value)).status == "built"
    newest = max(service.store.glob("*.so"), key=lambda p: p.stat().st_mtime_ns)
    service.close()
    assert list(service.store.glob("*.so")) == [newest]
    assert not service.folder.exists()


def _token(env: dict[str, str]) -> str:
    return env[kernels.ADDRESS].rpartition(" ")[2]


def _sealing(env: dict[str, str]) -> Sealing:
    return Sealing("", env=env)
