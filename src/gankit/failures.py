"""Failure modes, measured: the minimax loss's vanishing gradient, the "Helvetica scenario" (mode
collapse when G trains against a D that does not keep up), and a collapse monitor for ordinary runs.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch

from gankit import losses, objectives
from gankit.data import Batches
from gankit.gan import GAN, eval_mode
from gankit.metrics.collapse import diversity
from gankit.metrics.modes import mode_metrics
from gankit.noise import sample_noise
from gankit.precision import Working
from gankit.state import Player, TrainState
from gankit.steps import d_step, g_step


def _objective(gan: GAN, loss: str | None = None):
    """The run's objective (G's loss overridden by `loss`); D sees real and generated batches apart."""
    cfg = gan.cfg if loss is None else dataclasses.replace(gan.cfg, loss=loss)
    return objectives.build(cfg, joint=False)


def _state(gan: GAN, batch: int, opt_G=None, opt_D=None) -> TrainState:
    """A train state over the GAN's own networks (fp32, one process) for the step functions."""
    def noise():
        return sample_noise(batch, gan.cfg.z_dim, gan.cfg.noise, gan.device)

    G = Player(gan.G, Working(gan.G, torch.float32), gan.G, opt_G, 0.0)
    D = Player(gan.D, Working(gan.D, torch.float32), gan.D, opt_D, 0.0)
    return TrainState(G, D, noise, gan.device)


def discriminator_steps(gan: GAN, steps: int, batch: int = 256, lr: float = 1e-3, seed: int = 0) -> None:
    """Train D alone against the fixed G (the inner loop of Algorithm 1 run long), by the run's objective."""
    s = _state(gan, batch, opt_D=torch.optim.Adam(gan.D.parameters(), lr=lr, betas=(0.5, 0.999)))
    objective = _objective(gan)
    batches = Batches(gan.data.x.to(gan.device), batch, seed)
    with eval_mode(gan.G):
        for b in range(steps):
            d_step(s, objective, batches(b)[0])


def generator_steps(gan: GAN, steps: int, loss: str, batch: int = 256, lr: float = 1e-3, record=None,
                    optimizer: str = "adam") -> list:
    """Train G alone against the frozen D with G loss `loss`; `record(step, gan)` is called before every step.
    Plain SGD shows a gradient's size in the progress it makes; Adam rescales it away."""
    opt = (torch.optim.Adam(gan.G.parameters(), lr=lr, betas=(0.5, 0.999)) if optimizer == "adam"
           else torch.optim.SGD(gan.G.parameters(), lr=lr))
    s, objective = _state(gan, batch, opt_G=opt), _objective(gan, loss)
    out = []
    for step in range(steps):
        if record is not None:
            out.append(record(step, gan))
        g_step(s, objective)
    return out


def generator_gradient(gan: GAN, loss: str, z: torch.Tensor) -> tuple[float, float]:
    """(||dL_G/dtheta_G||, mean D(G(z))) for one G loss of the run's objective at the current state."""
    gan.G.zero_grad(set_to_none=True)
    logits = gan.D(gan.G(z))
    _objective(gan, loss).g_loss_from_logits(logits)[0].backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in gan.G.parameters() if p.grad is not None))
    gan.G.zero_grad(set_to_none=True)
    return norm, float(torch.sigmoid(logits.detach()).mean())


def vanishing_gradients(gan: GAN, d_steps: int = 500, g_steps: int = 100, batch: int = 256, seed: int = 0,
                        lr: float = 0.02) -> list[dict]:
    """Train D until it rejects G's samples confidently, then train G by plain SGD with each loss from that
    same state, recording the generator gradient's norm under both losses and mean D(G(z)) at every step."""
    torch.manual_seed(seed)
    discriminator_steps(gan, d_steps, batch, seed=seed)
    z = sample_noise(batch, gan.cfg.z_dim, gan.cfg.noise, gan.device, torch.Generator().manual_seed(seed))
    rows: dict[int, dict] = {}
    for trained_with in ("minimax", "nonsaturating"):
        g = copy.deepcopy(gan)

        def record(step, state, trained_with=trained_with):
            mm, d_fake = generator_gradient(state, "minimax", z)
            ns, _ = generator_gradient(state, "nonsaturating", z)
            row = rows.setdefault(step, {"step": step})
            row[f"{trained_with}: |grad| minimax"] = mm
            row[f"{trained_with}: |grad| nonsaturating"] = ns
            row[f"{trained_with}: D(G(z))"] = d_fake

        generator_steps(g, g_steps, trained_with, batch, lr=lr, record=record, optimizer="sgd")
    return [rows[s] for s in sorted(rows)]


