"""TensorBoard as one more hook (`--tensorboard`): event files under RUN/tensorboard/ with every logged row's
values as scalars (losses, D's outputs, V, tracked divergences), each sample picture as an image, and
histograms of D's outputs on a fixed set of real samples and on generated ones, at each picture.

A seed ensemble (`--seeds`, `--sweep`) logs its rows as a plain run does (the stats are the members' means); a
member's own scalar is the plain tag with `/memberE` appended (metrics.jsonl's `valid_modes:member3` ->
`train/valid_modes/member3`, summary.json's members[3] -> `summary/modes.modes_covered/member3`); the image is the
ensemble's picture of the members side by side, and D's histograms are each pictured member's (`D/real/member3`),
on the real samples its plain run would histogram.

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
        from gankit import ensemble

        self.log, self.pictures, self.gan = log, pictures, gan
        # whose D outputs are histogrammed, on which real samples (a seed each): the run, or the pictured members
        self.members = list(ensemble.shown(gan.cfg)) if ensemble.members_of(gan.arch) > 1 else [None]
        seeds = [seed if e is None else ensemble.member_config(gan.cfg, e).seed for e in self.members]
        self.x_real = [real_subset(x_real, sd) for sd in seeds]
        # a conditional D judges (x, c): the real samples' own labels, and the same classes for G's samples
        self.c = [real_subset(labels, sd) if gan.n_classes and labels is not None else None for sd in seeds]
        self.probability = gan.cfg.objective == "logistic"  # D as a probability, as d_real/d_fake are logged
        self.row_step, self.picture_step = None, None

    def after_step(self, s, stats, last):
        row, wrote = self.log.row, False
        if row and row["step"] != self.row_step:
            self.row_step = row["step"]
            for key, v in row.items():
                if key not in NOT_SCALARS:
                    self.writer.add_scalar(f"train/{_tag(key)}", v, row["step"])
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
        """D's outputs on the fixed real samples and on as many samples of the trained G (not its average); an
        ensemble's for each pictured member (its plain networks)."""
        from gankit.ensemble import member
        from gankit.gan import eval_mode
        from gankit.noise import sample_noise

        dev = self.gan.device
        for e, x_real, c in zip(self.members, self.x_real, self.c):
            one = self.gan if e is None else member(self.gan, e)
            G, D, suffix = one.G, one.D, "" if e is None else f"/member{e}"
            with eval_mode(G), eval_mode(D):
                z = sample_noise(len(x_real), one.cfg.z_dim, one.cfg.noise, "cpu",
                                 torch.Generator().manual_seed(step)).to(dev)
                c = None if c is None else c.to(dev)
                for name, x in (("real", x_real.to(dev)), ("generated", G(z, c))):
                    out = D(x.float(), c).float().reshape(-1)
                    out = torch.sigmoid(out) if self.probability else out
                    self.writer.add_histogram(f"D/{name}{suffix}", out.cpu().numpy(), step)

    def close(self, s, summary):
        for key, v in _numbers(summary).items():
            self.writer.add_scalar(f"summary/{key}", v, s.step)
        for row in summary.get("members", []):  # an ensemble's rows, one per member
            for key, v in _numbers({k: v for k, v in row.items() if k != "member"}).items():
                self.writer.add_scalar(f"summary/{key}/member{row['member']}", v, s.step)
        self.writer.close()


def _tag(key: str) -> str:
    """A logged key's tag: a member's value (`valid_modes:member3`) as the plain tag plus `/member3`."""
    return key.replace(":member", "/member")


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
