"""Using a trained run: load it, draw samples, and the paper's Figures 2 (nearest training image) and 3
(latent interpolation)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gankit.errors import UsageError
from gankit.rundir import RunDirError
from gankit.gan import GAN, from_checkpoint
from gankit.images import save_grid
from gankit.noise import check_truncation, sample_noise


def load_run(run_dir: str | Path, device: str = "auto", checkpoint: str = "last", member: int | None = None,
             truncation: float | None = None) -> GAN:
    """Rebuild G and D (and G's average) of a run from one checkpoint alone (`checkpoint`: 'last', or 'best' by the
    validation monitor); the training data is loaded only if something asks for `gan.data`. `member`: which GAN of a
    seed ensemble (`--seeds`), as a plain GAN; `truncation`: its samples' z restricted to [-t, t] per coordinate."""
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    if not (Path(run_dir) / "checkpoints" / "last.pt").is_file():
        raise RunDirError(f"{run_dir} is not a gankit run directory (no checkpoints/last.pt)")
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no {checkpoint} checkpoint ({path}); 'best' needs a run trained with --monitor")
    if truncation is not None:
        try:
            check_truncation(truncation)
        except ValueError as e:
            raise UsageError(str(e)) from None
    gan = from_checkpoint(path, device, member=member)
    gan.truncation = truncation
    return gan


def _z(gan: GAN, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return sample_noise(n, gan.cfg.z_dim, gan.cfg.noise, "cpu", g, gan.truncation).to(gan.device)


def save_samples(gan: GAN, out: str | Path, n: int, seed: int = 0, c: int | None = None) -> torch.Tensor:
    """n samples to .npy (flat array [n, d]) or .png (a grid for images, a plot for toys). A conditional run
    samples class `c` (over D(x, c) for toys); without c, its .png has one row per class of ceil(n / K)
    samples (toys: n samples coloured by class) and its .npy holds sample i of class i mod K."""
    from gankit.plots import conditional_layout, plot_conditional, plot_samples

    out = Path(out)
    k, title = gan.n_classes, f"{gan.cfg.dataset} samples" + (f", class {c}" if c is not None else "")
    gan.classes(n, c)  # refuse a class the run does not have before drawing anything
    if k and c is None and out.suffix == ".png":
        labels = conditional_layout(k, math.ceil(n / k)) if gan.spec.kind == "image" else torch.arange(n) % k
        x = gan.sample(len(labels), _z(gan, len(labels), seed), c=labels).cpu()
        plot_conditional(x, labels, gan.spec, out, title)
        return x
    x = gan.sample(n, _z(gan, n, seed), c=c).cpu()
    if out.suffix == ".npy":
        np.save(out, x.numpy())
    else:
        plot_samples(x, gan.spec, lambda t: gan.discriminate(t, c).cpu().numpy(), out, title)
    return x


def nearest_neighbours(samples: torch.Tensor, train: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Index of the nearest training image (squared Euclidean distance) for every sample, by matrix products."""
    s = samples.double()
    s_sq = (s * s).sum(1, keepdim=True)
    best_d = torch.full((len(s),), math.inf, dtype=torch.float64, device=s.device)
    best_i = torch.zeros(len(s), dtype=torch.long, device=s.device)
    for i in range(0, len(train), chunk):
        t = train[i:i + chunk].to(s.device).double()
        d = s_sq - 2 * s @ t.T + (t * t).sum(1)
        v, j = d.min(1)
        better = v < best_d
        best_d = torch.where(better, v, best_d)
        best_i = torch.where(better, j + i, best_i)
    return best_i


def figure_nearest(gan: GAN, out: str | Path, n: int = 30, seed: int = 0, cols: int = 5, c: int | None = None) -> None:
    """Figure 2: rows of `cols` samples; the rightmost column holds the training image nearest to the
    sample beside it (over the whole train split). Conditional runs: of class `c`, or row r of class r mod K."""
    if gan.spec.kind != "image":
        raise UsageError("--nearest draws images; this run's dataset is not an image dataset")
    rows = max(1, math.ceil(n / cols))
    labels = c if c is not None or not gan.n_classes else (torch.arange(rows) % gan.n_classes).repeat_interleave(cols)
    x = gan.sample(rows * cols, _z(gan, rows * cols, seed), c=labels)
    last = x.view(rows, cols, -1)[:, -1]
    nn_idx = nearest_neighbours(last, gan.data.x)
    nearest = gan.data.x[nn_idx.cpu()].to(x.device)
    grid = torch.cat([x.view(rows, cols, -1), nearest[:, None]], 1).reshape(rows * (cols + 1), -1)
    save_grid(gan.spec.images(grid.cpu()), out, nrow=cols + 1, scale=3)


def interpolate_z(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Points on the line from z0 to z1, endpoints included: [steps, z_dim]."""
    t = torch.linspace(0, 1, steps, device=z0.device)[:, None]
    return (1 - t) * z0 + t * z1


def figure_interpolate(gan: GAN, out: str | Path, rows: int = 8, steps: int = 10, seed: int = 0,
                       c: int | None = None) -> None:
    """Figure 3: each row decodes a linear interpolation between two random z (conditional runs: at class `c`,
    or row r at class r mod K)."""
    if gan.spec.kind != "image":
        raise UsageError("--interpolate draws images; this run's dataset is not an image dataset")
    ends = _z(gan, 2 * rows, seed)
    z = torch.cat([interpolate_z(ends[2 * r], ends[2 * r + 1], steps) for r in range(rows)])
    labels = c if c is not None or not gan.n_classes else (torch.arange(rows) % gan.n_classes).repeat_interleave(steps)
    save_grid(gan.spec.images(gan.sample(len(z), z, c=labels).cpu()), out, nrow=steps, scale=3)
