import os
from pathlib import Path

import pytest
import torch

from gankit import config as C

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


def sgd_d_step(D: torch.nn.Module, G: torch.nn.Module, x, c, z, lr: float) -> list[torch.Tensor]:
    """Algorithm 1's D step by hand (logistic loss, plain SGD) on (x, c) against (G(z, c), c), applied to D in
    place; returns D's new parameters."""
    from gankit.losses import discriminator_loss

    new = sgd_step(D, discriminator_loss(D(x, c), D(G(z, c).detach(), c)), lr)
    with torch.no_grad():
        for p, v in zip(D.parameters(), new):
            p.copy_(v)
    return new


def random_png_folder(folder, n: int, side: int = 8):
    """A folder of n random RGB PNGs (side x side), seeded: a folder: dataset for tests."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


# the tiny toy run of the ensemble and sweep tests, and a GAN's weights by name (G, D and the average)
TINY = dict(hidden=16, layers=2, batch_size=32, log_every=5, sample_every=10**6, checkpoint_every=10**6)


def tiny(**kw):
    return C.from_dict({**TINY, **kw})


def weights(gan) -> dict:
    out = {f"G.{k}": v for k, v in gan.G.state_dict().items()}
    out |= {f"D.{k}": v for k, v in gan.D.state_dict().items()}
    if gan.G_ema is not None:
        out |= {f"G_ema.{k}": v for k, v in gan.G_ema.state_dict().items()}
    return out


def assert_resume_is_bit_exact(tmp_path, cfg: dict) -> None:
    """8 steps straight through equal 5 steps, then a resume to 8: every weight bit for bit."""
    from gankit.train import fit

    straight, _ = fit(tiny(steps=8, **cfg), tmp_path / "a", progress=False)
    fit(tiny(steps=5, **cfg), tmp_path / "b", progress=False)
    resumed, _ = fit(tiny(steps=8, **cfg), tmp_path / "b", resume=True, progress=False)
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


class StubState:
    """The least of a train state a validation hook touches: a step, two players' master nets, a state_dict."""

    def __init__(self, step):
        self.step = step
        self.G = self.D = type("P", (), {"master": torch.nn.Linear(1, 1)})()

    def state_dict(self):
        return {"step": self.step}
