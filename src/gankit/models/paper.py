"""The MNIST networks of Goodfellow et al. (2014), as in the paper's pylearn2 configuration.

G: z (100) -> ReLU 1200 -> ReLU 1200 -> sigmoid 784, weights U(-0.05, 0.05), output bias the logit of
the training data's mean pixel values (per pixel, as the paper's code did).
D: maxout 240 units x 5 pieces -> maxout 240 x 5 -> 1 logit, weights U(-0.005, 0.005), dropout on
the inputs of every D layer (keep 0.8 on the image, 0.5 on hidden layers).
Conditional (n_classes > 0): G reads [z, embed(c)]; the MLP D reads [dropout(x), one-hot(c)] (the label is
never dropped), the conv D adds the projection term <embed(c), phi(x)> (Miyato & Koyama 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.errors import DataError
from gankit.models.layers import Dropout, Projection, class_embedding, maxout, needs_c, one_hot


def _uniform_(layer: nn.Linear, r: float) -> nn.Linear:
    nn.init.uniform_(layer.weight, -r, r)
    nn.init.zeros_(layer.bias)
    return layer


class Maxout(nn.Module):
    """h_i = max_j (x W_ji + b_ji) over `pieces` linear pieces per unit; the affine map's outputs are
    laid out piece-major ([pieces, units])."""

    def __init__(self, d_in: int, units: int, pieces: int, irange: float):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.affine = _uniform_(nn.Linear(d_in, units * pieces), irange)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return maxout(self.affine(x), self.pieces)


class PaperGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, x_dim: int = 784, hidden: int = 1200, irange: float = 0.05,
                 output_bias: torch.Tensor | float | None = None, output: str = "sigmoid", n_classes: int = 0,
                 c_dim: int = 0):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        self.net = nn.Sequential(
            _uniform_(nn.Linear(z_dim + c_dim * bool(n_classes), hidden), irange), nn.ReLU(),
            _uniform_(nn.Linear(hidden, hidden), irange), nn.ReLU(),
            _uniform_(nn.Linear(hidden, x_dim), irange),
            nn.Sigmoid() if output == "sigmoid" else nn.Tanh(),
        )
        if output_bias is not None:
            with torch.no_grad():
                self.net[4].bias.copy_(torch.as_tensor(output_bias, dtype=torch.float32).expand(x_dim))
        if n_classes:
            self.embed = class_embedding(n_classes, c_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_embedding(self, z, c))


class PaperDiscriminator(nn.Module):
    def __init__(self, x_dim: int = 784, units: int = 240, pieces: int = 5, irange: float = 0.005,
                 keep_input: float = 0.8, keep_hidden: float = 0.5, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.net = nn.Sequential(
            Dropout(1 - keep_input), Maxout(x_dim + n_classes, units, pieces, irange),
            Dropout(1 - keep_hidden), Maxout(units, units, pieces, irange),
            Dropout(1 - keep_hidden), _uniform_(nn.Linear(units, 1), irange),
        )

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not self.n_classes:
            return self.net(x).squeeze(-1)
        h = torch.cat([self.net[0](x), one_hot(needs_c(c, "PaperDiscriminator"), self.n_classes, x)], 1)
        return self.net[1:](h).squeeze(-1)


def _with_embedding(net: nn.Module, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """z, or for a conditional G, [z, embed(c)]."""
    if not net.n_classes:
        return z
    return torch.cat([z, net.embed(needs_c(c, type(net).__name__).long()).to(z.dtype)], 1)


def output_bias_from_mean(mean: torch.Tensor, output: str = "sigmoid", eps: float = 1e-3) -> torch.Tensor:
    """Inverse of the output nonlinearity at the data mean, so G starts at the average image."""
    if output == "sigmoid":
        m = mean.clamp(eps, 1 - eps)
        return torch.log(m) - torch.log1p(-m)
    return torch.atanh(mean.clamp(-1 + eps, 1 - eps))


class MaxoutConv2d(nn.Module):
    """Convolutional maxout: `units` feature maps, each the max over `pieces` convolutions (channels
    laid out piece-major)."""

    def __init__(self, c_in: int, units: int, pieces: int, kernel: int, stride: int, padding: int, irange: float):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.affine = nn.Conv2d(c_in, units * pieces, kernel, stride, padding)
        nn.init.uniform_(self.affine.weight, -irange, irange)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return maxout(self.affine(x), self.pieces, dim=1)


class PaperConvGenerator(nn.Module):
    """The paper's "deconvolutional" CIFAR-10 generator, as gankit builds it: z -> ReLU linear to
    256 x H/4 x W/4 -> ReLU transposed conv (128) -> sigmoid transposed conv to the image (5x5 kernels)."""

    def __init__(self, z_dim: int = 100, shape: tuple[int, int, int] = (3, 32, 32), irange: float = 0.05,
                 output_bias: torch.Tensor | None = None, output: str = "sigmoid", n_classes: int = 0, c_dim: int = 0):
        super().__init__()
        c, h, w = shape
        if h % 4 or w % 4:
            raise DataError(f"the paper's conv nets need image sides divisible by 4, got {h}x{w}")
        self.z_dim, self.shape, self.n_classes = z_dim, shape, n_classes
        self.project = nn.Sequential(_uniform_(nn.Linear(z_dim + c_dim * bool(n_classes), 256 * (h // 4) * (w // 4)),
                                               irange), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(256, 128, 5, 2, 2, output_padding=1)
        self.up2 = nn.ConvTranspose2d(128, c, 5, 2, 2, output_padding=1)
        for layer in (self.up1, self.up2):
            nn.init.uniform_(layer.weight, -irange, irange)
            nn.init.zeros_(layer.bias)
        if output_bias is not None:  # per-channel logit of the data's mean pixel
            with torch.no_grad():
                self.up2.bias.copy_(output_bias.view(c, -1).mean(1))
        self.out = nn.Sigmoid() if output == "sigmoid" else nn.Tanh()
        if n_classes:
            self.embed = class_embedding(n_classes, c_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        _, h, w = self.shape
        x = self.project(_with_embedding(self, z, c)).view(-1, 256, h // 4, w // 4)
        return self.out(self.up2(torch.relu(self.up1(x)))).flatten(1)


class PaperConvDiscriminator(nn.Module):
    """The paper's maxout-convolutional CIFAR-10 discriminator, as gankit builds it: dropout (keep 0.8) ->
    maxout conv 64 x 2 pieces -> dropout (0.5) -> maxout conv 128 x 2 -> dropout -> maxout 240 x 5 -> 1 logit."""

    def __init__(self, shape: tuple[int, int, int] = (3, 32, 32), irange: float = 0.005, n_classes: int = 0):
        super().__init__()
        c, h, w = shape
        self.shape, self.n_classes = shape, n_classes
        self.net = nn.Sequential(
            Dropout(0.2), MaxoutConv2d(c, 64, 2, 5, 2, 2, irange),
            Dropout(0.5), MaxoutConv2d(64, 128, 2, 5, 2, 2, irange),
            nn.Flatten(), Dropout(0.5), Maxout(128 * (h // 4) * (w // 4), 240, 5, irange),
            Dropout(0.5), _uniform_(nn.Linear(240, 1), irange),
        )
        if n_classes:
            self.project = Projection(n_classes, 240)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not self.n_classes:
            return self.net(x.view(-1, *self.shape)).squeeze(-1)
        phi = self.net[:-1](x.view(-1, *self.shape))  # phi(x): the features psi reads (after its dropout)
        return self.net[-1](phi).squeeze(-1) + self.project(phi, needs_c(c, "PaperConvDiscriminator"))
