"""TensorBoard as one more hook (`--tensorboard`): event files under RUN/tensorboard/ with every logged row's
values as scalars (losses, D's outputs, V, tracked divergences), each sample picture as an image, and
histograms of D's outputs on a fixed set of real samples and on generated ones, at each picture.

Optional: `pip install gankit[tensorboard]`; asking for it without the package is a one-line ConfigError
before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gankit.errors import ConfigError, on_disk
from gankit.hooks import Hook, Log, Pictures

N_REAL = 1000  # real samples whose D outputs are histogrammed (a fixed subset, the same at every picture)
NOT_SCALARS = ("step", "seconds")  # TensorBoard keeps the step and the wall time itself


def summary_writer():
    """torch's SummaryWriter class, or a ConfigError saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'gankit[tensorboard]' "
                          "(or pip install tensorboard)") from None
    return SummaryWriter


def real_subset(x: torch.Tensor, seed: int) -> torch.Tensor:
    """The N_REAL real samples whose D outputs are histogrammed: a fixed draw per seed (the same rows of the
    labels, given the same seed)."""
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + 104729))[:N_REAL]]


class TensorBoard(Hook):
    """Writes what the other hooks produce, on their cadence: the Log's rows as they are written, the
    Pictures' images as they are drawn (with D's output histograms), and the summary's numbers at the end."""

    def __init__(self, run_dir: Path, log: Log, pictures: Pictures | None, gan, x_real: torch.Tensor, seed: int,
                 purge_step: int | None = None, labels: torch.Tensor | None = None):
        self.dir = Path(run_dir) / "tensorboard"
        with on_disk("write", self.dir):
            self.writer = summary_writer()(log_dir=str(self.dir), purge_step=purge_step)
        self.log, self.pictures, self.gan = log, pictures, gan
        self.x_real = real_subset(x_real, seed)
        # a conditional D judges (x, c): the real samples' own labels, and the same classes for G's samples
        self.c = real_subset(labels, seed) if gan.n_classes and labels is not None else None
        self.probability = gan.cfg.objective == "logistic"  # D as a probability, as d_real/d_fake are logged
        self.row_step, self.picture_step = None, None

    def after_step(self, s, stats, last):
        row, wrote = self.log.row, False
        if row and row["step"] != self.row_step:
            self.row_step = row["step"]
            for key, v in row.items():
                if key not in NOT_SCALARS:
                    self.writer.add_scalar(f"train/{key}", v, row["step"])
            wrote = True
        drawn = self.pictures.drawn if self.pictures is not None else None
        if drawn and drawn[0] != self.picture_step:
            self.picture_step, path = drawn
            self.writer.add_image("samples", _read_rgb(path), self.picture_step, dataformats="HWC")
            self._histograms(self.picture_step)
            wrote = True
        if wrote:
            self.writer.flush()

    @torch.no_grad()
    def _histograms(self, step: int) -> None:
        """D's outputs on the fixed real samples and on as many samples of the trained G (not its average)."""
        from gankit.gan import eval_mode
        from gankit.noise import sample_noise

        G, D, dev = self.gan.G, self.gan.D, self.gan.device
        with eval_mode(G), eval_mode(D):
            z = sample_noise(len(self.x_real), self.gan.cfg.z_dim, self.gan.cfg.noise, "cpu",
                             torch.Generator().manual_seed(step)).to(dev)
            c = None if self.c is None else self.c.to(dev)
            for name, x in (("real", self.x_real.to(dev)), ("generated", G(z, c))):
                out = D(x.float(), c).float().reshape(-1)
                out = torch.sigmoid(out) if self.probability else out
                self.writer.add_histogram(f"D/{name}", out.cpu().numpy(), step)

    def close(self, s, summary):
        for key, v in _numbers(summary).items():
            self.writer.add_scalar(f"summary/{key}", v, s.step)
        self.writer.close()


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with on_disk("read", path), Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _numbers(d: dict, prefix: str = "") -> dict:
    """The numbers of a (nested) summary as dotted keys."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out
