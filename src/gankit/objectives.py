"""Objectives: the formulas of a GAN game, apart from the loop that plays it.

An objective turns D's raw outputs into the discriminator's and the generator's losses, with named
statistics for the log. The loop and the step functions never see a formula. `OBJECTIVES` is the
registry that config validation, the CLI and `--help` are derived from.

The paper's game (`logistic`), with D = sigmoid(l) for D's logit l:

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]
    D ascends V;  G descends log(1 - D(G(z)))  (minimax)  or  -log D(G(z))  (non-saturating)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F

from gankit import losses
from gankit.errors import ConfigError
from gankit.registry import Entry

Stats = dict[str, torch.Tensor]


def real_fake_logits(D, x_real: torch.Tensor, x_fake: torch.Tensor, c=None, c_fake=None, joint: bool = True):
    """D's logits on a real and a generated batch; one forward on both (`joint`) when no layer of D mixes
    samples of a batch (a BatchNorm D must see real and generated batches apart)."""
    if joint:
        cc = None if c is None else torch.cat([c, c if c_fake is None else c_fake])
        logits = D(torch.cat([x_real, x_fake]), cc)
        n = len(logits) * len(x_real) // (len(x_real) + len(x_fake))  # a packed D gives one output per group
        return logits[:n], logits[n:]
    return D(x_real, c), D(x_fake, c if c_fake is None else c_fake)


@dataclass
class Game:
    """What every objective shares: D's outputs on a real and a generated batch (one forward when `joint`),
    augmented alike when `augment` is set, and both players' losses from them. A game defines
    `d_loss_from_logits(real, fake)` and `g_loss_from_logits(fake, real)`; `g_needs_real` says whether G's loss
    looks at D's outputs on real data (the relativistic game)."""

    joint: bool = True  # D on real and generated batches in one forward (see real_fake_logits)
    augment: Callable | None = None  # differentiable augmentation applied to every input of D in training
    d_scale: ClassVar[float] = 1.0  # (set per game by `build`) D's loss is multiplied by this (0.5 in the paper's released code); stats stay unscaled
    g_needs_real: ClassVar[bool] = False

    def _scaled(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.d_scale == 1.0 else self.d_scale * loss

    def _in(self, x):
        return x if self.augment is None else self.augment(x)

    def d_loss(self, D, x_real, x_fake, c=None, c_fake=None, index: int = 0) -> tuple[torch.Tensor, Stats]:
        """D's loss on a real and a generated minibatch (x_fake detached by the caller); `index`: the D update's
        number, for a game that draws data of its own (the labelled minibatch of `SemiSupervised`)."""
        loss, stats = self.d_loss_from_logits(*real_fake_logits(D, self._in(x_real), self._in(x_fake), c, c_fake,
                                                                self.joint))
        return self._scaled(loss), stats

    def g_loss(self, D, x_fake, c=None, x_real=None) -> tuple[torch.Tensor, Stats]:
        """G's loss through D on a generated minibatch (and a real one, for games that compare the two)."""
        if self.g_needs_real:
            real, fake = real_fake_logits(D, self._in(x_real), self._in(x_fake), c, None, self.joint)
            return self.g_loss_from_logits(self._top(fake), real.detach())
        return self.g_loss_from_logits(self._top(D(self._in(x_fake), c)))

    def joint_losses(self, D, x_real, x_fake, c=None, c_fake=None, index: int = 0):
        """Both players' losses from one forward of D (the simultaneous update): (d_loss, g_loss, stats)."""
        real, fake = real_fake_logits(D, self._in(x_real), self._in(x_fake), c, c_fake, self.joint)
        d, d_stats = self.d_loss_from_logits(real, fake)
        g, g_stats = self.g_loss_from_logits(self._top(fake), real)
        return self._scaled(d), g, {**d_stats, **g_stats}

    topk: ClassVar[float] = 1.0  # (set per game by `build`) top-k training's final kept fraction nu (1 = off)
    topk_decay: ClassVar[float] = 0.99  # and its decay per epoch
    keep: ClassVar[float] = 1.0  # the fraction of G's minibatch its loss keeps this epoch (set by `schedule`)

    def schedule(self, epoch: float) -> None:
        """Top-k training (Sinha et al. 2020): this epoch's kept fraction, max(nu, decay^floor(epoch))."""
        self.keep = max(self.topk, self.topk_decay ** math.floor(epoch + 1e-9))

    def _top(self, fake: torch.Tensor) -> torch.Tensor:
        """D's outputs on G's minibatch limited to the ceil(keep * m) that D rates most real (per member of a seed
        ensemble: the sample dimension is the first), so G's loss ignores the samples D finds worst."""
        if self.keep >= 1:
            return fake
        return fake.topk(max(1, math.ceil(self.keep * len(fake))), dim=0).values

    def after_d_update(self, D_player) -> None:
        """Anything the game does to D after its update (weight clipping)."""

    penalties = None  # a Penalties, set by `build`
    diversity: ClassVar[float] = 0.0  # (set per game by `build`) lambda of the mode-seeking term on G (0 = off)

    def g_pairs(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """G's minibatch of contexts (or real images) when the mode-seeking term is on: the first half of `t` twice
        (see `paired`), so that sample i and sample i + m - m//2 share c; `t` unchanged when it is off."""
        return t if not self.diversity or t is None else paired(t)

    def g_regulariser(self, x_fake: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor | None, Stats]:
        """lambda * the mode-seeking term on G's paired minibatch (`g_pairs`): (loss or None, {"diversity": ratio})."""
        if not self.diversity:
            return None, {}
        h = len(x_fake) // 2
        loss, ratio = mode_seeking(x_fake[:h], x_fake[len(x_fake) - h:], z[:h], z[len(z) - h:])
        return self.diversity * loss, {"diversity": ratio.detach()}

    def d_penalty(self, D, x_real, x_fake, c=None, index: int = 0):
        """The gradient penalties on D at its `index`-th update: (loss or None, stats)."""
        if self.penalties is None or not self.penalties.names:
            return None, {}
        return self.penalties(D, self._in(x_real), self._in(x_fake), c, index)


def paired(t: torch.Tensor) -> torch.Tensor:
    """The first half of a minibatch twice, [t[:m - h], t[:h]] with h = m // 2 (m rows kept; for odd m the middle row
    goes unpaired), so that row i and row i + m - h are the same for i < h."""
    h = len(t) // 2
    return torch.cat([t[:len(t) - h], t[:h]])


def mode_seeking(x1: torch.Tensor, x2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                 eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """The mode-seeking term of MSGAN (Mao et al. 2019) on pairs x1 = G(z1, c), x2 = G(z2, c) sharing c:
    ratio = d_I(x1, x2) / d_z(z1, z2), both the mean absolute difference over the batch, and G minimises
    1 / (ratio + eps), i.e. it is rewarded for outputs that move when z moves (a G that ignores z has ratio 0).
    Returns (1 / (ratio + eps), ratio); gradients reach x1 and x2, not z."""
    ratio = (x1.float() - x2.float()).abs().mean() / (z1.float() - z2.float()).abs().mean()
    return 1 / (ratio + eps), ratio


def gradient_penalty(D, x_real, x_fake, c=None, lead: int = 1, reduce: bool = True) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - 1)^2], x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1]
    drawn per sample, so the critic is pushed to unit gradient norm between the two distributions. `lead`: the
    leading dimensions that index samples (2 for a seed ensemble's [m, E, d]); the rest is one sample. `reduce=False`:
    each sample's term (shape x.shape[:lead]) instead of the mean."""
    eps = torch.rand(*x_real.shape[:lead], *([1] * (x_real.dim() - lead)), device=x_real.device, dtype=x_real.dtype)
    x_hat = (eps * x_real.detach() + (1 - eps) * x_fake.detach()).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x_hat, c).sum(), x_hat, create_graph=True)
    each = (g.float().flatten(lead).norm(dim=-1) - 1) ** 2
    return each.mean() if reduce else each


