"""Objectives: the formulas of a GAN game, apart from the loop that plays it.

An objective turns D's raw outputs into the discriminator's and the generator's losses, with named
statistics for the log. The loop and the step functions never see a formula. `OBJECTIVES` is the
registry that config validation, the CLI and `--help` are derived from.

The paper's game (`logistic`), with D = sigmoid(l) for D's logit l:

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]
    D ascends V;  G descends log(1 - D(G(z)))  (minimax)  or  -log D(G(z))  (non-saturating)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar
import torch

from gankit import losses
from gankit.registry import Entry

Stats = dict[str, torch.Tensor]


def real_fake_logits(D, x_real: torch.Tensor, x_fake: torch.Tensor, c=None, c_fake=None, joint: bool = True):
    """D's logits on a real and a generated batch; one forward on both (`joint`) when no layer of D mixes
    samples of a batch (a BatchNorm D must see real and generated batches apart)."""
    if joint:
        cc = None if c is None else torch.cat([c, c if c_fake is None else c_fake])
        logits = D(torch.cat([x_real, x_fake]), cc)
        return logits[:len(x_real)], logits[len(x_real):]
    return D(x_real, c), D(x_fake, c if c_fake is None else c_fake)


@dataclass
class Logistic:
    """The paper's game. `g_form`: 'nonsaturating' (the paper's recommendation) or 'minimax'.
    Logged: d_loss, value = V(D, G) on the minibatch, d_real = mean D(x), d_fake = mean D(G(z)), g_loss."""

    g_form: str = "nonsaturating"
    joint: bool = True  # D on real and generated batches in one forward (see real_fake_logits)
    logged: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "d_real", "d_fake", "value")  # metrics.jsonl's order

    def __post_init__(self):
        self._g = losses.generator_loss(self.g_form)

    def d_loss_from_logits(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        # -[log D(x) + log(1 - D(G(z)))]: minimising it ascends V(D, G)
        loss = losses.discriminator_loss(real.float(), fake.float())
        with torch.no_grad():
            stats = {"d_loss": loss.detach(), "d_real": torch.sigmoid(real.detach().float()).mean(),
                     "d_fake": torch.sigmoid(fake.detach().float()).mean(), "value": -loss.detach()}
        return loss, stats

    def g_loss_from_logits(self, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        loss = self._g(fake.float())
        return loss, {"g_loss": loss.detach()}

    def d_loss(self, D, x_real, x_fake, c=None, c_fake=None) -> tuple[torch.Tensor, Stats]:
        """D's loss on a real and a generated minibatch (x_fake detached by the caller)."""
        return self.d_loss_from_logits(*real_fake_logits(D, x_real, x_fake, c, c_fake, self.joint))

    def g_loss(self, D, x_fake, c=None) -> tuple[torch.Tensor, Stats]:
        """G's loss through D on a generated minibatch."""
        return self.g_loss_from_logits(D(x_fake, c))

    def joint_losses(self, D, x_real, x_fake, c=None, c_fake=None):
        """Both players' losses from one forward of D (the simultaneous update): (d_loss, g_loss, stats)."""
        real, fake = real_fake_logits(D, x_real, x_fake, c, c_fake, self.joint)
        d, d_stats = self.d_loss_from_logits(real, fake)
        g, g_stats = self.g_loss_from_logits(fake)
        return d, g, {**d_stats, **g_stats}


OBJECTIVES: dict[str, Entry] = {
    "logistic": Entry(lambda cfg, joint: Logistic(cfg.loss, joint),
                      "the paper's game: D by cross-entropy, G by --loss (nonsaturating | minimax)"),
}
G_LOSSES = tuple(losses.GENERATOR_LOSSES)


def build(cfg, joint: bool = True):
    """The objective `cfg.objective`, its generator loss chosen by `cfg.loss`."""
    return OBJECTIVES[cfg.objective].build(cfg, joint)
