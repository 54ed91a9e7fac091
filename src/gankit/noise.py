"""The generator's prior p_z: standard normal, or uniform on [-sqrt(3), sqrt(3)] (unit variance, the paper's)."""

from __future__ import annotations

import math

import torch


def sample_noise(n: int, z_dim: int, kind: str, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None, truncation: float | None = None) -> torch.Tensor:
    """Draw n noise vectors z ~ p_z of dimension z_dim. With `truncation` t, each coordinate comes from p_z
    conditioned on |z_i| <= t (the truncation trick, Brock et al. 2019: samples nearer the mode of p_z trade
    variety for fidelity); sampling only, never training."""
    if kind not in ("normal", "uniform"):
        raise ValueError(f"unknown noise '{kind}' (choose from normal, uniform)")
    if truncation is not None:
        return _truncated(n, z_dim, kind, device, generator, check_truncation(truncation))
    if kind == "normal":
        return torch.randn(n, z_dim, device=device, generator=generator)
    r = math.sqrt(3.0)
    return torch.rand(n, z_dim, device=device, generator=generator).mul_(2 * r).sub_(r)


def check_truncation(t: float) -> float:
    """A truncation must be a positive finite number (ValueError naming it otherwise)."""
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"truncation must be a positive number, got {t}")
    return t


def _truncated(n: int, z_dim: int, kind: str, device, generator, t: float) -> torch.Tensor:
    """p_z restricted to [-t, t] per coordinate, by the inverse CDF of one uniform each (exact, no rejection)."""
    u = torch.rand(n, z_dim, device=device, generator=generator, dtype=torch.float64)
    if kind == "normal":
        lo = 0.5 * math.erfc(t / math.sqrt(2.0))  # Phi(-t); u maps onto [Phi(-t), Phi(t)]
        return torch.special.ndtri(lo + u * (1.0 - 2.0 * lo)).clamp_(-t, t).float()
    a = min(t, math.sqrt(3.0))  # uniform on [-sqrt 3, sqrt 3]
    return u.mul_(2 * a).sub_(a).float()