def gradient_square(D, x, c=None, lead: int = 1, reduce: bool = True) -> torch.Tensor:
    """E ||grad_x D(x)||^2, the R1 (x real) or R2 (x generated) penalty of Mescheder et al. (2018) without gamma/2
    (`lead`, `reduce` as for `gradient_penalty`)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x, c).sum(), x, create_graph=True)
    each = g.float().flatten(lead).pow(2).sum(-1)
    return each.mean() if reduce else each


@dataclass
class Penalties:
    """gp * GP every update; gamma/2 * R1 and R2 every `every` updates, scaled by `every` (lazy regularisation,
    Karras et al. 2020). Logged: the last value of each (unweighted). `members`: per-member weights [E] of a swept
    penalty (a seed ensemble's sweep; its scalar only says whether it is on): member e's samples weighted by its own."""

    gp: float = 0.0
    r1: float = 0.0
    r2: float = 0.0
    every: int = 1
    lead: int = 1  # leading dimensions of D's inputs that index samples (2 in a seed ensemble)
    members: dict = field(default_factory=dict)  # name -> float64 tensor [E] of that penalty's weight per member

    def __post_init__(self):
        self.names = tuple(n for n in ("gp", "r1", "r2") if getattr(self, n) > 0)
        self.last: Stats = {}

    def __call__(self, D, x_real, x_fake, c, index: int):
        total = None

        def add(name, term, weight):
            """term(reduce) -> the penalty's value (or each sample's); weight(gamma) -> its factor in the loss."""
            nonlocal total
            if name in self.members:  # member e's samples weighted by its own gamma (plain runs: the line below)
                each = term(False)
                value, loss = each.mean(), (weight(self.members[name]).to(each) * each).mean()
            else:
                value = term(True)
                loss = weight(getattr(self, name)) * value
            self.last[name] = value.detach()
            total = loss if total is None else total + loss

        if self.gp:
            add("gp", lambda r: gradient_penalty(D, x_real, x_fake, c, self.lead, r), lambda w: w)
        if index % self.every == 0:
            if self.r1:
                add("r1", lambda r: gradient_square(D, x_real, c, self.lead, r), lambda w: w / 2 * self.every)
            if self.r2:
                add("r2", lambda r: gradient_square(D, x_fake, c, self.lead, r), lambda w: w / 2 * self.every)
        zero = torch.zeros((), device=x_real.device)
        return total, {n: self.last.get(n, zero) for n in self.names}


def _critic_stats(loss, real, fake) -> Stats:
    with torch.no_grad():
        return {"d_loss": loss.detach(), "critic_real": real.detach().float().mean(),
                "critic_fake": fake.detach().float().mean()}


CRITIC_LOGGED = ("d_loss", "g_loss", "critic_real", "critic_fake")


@dataclass
class Logistic(Game):
    """The paper's game. `g_form`: 'nonsaturating' (the paper's recommendation) or 'minimax'.
    Logged: d_loss, value = V(D, G) on the minibatch, d_real = mean D(x), d_fake = mean D(G(z)), g_loss."""

    g_form: str = "nonsaturating"
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

    def g_loss_from_logits(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> tuple[torch.Tensor, Stats]:
        loss = self._g(fake.float())
        return loss, {"g_loss": loss.detach()}


@dataclass
class LeastSquares(Game):
    """Mao et al. (2017): D regresses real outputs to b and generated ones to a; G pulls its outputs to c.
    L_D = 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2],  L_G = 1/2 E[(D(G(z)) - c)^2]."""

    a: float = -1.0
    b: float = 1.0
    c: float = 0.0
    logged: ClassVar[tuple[str, ...]] = CRITIC_LOGGED

    def d_loss_from_logits(self, real, fake):
        loss = 0.5 * ((real.float() - self.b) ** 2).mean() + 0.5 * ((fake.float() - self.a) ** 2).mean()
        return loss, _critic_stats(loss, real, fake)

    def g_loss_from_logits(self, fake, real=None):
        loss = 0.5 * ((fake.float() - self.c) ** 2).mean()
        return loss, {"g_loss": loss.detach()}


@dataclass
class Hinge(Game):
    """Lim & Ye (2017), Miyato et al. (2018): L_D = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))],
    L_G = -E[D(G(z))]."""

    logged: ClassVar[tuple[str, ...]] = CRITIC_LOGGED

    def d_loss_from_logits(self, real, fake):
        loss = F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()
        return loss, _critic_stats(loss, real, fake)

    def g_loss_from_logits(self, fake, real=None):
        loss = -fake.float().mean()
        return loss, {"g_loss": loss.detach()}


@dataclass
class Wasserstein(Game):
    """Arjovsky et al. (2017): the critic maximises E[D(x)] - E[D(G(z))], an estimate of W1 when D is
    1-Lipschitz; G minimises -E[D(G(z))]. Lipschitz by weight clipping (`clip` > 0, WGAN) or by the gradient
    penalty the step adds (WGAN-GP). Logged `wasserstein`: the critic's estimate E[D(x)] - E[D(G(z))]."""

    clip: float = 0.0
    logged: ClassVar[tuple[str, ...]] = (*CRITIC_LOGGED, "wasserstein")

    def d_loss_from_logits(self, real, fake):
        w = real.float().mean() - fake.float().mean()
        loss = -w
        return loss, {**_critic_stats(loss, real, fake), "wasserstein": w.detach()}

    def g_loss_from_logits(self, fake, real=None):
        loss = -fake.float().mean()
        return loss, {"g_loss": loss.detach()}

    @torch.no_grad()
    def after_d_update(self, D_player) -> None:
        if self.clip > 0:  # clip the fp32 masters, then refresh the working copy
            for p in D_player.master.parameters():
                p.clamp_(-self.clip, self.clip)
            D_player.work.refresh()


