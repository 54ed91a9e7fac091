"""Inpainting (Goodfellow et al. 2014, section 7, item 3): p(x_S | x_not-S).

An unconditional run approximates it by searching z so that G(z) matches the visible pixels; each random
restart gives one completion. A conditional inpainting run (trained with --inpaint) learns it directly: G is
given the visible pixels, G(z, c) with c = `context`(x, hidden), and one forward per fresh z is one completion.
The hidden pixels' error is compared with a mean-image baseline (the training mean's pixels).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.data.batches import Batches
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


def context(x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """The context an inpainting G and D are given with images x [N, d]: [x with its hidden pixels zeroed, 1 where
    a pixel is visible], [N, 2 d]; `hidden` is one mask [C, H, W] (or [d]) for all, or one per image [N, ...]."""
    h = hidden.reshape(len(x), -1) if hidden.dim() in (2, 4) else hidden.reshape(1, -1).expand(len(x), -1)
    visible = (~h.to(x.device)).to(x.dtype)
    return torch.cat([x * visible, visible], 1)


class ContextBatches(Batches):
    """The minibatches of an inpainting run: (x, c) with c = `context`(x, a hidden mask per image). Each image's
    mask kind is drawn from `kinds`, and a random mask's pixels from its own seed, by a generator seeded from
    (seed, minibatch index, rank), so a run is reproducible and resumes exactly."""

    def __init__(self, x: torch.Tensor, m: int, seed: int, kinds: tuple[str, ...], shape: tuple[int, int, int],
                 rank: int = 0, world: int = 1, reals_per_step: int = 1):
        super().__init__(x, m, seed, rank, world, None, reals_per_step)
        self.kinds, self.shape = kinds, tuple(shape)
        self.fixed = {k: hidden_mask(k, self.shape).reshape(-1) for k in kinds if k != "random"}

    def masks(self, b: int, n: int) -> torch.Tensor:
        """The hidden masks [n, d] of minibatch b's images."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + 11 + b * 7919 + self.rank * 104_729) % 2**63)
        kinds = torch.randint(len(self.kinds), (n,), generator=g).tolist()
        seeds = torch.randint(2**62, (n,), generator=g).tolist()
        return torch.stack([self.fixed[self.kinds[k]] if self.kinds[k] != "random" else
                            hidden_mask("random", self.shape, s).reshape(-1) for k, s in zip(kinds, seeds)])

    def __call__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = super().__call__(b)
        return x, context(x, self.masks(b, len(x)))


def _check(gan: GAN) -> None:
    if gan.spec.kind != "image":
        raise UsageError("inpaint completes images; this run's dataset is a toy (points have no pixels to hide)")


def _flat_mask(gan: GAN, hidden: torch.Tensor) -> torch.Tensor:
    """The mask flat [d], checked: one value per image value, some hidden and some visible."""
    h = hidden.reshape(-1)
    if h.numel() != gan.spec.dim:
        raise UsageError(f"mask of {h.numel()} pixels for images of {gan.spec.dim} values")
    if bool(h.all()) or not bool(h.any()):
        raise UsageError("the mask must hide some pixels and leave some visible")
    return h


def complete(gan: GAN, x: torch.Tensor, hidden: torch.Tensor, k: int = 4, steps: int = 300, lr: float = 0.05,
             candidates: int = 32, seed: int = 0) -> dict:
    """k completions per image: for each restart, the best of `candidates` random z on the visible pixels, then
    Adam on ||visible * (G(z) - x)||^2; the completion keeps x's visible pixels and takes G(z)'s hidden ones.
    Returns completions [N, k, d], and per completion the squared error on visible and on hidden pixels."""
    _check(gan)
    if k < 1 or steps < 0 or candidates < 1:
        raise UsageError("--n-completions and --candidates must be >= 1, --steps >= 0")
    h = _flat_mask(gan, hidden).to(x.device)
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


def complete_conditional(gan: GAN, x: torch.Tensor, hidden: torch.Tensor, k: int = 4, seed: int = 0) -> dict:
    """k completions per image by an inpainting run's G: G(z, context(x, hidden)) for k fresh z (seeded), one forward
    each, with no search. G keeps the visible pixels itself (`models.layers.composite`). Returns completions
    [N, k, d], the squared error on visible (zero) and hidden pixels, and each completion's D(x, c) as `d_score`."""
    _check(gan)
    if k < 1:
        raise UsageError("--n-completions must be >= 1")
    h = _flat_mask(gan, hidden)
    x = x.float().cpu()
    c = context(x, h)
    g = torch.Generator().manual_seed(seed)
    outs, scores = [], []
    for _ in range(k):
        z = sample_noise(len(x), gan.cfg.z_dim, gan.cfg.noise, "cpu", g)
        outs.append(gan.sample(len(x), z, c=c).cpu())
        scores.append(gan.discriminate(outs[-1], c=c).cpu())
    comp = torch.stack(outs, 1)
    return {"completions": comp, "d_score": torch.stack(scores, 1),
            "visible_error": torch.stack([pixel_errors_masked(gan, o, x, ~h) for o in outs], 1),
            "hidden_error": torch.stack([pixel_errors_masked(gan, o, x, h) for o in outs], 1)}


