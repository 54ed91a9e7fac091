"""Fréchet distance between Gaussians fitted to two feature sets (FID's formula on any features).

    FD = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

in float64; tr((S_1 S_2)^{1/2}) is the sum of square roots of the eigenvalues of the symmetric PSD
matrix S_1^{1/2} S_2 S_1^{1/2} (same spectrum as S_1 S_2), which avoids a general matrix square root.
"""

from __future__ import annotations

import numpy as np
import torch


def _features(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double().cpu()
    if t.ndim != 2 or len(t) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, k], got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def gaussian_stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (len(f) - 1)


def frechet_from_stats(mu1, s1, mu2, s2) -> float:
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root1 @ s2 @ root1
    eig = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0)
    return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum())


def frechet_distance(features_1, features_2) -> float:
    """FD between two feature sets [N, k]; each needs more samples than feature dimensions."""
    f1, f2 = _features(features_1, "features_1"), _features(features_2, "features_2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    for name, f in (("features_1", f1), ("features_2", f2)):
        if len(f) <= f.shape[1]:
            raise ValueError(f"{name} has {len(f)} samples for {f.shape[1]} feature dimensions: the covariance "
                             f"would be singular; use more samples than dimensions")
    return frechet_from_stats(*gaussian_stats(f1), *gaussian_stats(f2))