@dataclass
class Relativistic(Game):
    """The relativistic average logistic game (Jolicoeur-Martineau 2018): D says how much more real x is than
    the average generated sample, and G the reverse:
    L_D = E_x softplus(-(C(x) - E C(G(z)))) + E_z softplus(C(G(z)) - E C(x)),  L_G the same with roles swapped."""

    logged: ClassVar[tuple[str, ...]] = CRITIC_LOGGED
    g_needs_real: ClassVar[bool] = True

    @staticmethod
    def _pair(up, down):
        up, down = up.float(), down.float()
        return F.softplus(-(up - down.mean(0))).mean() + F.softplus(down - up.mean(0)).mean()  # means per member

    def d_loss_from_logits(self, real, fake):
        loss = self._pair(real, fake)
        return loss, _critic_stats(loss, real, fake)

    def g_loss_from_logits(self, fake, real=None):
        loss = self._pair(fake, real)
        return loss, {"g_loss": loss.detach()}


@dataclass
class BiGAN:
    """The logistic game on pairs (Donahue et al. 2017; Dumoulin et al. 2017): D tells (x, E(x)), x ~ p_data, from
    (G(z), z), z ~ p_z; G and E play together against it. With l_real = D(x, E(x)) and l_fake = D(G(z), z) as logits:

        V(D, G, E) = E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))]
        D:     minimises softplus(-l_real) + softplus(l_fake)                      (ascends V)
        G, E:  non-saturating: minimise softplus(l_real) + softplus(-l_fake)  (E: -log(1 - D(x, E(x))),
                                                                              G: -log D(G(z), z))
               minimax: minimise V, i.e. -softplus(-l_real) - softplus(l_fake)

    Logged: d_loss, g_loss (G's term), e_loss (E's term), d_real = mean D(x, E(x)), d_fake = mean D(G(z), z), value."""

    g_form: str = "nonsaturating"
    d_scale: float = 1.0  # D's loss is multiplied by this (cfg.d_loss_scale); stats stay unscaled
    logged: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "e_loss", "d_real", "d_fake", "value")

    def schedule(self, epoch: float) -> None:
        """Nothing changes with the epoch here (top-k training is not for the encoder's game)."""

    @staticmethod
    def logits(D, x, e_x, g_z, z) -> tuple[torch.Tensor, torch.Tensor]:
        """(l_real, l_fake): D's logits on the pairs (x, E(x)) and (G(z), z), in one forward (no layer of the joint D
        mixes samples of a batch)."""
        logits = D(torch.cat([x, g_z]), torch.cat([e_x, z])).float()
        return logits[:len(x)], logits[len(x):]

    def d_loss(self, D, x, e_x, g_z, z) -> tuple[torch.Tensor, Stats]:
        """D's loss on the pairs (E(x) and G(z) detached by the caller)."""
        real, fake = self.logits(D, x, e_x, g_z, z)
        loss = losses.discriminator_loss(real, fake)
        with torch.no_grad():
            stats = {"d_loss": loss.detach(), "d_real": torch.sigmoid(real).mean(), "d_fake": torch.sigmoid(fake).mean(),
                     "value": -loss.detach()}
        return (loss if self.d_scale == 1.0 else self.d_scale * loss), stats

    def ge_loss(self, D, x, e_x, g_z, z) -> tuple[torch.Tensor, Stats]:
        """The loss G and E minimise together through D: E's term on l_real plus G's term on l_fake."""
        real, fake = self.logits(D, x, e_x, g_z, z)
        if self.g_form == "nonsaturating":
            e_loss, g_loss = F.softplus(real).mean(), F.softplus(-fake).mean()
        else:
            e_loss, g_loss = -F.softplus(-real).mean(), -F.softplus(fake).mean()
        return e_loss + g_loss, {"g_loss": g_loss.detach(), "e_loss": e_loss.detach()}


