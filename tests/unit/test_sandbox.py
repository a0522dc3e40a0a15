"""The seal: which paths a ruleset allows, and a real sealed process (Landlock on this kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_autoresearch.runner import landlock, sandbox
from pytest_autoresearch.runner.landlock import visible
from pytest_autoresearch.runner.sandbox import Sealing


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("a/x.py", "a/b/secret.npy", "a/b/open.npy", "c/y.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    return tmp_path.resolve()


def test_nothing_hidden_allows_the_trees_whole(tree: Path) -> None:
    assert visible([str(tree)], []) == ([str(tree)], [])


def test_a_hidden_file_splits_every_folder_above_it(tree: Path) -> None:
    whole, listed = visible([str(tree)], [str(tree / "a/b/secret.npy")])
    assert whole == [str(tree / p) for p in ("a/b/open.npy", "a/x.py", "c")]
    assert listed == [str(tree), str(tree / "a"), str(tree / "a/b")]


def test_a_hidden_tree_and_missing_paths_are_left_out(tree: Path) -> None:
    whole, listed = visible([str(tree / "a"), str(tree / "nowhere")], [str(tree / "a")])
    assert (whole, listed) == ([], [])


def test_the_installed_packages_are_readable_however_they_were_installed(tmp_path: Path) -> None:
    """An editable install (the README's) maps the plugin to its source folder, which is not on sys.path."""
    probe = ("import os, sys, pytest_autoresearch\n"
             "from pytest_autoresearch.runner.landlock import python_paths\n"
             "package = os.path.dirname(pytest_autoresearch.__file__)\n"
             "print(any(package == p or package.startswith(p.rstrip('/') + '/') for p in python_paths()))\n")
    done = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_the_network_filter_covers_this_machine_and_names_what_it_cannot() -> None:
    assert landlock.network_unclosable() is None  # x86_64 or aarch64, with seccomp: this machine
    program = landlock.network_filter("x86_64")
    assert program[-2:] == [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x00050000 | 13)]  # allow, then EACCES
    for index, (code, jt, jf, _) in enumerate(program):  # every jump lands on an instruction
        assert code != 0x15 and code != 0x35 or index + 1 + max(jt, jf) < len(program)


def test_a_link_is_allowed_where_it_points(tree: Path) -> None:
    (tree / "link").symlink_to(tree / "c")
    whole, _ = visible([str(tree / "link")], [])
    assert whole == [str(tree / "c")]


# Runs an action in a sealed process and prints whether the seal let it through.
ATTEMPT = """
def attempt(what, action):
    try:
        action()
        print(what, "ok")
    except OSError as exc:
        print(what, type(exc).__name__)
"""

SEALED = ATTEMPT + """
import os, sys
attempt("read open", lambda: open(sys.argv[1] + "/a/b/open.npy").read())
attempt("read secret", lambda: open(sys.argv[1] + "/a/b/secret.npy").read())
attempt("list", lambda: os.listdir(sys.argv[1] + "/a/b"))
attempt("write tree", lambda: open(sys.argv[1] + "/c/new", "w"))
attempt("write home", lambda: open(os.environ["HOME"] + "/new", "w"))
attempt("tcp", lambda: __import__("socket").create_connection(("127.0.0.1", 9), timeout=1))
attempt("udp", lambda: __import__("socket").socket(2, 2).sendto(b"x", ("127.0.0.1", 9)))
attempt("udp6", lambda: __import__("socket").socket(10, 2))
attempt("unix", lambda: __import__("socket").socketpair())
"""


