"""Multilayer-perceptron generator and discriminator for low-dimensional (toy) data."""

from __future__ import annotations

import torch
from torch import nn

OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _stack(d_in: int, hidden: int, layers: int, d_out: int, act) -> list[nn.Module]:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(d_in if i == 0 else hidden, hidden), act()]
    mods.append(nn.Linear(hidden if layers else d_in, d_out))
    return mods


class MLPGenerator(nn.Sequential):
    """G(z): z_dim -> `layers` x (Linear, ReLU) of width `hidden` -> x_dim, then `output` activation."""

    def __init__(self, z_dim: int, x_dim: int, hidden: int = 256, layers: int = 3, output: str = "linear"):
        super().__init__(*_stack(z_dim, hidden, layers, x_dim, nn.ReLU), OUTPUTS[output]())
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(z)


class MLPDiscriminator(nn.Sequential):
    """D(x) as a logit: x_dim -> `layers` x (Linear, LeakyReLU 0.2) of width `hidden` -> 1."""

    def __init__(self, x_dim: int, hidden: int = 256, layers: int = 3):
        super().__init__(*_stack(x_dim, hidden, layers, 1, lambda: nn.LeakyReLU(0.2)))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x).squeeze(-1)


class BNMLPGenerator(nn.Sequential):
    """The MLP generator common in tutorials: z -> 128 -> 256 -> 512 -> 1024 -> x_dim, LeakyReLU 0.2 and
    BatchNorm after every hidden layer but the first, tanh (or `output`) at the end."""

    def __init__(self, z_dim: int = 100, x_dim: int = 784, output: str = "tanh"):
        mods: list[nn.Module] = []
        d = z_dim
        for i, width in enumerate((128, 256, 512, 1024)):
            mods.append(nn.Linear(d, width))
            if i > 0:
                mods.append(nn.BatchNorm1d(width))
            mods.append(nn.LeakyReLU(0.2))
            d = width
        super().__init__(*mods, nn.Linear(d, x_dim), OUTPUTS[output]())
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(z)


class TutorialDiscriminator(nn.Sequential):
    """The matching tutorial discriminator: x_dim -> 512 -> 256 -> 1 logit with LeakyReLU 0.2."""

    def __init__(self, x_dim: int = 784):
        super().__init__(nn.Linear(x_dim, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 1))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x).squeeze(-1)