def semi_supervised_d_loss(labelled: torch.Tensor, y: torch.Tensor, real: torch.Tensor,
                           fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_supervised, L_unsupervised) of Salimans et al. (2016) from D's K class logits on a labelled, an unlabelled
    real and a generated minibatch. Class K+1 ("generated") has logit 0, so with log Z = logsumexp_k l_k:
    L_sup = E[-log p(y | x, y <= K)] (K-way cross-entropy),
    L_unsup = E_x[-log D(x)] + E_z[-log(1 - D(G(z)))],  D(x) = Z / (Z + 1), i.e. softplus(-log Z(x)) + softplus(log Z(G(z)))."""
    sup = F.cross_entropy(labelled, y)
    unsup = F.softplus(-torch.logsumexp(real, 1)).mean() + F.softplus(torch.logsumexp(fake, 1)).mean()
    return sup, unsup


def feature_matching(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """||E f(x) - E f(G(z))||^2 / d over D's d intermediate features (the mean square, as the released code)."""
    return (real.float().mean(0) - fake.float().mean(0)).pow(2).mean()


@dataclass
class SemiSupervised(Game):
    """Semi-supervised learning with a (K+1)-class D and feature matching (Salimans et al. 2016): D, a K-class
    classifier (`classify(x)` -> class logits, features), minimises L_sup on the labelled minibatch + L_unsup on the
    real and generated ones (see `semi_supervised_d_loss`); G minimises `feature_matching` on D's last hidden layer.
    `labelled(i)`: the labelled minibatch (x, y) of D's i-th update (set by the training loop). Logged: d_loss,
    g_loss (= feature matching), loss_sup, loss_unsup, train_acc (on the labelled minibatch), d_real, d_fake."""

    labelled: Callable | None = None
    logged: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "loss_sup", "loss_unsup", "train_acc", "d_real",
                                         "d_fake")
    g_needs_real: ClassVar[bool] = True

    def _classify(self, D, *xs):
        """[(class logits, features)] of each batch: one forward of D on all when `joint`."""
        classify = getattr(D, "classify", None)
        if classify is None:
            raise ConfigError("objective 'semi-supervised' needs a classifying D (model semi-mlp), in one process")
        xs = [self._in(x) for x in xs]
        if not self.joint:
            return [classify(x) for x in xs]
        logits, feats = classify(torch.cat(xs))
        sizes = [len(x) for x in xs]
        return list(zip(logits.split(sizes), feats.split(sizes)))

    def _d(self, lab, y, real, fake):
        sup, unsup = semi_supervised_d_loss(lab.float(), y, real.float(), fake.float())
        loss = sup + unsup
        with torch.no_grad():
            stats = {"d_loss": loss.detach(), "loss_sup": sup.detach(), "loss_unsup": unsup.detach(),
                     "train_acc": (lab.argmax(1) == y).float().mean(),
                     "d_real": torch.sigmoid(torch.logsumexp(real.detach().float(), 1)).mean(),
                     "d_fake": torch.sigmoid(torch.logsumexp(fake.detach().float(), 1)).mean()}
        return loss, stats

    def _labelled(self, index, like):
        x, y = self.labelled(index)
        return x.to(like.dtype), y

    def d_loss(self, D, x_real, x_fake, c=None, c_fake=None, index: int = 0):
        x_lab, y = self._labelled(index, x_real)
        (lab, _), (real, _), (fake, _) = self._classify(D, x_lab, x_real, x_fake)
        loss, stats = self._d(lab, y, real, fake)
        return self._scaled(loss), stats

    def g_loss(self, D, x_fake, c=None, x_real=None):
        (_, f_real), (_, f_fake) = self._classify(D, x_real, x_fake)
        loss = feature_matching(f_real.detach(), f_fake)
        return loss, {"g_loss": loss.detach()}

    def joint_losses(self, D, x_real, x_fake, c=None, c_fake=None, index: int = 0):
        x_lab, y = self._labelled(index, x_real)
        (lab, _), (real, f_real), (fake, f_fake) = self._classify(D, x_lab, x_real, x_fake)
        d, stats = self._d(lab, y, real, fake)
        g = feature_matching(f_real.detach(), f_fake)
        return self._scaled(d), g, {**stats, "g_loss": g.detach()}


