"""The MNIST networks of Goodfellow et al. (2014), as in the paper's pylearn2 configuration.

G: z (100) -> ReLU 1200 -> ReLU 1200 -> sigmoid 784, weights U(-0.05, 0.05), output bias the logit of
the training data's mean pixel values (per pixel, as the paper's code did).
D: maxout 240 units x 5 pieces -> maxout 240 x 5 -> 1 logit, weights U(-0.005, 0.005), dropout on
the inputs of every D layer (keep 0.8 on the image, 0.5 on hidden layers).
"""

from __future__ import annotations

import torch
from torch import nn


def _uniform_(layer: nn.Linear, r: float) -> nn.Linear:
    nn.init.uniform_(layer.weight, -r, r)
    nn.init.zeros_(layer.bias)
    return layer


class Maxout(nn.Module):
    """h_i = max_j (x W_ij + b_ij) over `pieces` linear pieces per unit."""

    def __init__(self, d_in: int, units: int, pieces: int, irange: float):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = _uniform_(nn.Linear(d_in, units * pieces), irange)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(*x.shape[:-1], self.units, self.pieces).amax(-1)


class PaperGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, x_dim: int = 784, hidden: int = 1200, irange: float = 0.05,
                 output_bias: torch.Tensor | float | None = None, output: str = "sigmoid"):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(
            _uniform_(nn.Linear(z_dim, hidden), irange), nn.ReLU(),
            _uniform_(nn.Linear(hidden, hidden), irange), nn.ReLU(),
            _uniform_(nn.Linear(hidden, x_dim), irange),
            nn.Sigmoid() if output == "sigmoid" else nn.Tanh(),
        )
        if output_bias is not None:
            with torch.no_grad():
                self.net[4].bias.copy_(torch.as_tensor(output_bias, dtype=torch.float32).expand(x_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class PaperDiscriminator(nn.Module):
    def __init__(self, x_dim: int = 784, units: int = 240, pieces: int = 5, irange: float = 0.005,
                 keep_input: float = 0.8, keep_hidden: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(1 - keep_input), Maxout(x_dim, units, pieces, irange),
            nn.Dropout(1 - keep_hidden), Maxout(units, units, pieces, irange),
            nn.Dropout(1 - keep_hidden), _uniform_(nn.Linear(units, 1), irange),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def output_bias_from_mean(mean: torch.Tensor, output: str = "sigmoid", eps: float = 1e-3) -> torch.Tensor:
    """Inverse of the output nonlinearity at the data mean, so G starts at the average image."""
    if output == "sigmoid":
        m = mean.clamp(eps, 1 - eps)
        return torch.log(m) - torch.log1p(-m)
    return torch.atanh(mean.clamp(-1 + eps, 1 - eps))
