"""Small image utilities (no torchvision): tile a batch into a grid and save it as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 2,
              pad_value: float = 1.0) -> np.ndarray:
    """Tile [N, C, H, W] images in [0, 1] into one uint8 array [rows*(H+p)+p, nrow*(W+p)+p, C]."""
    x = torch.as_tensor(images).detach().float().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(x.shape)}")
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return (grid.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def save_image(array: np.ndarray, path: str | Path, scale: int = 1) -> None:
    """Save a uint8 [H, W, C] (C = 1 or 3) array as PNG, optionally enlarged by nearest-neighbour."""
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> None:
    save_image(make_grid(images, nrow), path, scale)
