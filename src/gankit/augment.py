"""Differentiable augmentation (Zhao et al. 2020, "DiffAugment"): the same random transformations applied to
every image D sees, real and generated alike, so G's gradient passes through them and D cannot learn to tell
the two apart by the augmentation. Each sample draws its own parameters from torch's RNG (resume-exact).
Policies: translation (shift by up to 1/8 of the side, zero fill), cutout (a zeroed square of half the side),
color (brightness, saturation, contrast)."""

from __future__ import annotations

import torch

POLICIES = ("translation", "cutout", "color")


def color(x: torch.Tensor) -> torch.Tensor:
    n = len(x)
    x = x + (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy).clamp(-1, h)  # -1 and h: the zero border
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx).clamp(-1, w)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_n, rows + 1, cols + 1].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    keep = ~((ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw))
    return x * keep[:, None].to(x.dtype)


FUNCTIONS = {"translation": translation, "cutout": cutout, "color": color}


class Augment:
    """The chosen policies, in the order color, translation, cutout, on flat samples of one image shape."""

    def __init__(self, policies: tuple[str, ...], shape: tuple[int, ...]):
        self.fns = [FUNCTIONS[p] for p in ("color", "translation", "cutout") if p in policies]
        self.shape = tuple(shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x.reshape(-1, *self.shape)
        for fn in self.fns:
            y = fn(y)
        return y.reshape(x.shape)


def parse(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())
