"""The adversarial objective V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] in terms of D's logits.

With D = sigmoid(l): log D = -softplus(-l) and log(1 - D) = -softplus(l), which stay finite for
any logit (never the log of a sigmoid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-[log D(x) + log(1 - D(G(z)))], each term averaged over its minibatch; minimising it ascends V."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """log(1 - D(G(z))), minimised by G: the paper's game, whose gradient vanishes as D(G(z)) -> 0."""
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the paper's recommended heuristic, strong gradients early in learning."""
    return F.softplus(-fake_logits).mean()


GENERATOR_LOSSES = {
    "minimax": generator_loss_minimax,
    "nonsaturating": generator_loss_nonsaturating,
}


def generator_loss(name: str):
    """Look up a generator loss by name."""
    try:
        return GENERATOR_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown generator loss '{name}' (choose from {', '.join(GENERATOR_LOSSES)})") from None


def value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Minibatch estimate of V(D, G); equals -2 log 2 when D outputs 1/2 everywhere."""
    return -discriminator_loss(real_logits, fake_logits)
