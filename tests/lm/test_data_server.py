"""The LM kit's training batches through the frozen data server: the same batches as packed in process.

(The example project trains on served batches in tests/lm/test_example_project.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pytest_autoresearch.dataserver import SOCKET_ENV, Clock, DataServer  # noqa: E402
from pytest_autoresearch.lm.dataloader import make_dataloader  # noqa: E402
from pytest_autoresearch.lm.dataset import prepare  # noqa: E402


@pytest.mark.usefixtures("lm_env")
def test_served_batches_are_the_batches_packed_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = make_dataloader(None, 4, 32, "train", data=prepare(), seed=3)
    here = [next(loader) for _ in range(20)]
    server = DataServer("pytest_autoresearch.lm.dataloader:serve", Clock(budget=60), tmp_path / "data.sock")
    monkeypatch.setenv(SOCKET_ENV, str(server.path))
    served = make_dataloader(None, 4, 32, "train", seed=3)
    for x, y, epoch in here:
        sx, sy, sepoch = next(served)
        assert torch.equal(x, sx) and torch.equal(y, sy) and epoch == sepoch
        assert sx.dtype == torch.int64 and sx.shape == (4, 32)
    assert server.stop().tokens in (20 * 4 * 32, 21 * 4 * 32)  # the 21st is asked for as the 20th is taken
