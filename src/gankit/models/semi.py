"""The MNIST nets of Salimans et al. (2016), "Improved Techniques for Training GANs", for semi-supervised learning.

D is a K-way classifier whose "generated" class K+1 has its logit fixed at 0: with Z(x) = sum_k exp l_k(x),
p(y = K+1 | x) = 1 / (Z + 1), so the real/fake discriminator is D(x) = Z / (Z + 1) = sigmoid(log Z). Its
`forward` gives that logit, log Z, so the rest of gankit sees an ordinary D; `classify` gives the K class logits
and the features G matches (the last hidden layer).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from gankit.models.mlp import OUTPUTS

D_WIDTHS = (1000, 500, 250, 250, 250)
G_WIDTHS = (500, 500)


class GaussianNoise(nn.Module):
    """x + std * N(0, I) in training; the identity in eval mode."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x) if self.training and self.std > 0 else x

    def extra_repr(self) -> str:
        return f"std={self.std}"


class SemiDiscriminator(nn.Module):
    """x (+ noise 0.3) -> 1000 -> 500 -> 250 -> 250 -> 250 -> K class logits: weight-normalised Linear layers, ReLU,
    Gaussian noise (std 0.5) on every hidden layer's output. `forward(x)` = log Z = logsumexp_k l_k, the logit of
    D(x) = Z / (Z + 1)."""

    def __init__(self, x_dim: int = 784, n_classes: int = 10, widths: tuple[int, ...] = D_WIDTHS,
                 input_noise: float = 0.3, hidden_noise: float = 0.5):
        super().__init__()
        self.n_classes = 0  # not conditional: D takes no c (the K classes are its outputs)
        self.k = n_classes
        self.input_noise = GaussianNoise(input_noise)
        layers, d = [], x_dim
        for w in widths:
            layers.append(weight_norm(nn.Linear(d, w)))
            d = w
        self.hidden = nn.ModuleList(layers)
        self.noise = nn.ModuleList(GaussianNoise(hidden_noise) for _ in widths)
        self.head = weight_norm(nn.Linear(d, n_classes))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation (Salimans & Kingma 2016), as the paper's code does: layer by layer, on the
        batch x (noise on), the scale g and bias b set so that every unit's pre-activation has mean 0 and std 1."""
        h = self.input_noise(x)
        for i, layer in enumerate([*self.hidden, self.head]):
            param = layer.parametrizations.weight
            v = param.original1
            t = h @ (v / v.norm(dim=1, keepdim=True)).T
            m, s = t.mean(0), t.std(0).clamp_min(1e-6)
            param.original0.copy_((1 / s).unsqueeze(1))
            layer.bias.copy_(-m / s)
            if i < len(self.hidden):
                h = self.noise[i](F.relu(layer(h)))

    def classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the K class logits [n, K], the last hidden layer's activations [n, 250]: the matched features)."""
        h = self.input_noise(x)
        f = h
        for layer, noise in zip(self.hidden, self.noise):
            f = F.relu(layer(h))
            h = noise(f)
        return self.head(h), f

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return torch.logsumexp(self.classify(x)[0], 1)


class SemiGenerator(nn.Module):
    """z -> 500 -> 500 (softplus, batch norm before it) -> x_dim, the output layer weight-normalised, then
    `output` (sigmoid for images in [0, 1])."""

    def __init__(self, z_dim: int = 100, x_dim: int = 784, output: str = "sigmoid", widths: tuple[int, ...] = G_WIDTHS):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, 0
        mods, d = [], z_dim
        for w in widths:
            mods += [nn.Linear(d, w, bias=False), nn.BatchNorm1d(w), nn.Softplus()]
            d = w
        self.body = nn.Sequential(*mods, weight_norm(nn.Linear(d, x_dim)), OUTPUTS[output]())

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(z)
