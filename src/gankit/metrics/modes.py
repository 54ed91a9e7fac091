"""Mode metrics for mixtures with known modes (ring8, grid25, gaussian1d).

A sample is high quality when it lies within `n_std` standard deviations of its nearest mode; a mode
is covered when at least `min_count` high-quality samples fall on it. The mode histogram of the
high-quality samples is compared with the uniform one by KL divergence (nats).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def mode_metrics(samples, modes, std: float, n_std: float = 3.0, min_count: int = 20) -> dict:
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    mu = torch.as_tensor(np.asarray(modes), dtype=torch.float64)
    if x.ndim != 2 or mu.ndim != 2 or x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples {tuple(x.shape)} and modes {tuple(mu.shape)} must be [N, d] and [K, d]")
    if len(x) == 0:
        raise ValueError("mode metrics need at least one sample")
    dist, nearest = torch.cdist(x, mu).min(1)
    good = dist <= n_std * std
    counts = torch.bincount(nearest[good], minlength=len(mu))
    n_good = int(good.sum())
    if n_good:
        p = counts.double() / n_good
        nz = p > 0
        kl = float((p[nz] * (p[nz] * len(mu)).log()).sum())
    else:
        kl = math.inf
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "n_modes": len(mu),
        "high_quality_fraction": n_good / len(x),
        "kl_to_uniform": kl,
        "counts": counts.tolist(),
        "n_samples": len(x),
    }
