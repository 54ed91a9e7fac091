"""Pictures of a run: loss curves, toy samples over D's landscape, and image grids."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gankit.data.toy import mixture_log_density  # noqa: E402
from gankit.images import save_grid  # noqa: E402

DFn = Callable[[torch.Tensor], np.ndarray]  # x [N, d] -> D(x) in [0, 1]


def plot_losses(rows: list[dict], path: str | Path) -> None:
    """The logged losses and the mean discriminator outputs over training steps (whichever the objective logs)."""
    if not rows:
        return
    steps = [r["step"] for r in rows]
    tracked = "jsd" in rows[0]
    # (an ensemble's members, `valid_x:memberE`, go thin on the axis of their mean, `valid_x`)
    monitored = sorted({k for r in rows for k in r if k.startswith("valid_") and ":member" not in k})
    n = 2 + tracked + len(monitored)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.5))
    a, b = axes[0], axes[1]
    for ax, key in zip(axes[2 + tracked:], monitored):  # the validation monitor, at the epochs it ran
        at = [r for r in rows if key in r]
        members = sorted({k for r in at for k in r if k.startswith(f"{key}:member")})
        for each in members:
            ax.plot([r["epoch"] for r in at], [r.get(each, math.nan) for r in at], lw=0.7, alpha=0.5, color="gray")
        ax.plot([r["epoch"] for r in at], [r[key] for r in at], marker=".")
        ax.set_xlabel("epoch"), ax.set_title(f"{key} (held-out{', mean of the grey members' if members else ''})")
    if tracked:  # the toys' divergences to the known p_data
        axes[2].plot(steps, [r.get("jsd", math.nan) for r in rows], label="JSD (nats, smoothed)")
        axes[2].plot(steps, [r.get("w1", math.nan) for r in rows], label="W1 (samples)")
        axes[2].axhline(math.log(2), color="gray", ls=":", lw=1)
        axes[2].set_xlabel("step"), axes[2].legend(), axes[2].set_title("divergence to p_data")
    for key, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        if key in rows[0]:
            a.plot(steps, [r.get(key, math.nan) for r in rows], label=label)
    a.set_xlabel("step"), a.legend(), a.set_title("losses")
    probability = "d_real" in rows[0]  # the logistic game logs D as a probability; the others, raw outputs
    pairs = (("d_real", "mean D(x)"), ("d_fake", "mean D(G(z))")) if probability else (
        ("critic_real", "mean D(x), raw"), ("critic_fake", "mean D(G(z)), raw"))
    for key, label in pairs:
        if key in rows[0]:
            b.plot(steps, [r.get(key, math.nan) for r in rows], label=label)
    if probability:
        b.axhline(0.5, color="gray", ls=":", lw=1)
        b.set_ylim(0, 1)
    b.set_xlabel("step"), b.legend(), b.set_title("discriminator outputs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_toy2d(samples: np.ndarray, modes: np.ndarray, d_fn: DFn | None, path: str | Path, title: str = "") -> None:
    """Generated samples (dots) over the data modes (crosses) with D(x) as a filled contour."""
    lim = float(np.abs(modes).max()) * 1.5 + 0.5
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if d_fn is not None:
        g = np.linspace(-lim, lim, 200, dtype=np.float32)
        xx, yy = np.meshgrid(g, g)
        dz = d_fn(torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1))).reshape(xx.shape)
        cs = ax.contourf(xx, yy, dz, levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.6)
        fig.colorbar(cs, ax=ax, label="D(x)")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="k", alpha=0.4, label="G(z)")
    ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="lime", s=40, label="data modes")
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_toy1d(samples: np.ndarray, modes: np.ndarray, std: float, d_fn: DFn | None, path: str | Path,
               title: str = "") -> None:
    """The paper's Figure 1 style: p_data (black dotted), p_g (green solid), D (blue dashed)."""
    s = samples.ravel()
    lo = min(float(modes.min()) - 4 * std, float(np.percentile(s, 0.5)))
    hi = max(float(modes.max()) + 4 * std, float(np.percentile(s, 99.5)))
    xs = np.linspace(lo, hi, 400, dtype=np.float32)
    p_data = torch.exp(mixture_log_density(torch.from_numpy(xs)[:, None], torch.as_tensor(modes), std)).numpy()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(xs, p_data, "k:", lw=2, label="p_data")
    hist, edges = np.histogram(s, bins=60, range=(lo, hi), density=True)
    ax.plot(0.5 * (edges[1:] + edges[:-1]), hist, "g-", lw=1.5, label="p_g")
    if d_fn is not None:
        ax2 = ax.twinx()
        ax2.plot(xs, d_fn(torch.from_numpy(xs)[:, None]), "b--", lw=1.5, label="D(x)")
        ax2.set_ylim(0, 1), ax2.set_ylabel("D(x)")
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("x"), ax.set_ylabel("density"), ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_samples(samples: torch.Tensor, data, d_fn: DFn | None, path: str | Path, title: str = "") -> None:
    """The right picture for the dataset's kind: a grid for images, a scatter/density plot for toys."""
    if data.kind == "image":
        save_grid(data.images(samples), path, nrow=math.ceil(math.sqrt(len(samples))))
    elif data.dim == 1:
        plot_toy1d(samples.cpu().numpy(), data.modes.numpy(), data.mode_std, d_fn, path, title)
    else:
        plot_toy2d(samples.cpu().numpy(), data.modes.numpy(), d_fn, path, title)


