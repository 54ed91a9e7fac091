"""The paper's theory, computed: the optimal discriminator, the virtual training criterion and the
density ratio, for densities known in closed form (Gaussian mixtures in 1-D and 2-D).

    D*(x) = p_data(x) / (p_data(x) + p_g(x))                       (Proposition 1)
    C(G) = max_D V(G, D) = -log 4 + 2 JSD(p_data || p_g)           (Theorem 1)
    D(x) / (1 - D(x)) = exp(logit D(x))  estimates  p_data(x) / p_g(x)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gankit.objectives import Hinge, LeastSquares, Logistic
from gankit.models.mlp import MLPDiscriminator


@dataclass(frozen=True)
class GaussianMixture:
    """Mixture of isotropic Gaussians: means [K, d], standard deviations [K], weights [K] (summing to 1)."""

    means: tuple[tuple[float, ...], ...]
    stds: tuple[float, ...]
    weights: tuple[float, ...] | None = None

    @classmethod
    def make(cls, means, stds, weights=None) -> "GaussianMixture":
        mu = np.atleast_2d(np.asarray(means, dtype=np.float64).reshape(len(np.atleast_1d(stds)), -1))
        s = np.atleast_1d(np.asarray(stds, dtype=np.float64))
        if (s <= 0).any():
            raise ValueError("standard deviations must be > 0")
        w = np.full(len(s), 1 / len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(s) or (w < 0).any() or abs(w.sum() - 1) > 1e-9:
            raise ValueError("weights must be non-negative, one per component, and sum to 1")
        return cls(tuple(map(tuple, mu)), tuple(s), tuple(w))

    @property
    def dim(self) -> int:
        return len(self.means[0])

    def log_density(self, x) -> np.ndarray:
        """log p(x) for x of shape [N, d] (or [N] in 1-D), float64."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        mu, s, w = np.asarray(self.means), np.asarray(self.stds), np.asarray(self.weights)
        sq = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
        comp = -sq / (2 * s**2) - self.dim * np.log(s * math.sqrt(2 * math.pi)) + np.log(w)
        m = comp.max(1, keepdims=True)
        return (m + np.log(np.exp(comp - m).sum(1, keepdims=True)))[:, 0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        mu, s = torch.tensor(self.means)[idx], torch.tensor(self.stds)[idx, None]
        return (mu + s * torch.randn(n, self.dim, dtype=torch.float64, generator=generator)).float()

    def bounds(self, n_std: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
        mu, s = np.asarray(self.means), np.asarray(self.stds)[:, None]
        return (mu - n_std * s).min(0), (mu + n_std * s).max(0)


def optimal_discriminator(p_data: GaussianMixture, p_g: GaussianMixture, x) -> np.ndarray:
    """D*(x) = p_data / (p_data + p_g), computed as sigmoid(log p_data - log p_g)."""
    return 1.0 / (1.0 + np.exp(p_g.log_density(x) - p_data.log_density(x)))


def _grid(p: GaussianMixture, q: GaussianMixture, n: int):
    """Integration grid (points [N, d], cell volume) covering both densities."""
    lo_p, hi_p = p.bounds()
    lo_q, hi_q = q.bounds()
    lo, hi = np.minimum(lo_p, lo_q), np.maximum(hi_p, hi_q)
    axes = [np.linspace(a, b, n) for a, b in zip(lo, hi)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    return pts, float(np.prod([(b - a) / (n - 1) for a, b in zip(lo, hi)])), axes


def _integrate(values: np.ndarray, axes) -> float:
    """Trapezoid rule over a regular grid."""
    v = values.reshape([len(a) for a in axes])
    for a in reversed(axes):
        v = np.trapezoid(v, a, axis=-1)
    return float(v)


def _grid_size(d: int) -> int:
    return 200_001 if d == 1 else 1201


def virtual_criterion(p_data: GaussianMixture, p_g: GaussianMixture, n: int | None = None) -> float:
    """C(G) = V(G, D*) = E_pdata[log D*(x)] + E_pg[log(1 - D*(x))], by numerical integration."""
    pts, _, axes = _grid(p_data, p_g, n or _grid_size(p_data.dim))
    lp, lq = p_data.log_density(pts), p_g.log_density(pts)
    log_d = -np.logaddexp(0.0, lq - lp)  # log D* = -softplus(log p_g - log p_data)
    log_1md = -np.logaddexp(0.0, lp - lq)
    return _integrate(np.exp(lp) * log_d + np.exp(lq) * log_1md, axes)


def jensen_shannon(p: GaussianMixture, q: GaussianMixture, n: int | None = None) -> float:
    """JSD(p || q) = KL(p || m)/2 + KL(q || m)/2 with m = (p + q)/2, in nats, by numerical integration."""
    pts, _, axes = _grid(p, q, n or _grid_size(p.dim))
    lp, lq = p.log_density(pts), q.log_density(pts)
    lm = np.logaddexp(lp, lq) - math.log(2)
    return _integrate(0.5 * np.exp(lp) * (lp - lm) + 0.5 * np.exp(lq) * (lq - lm), axes)


def density_ratio(discriminator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """D(x) / (1 - D(x)) = exp(logit): the discriminator's estimate of p_data(x) / p_g(x)."""
    with torch.no_grad():
        return torch.exp(discriminator(x).double())


# The games whose optimal D for a fixed G has a closed form: (objective, D's raw output -> the optimum's scale,
# the optimum as a function of r = log p_d/p_g (stable in the tails), the formula).
GAMES = {
    "logistic": (lambda: Logistic(joint=False), torch.sigmoid, lambda r: 1 / (1 + np.exp(-r)),
                 "D* = p_d / (p_d + p_g)"),
    "least-squares": (lambda: LeastSquares(False, None, -1.0, 1.0, 0.0), lambda t: t, lambda r: np.tanh(r / 2),
                      "D* = (b p_d + a p_g)/(p_d + p_g) = tanh(r/2), a = -1, b = 1"),
    "hinge": (lambda: Hinge(False), lambda t: t.clamp(-1, 1), np.sign,
              "D* = sign(p_d - p_g) (D's output clipped to [-1, 1])"),
}


def optimal_output(game: str, p_data: GaussianMixture, p_g: GaussianMixture, x) -> np.ndarray:
    """The optimal D of `game` for this G, at x, in closed form."""
    return GAMES[game][2](p_data.log_density(x) - p_g.log_density(x))


def train_discriminator(p_data: GaussianMixture, p_g: GaussianMixture, steps: int = 3000, batch: int = 512,
                        lr: float = 2e-3, hidden: int = 64, layers: int = 2, seed: int = 0,
                        game: str = "logistic") -> nn.Module:
    """The inner loop of Algorithm 1 with G held fixed: D's steps of the game on samples of p_data and p_g."""
    torch.manual_seed(seed)
    D = MLPDiscriminator(p_data.dim, hidden, layers)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    objective = GAMES[game][0]()
    for _ in range(steps):
        x, fake = p_data.sample(batch, g), p_g.sample(batch, g)
        loss, _ = objective.d_loss(D, x, fake)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return D.eval()


def discriminator_error(D: nn.Module, p_data: GaussianMixture, p_g: GaussianMixture, n: int = 2000,
                        seed: int = 1, game: str = "logistic") -> dict:
    """|D - D*| on a grid over the bulk of both densities and on samples from each, plus (logistic) the error of
    the log density ratio logit D(x) against log p_data/p_g on samples. For hinge, D* jumps where p_d = p_g, so
    the mean over samples is the telling number."""
    to_output = GAMES[game][1]
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([p_data.sample(n, g), p_g.sample(n, g)])
    lo, hi = np.minimum(*[np.asarray(p.means).min(0) - 2 * max(p.stds) for p in (p_data, p_g)]), \
        np.maximum(*[np.asarray(p.means).max(0) + 2 * max(p.stds) for p in (p_data, p_g)])
    if p_data.dim == 1:
        grid = torch.linspace(float(lo[0]), float(hi[0]), 1000, dtype=torch.float64)[:, None].float()
    else:
        axes = [torch.linspace(float(a), float(b), 60) for a, b in zip(lo, hi)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    with torch.no_grad():
        d_grid = to_output(D(grid)).double().numpy()
        d_samp = to_output(D(x)).double().numpy()
        logit = D(x).double().numpy()
    err_grid = np.abs(d_grid - optimal_output(game, p_data, p_g, grid.numpy()))
    err_samp = np.abs(d_samp - optimal_output(game, p_data, p_g, x.numpy()))
    out = {"grid_max": float(err_grid.max()), "grid_mean": float(err_grid.mean()),
           "samples_max": float(err_samp.max()), "samples_mean": float(err_samp.mean())}
    if game == "logistic":
        log_ratio = p_data.log_density(x.numpy()) - p_g.log_density(x.numpy())
        out["log_ratio_mae"] = float(np.abs(logit - log_ratio).mean())
    return out


# Pairs (name, p_data, p_g) used by `gankit theory check` and the tests.
def standard_pairs() -> list[tuple[str, GaussianMixture, GaussianMixture]]:
    G = GaussianMixture.make
    return [
        ("identical 1-D", G([0.0], [1.0]), G([0.0], [1.0])),
        ("shifted 1-D", G([0.0], [1.0]), G([1.5], [1.0])),
        ("different widths 1-D", G([0.0], [0.5]), G([0.0], [2.0])),
        ("mixture vs Gaussian 1-D", G([-2.0, 2.0], [0.5, 0.5]), G([0.0], [1.5])),
        ("shifted 2-D", G([[0.0, 0.0]], [1.0]), G([[1.0, -0.5]], [1.0])),
        ("ring-like mixture 2-D", G([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], [0.3] * 4),
         G([[0.0, 0.0]], [1.5])),
    ]


def check(train_d: bool = True) -> list[dict]:
    """Every identity with its numerical error: C(G) vs -log 4 + 2 JSD, and a trained D vs D*."""
    rows = []
    for name, p, q in standard_pairs():
        c, jsd = virtual_criterion(p, q), jensen_shannon(p, q)
        row = {"pair": name, "C(G)": c, "-log4+2JSD": -math.log(4) + 2 * jsd, "JSD": jsd,
               "identity_error": abs(c - (-math.log(4) + 2 * jsd))}
        if train_d and p.dim == 1 and name != "identical 1-D":
            err = discriminator_error(train_discriminator(p, q), p, q)
            row.update({"D_vs_Dstar_mean": err["grid_mean"], "D_vs_Dstar_max": err["grid_max"],
                        "log_ratio_mae": err["log_ratio_mae"]})
            for game in ("least-squares", "hinge"):
                e = discriminator_error(train_discriminator(p, q, game=game), p, q, game=game)
                row.update({f"{game}: trained D vs D*, grid mean": e["grid_mean"],
                            f"{game}: trained D vs D*, samples mean": e["samples_mean"]})
        for ident in objective_identities(p, q):
            row[f"{ident['objective']}: criterion"] = ident["criterion"]
            row[f"{ident['objective']}: {ident['divergence_name']}"] = ident["divergence"]
            row[f"{ident['objective']}: error"] = ident["identity_error"]
        rows.append(row)
    return rows


def objective_identities(p_data: GaussianMixture, p_g: GaussianMixture, n: int | None = None) -> list[dict]:
    """For each objective, its optimal D for this G in closed form and the criterion there against the divergence
    the objective minimises, both by quadrature:

      least squares (a = -1, b = 1, c = 0): D* = (b p_d + a p_g)/(p_d + p_g) and twice G's criterion
          2 * 1/2 int (p_d + p_g)(D* - c)^2 = int (p_d - p_g)^2 / (p_d + p_g), the Pearson chi^2 between
          p_d + p_g and 2 p_g (Mao et al. 2017, Theorem 1: b - c = 1, b - a = 2)
      hinge: D* = sign(p_d - p_g) and D's value -int [p_d max(0, 1 - D*) + p_g max(0, 1 + D*)] = 2 TV - 2,
          TV = 1/2 int |p_d - p_g|
      Wasserstein (1-D): the 1-Lipschitz potential f*' = sign(F_g - F_d) and E_pd f* - E_pg f* = W1 = int |F_d - F_g|
    """
    pts, _, axes = _grid(p_data, p_g, n or _grid_size(p_data.dim))
    pd, pg = np.exp(p_data.log_density(pts)), np.exp(p_g.log_density(pts))
    total = pd + pg
    safe = np.where(total > 0, total, 1.0)
    a, b, c = -1.0, 1.0, 0.0
    d_ls = np.where(total > 0, (b * pd + a * pg) / safe, 0.0)
    rows = [{"objective": "least-squares", "optimum": "D* = (b p_d + a p_g)/(p_d + p_g)",
             "criterion": 2 * 0.5 * _integrate(total * (d_ls - c) ** 2, axes),
             "divergence": _integrate(np.where(total > 0, (pd - pg) ** 2 / safe, 0.0), axes),
             "divergence_name": "Pearson chi2(p_d + p_g || 2 p_g)"}]
    d_h = np.sign(pd - pg)
    rows.append({"objective": "hinge", "optimum": "D* = sign(p_d - p_g)",
                 "criterion": -_integrate(pd * np.maximum(0, 1 - d_h) + pg * np.maximum(0, 1 + d_h), axes),
                 "divergence": 2 * 0.5 * _integrate(np.abs(pd - pg), axes) - 2, "divergence_name": "2 TV - 2"})
    if p_data.dim == 1:
        x = axes[0]
        F_d, F_g = _cumulative(pd, x), _cumulative(pg, x)
        f_star = _cumulative(np.sign(F_g - F_d), x)
        rows.append({"objective": "wasserstein", "optimum": "f*' = sign(F_g - F_d), 1-Lipschitz",
                     "criterion": _integrate(f_star * (pd - pg), axes),
                     "divergence": _integrate(np.abs(F_d - F_g), axes), "divergence_name": "W1"})
    for r in rows:
        r["identity_error"] = abs(r["criterion"] - r["divergence"])
    return rows


def _cumulative(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """int_{x_0}^{x} values, by the trapezoid rule, on the grid x."""
    return np.concatenate([[0.0], np.cumsum(0.5 * (values[1:] + values[:-1]) * np.diff(x))])


def figure1(out, run_dir, moments=(0, 150, 600, 4000), seed: int = 0, progress: bool = False) -> list[dict]:
    """The paper's Figure 1 from a real 1-D run: p_data (black dotted), p_g (green solid), D (blue dashed)
    above, and the mapping x = G(z) from a uniform z-line below, at four moments of training.

    The run is trained in segments (bit-exact resume), so each panel is the state at that step."""
    from gankit.plots import plt  # the one place that chooses matplotlib's backend

    from gankit import config as config_mod
    from gankit.sampling import load_run
    from gankit.train import train

    cfg = config_mod.from_dict({"dataset": "gaussian1d", "z_dim": 1, "noise": "uniform", "hidden": 32, "layers": 2,
                                "batch_size": 256, "lr": 1e-3, "beta2": 0.999, "ema": 0.0, "seed": seed, "steps": max(moments[0], 1),
                                "log_every": 50, "sample_every": 10**9, "checkpoint_every": 10**9,
                                "out": str(run_dir)})
    data_pdf = GaussianMixture.make([2.0], [0.5])
    fig, axes = plt.subplots(1, len(moments), figsize=(4 * len(moments), 3.6), sharey=True)
    panels = []
    for i, (ax, step) in enumerate(zip(axes, moments)):
        cfg.steps = max(step, 1)
        if step > 0 or i == 0:
            train(cfg, run_dir, resume=i > 0, progress=progress)
        gan = load_run(run_dir, "cpu")
        if step == 0:  # the untrained state: reload the initial weights
            gan = _initial(gan)
        xs = torch.linspace(-1.0, 4.5, 600)[:, None]
        z = torch.linspace(-math.sqrt(3), math.sqrt(3), 20001)[:, None]
        gz = gan.sample(len(z), z).ravel().numpy()
        hist, edges = np.histogram(gz, bins=120, range=(-1.0, 4.5), density=True)
        d = gan.discriminate(xs).ravel().numpy()
        ax.plot(xs.ravel(), np.exp(data_pdf.log_density(xs.numpy())), "k:", lw=2, label="p_data")
        ax.plot(0.5 * (edges[1:] + edges[:-1]), hist, "g-", lw=1.5, label="p_g")
        ax.plot(xs.ravel(), d, "b--", lw=1.5, label="D(x)")
        # the mapping x = G(z): a z-line at the bottom, arrows to the x-line
        zline, xline = -0.35, -0.1
        zs = torch.linspace(-math.sqrt(3), math.sqrt(3), 11)[:, None]
        gzs = gan.sample(len(zs), zs).ravel().numpy()
        zpos = (zs.ravel().numpy() + math.sqrt(3)) / (2 * math.sqrt(3)) * 4.5 - 0.75
        ax.hlines([zline, xline], -1.0, 4.5, color="k", lw=0.8)
        for a, b in zip(zpos, gzs):
            ax.annotate("", xy=(b, xline), xytext=(a, zline), arrowprops=dict(arrowstyle="->", lw=0.6, color="0.3"))
        ax.text(-0.95, zline - 0.12, "z", fontsize=9), ax.text(-0.95, xline + 0.03, "x", fontsize=9)
        ax.set_xlim(-1.0, 4.5), ax.set_ylim(-0.55, 1.3)
        ax.set_title(f"({'abcd'[i] if i < 4 else i}) step {step}")
        panels.append({"step": step, "mean_abs_D_minus_half": float(np.abs(d - 0.5).mean()),
                       "g_mean": float(gz.mean()), "g_std": float(gz.std())})
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return panels


def _initial(gan):
    """The GAN as initialised (same seed), for the panel before any training."""
    from gankit.models import construct

    torch.manual_seed(gan.cfg.seed)
    G, D = construct(gan.arch)
    gan.G.load_state_dict(G.state_dict())
    gan.D.load_state_dict(D.state_dict())
    return gan


def ratio_figure(out, seed: int = 0) -> list[dict]:
    """D/(1 - D) against p_data/p_g for the 1-D standard pairs: plot of the log ratio and its mean absolute
    error on samples of both densities."""
    from gankit.plots import plt  # the one place that chooses matplotlib's backend

    pairs = [pq for pq in standard_pairs() if pq[1].dim == 1 and pq[0] != "identical 1-D"]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.4))
    rows = []
    for ax, (name, p, q) in zip(axes, pairs):
        D = train_discriminator(p, q, seed=seed)
        err = discriminator_error(D, p, q)
        lo, hi = min(p.bounds(3)[0][0], q.bounds(3)[0][0]), max(p.bounds(3)[1][0], q.bounds(3)[1][0])
        xs = torch.linspace(float(lo), float(hi), 400)[:, None]
        exact = p.log_density(xs.numpy()) - q.log_density(xs.numpy())
        est = torch.log(density_ratio(D, xs)).numpy()
        ax.plot(xs.ravel(), exact, "k:", lw=2, label="log p_data/p_g")
        ax.plot(xs.ravel(), est, "b-", lw=1.5, label="log D/(1-D)")
        ax.set_ylim(max(exact.min(), -8) - 1, min(exact.max(), 8) + 1)
        ax.set_title(f"{name}\nMAE of log ratio on samples {err['log_ratio_mae']:.3f}", fontsize=9)
        rows.append({"pair": name, **err})
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return rows


def conditional_pairs(k: int = 4, radius: float = 2.0) -> list[tuple[GaussianMixture, GaussianMixture]]:
    """A labelled toy with a fixed conditional G: for class c, p_data(x|c) = N(mu_c, 0.3^2 I) with mu_c on a
    circle, and p_g(x|c) = N(mu_c + 0.5 u_c, 0.5^2 I), shifted along a direction u_c that turns with c (so the
    optimal D depends on c at every x)."""
    pairs = []
    for c in range(k):
        a, b = 2 * math.pi * c / k, 2 * math.pi * c / k + math.pi / 2 + c
        mu = (radius * math.cos(a), radius * math.sin(a))
        pairs.append((GaussianMixture.make([mu], [0.3]),
                      GaussianMixture.make([(mu[0] + 0.5 * math.cos(b), mu[1] + 0.5 * math.sin(b))], [0.5])))
    return pairs


def train_conditional_discriminator(pairs, steps: int = 3000, batch: int = 512, lr: float = 2e-3, hidden: int = 64,
                                    layers: int = 2, seed: int = 0) -> nn.Module:
    """The inner loop of Algorithm 1 for a conditional D with G held fixed: c uniform, x ~ p_data(.|c) against
    G's x ~ p_g(.|c) with the same c; gankit's conditional MLP D (input [x, one-hot(c)])."""
    torch.manual_seed(seed)
    k = len(pairs)
    D = MLPDiscriminator(pairs[0][0].dim, hidden, layers, n_classes=k)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    objective = Logistic(joint=False)
    per = batch // k
    c = torch.arange(k).repeat_interleave(per)
    for _ in range(steps):
        x = torch.cat([p.sample(per, g) for p, _ in pairs])
        fake = torch.cat([q.sample(per, g) for _, q in pairs])
        loss, _ = objective.d_loss(D, x, fake, c)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return D.eval()


def conditional_discriminator_error(D: nn.Module, pairs, n: int = 2000, seed: int = 1) -> dict:
    """|D(x, c) - D*(x|c)|, D*(x|c) = p_data(x|c) / (p_data(x|c) + p_g(x|c)), on samples of both conditionals of
    every class; and the same D asked with the next class c + 1 instead (what ignoring c would cost)."""
    g = torch.Generator().manual_seed(seed)
    k, rows, wrong = len(pairs), [], []
    for c, (p, q) in enumerate(pairs):
        x = torch.cat([p.sample(n, g), q.sample(n, g)])
        star = optimal_discriminator(p, q, x.numpy())
        with torch.no_grad():
            d = torch.sigmoid(D(x, torch.full((len(x),), c))).double().numpy()
            d_wrong = torch.sigmoid(D(x, torch.full((len(x),), (c + 1) % k))).double().numpy()
        rows.append(np.abs(d - star))
        wrong.append(np.abs(d_wrong - star))
    err, err_wrong = np.concatenate(rows), np.concatenate(wrong)
    return {"mean": float(err.mean()), "max": float(err.max()), "per_class_mean": [float(r.mean()) for r in rows],
            "wrong_class_mean": float(err_wrong.mean()), "n_points": len(err)}
