"""Learned approximate inference after training (Goodfellow et al. 2014, section 7, item 2): an auxiliary
encoder E fitted to predict z from G(z) on fresh samples, optionally refined per image by gradient descent
on ||G(z) - x||^2 from E(x); and the memorisation test (reconstruction error of training against held-out
images, with a confidence interval).

A run trained with --encoder (BiGAN / ALI, Donahue et al. 2017; Dumoulin et al. 2017) carries an E trained jointly
with G; `encoder_for` uses it and fits nothing. A post-hoc E is saved as RUN/encoder.pt: its class name, constructor arguments and weights (loaded with
weights_only=True and rebuilt from those arguments; nothing else is ever constructed from the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gankit import checkpoint
from gankit.data import DataSpec
from gankit.errors import CheckpointError, GankitError, UsageError, first_line
from gankit.gan import GAN, eval_mode
from gankit.models.mlp import MLPEncoder
from gankit.noise import sample_noise

ENCODER_FORMAT = 1


class ConvEncoder(nn.Module):
    """E(x) for images: two stride-2 convolutions (width, 2 width) -> Linear 512 -> z_dim, LeakyReLU 0.2."""

    def __init__(self, shape: tuple[int, int, int], z_dim: int, width: int = 32):
        super().__init__()
        c, h, w = shape
        self.shape = tuple(shape)
        self.net = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), 512), nn.LeakyReLU(0.2), nn.Linear(512, z_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, *self.shape))


ENCODERS = {cls.__name__: cls for cls in (MLPEncoder, ConvEncoder)}


def encoder_arch(spec: DataSpec, z_dim: int) -> dict:
    """A small conv net for images whose sides divide by 4, an MLP otherwise (toys)."""
    if spec.kind == "image" and spec.shape[1] % 4 == 0 and spec.shape[2] % 4 == 0:
        return {"class": "ConvEncoder", "kwargs": {"shape": list(spec.shape), "z_dim": z_dim}}
    return {"class": "MLPEncoder", "kwargs": {"x_dim": spec.dim, "z_dim": z_dim}}


def build_encoder(arch: dict) -> nn.Module:
    if arch.get("class") not in ENCODERS:
        raise CheckpointError(f"unknown encoder class {arch.get('class')!r}")
    kwargs = dict(arch["kwargs"])
    if "shape" in kwargs:
        kwargs["shape"] = tuple(kwargs["shape"])
    return ENCODERS[arch["class"]](**kwargs)


def generator(gan: GAN) -> nn.Module:
    """The G that `gan.sample` uses (its weight average when there is one)."""
    return gan.G_ema if gan.G_ema is not None else gan.G


def r_squared(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination, averaged over dimensions: mean_j 1 - SSE_j / SST_j."""
    sse = ((pred - target) ** 2).sum(0)
    sst = ((target - target.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return float((1 - sse / sst).mean())


@dataclass
class Encoder:
    """A fitted E with what it was fitted on: the G checkpoint's step and the fit's budget and R^2."""

    net: nn.Module
    arch: dict
    info: dict

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        dev = next(self.net.parameters()).device
        with eval_mode(self.net):
            return torch.cat([self.net(x[i:i + batch].to(dev).float()) for i in range(0, len(x), batch)])


def fit_encoder(gan: GAN, steps: int = 1000, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                n_eval: int = 2000, log=None) -> Encoder:
    """Fit E to minimise ||E(G(z)) - z||^2 on fresh z ~ p_z every step (Adam); info holds the R^2 of E(G(z))
    against z on n_eval held-out z."""
    if steps < 1 or batch_size < 1:
        raise UsageError("encoder steps and batch size must be >= 1")
    G, cfg = generator(gan), gan.cfg
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        arch = encoder_arch(gan.spec, cfg.z_dim)
        E = build_encoder(arch).to(gan.device)
    opt = torch.optim.Adam(E.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    with eval_mode(G):
        for step in range(steps):
            z = sample_noise(batch_size, cfg.z_dim, cfg.noise, "cpu", g).to(gan.device)
            with torch.no_grad():
                x = G(z).float()
            loss = ((E(x) - z) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if log is not None and (step + 1) % max(1, steps // 10) == 0:
                log(f"encoder step {step + 1}/{steps}: ||E(G(z)) - z||^2 {loss.item():.4f}")
    enc = Encoder(E, arch, {"G_step": gan.step, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed})
    z = sample_noise(n_eval, cfg.z_dim, cfg.noise, "cpu", g)
    enc.info["r2"] = r_squared(enc(gan.sample(n_eval, z.to(gan.device))).cpu(), z)
    return enc


def save_encoder(enc: Encoder, path: str | Path) -> None:
    checkpoint.save({"format": ENCODER_FORMAT, "arch": enc.arch, "state": enc.net.state_dict(), "info": enc.info},
                    path)


def load_encoder(path: str | Path, device: torch.device | str = "cpu") -> Encoder:
    """An encoder file written by save_encoder: rebuilt from its recorded class and arguments."""
    state = checkpoint.load(path, device)
    if not isinstance(state, dict) or state.get("format") != ENCODER_FORMAT:
        raise CheckpointError(f"{path} is not a gankit encoder file")
    try:
        net = build_encoder(state["arch"])
        net.load_state_dict(state["state"])
    except GankitError:
        raise
    except Exception as e:  # noqa: BLE001 - everything above interprets the file's content
        raise CheckpointError(f"encoder {path} does not match its recorded architecture: {first_line(e)}") from None
    return Encoder(net.to(device), state["arch"], dict(state.get("info", {})))


def joint_encoder(gan: GAN, n_eval: int = 2000, seed: int = 0) -> Encoder:
    """The E a run trained jointly with G (--encoder), with the R^2 of E(G(z)) against z on n_eval seeded z."""
    if gan.E is None:
        raise UsageError(f"run on '{gan.cfg.dataset}' has no jointly trained encoder (trained without --encoder)")
    enc = Encoder(gan.E, gan.arch["E"], {"jointly_trained": True, "G_step": gan.step})
    z = sample_noise(n_eval, gan.cfg.z_dim, gan.cfg.noise, "cpu", torch.Generator().manual_seed(seed))
    enc.info["r2"] = r_squared(enc(gan.sample(n_eval, z.to(gan.device))).cpu(), z)
    return enc


def joint_summary(gan: GAN, n: int = 2000, seed: int = 0) -> dict:
    """A BiGAN's inference at the end of training: R^2 of E(G(z)) against z and, on n training samples, the mean
    distance ||x - G(E(x))|| (toys; images: the mean squared error per pixel in [0, 1] units)."""
    enc = joint_encoder(gan, n, seed)
    x = gan.data.x[torch.randperm(len(gan.data.x), generator=torch.Generator().manual_seed(seed))[:n]]
    _, recon, err = encode(gan, enc, x)
    out = {"r2": round(enc.info["r2"], 4)}
    if gan.spec.kind == "image":
        out["reconstruction_mse"] = round(float(err.mean()), 5)
    else:
        out["reconstruction_distance"] = round(float((recon - x.float()).norm(dim=1).mean()), 4)
    return out


def encoder_for(gan: GAN, run_dir: str | Path, path: str | Path | None = None, retrain: bool = False,
                log=print, **fit) -> Encoder:
    """The encoder of a run: an explicit `path` (which must exist), else the E trained jointly with G when the run
    has one, else RUN/encoder.pt when it was fitted to this checkpoint of G, else a new one fitted now and saved
    there (said through `log`)."""
    if gan.E is not None and path is None:
        if retrain:
            raise UsageError(f"{run_dir} has an encoder trained jointly with G (--encoder); --retrain fits post-hoc "
                             f"encoders (give --encoder FILE to use one)")
        enc = joint_encoder(gan)
        log(f"gankit: using the jointly trained encoder (BiGAN: E trained with G, nothing fitted now); R^2 of "
            f"E(G(z)) against z = {enc.info['r2']:.3f}")
        return enc
    if path is not None:
        if not Path(path).is_file():
            raise UsageError(f"--encoder {path}: no such file (omit --encoder to fit one into the run directory)")
        enc = load_encoder(path, gan.device)
        _check_fits(enc, gan, path)
        return enc
    default = Path(run_dir) / "encoder.pt"
    if default.is_file() and not retrain:
        enc = load_encoder(default, gan.device)
        if enc.info.get("G_step") == gan.step:
            _check_fits(enc, gan, default)
            return enc
        log(f"gankit: {default} was fitted to step {enc.info.get('G_step')} of G, the run is at step {gan.step}; "
            f"refitting")
    else:
        log(f"gankit: no encoder in {run_dir}; fitting one to predict z from G(z) (saved to {default})")
    enc = fit_encoder(gan, log=log, **fit)
    save_encoder(enc, default)
    log(f"gankit: encoder fitted: R^2 of E(G(z)) against z = {enc.info['r2']:.3f}")
    return enc


def _check_fits(enc: Encoder, gan: GAN, path) -> None:
    kw = enc.arch["kwargs"]
    x_dim = kw["x_dim"] if "x_dim" in kw else math.prod(kw["shape"])
    if kw["z_dim"] != gan.cfg.z_dim or x_dim != gan.spec.dim:
        raise UsageError(f"encoder {path} maps {x_dim} values to {kw['z_dim']} latents; this run has data of "
                         f"{gan.spec.dim} values and z_dim {gan.cfg.z_dim}")


def refine(gan: GAN, x: torch.Tensor, z0: torch.Tensor, steps: int = 200, lr: float = 0.05,
           weights: torch.Tensor | None = None) -> torch.Tensor:
    """z minimising ||w * (G(z) - x)||^2 per sample by Adam from z0 (w: optional per-value weights, 1 by
    default); G in eval mode, so samples do not interact. Uniform p_z: z stays in its box."""
    G = generator(gan)
    x = x.to(gan.device).float()
    z = z0.detach().clone().to(gan.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    box = math.sqrt(3.0) if gan.cfg.noise == "uniform" else None
    with eval_mode(G):
        for _ in range(steps):
            r = G(z).float() - x
            if weights is not None:
                r = r * weights
            loss = (r ** 2).sum()
            (grad,) = torch.autograd.grad(loss, z)
            z.grad = grad
            opt.step()
            if box is not None:
                with torch.no_grad():
                    z.clamp_(-box, box)
    return z.detach()


def pixel_errors(gan: GAN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample; for images in [0, 1] pixel units whatever the run's pixel range."""
    if gan.spec.kind == "image":
        x, y = gan.spec.images(x), gan.spec.images(y)
    return ((x.float() - y.float()) ** 2).flatten(1).mean(1)


@torch.no_grad()
def encode(gan: GAN, enc: Encoder, x: torch.Tensor, refine_steps: int = 0, lr: float = 0.05, batch: int = 512):
    """(z, G(z), per-sample error): z = E(x), refined `refine_steps` Adam steps on ||G(z) - x||^2."""
    zs = []
    for i in range(0, len(x), batch):
        xi = x[i:i + batch].to(gan.device)
        z = enc(xi)
        if refine_steps > 0:
            with torch.enable_grad():
                z = refine(gan, xi, z, refine_steps, lr)
        zs.append(z)
    z = torch.cat(zs)
    recon = gan.sample(len(z), z)
    return z.cpu(), recon.cpu(), pixel_errors(gan, recon.cpu(), x.cpu().float())


def difference_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95, n_boot: int = 2000,
                        seed: int = 0) -> dict:
    """mean(a) - mean(b) with a Welch t-interval and a percentile bootstrap interval (independent samples)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a.mean() - b.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else float(len(a) + len(b) - 2)
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    rng = np.random.default_rng(seed)
    boot = (a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1))
    q = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
    return {"difference": float(d), "t_interval": [d - t * se, d + t * se], "bootstrap_interval": [float(q[0]), float(q[1])],
            "level": level}


def memorisation(gan: GAN, enc: Encoder, n: int = 500, refine_steps: int = 0, seed: int = 0,
                 test: torch.Tensor | None = None) -> dict:
    """Reconstruction error of n random training images against n random held-out test images: a model that
    memorises reconstructs its training images better (difference train - test < 0)."""
    if gan.spec.kind != "image":
        raise UsageError("the memorisation test compares training and test images; this run is a toy run")
    from gankit.data import load_dataset

    train = gan.data.x
    if test is None:
        c = gan.cfg
        test = load_dataset(c.dataset, "test", c.data_dir, None, c.pixel_range, image_size=c.image_size).x
    g = torch.Generator().manual_seed(seed)
    n = min(n, len(train), len(test))
    a = train[torch.randperm(len(train), generator=g)[:n]]
    b = test[torch.randperm(len(test), generator=g)[:n]]
    ea = encode(gan, enc, a, refine_steps)[2].numpy()
    eb = encode(gan, enc, b, refine_steps)[2].numpy()
    return {"n": n, "refine_steps": refine_steps, "train_error": float(ea.mean()), "test_error": float(eb.mean()),
            **difference_interval(ea, eb, seed=seed)}


def read_images(path: str | Path, spec: DataSpec) -> torch.Tensor:
    """Images (or toy points) from a .npy file or a folder of PNGs, as flat float samples in the run's value range.
    A uint8 array (and every PNG) holds 0..255 pixels; a float array is taken as in the run's range (what
    `gankit sample --out X.npy` writes). Shapes accepted: [N, d], [N, *shape], and [N, H, W] for one channel."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".png")
        if not files:
            raise UsageError(f"--images {p}: the folder holds no .png files")
        if spec.kind != "image":
            raise UsageError(f"--images {p}: PNG folders are for image runs; give a toy run a .npy of points")
        arr = np.stack([_png(f, spec) for f in files])
    elif p.suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any failure to parse the file is the user's input
            raise UsageError(f"--images {p}: cannot read it as a .npy array ({first_line(e)})") from None
    else:
        raise UsageError(f"--images {p}: expected a .npy file or a folder of PNGs")
    if arr.dtype == np.uint8:
        lo, hi = spec.value_range or (0.0, 1.0)
        arr = arr.astype(np.float32) / 255.0 * (hi - lo) + lo
    elif not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise UsageError(f"--images {p}: expected numbers, got dtype {arr.dtype}")
    shapes = {(spec.dim,), tuple(spec.shape)} | ({tuple(spec.shape[1:])} if spec.shape[0] == 1 else set())
    if arr.ndim < 2 or tuple(arr.shape[1:]) not in shapes or len(arr) == 0:
        raise UsageError(f"--images {p}: shape {tuple(arr.shape)} does not fit this run's samples "
                         f"(expected [N, {spec.dim}] or [N, {', '.join(map(str, spec.shape))}])")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).reshape(len(arr), -1)
    if not torch.isfinite(x).all():
        raise UsageError(f"--images {p}: holds NaN or infinite values")
    return x


def _png(f: Path, spec: DataSpec) -> np.ndarray:
    from PIL import Image

    c, h, w = spec.shape
    try:
        img = Image.open(f).convert("L" if c == 1 else "RGB")
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"--images {f}: cannot read it as an image ({first_line(e)})") from None
    if img.size != (w, h):
        raise UsageError(f"--images {f}: {img.width}x{img.height} pixels; this run's images are {w}x{h}")
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if c == 1 else a.transpose(2, 0, 1)


def split_images(gan: GAN, split: str, n: int, seed: int = 0) -> torch.Tensor:
    """n random images of a split of the run's dataset (e.g. the test split)."""
    from gankit.data import load_dataset

    c = gan.cfg
    x = gan.data.x if split == c.split else load_dataset(c.dataset, split, c.data_dir, None, c.pixel_range,
                                                          image_size=c.image_size).x
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(len(x), generator=g)[:min(n, len(x))]]


def figure_encode(gan: GAN, x: torch.Tensor, recon: torch.Tensor, out: str | Path, n: int = 32) -> None:
    """Images beside G(E(x)) (pairs of columns), or for toys the points with lines to their reconstructions."""
    out = Path(out)
    if gan.spec.kind == "image":
        from gankit.images import save_grid

        n = min(n, len(x))
        pairs = torch.stack([x[:n].cpu(), recon[:n].cpu()], 1).reshape(2 * n, -1)
        save_grid(gan.spec.images(pairs), out, nrow=2 * min(4, n), scale=3)
        return
    import matplotlib.pyplot as plt

    a, b = x.cpu().numpy(), recon.cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    if a.shape[1] == 1:
        a, b = np.c_[a, np.zeros(len(a))], np.c_[b, np.zeros(len(b))]
    for p, q in zip(a[:500], b[:500]):
        ax.plot([p[0], q[0]], [p[1], q[1]], color="0.7", lw=0.5)
    ax.scatter(a[:, 0], a[:, 1], s=4, label="x")
    ax.scatter(b[:, 0], b[:, 1], s=4, label="G(E(x))")
    ax.legend(), ax.set_title(f"{gan.cfg.dataset}: x and G(E(x))"), ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