@pytest.mark.skipif(landlock.abi() < sandbox.NEEDED_ABI, reason="this kernel cannot seal (Landlock ABI < 4)")
def test_a_sealed_process_reaches_only_what_its_seal_allows(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    sealing = Sealing(str(run_dir), hide=(str(tree / "a/b/secret.npy"),))
    command, env = sealing.command([sys.executable, str(tree / "probe.py"), str(tree)], str(tree))
    (tree / "probe.py").write_text(SEALED)
    done = subprocess.run(command, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["read open ok", "read secret PermissionError", "list ok",
                                        "write tree PermissionError", "write home ok", "tcp PermissionError",
                                        "udp PermissionError", "udp6 PermissionError", "unix ok"], done.stderr
    assert Path(env["HOME"]).parent == run_dir and Path(env["TMPDIR"]).parent == run_dir



@pytest.mark.skipif(landlock.abi() < sandbox.NEEDED_ABI, reason="this kernel cannot seal (Landlock ABI < 4)")
def test_a_ray_node_seals_its_run_from_the_shipped_source(tmp_path: Path) -> None:
    from pytest_autoresearch.runner import ray_node

    folder, root = tmp_path / "run", tmp_path / "run" / "tree"
    (folder / "artifact").mkdir(parents=True)
    root.mkdir()
    (folder / "log").write_text("the runner's own log")
    (root / "train.py").write_text(
        "import os\nopen(os.environ['AUTORESEARCH_ARTIFACT'], 'w').write('model')\n"
        "try:\n    open(os.path.join(os.path.dirname(os.path.dirname(__file__)), 'log')).read()\n"
        "except PermissionError:\n    print('log refused')\n")
    env = {**os.environ, "AUTORESEARCH_ARTIFACT": str(folder / "artifact" / "model.pt2")}
    seal = {"source": Path(landlock.__file__).read_text(), "read": [], "hide": [], "network": False, "env": {}}
    command = ray_node.sealed_command(str(folder), str(root), [str(folder / "artifact")],
                                      [sys.executable, str(root / "train.py")], env, seal)
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=60)
    assert done.stdout == "log refused\n", done.stderr
    assert (folder / "artifact" / "model.pt2").read_text() == "model"
    assert env["HOME"] == str(folder / "sealed" / "home")


@pytest.mark.skipif(landlock.abi() < sandbox.NEEDED_ABI, reason="this kernel cannot seal (Landlock ABI < 4)")
def test_a_sealed_process_reaches_the_data_socket_in_its_run_folder(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    import socket

    run_dir = tmp_path_factory.mktemp("run")
    path = str(run_dir / "data.sock")  # where the frozen data server listens (AUTORESEARCH_DATA_SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    client = "import os, socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(os.environ['AUTORESEARCH_DATA_SOCKET'])\nprint(s.recv(5).decode())\n"
    command, env = Sealing(str(run_dir)).command([sys.executable, "-c", client], str(tree))
    proc = subprocess.Popen(command, env={**os.environ, **env, "AUTORESEARCH_DATA_SOCKET": path},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.settimeout(30)
    connection, _ = server.accept()
    connection.sendall(b"batch")
    out, err = proc.communicate(timeout=60)
    connection.close()
    server.close()
    assert out == "batch\n", err


LENT = ATTEMPT + """
import os
link = os.path.join(os.environ["TMPDIR"], "inductor", "headers", "prefix.h.gch")
print("read", open(link).read())
attempt("append", lambda: open(link, "a").write("stash"))
attempt("replace", lambda: (os.remove(link), open(link, "w").write("its own")))
"""


@pytest.mark.skipif(landlock.abi() < sandbox.NEEDED_ABI, reason="this kernel cannot seal (Landlock ABI < 4)")
def test_a_sealed_process_reads_what_is_lent_into_its_tmpdir_and_cannot_change_it(
        tree: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    lent = tmp_path_factory.mktemp("lent") / "prefix.h.gch"
    lent.write_text("header")
    sealing = Sealing(str(run_dir), lent={os.path.join("inductor", "headers", "prefix.h.gch"): str(lent)})
    (tree / "probe.py").write_text(LENT)
    command, env = sealing.command([sys.executable, str(tree / "probe.py")], str(tree))
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["read header", "append PermissionError", "replace ok"], done.stderr
    assert lent.read_text() == "header", "a sealed run changed a file lent to every run"