OBJECTIVES: dict[str, Entry] = {
    "logistic": Entry(lambda cfg, joint, aug: Logistic(joint, aug, cfg.loss),
                      "the paper's game: D by cross-entropy, G by --loss (nonsaturating | minimax)"),
    "least-squares": Entry(lambda cfg, joint, aug: LeastSquares(joint, aug, -1.0, 1.0, 0.0),
                           "LSGAN, a = -1, b = 1, c = 0 (Mao et al. 2017)"),
    "least-squares-01": Entry(lambda cfg, joint, aug: LeastSquares(joint, aug, 0.0, 1.0, 1.0),
                              "LSGAN, the 0-1-1 coding"),
    "hinge": Entry(lambda cfg, joint, aug: Hinge(joint, aug), "hinge loss for D, -D(G(z)) for G"),
    "wgan-clip": Entry(lambda cfg, joint, aug: Wasserstein(joint, aug, cfg.clip),
                       "Wasserstein critic, weights clipped to [-clip, clip] (Arjovsky et al. 2017)"),
    "wgan-gp": Entry(lambda cfg, joint, aug: Wasserstein(joint, aug),
                     "Wasserstein critic with the gradient penalty --gp-weight (Gulrajani et al. 2017)"),
    "relativistic": Entry(lambda cfg, joint, aug: Relativistic(joint, aug),
                          "relativistic average logistic game (Jolicoeur-Martineau 2018)"),
    "semi-supervised": Entry(lambda cfg, joint, aug: SemiSupervised(joint, aug),
                             "K+1-class D on --labels labelled images, G by feature matching (Salimans et al. 2016; "
                             "model semi-mlp)"),
}
G_LOSSES = tuple(losses.GENERATOR_LOSSES)


def build(cfg, joint: bool = True, augment: Callable | None = None, labelled: Callable | None = None):
    """The objective `cfg.objective` (its generator loss chosen by `cfg.loss` where it has a choice), with the
    gradient penalties and the mode-seeking term on G the config asks for; a run with a jointly trained encoder
    (`cfg.encoder`) plays `BiGAN`; `labelled`: the labelled minibatches of a semi-supervised run."""
    if getattr(cfg, "encoder", False):
        return BiGAN(cfg.loss, cfg.d_loss_scale)
    game = OBJECTIVES[cfg.objective].build(cfg, joint, augment)
    if labelled is not None:
        game.labelled = labelled
    game.d_scale = cfg.d_loss_scale
    game.penalties = Penalties(cfg.gp_weight if cfg.objective == "wgan-gp" else 0.0, cfg.r1, cfg.r2, cfg.reg_every)
    game.diversity = cfg.diversity
    game.topk, game.topk_decay = cfg.topk, cfg.topk_decay
    game.logged = type(game).logged + game.penalties.names + (("diversity",) if cfg.diversity else ())
    return game
