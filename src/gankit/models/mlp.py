"""Multilayer-perceptron generator and discriminator for low-dimensional (toy) data."""

from __future__ import annotations

import torch
from torch import nn

from gankit.models.layers import class_embedding, composite, needs_c, one_hot

OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _stack(d_in: int, hidden: int, layers: int, d_out: int, act) -> list[nn.Module]:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(d_in if i == 0 else hidden, hidden), act()]
    mods.append(nn.Linear(hidden if layers else d_in, d_out))
    return mods


def _layers(seq: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    """The Sequential's layers in order, skipping the class embedding a conditional net keeps among them."""
    for name, module in seq._modules.items():
        if name != "embed":
            h = module(h)
    return h


def _g_input(net, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """z, or for a conditional G, [z, embed(c)]; for an inpainting G, [z, c] with c the image context."""
    if getattr(net, "context_dim", 0):
        return torch.cat([z, needs_c(c, type(net).__name__).to(z.dtype)], 1)
    if not net.n_classes:
        return z
    return torch.cat([z, net.embed(needs_c(c, type(net).__name__).long()).to(z.dtype)], 1)


def _g_output(net, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """The forward of a conditional or inpainting MLP G (the latter composited: see `layers.composite`)."""
    h = _layers(net, _g_input(net, z, c))
    return composite(h, c) if net.context_dim else h


def _d_input(net, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """x, or for a conditional D, [x, one-hot(c)]; for an inpainting D, [x, c] with c the image context."""
    if getattr(net, "context_dim", 0):
        return torch.cat([x, needs_c(c, type(net).__name__).to(x.dtype)], 1)
    if not net.n_classes:
        return x
    return torch.cat([x, one_hot(needs_c(c, type(net).__name__), net.n_classes, x)], 1)


class MLPGenerator(nn.Sequential):
    """G(z): z_dim -> `layers` x (Linear, ReLU) of width `hidden` -> x_dim, then `output` activation.
    Conditional (n_classes > 0): G(z, c) reads [z, embed(c)], a learned c_dim-vector per class.
    Inpainting (context_dim > 0): G(z, c) reads [z, c], c an image's context, and keeps its visible pixels."""

    def __init__(self, z_dim: int, x_dim: int, hidden: int = 256, layers: int = 3, output: str = "linear",
                 n_classes: int = 0, c_dim: int = 0, context_dim: int = 0):
        super().__init__(*_stack(z_dim + c_dim * bool(n_classes) + context_dim, hidden, layers, x_dim, nn.ReLU),
                         OUTPUTS[output]())
        self.z_dim, self.n_classes, self.context_dim = z_dim, n_classes, context_dim
        if n_classes:
            self.embed = class_embedding(n_classes, c_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not (self.n_classes or self.context_dim):
            return super().forward(z)
        return _g_output(self, z, c)


class MLPDiscriminator(nn.Sequential):
    """D(x) as a logit: x_dim -> `layers` x (Linear, LeakyReLU 0.2) of width `hidden` -> 1.
    Conditional (n_classes > 0): D(x, c) reads [x, one-hot(c)]. Inpainting (context_dim > 0): [x, c], c the context.
    """

    def __init__(self, x_dim: int, hidden: int = 256, layers: int = 3, n_classes: int = 0, context_dim: int = 0):
        super().__init__(*_stack(x_dim + n_classes + context_dim, hidden, layers, 1, lambda: nn.LeakyReLU(0.2)))
        self.n_classes, self.context_dim = n_classes, context_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(_d_input(self, x, c)).squeeze(-1)


class BNMLPGenerator(nn.Sequential):
    """The MLP generator common in tutorials: z -> 128 -> 256 -> 512 -> 1024 -> x_dim, LeakyReLU 0.2 and
    BatchNorm after every hidden layer but the first, tanh (or `output`) at the end. Conditional and inpainting
    inputs as MLPGenerator's."""

    def __init__(self, z_dim: int = 100, x_dim: int = 784, output: str = "tanh", n_classes: int = 0, c_dim: int = 0,
                 context_dim: int = 0):
        mods: list[nn.Module] = []
        d = z_dim + c_dim * bool(n_classes) + context_dim
        for i, width in enumerate((128, 256, 512, 1024)):
            mods.append(nn.Linear(d, width))
            if i > 0:
                mods.append(nn.BatchNorm1d(width))
            mods.append(nn.LeakyReLU(0.2))
            d = width
        super().__init__(*mods, nn.Linear(d, x_dim), OUTPUTS[output]())
        self.z_dim, self.n_classes, self.context_dim = z_dim, n_classes, context_dim
        if n_classes:
            self.embed = class_embedding(n_classes, c_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not (self.n_classes or self.context_dim):
            return super().forward(z)
        return _g_output(self, z, c)


class TutorialDiscriminator(nn.Sequential):
    """The matching tutorial discriminator: x_dim -> 512 -> 256 -> 1 logit with LeakyReLU 0.2 (inputs as
    MLPDiscriminator's)."""

    def __init__(self, x_dim: int = 784, n_classes: int = 0, context_dim: int = 0):
        super().__init__(nn.Linear(x_dim + n_classes + context_dim, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256),
                         nn.LeakyReLU(0.2), nn.Linear(256, 1))
        self.n_classes, self.context_dim = n_classes, context_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(_d_input(self, x, c)).squeeze(-1)


class MLPEncoder(nn.Sequential):
    """E(x): x_dim -> `layers` x (Linear, LeakyReLU 0.2) of width `hidden` -> z_dim (flat data)."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 256, layers: int = 3):
        super().__init__(*_stack(x_dim, hidden, layers, z_dim, lambda: nn.LeakyReLU(0.2)))


class JointDiscriminator(nn.Module):
    """D(x, z) as a logit on a pair (BiGAN / ALI): z through a small branch (Linear z_hidden, LeakyReLU 0.2; plain
    z when z_hidden = 0), concatenated with x, then `layers` x (Linear, LeakyReLU 0.2) of width `hidden` -> 1."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 256, layers: int = 3, z_hidden: int = 0):
        super().__init__()
        self.z_branch = nn.Sequential(nn.Linear(z_dim, z_hidden), nn.LeakyReLU(0.2)) if z_hidden else nn.Identity()
        self.body = nn.Sequential(*_stack(x_dim + (z_hidden or z_dim), hidden, layers, 1, lambda: nn.LeakyReLU(0.2)))
        self.n_classes = 0

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, self.z_branch(z)], 1)).squeeze(-1)