def inpaint(gan: GAN, x: torch.Tensor, mask: str = "centre", k: int = 4, steps: int = 300, lr: float = 0.05,
            candidates: int = 32, seed: int = 0, train_mean: torch.Tensor | None = None) -> dict:
    """Completions of x under a named mask and their hidden-pixel MSE (in [0, 1] pixel units): averaged over all
    completions, for the best completion, for the average of the k completions (MSE rewards averages: a sharp
    guess pays twice the variance), and for the training mean's pixels. An inpainting run (--inpaint) completes by
    G(z, c), k fresh z, and its best is the one D(x, c) rates most real (steps, lr, candidates unused); any other
    run searches z, and its best is the one whose G(z) fits the visible pixels best."""
    _check(gan)
    hidden = hidden_mask(mask, gan.spec.shape, seed)
    conditional = bool(gan.context_dim)
    r = complete_conditional(gan, x, hidden, k, seed) if conditional else \
        complete(gan, x, hidden, k, steps, lr, candidates, seed)
    if train_mean is None:
        train_mean = gan.data.x.mean(0)
    h = hidden.reshape(-1)
    base = pixel_errors_masked(gan, train_mean.expand_as(x), x, h)
    best = r["d_score"].argmax(1) if conditional else r["visible_error"].argmin(1)
    average = pixel_errors_masked(gan, r["completions"].mean(1), x, h)
    return {**r, "mask": mask, "hidden": hidden, "mse_hidden": float(r["hidden_error"].mean()),
            "method": "conditional G(z, c)" if conditional else "search z",
            "mse_hidden_average_completion": float(average.mean()),
            "mse_hidden_best_fit": float(r["hidden_error"][torch.arange(len(x)), best].mean()),
            "mse_hidden_mean_image": float(base.mean()), "n": len(x), "k": k}


def pixel_errors_masked(gan: GAN, a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error on the pixels where h is True, in [0, 1] pixel units."""
    d = (gan.spec.images(a.float()).reshape(len(a), -1) - gan.spec.images(b.float()).reshape(len(b), -1)) ** 2
    return d[:, h].mean(1)


def figure_inpaint(gan: GAN, x: torch.Tensor, result: dict, out: str | Path, n: int = 8) -> None:
    """Rows: the masked input (hidden pixels red), the k completions, the original."""
    n = min(n, len(x))
    figure_masked(gan, x[:n], result["hidden"].expand(n, *gan.spec.shape), result["completions"][:n], out)


def figure_masked(gan: GAN, x: torch.Tensor, hidden: torch.Tensor, comp: torch.Tensor, out: str | Path) -> None:
    """One row per image x[i]: the input with its own hidden pixels hidden[i] [C, H, W] in red, its completions
    comp[i] [k, d], the original."""
    from gankit.images import save_grid

    n, k = comp.shape[:2]
    orig = gan.spec.images(x[:n]).expand(-1, 3, -1, -1) if gan.spec.shape[0] == 1 else gan.spec.images(x[:n])
    hm = hidden[:, :1].expand(-1, 3, -1, -1).cpu()
    red = torch.tensor([1.0, 0.0, 0.0])[None, :, None, None].expand_as(hm)
    masked = torch.where(hm, red, orig)
    ci = gan.spec.images(comp.reshape(n * k, -1))
    ci = (ci.expand(-1, 3, -1, -1) if ci.shape[1] == 1 else ci).reshape(n, k, 3, *ci.shape[2:])
    rows = torch.cat([masked[:, None], ci, orig[:, None]], 1).reshape(n * (k + 2), 3, *orig.shape[2:])
    save_grid(rows, out, nrow=k + 2, scale=3)


def training_picture(gan: GAN, z: torch.Tensor, out: str | Path, n: int = 10) -> torch.Tensor:
    """The sample picture of an inpainting run in training: its first n training images, image i under mask kind
    i mod (the run's kinds) (random ones seeded by i), completed by G(z_i, c); returns the completions."""
    from gankit.config import inpaint_masks

    kinds = inpaint_masks(gan.cfg.inpaint)
    x = gan.data.x[:n].float().cpu()
    hidden = torch.stack([hidden_mask(kinds[i % len(kinds)], gan.spec.shape, i) for i in range(len(x))])
    comp = gan.sample(len(x), z[:len(x)], c=context(x, hidden)).cpu()
    figure_masked(gan, x, hidden, comp[:, None], out)
    return comp
