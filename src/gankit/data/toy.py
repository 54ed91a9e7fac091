"""Embedded toy distributions: mixtures of isotropic Gaussians with known modes and densities.

- gaussian1d: N(2, 0.5^2), the 1-D setting of the paper's Figure 1;
- ring8: 8 Gaussians (std 0.02) evenly spaced on a circle of radius 2;
- grid25: a 5 x 5 grid of Gaussians (std 0.05) with spacing 2, centred at the origin;
- grid100: the harder 10 x 10 grid, the same std and spacing (100 modes; after the grids of PacGAN's benchmarks).
"""

from __future__ import annotations

import math

import torch

from gankit.errors import DataError

TOY_SIZE = 100_000  # samples in the (fixed) training set of a toy dataset
TOY_SEED = 20140610
GRIDS = {"grid25": 5, "grid100": 10}  # square grids of Gaussians: name -> side  # the training set is the same for every run, like a real dataset


def toy_modes(name: str) -> tuple[torch.Tensor, float]:
    """Mode centres [K, d] and the common standard deviation of a toy mixture."""
    if name == "gaussian1d":
        return torch.tensor([[2.0]]), 0.5
    if name == "ring8":
        a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2.0 * torch.stack([a.cos(), a.sin()], 1)).float(), 0.02
    if name in GRIDS:
        side = GRIDS[name]
        g = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * 2.0
        return torch.cartesian_prod(g, g), 0.05
    raise DataError(f"unknown toy dataset '{name}' (choose from gaussian1d, ring8, {', '.join(GRIDS)})")


def eval_samples(n_modes: int) -> int:
    """Samples that judge a toy run: 2,500, or 100 per mode where there are more than 25 modes (so the
    20-sample coverage threshold stays a fifth of a mode's fair share)."""
    return max(2500, 100 * n_modes)


def sample_mixture(modes: torch.Tensor, std: float, n: int, generator: torch.Generator | None = None,
                   with_modes: bool = False):
    """n samples from the equal-weight mixture of N(mode, std^2 I) (and, `with_modes`, each one's mode index)."""
    idx = torch.randint(len(modes), (n,), generator=generator)
    x = modes[idx] + std * torch.randn(n, modes.shape[1], generator=generator)
    return (x, idx) if with_modes else x


def mixture_log_density(x: torch.Tensor, modes: torch.Tensor, std: float) -> torch.Tensor:
    """log p_data(x) of the equal-weight isotropic mixture, for x of shape [N, d]."""
    d = modes.shape[1]
    sq = torch.cdist(x.double(), modes.double()).pow(2)
    log_k = -sq / (2 * std**2) - d * math.log(std * math.sqrt(2 * math.pi))
    return torch.logsumexp(log_k, 1) - math.log(len(modes))


def toy_training_set(name: str, n: int = TOY_SIZE, with_modes: bool = False):
    """The fixed training set of a toy dataset (and, `with_modes`, the mode of each sample as its class)."""
    modes, std = toy_modes(name)
    return sample_mixture(modes, std, n, torch.Generator().manual_seed(TOY_SEED), with_modes)
