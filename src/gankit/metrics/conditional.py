"""How well a conditional model obeys its class: per requested class c, the fraction of samples G(z, c)
that are of class c — on a toy, that fall on mode c (nearest mode c, within `n_std` standard deviations);
on an image set, that gankit's classifier labels c."""

from __future__ import annotations

import torch


def per_class(hit: torch.Tensor, c: torch.Tensor, n_classes: int) -> dict:
    """Fraction of hits per class and overall (each class weighted by its samples)."""
    hit, c = hit.cpu().double(), c.cpu()
    counts = torch.bincount(c, minlength=n_classes).double()
    per = torch.bincount(c, weights=hit, minlength=n_classes) / counts.clamp(min=1)
    return {"accuracy": float(hit.mean()), "per_class": [round(float(v), 6) for v in per],
            "worst_class": int(per.argmin()), "worst": float(per.min()), "n_samples": len(hit)}


def on_mode(samples: torch.Tensor, c: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> dict:
    """Toys: sample i is right when its nearest mode is c_i and it lies within n_std * std of it."""
    dist, nearest = torch.cdist(samples.double().cpu(), modes.double()).min(1)
    return per_class((nearest == c.cpu()) & (dist <= n_std * std), c, len(modes))


def classifier_accuracy(pred: torch.Tensor, c: torch.Tensor, n_classes: int) -> dict:
    """Images: sample i is right when the classifier's label pred_i is the requested c_i."""
    return per_class(pred.cpu() == c.cpu(), c, n_classes)
