import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GANKIT_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A private, empty cache and no $GANKIT_DATA, so only what a test writes is found."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_DATA", raising=False)
    return tmp_path / "cache"


def sgd_step(module: torch.nn.Module, loss: torch.Tensor, lr: float) -> list[torch.Tensor]:
    """The module's parameters after one plain SGD step on `loss`, by hand (for tests that recompute an update)."""
    grads = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True)
    with torch.no_grad():
        return [p - lr * g for p, g in zip(module.parameters(), grads)]


def random_png_folder(folder, n: int, side: int = 8):
    """A folder of n random RGB PNGs (side x side), seeded: a folder: dataset for tests."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder
