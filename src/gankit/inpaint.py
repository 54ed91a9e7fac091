"""Inpainting with an unconditional run (Goodfellow et al. 2014, section 7, item 3): p(x_S | x_not-S)
approximated by searching z so that G(z) matches the visible pixels; each random restart gives one
completion. The hidden pixels' error is compared with a mean-image baseline (the training mean's pixels).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.errors import UsageError
from gankit.gan import GAN
from gankit.inference import refine
from gankit.noise import sample_noise

MASKS = ("left", "right", "top", "bottom", "centre", "random")


def hidden_mask(name: str, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """Bool [C, H, W], True where a pixel is hidden: a half (left, right, top, bottom), the central square of
    half the side (centre), or each pixel with probability 1/2 (random, seeded); all channels alike."""
    c, h, w = shape
    m = torch.zeros(h, w, dtype=torch.bool)
    if name == "left":
        m[:, : w // 2] = True
    elif name == "right":
        m[:, w // 2:] = True
    elif name == "top":
        m[: h // 2] = True
    elif name == "bottom":
        m[h // 2:] = True
    elif name == "centre":
        m[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = True
    elif name == "random":
        m = torch.rand(h, w, generator=torch.Generator().manual_seed(seed)) < 0.5
    else:
        raise UsageError(f"unknown mask {name!r} (choose from {', '.join(MASKS)})")
    return m.expand(c, h, w).clone()


def _check(gan: GAN) -> None:
    if gan.spec.kind != "image":
        raise UsageError("inpaint completes images; this run's dataset is a toy (points have no pixels to hide)")


def complete(gan: GAN, x: torch.Tensor, hidden: torch.Tensor, k: int = 4, steps: int = 300, lr: float = 0.05,
             candidates: int = 32, seed: int = 0) -> dict:
    """k completions per image: for each restart, the best of `candidates` random z on the visible pixels, then
    Adam on ||visible * (G(z) - x)||^2; the completion keeps x's visible pixels and takes G(z)'s hidden ones.
    Returns completions [N, k, d], and per completion the squared error on visible and on hidden pixels."""
    _check(gan)
    if k < 1 or steps < 0 or candidates < 1:
        raise UsageError("--n-completions and --candidates must be >= 1, --steps >= 0")
    h = hidden.reshape(-1).to(x.device)
    if h.numel() != gan.spec.dim:
        raise UsageError(f"mask of {h.numel()} pixels for images of {gan.spec.dim} values")
    if bool(h.all()) or not bool(h.any()):
        raise UsageError("the mask must hide some pixels and leave some visible")
    vis = (~h).float()
    n, zd = len(x), gan.cfg.z_dim
    g = torch.Generator().manual_seed(seed)
    x = x.float()
    outs, fits = [], []
    for _ in range(k):
        zc = sample_noise(n * candidates, zd, gan.cfg.noise, "cpu", g).to(gan.device)
        gc = gan.sample(len(zc), zc).cpu().view(n, candidates, -1)
        err = (((gc - x[:, None]) * vis) ** 2).sum(2)
        z0 = zc.view(n, candidates, zd)[torch.arange(n), err.argmin(1).to(zc.device)]
        z = refine(gan, x, z0, steps, lr, weights=vis.to(gan.device)) if steps else z0
        gz = gan.sample(n, z).cpu()
        outs.append(torch.where(h, gz, x))
        fits.append(pixel_errors_masked(gan, gz, x, ~h))
    return {"completions": torch.stack(outs, 1), "visible_error": torch.stack(fits, 1),
            "hidden_error": torch.stack([pixel_errors_masked(gan, c, x, h) for c in outs], 1)}


def inpaint(gan: GAN, x: torch.Tensor, mask: str = "centre", k: int = 4, steps: int = 300, lr: float = 0.05,
            candidates: int = 32, seed: int = 0, train_mean: torch.Tensor | None = None) -> dict:
    """Completions of x under a named mask and their hidden-pixel MSE (in [0, 1] pixel units): averaged over all
    completions, for the completion whose G(z) fits the visible pixels best, for the average of the k completions
    (MSE rewards averages: a sharp guess pays twice the variance), and for the training mean's pixels."""
    _check(gan)
    hidden = hidden_mask(mask, gan.spec.shape, seed)
    r = complete(gan, x, hidden, k, steps, lr, candidates, seed)
    if train_mean is None:
        train_mean = gan.data.x.mean(0)
    h = hidden.reshape(-1)
    base = pixel_errors_masked(gan, train_mean.expand_as(x), x, h)
    best = r["visible_error"].argmin(1)
    average = pixel_errors_masked(gan, r["completions"].mean(1), x, h)
    return {**r, "mask": mask, "hidden": hidden, "mse_hidden": float(r["hidden_error"].mean()),
            "mse_hidden_average_completion": float(average.mean()),
            "mse_hidden_best_fit": float(r["hidden_error"][torch.arange(len(x)), best].mean()),
            "mse_hidden_mean_image": float(base.mean()), "n": len(x), "k": k}


def pixel_errors_masked(gan: GAN, a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error on the pixels where h is True, in [0, 1] pixel units."""
    d = (gan.spec.images(a.float()).reshape(len(a), -1) - gan.spec.images(b.float()).reshape(len(b), -1)) ** 2
    return d[:, h].mean(1)


def figure_inpaint(gan: GAN, x: torch.Tensor, result: dict, out: str | Path, n: int = 8) -> None:
    """Rows: the masked input (hidden pixels red), the k completions, the original."""
    from gankit.images import save_grid

    n = min(n, len(x))
    h = result["hidden"]
    comp = result["completions"][:n]
    k = comp.shape[1]
    orig = gan.spec.images(x[:n]).expand(-1, 3, -1, -1) if gan.spec.shape[0] == 1 else gan.spec.images(x[:n])
    masked = orig.clone()
    hm = h[:1].expand(3, -1, -1)
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand_as(hm)
    masked[:, hm] = red[hm][None].expand(n, -1)
    ci = gan.spec.images(comp.reshape(n * k, -1))
    ci = (ci.expand(-1, 3, -1, -1) if ci.shape[1] == 1 else ci).reshape(n, k, 3, *ci.shape[2:])
    rows = torch.cat([masked[:, None], ci, orig[:, None]], 1).reshape(n * (k + 2), 3, *orig.shape[2:])
    save_grid(rows, out, nrow=k + 2, scale=3)