def conditional_layout(n_classes: int, per_class: int) -> torch.Tensor:
    """The labels of a class-per-row picture: row r holds `per_class` samples of class r."""
    return torch.arange(n_classes).repeat_interleave(per_class)


def plot_conditional(samples: torch.Tensor, c: torch.Tensor, data, path: str | Path, title: str = "") -> None:
    """Samples of a conditional model: images as a grid with one row per class (laid out by
    `conditional_layout`), toys as a scatter coloured by class over the modes, each mode labelled."""
    c = c.cpu()
    if data.kind == "image":
        per_class = int((c == c[0]).sum())
        save_grid(data.images(samples), path, nrow=per_class)
        return
    x, modes = samples.cpu().numpy(), data.modes.numpy()  # 2-D: a 1-D toy has a single class
    lim = float(np.abs(modes).max()) * 1.5 + 0.5
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(x[:, 0], x[:, 1], s=2, c=c.numpy(), cmap="tab20" if len(modes) > 10 else "tab10", alpha=0.6)
    for i, m in enumerate(modes):
        ax.annotate(str(i), m, xytext=(7, 7), textcoords="offset points", fontsize=7, ha="center", va="center")
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_title(f"{title + ': ' if title else ''}G(z, c) coloured by c, mode c numbered", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_vanishing(rows: list[dict], path: str | Path, disjoint: list[dict] | None = None) -> None:
    """Generator gradient norm and mean D(G(z)) over G steps, for G trained with each loss; with `disjoint`,
    the gradient reaching G from each loss as D nears its optimum on disjoint supports."""
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3 if disjoint else 2, figsize=(15 if disjoint else 10, 3.6))
    a, b = axes[0], axes[1]
    if disjoint:
        c = axes[2]
        x = [max(r["d_steps"], 1) for r in disjoint]
        for key, style in (("|grad| minimax", "r-o"), ("|grad| nonsaturating", "b-o"), ("|grad| wasserstein", "g-o")):
            c.loglog(x, [max(r[key], 1e-12) for r in disjoint], style, label=key.split()[1])
        c.set_xlabel("D steps with G fixed (0 plotted at 1)"), c.set_ylabel("|dL_G / d theta|"), c.legend()
        c.set_title("disjoint supports: D near its optimum")
    for loss, style in (("minimax", "r-"), ("nonsaturating", "b-")):
        a.semilogy(steps, [r[f"{loss}: |grad| {loss}"] for r in rows], style, label=f"{loss} loss")
        b.plot(steps, [r[f"{loss}: D(G(z))"] for r in rows], style, label=f"G trained with {loss}")
    a.set_xlabel("generator step (SGD)"), a.set_ylabel("||dL_G / d theta_G||"), a.legend()
    a.set_title("gradient reaching G when D rejects its samples")
    b.set_xlabel("generator step (SGD)"), b.set_ylabel("mean D(G(z))"), b.set_ylim(0, 1), b.legend()
    b.set_title("progress of G")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_helvetica(rows: list[dict], before: np.ndarray, after: np.ndarray, modes: np.ndarray | None,
                   path: str | Path) -> None:
    """Mode coverage / diversity while G trains against a frozen D, with samples before and after."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    steps = [r["step"] for r in rows]
    key = "modes_covered" if "modes_covered" in rows[0] else "diversity"
    axes[0].plot(steps, [r[key] for r in rows], "k.-")
    axes[0].set_xlabel("generator steps with D frozen"), axes[0].set_ylabel(key.replace("_", " "))
    axes[0].set_title("the Helvetica scenario")
    for ax, x, title in ((axes[1], before, "before"), (axes[2], after, "after")):
        ax.scatter(x[:, 0], x[:, 1], s=2, c="k", alpha=0.4)
        if modes is not None:
            ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="lime", s=40)
        ax.set_aspect("equal"), ax.set_title(f"samples {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rejection(plain: np.ndarray, kept: np.ndarray, modes: np.ndarray, path: str | Path, stats: dict) -> None:
    """Samples of G and the ones discriminator rejection sampling keeps."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, x, title in ((axes[0], plain, "G(z)"), (axes[1], kept, "after rejection sampling")):
        ax.scatter(x[:, 0], x[:, 1], s=2, c="k", alpha=0.4)
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="lime", s=40)
        s = stats[title]
        ax.set_title(f"{title}\n{s['modes_covered']}/{s['n_modes']} modes, {s['high_quality_fraction']:.1%} high quality")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_density_ratio(xs: np.ndarray, estimated: np.ndarray, exact: np.ndarray, path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(xs, exact, "k:", lw=2, label="log p_data/p_g (exact)")
    ax.plot(xs, estimated, "b-", lw=1.5, label="logit D(x) = log D/(1-D)")
    ax.set_xlabel("x"), ax.set_ylabel("log density ratio"), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
