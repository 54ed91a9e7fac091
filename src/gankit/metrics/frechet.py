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


def _checked_pair(features_1, features_2) -> tuple[torch.Tensor, torch.Tensor]:
    f1, f2 = _features(features_1, "features_1"), _features(features_2, "features_2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    return f1, f2


def _weighted_stats(f: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the multiset holding row i of f w_i times (a bootstrap resample)."""
    n = w.sum()
    mu = (w @ f) / n
    c = f - mu
    return mu, (c * w[:, None]).T @ c / (n - 1)


def frechet_bootstrap(features_1, features_2, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap interval of FD: both sets resampled with replacement `n_boot` times (seeded).
    It shows FD's sampling spread at this N; FD's bias in N (see `frechet_infinity`) is not in it."""
    f1, f2 = _checked_pair(features_1, features_2)
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_boot):
        w1 = torch.bincount(torch.randint(len(f1), (len(f1),), generator=g), minlength=len(f1)).double()
        w2 = torch.bincount(torch.randint(len(f2), (len(f2),), generator=g), minlength=len(f2)).double()
        values.append(frechet_from_stats(*_weighted_stats(f1, w1), *_weighted_stats(f2, w2)))
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return {"ci_low": float(lo), "ci_high": float(hi), "level": level, "std": float(np.std(values, ddof=1)),
            "n_boot": n_boot, "seed": seed}


def extrapolate(ns, values) -> tuple[float, float]:
    """Least-squares fit of values = a + b / N; returns (a, b), a being the value as N -> infinity."""
    x = 1.0 / np.asarray(ns, dtype=np.float64)
    A = np.stack([np.ones_like(x), x], 1)
    (a, b), *_ = np.linalg.lstsq(A, np.asarray(values, dtype=np.float64), rcond=None)
    return float(a), float(b)


def frechet_infinity(generated, reference, n_points: int = 8, min_n: int | None = None, seed: int = 0) -> dict:
    """FD_infinity (Chong & Forsyth 2020): FD of random subsets of N generated samples (N evenly spaced from
    `min_n`, by default max(N_total / 5, 2 d), to all of them) against all of the reference, extrapolated
    linearly in 1/N to N -> infinity. FD's bias falls as 1/N, so FD_infinity compares models fairly across N."""
    fg, fr = _checked_pair(generated, reference)
    d = fg.shape[1]
    lo = max(min_n or len(fg) // 5, 2 * d)
    if lo >= len(fg) or len(fr) <= d:
        raise ValueError(f"FD_infinity needs more than {lo} generated samples (have {len(fg)}) and more than {d} "
                         f"reference samples (have {len(fr)})")
    ns = np.unique(np.linspace(lo, len(fg), n_points).round().astype(int))
    g = torch.Generator().manual_seed(seed)
    ref = gaussian_stats(fr)
    values = [frechet_from_stats(*gaussian_stats(fg[torch.randperm(len(fg), generator=g)[:n]]), *ref) for n in ns]
    a, b = extrapolate(ns, values)
    return {"fd_inf": a, "slope": b, "ns": ns.tolist(), "values": values, "seed": seed}
