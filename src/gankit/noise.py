"""The generator's prior p_z: standard normal, or uniform on [-sqrt(3), sqrt(3)] (unit variance, the paper's)."""

from __future__ import annotations

import math

import torch


def sample_noise(n: int, z_dim: int, kind: str, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw n noise vectors z ~ p_z of dimension z_dim."""
    if kind == "normal":
        return torch.randn(n, z_dim, device=device, generator=generator)
    if kind == "uniform":
        r = math.sqrt(3.0)
        return torch.rand(n, z_dim, device=device, generator=generator).mul_(2 * r).sub_(r)
    raise ValueError(f"unknown noise '{kind}' (choose from normal, uniform)")