def helvetica(gan: GAN, g_steps: int = 1500, every: int = 100, n: int = 2500, seed: int = 0) -> list[dict]:
    """G keeps training while D stays frozen: G moves its mass to where D is highest and collapses.
    Returns mode metrics (toy data) or sample diversity over the G-only steps."""
    torch.manual_seed(seed)
    z = sample_noise(n, gan.cfg.z_dim, gan.cfg.noise, gan.device, torch.Generator().manual_seed(seed))

    def record(step, state):
        if step % every:
            return None
        x = state.sample(n, z).cpu()
        row = {"step": step, "diversity": diversity(x)}
        if state.spec.kind == "toy":
            mm = mode_metrics(x, state.spec.modes, state.spec.mode_std)
            row.update(modes_covered=mm["modes_covered"], high_quality=mm["high_quality_fraction"])
        return row

    rows = generator_steps(gan, g_steps + 1, gan.cfg.loss, record=record)
    return [r for r in rows if r is not None]


def rejection_sample(gan: GAN, n: int, gamma: float | None = None, eps: float = 1e-6, burn_in: int = 10_000,
                     percentile: float = 95.0, max_draws: int = 10**7) -> tuple[torch.Tensor, dict]:
    """Discriminator rejection sampling (Azadi et al. 2019): accept G(z) with probability sigmoid(F(x)),
    F = l - l_max - log(1 - exp(l - l_max - eps)) - gamma, l = logit D(x) = log p_data/p_g estimate.
    gamma defaults to the `percentile`-th percentile of F over the burn-in samples."""
    with torch.no_grad(), eval_mode(gan.D):
        logits = gan.D(gan.sample(burn_in)).double()
        l_max = float(logits.max())

        def f(l):
            l = torch.minimum(l, torch.tensor(l_max, dtype=l.dtype))
            return l - l_max - torch.log1p(-torch.exp(l - l_max - eps))

        if gamma is None:
            gamma = float(np.percentile(f(logits).cpu().numpy(), percentile))
        kept, draws = [], 0
        while sum(len(k) for k in kept) < n and draws < max_draws:
            x = gan.sample(10_000)
            l = gan.D(x).double()
            accept = torch.rand(len(x), device=x.device, dtype=torch.float64) < torch.sigmoid(f(l) - gamma)
            kept.append(x[accept])
            draws += len(x)
    out = torch.cat(kept)[:n]
    return out, {"acceptance_rate": len(torch.cat(kept)) / draws, "gamma": gamma, "draws": draws}


def _base_gan(dataset: str, steps: int, seed: int, run_dir, progress: bool) -> GAN:
    """A GAN trained with the defaults for `steps` (steps = 0: freshly initialised). These experiments change
    G itself, so the run's result (the average of G's weights) becomes G and the average is dropped."""
    from gankit import config as config_mod
    from gankit.gan import build
    from gankit.train import fit

    cfg = config_mod.from_dict({"dataset": dataset, "seed": seed, "steps": max(steps, 1), "sample_every": 10**9,
                                "checkpoint_every": 10**9, "out": str(run_dir)})
    gan = build(cfg) if steps == 0 else fit(cfg, run_dir, progress=progress)[0]
    if gan.G_ema is not None:
        gan.G.load_state_dict(gan.G_ema.state_dict())
        gan.G_ema = None
    return gan


def run_vanishing(out, dataset: str = "ring8", d_steps: int = 200, g_steps: int = 60, seed: int = 0,
                  lr: float = 0.002) -> list[dict]:
    from gankit.plots import plot_vanishing

    rows = vanishing_gradients(_base_gan(dataset, 0, seed, None, False), d_steps, g_steps, seed=seed, lr=lr)
    disjoint = disjoint_gradients(seed=seed)
    plot_vanishing(rows, out, disjoint)
    return rows, disjoint


