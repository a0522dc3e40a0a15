"""``autoresearch plot``: the progress chart as a PNG, drawn headless; the install hint without matplotlib."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from cli_helpers import night, run_cli

from conftest import Project

try:  # imported here, before pytester snapshots sys.modules: numpy cannot be imported twice
    from matplotlib import image

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False

needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs the plot extra (matplotlib)")
KEPT_GREEN = (0x1A, 0x98, 0x50)
DISCARD_GREY = (0xC4, 0xC4, 0xC4)  # #8a8a8a at alpha 0.5 on white


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header, read without any imaging library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_matplotlib
@pytest.mark.parametrize(("args", "output", "size"), [
    ((), "progress.png", (1200, 600)),
    (("-o", "charts/night.png", "--size", "901x457", "--dpi", "120"), "charts/night.png", (901, 457)),
])
def test_png_of_the_requested_size_with_the_runs_drawn(
    project: Project, args: tuple[str, ...], output: str, size: tuple[int, int]
) -> None:
    night(project)
    done = run_cli(project.path, "plot", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"autoresearch: wrote {output} ({size[0]}x{size[1]}, 5 runs of branch "
        f"autoresearch/nov25 at {project.repo.head.commit.hexsha[:7]})\n"
    )
    out = project.path / output
    assert png_size(out) == size
    pixels = image.imread(out)[:, :, :3]
    assert pixels.shape[:2] == (size[1], size[0])
    assert (pixels < 0.9).any(axis=2).mean() > 0.01, "the chart is blank"
    green = abs(pixels - [c / 255 for c in KEPT_GREEN]).max(axis=2) < 0.02
    assert green.sum() > 100, "no kept runs drawn"
    grey = abs(pixels - [c / 255 for c in DISCARD_GREY]).max(axis=2) < 0.05
    assert grey.sum() > 10, "no discarded runs drawn"


def test_without_matplotlib_it_says_what_to_install(project: Project) -> None:
    """Said before the ledger is even read: the fix comes first."""
    project.train(1.5)
    blocked = (sys.executable, "-c", "import sys; sys.modules['matplotlib'] = None; "
               "from pytest_autoresearch.cli import main; raise SystemExit(main(sys.argv[1:]))")
    done = run_cli(project.path, "plot", python=blocked)
    assert done.returncode == 1
    assert done.stderr == "autoresearch: plot needs matplotlib: pip install 'pytest-autoresearch[plot]'\n"
    assert not (project.path / "progress.png").exists()


@pytest.mark.parametrize("size", ["big", "800", "0x600", "20x20"])
def test_bad_size_is_a_usage_error(project: Project, size: str) -> None:
    done = run_cli(project.path, "plot", "--size", size)
    assert done.returncode == 2
    assert "argument --size" in done.stderr


@needs_matplotlib
def test_every_kept_point_and_the_running_best_lie_inside_the_axes() -> None:
    """A branch like the trial's: a baseline of three draws near 1.745, discards between 1.69 and 1.76
    (five of them beating the bar), one idea kept far below them at 1.62283 and re-measured."""
    from pytest_autoresearch.cli import plot, stats
    from pytest_autoresearch.ledger import Entry
    from pytest_autoresearch.noise import Noise

    def row(i: int, sha: str, value: float, status: str, **extra: object) -> Entry:
        return Entry(f"r{i}", status, sha=sha * 8, commit=sha * 7, value=value, description=f"idea {sha}",
                     test="t.py::t", metric="val_bpb", identity="id", extra={"goal": "min", **extra})

    runs = [row(0, "a", 1.74, "keep"), row(1, "a", 1.745, "keep"), row(2, "a", 1.75, "keep")]
    discards = [1.69, 1.72, 1.73, 1.70, 1.71, 1.755, 1.76, 1.748, 1.752]
    runs += [row(3 + i, chr(ord("b") + i), v, "discard", bar=1.745) for i, v in enumerate(discards)]
    runs += [row(20, "z", 1.62283, "keep", bar=1.745), row(21, "z", 1.70, "keep", bar=1.745, remeasure=True),
             row(22, "y", 1.75, "discard", bar=1.66)]
    [series] = stats.series(runs)
    panel = plot.Panel(series, "min", floor=Noise(0.005, 2, 1))
    fig = plot.figure([panel], 1200, 600, 100)
    [ax] = fig.axes
    low, high = ax.get_ylim()
    kept = [r.value for r in runs if r.status == "keep"]
    running = [b for b in plot.best_so_far(runs, "min") if b is not None]
    beat = [r.value for r in runs if r.status == "discard" and r.value is not None and r.value < r.extra["bar"]]
    assert len(beat) == 5
    for value in [*kept, *running, *beat]:
        assert value is not None and low < value < high, (value, low, high)
    assert ax.containers, "the re-measured commits carry an error bar"
    labels = [t.get_text() for t in ax.texts]
    assert sorted(labels) == ["idea a", "idea z"], "one label per kept commit, however often it was measured"
