"""Kernel Inception Distance on any features: the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets (Binkowski et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch

from gankit.metrics.frechet import _features


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
                 - 2 * kxy.mean())


def kernel_distance(features_1, features_2, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    """Mean and standard deviation of the unbiased MMD^2 over `n_subsets` random subsets of each set."""
    f1, f2 = _features(features_1, "features_1"), _features(features_2, "features_2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    size = min(subset_size, len(f1), len(f2))
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    g = torch.Generator().manual_seed(seed)
    vals = [mmd2_unbiased(f1[torch.randperm(len(f1), generator=g)[:size]],
                          f2[torch.randperm(len(f2), generator=g)[:size]]) for _ in range(n_subsets)]
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n_subsets": n_subsets, "subset_size": size}