def run_helvetica(out, run_dir, dataset: str = "ring8", base_steps: int = 3000, g_steps: int = 1000,
                  d_steps: int = 300, seed: int = 0, progress: bool = True) -> list[dict]:
    """Train a GAN, refit D to its G, then freeze D and keep training G (`every` 100 steps measured)."""
    from gankit.plots import plot_helvetica

    gan = _base_gan(dataset, base_steps, seed, run_dir, progress)
    discriminator_steps(gan, d_steps, seed=seed)
    z = sample_noise(2500, gan.cfg.z_dim, gan.cfg.noise, gan.device, torch.Generator().manual_seed(seed))
    before = gan.sample(2500, z).cpu().numpy()
    rows = helvetica(gan, g_steps, seed=seed)
    after = gan.sample(2500, z).cpu().numpy()
    plot_helvetica(rows, before, after, gan.spec.modes.numpy() if gan.spec.modes is not None else None, out)
    return rows


def run_rejection(out, run_dir, dataset: str = "ring8", base_steps: int = 6000, d_steps: int = 1000, seed: int = 0,
                  progress: bool = True) -> dict:
    """Train a GAN, refine D against the final G (as Azadi et al. do), then compare plain and DRS samples."""
    from gankit.plots import plot_rejection

    gan = _base_gan(dataset, base_steps, seed, run_dir, progress)
    discriminator_steps(gan, d_steps, seed=seed)
    torch.manual_seed(seed)
    plain = gan.sample(2500).cpu()
    kept, info = rejection_sample(gan, 2500)
    stats = {"G(z)": mode_metrics(plain, gan.spec.modes, gan.spec.mode_std),
             "after rejection sampling": mode_metrics(kept.cpu(), gan.spec.modes, gan.spec.mode_std)}
    plot_rejection(plain.numpy(), kept.cpu().numpy(), gan.spec.modes.numpy(), out, stats)
    return {**stats, **info}


def disjoint_gradients(budgets=(0, 10, 30, 100, 300, 1000, 3000), theta: float = 3.0, width: float = 0.05,
                       batch: int = 256, seed: int = 0) -> list[dict]:
    """Arjovsky & Bottou (2017): p_data = N(0, w^2) and G(z) = theta + w z, supports practically disjoint.
    A logistic D and a WGAN-GP critic are each trained by the inner loop (Adam, G fixed); after each budget of
    D steps, the gradient that reaches G's parameter theta from the minimax, the non-saturating and the
    Wasserstein G losses, and the JSD lower bound the logistic D certifies, (V(D, G) + log 4) / 2."""
    from gankit.models.mlp import MLPDiscriminator

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    nets = {"logistic": MLPDiscriminator(1, 64, 2), "wgan-gp": MLPDiscriminator(1, 64, 2)}
    games = {"logistic": objectives.Logistic(joint=False), "wgan-gp": objectives.Wasserstein(joint=False)}
    opts = {k: torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.9)) for k, d in nets.items()}
    th = torch.tensor(theta, requires_grad=True)

    def draw():
        x = width * torch.randn(batch, 1, generator=g)
        return x, (theta + width * torch.randn(batch, 1, generator=g))

    def g_grad(D, loss_fn) -> float:
        fake = th + width * torch.randn(4096, 1, generator=torch.Generator().manual_seed(seed + 1))
        (grad,) = torch.autograd.grad(loss_fn(D(fake)), th)
        return abs(float(grad))

    rows, done = [], 0
    for budget in budgets:
        for _ in range(budget - done):
            for name, D in nets.items():
                x, fake = draw()
                loss, _ = games[name].d_loss(D, x, fake)
                if name == "wgan-gp":
                    loss = loss + 10.0 * objectives.gradient_penalty(D, x, fake)
                opts[name].zero_grad(set_to_none=True)
                loss.backward()
                opts[name].step()
        done = budget
        D = nets["logistic"]
        with torch.no_grad():
            x, fake = draw()
            value = float(-losses.discriminator_loss(D(x), D(fake)))
        rows.append({"d_steps": budget, "jsd_lower_bound": max(0.0, (value + math.log(4)) / 2),
                     "|grad| minimax": g_grad(D, losses.generator_loss_minimax),
                     "|grad| nonsaturating": g_grad(D, losses.generator_loss_nonsaturating),
                     "|grad| wasserstein": g_grad(nets["wgan-gp"], lambda c: -c.mean())})
    return rows
