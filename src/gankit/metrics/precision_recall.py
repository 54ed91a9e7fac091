"""Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls
around its points reaching their k-th nearest neighbour; precision is the fraction of generated
samples inside the real manifold, recall the fraction of real samples inside the generated one."""

from __future__ import annotations

import torch

from gankit.metrics.frechet import _features


def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048):
    b_sq = (b * b).sum(1)
    for i in range(0, len(a), chunk):
        ac = a[i:i + chunk]
        yield i, (torch.addmm(b_sq[None], ac, b.T, alpha=-2.0) + (ac * ac).sum(1, keepdim=True)).clamp_(min=0).sqrt_()


def knn_radii(f: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    radii = torch.empty(len(f), dtype=f.dtype)
    for i, d in _pairwise(f, f):
        radii[i:i + len(d)] = d.kthvalue(k + 1, dim=1).values  # the point itself is at distance 0
    return radii


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    inside = torch.zeros(len(points), dtype=torch.bool)
    for i, d in _pairwise(points, centres):
        inside[i:i + len(d)] = (d <= radii[None]).any(1)
    return float(inside.double().mean())


def precision_recall(real, fake, k: int = 3) -> dict:
    r, f = _features(real, "real"), _features(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} and {f.shape[1]}")
    if min(len(r), len(f)) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} samples in each set")
    return {"precision": _coverage(f, r, knn_radii(r, k)), "recall": _coverage(r, f, knn_radii(f, k)), "k": k}


def density_coverage(real, fake, k: int = 5) -> dict:
    """Density and coverage (Naeem et al. 2020) with the k-NN balls B(X_i, NND_k(X_i)) of the real set only:

        density  = 1/(k M) sum_j sum_i 1[Y_j in B(X_i)]     (expected 1 when fake ~ real; unbounded)
        coverage = 1/N sum_i 1[some Y_j in B(X_i)]           (in [0, 1])

    for N real X_i and M fake Y_j."""
    r, f = _features(real, "real"), _features(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} and {f.shape[1]}")
    if len(r) <= k:
        raise ValueError(f"density/coverage with k = {k} needs more than {k} real samples")
    radii = knn_radii(r, k)
    inside = 0.0
    covered = torch.zeros(len(r), dtype=torch.bool)
    for _, d in _pairwise(f, r):
        hit = d <= radii[None]
        inside += float(hit.sum())
        covered |= hit.any(0)
    return {"density": inside / (k * len(f)), "coverage": float(covered.double().mean()), "k": k}
