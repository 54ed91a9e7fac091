"""The maximum-likelihood contrast to Table 1: a variational autoencoder (Kingma & Welling 2014) with the paper's
MLP sizes, trained by the ELBO, evaluated by the same Parzen protocol as the GAN and by the importance-weighted
bound of Burda et al. (2016), a true lower bound on log p(x) that no GAN has.

Both numbers must be densities on the same space: the decoder p(x|z) = N(x; mu(z), diag sigma^2) is a density
on R^784, trained on uniformly dequantised pixels x~ = (255 x + u) / 256 so that its variance cannot collapse
onto the 256 grey levels; the bound is evaluated at dequantised test images (fixed noise), the Parzen estimate
at the test images as Table 1 does (the two point sets differ by less than 1/256 per pixel).

A VAE is not a game, so it has its own short loop here rather than a model name the GAN loop would special-case.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from gankit import checkpoint
from gankit.errors import CheckpointError, UsageError, first_line

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    dataset: str = "mnist"
    data_dir: str | None = None
    z_dim: int = 100
    hidden: int = 1200
    epochs: float = 20.0
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, d_out))


class VAE(nn.Module):
    """q(z|x) = N(mu_q(x), diag exp(logvar_q(x))): x -> 1200 -> 1200 -> 2 z_dim; p(z) = N(0, I);
    p(x|z) = N(sigmoid(f(z)), diag exp(2 log_sigma)): z -> 1200 -> 1200 -> 784 (the paper's G), one learned
    standard deviation per pixel (floored at 1e-3)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 100, hidden: int = 1200):
        super().__init__()
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.encoder = _mlp(x_dim, hidden, 2 * z_dim)
        self.decoder = _mlp(z_dim, hidden, x_dim)
        self.log_sigma = nn.Parameter(torch.full((x_dim,), math.log(0.1)))

    def q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, -1)
        return mu, logvar.clamp(-20, 10)

    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp().clamp_min(1e-3)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; mu(z), sigma^2), summed over pixels; x [..., d], z [..., z_dim] broadcast together."""
        mean, s = torch.sigmoid(self.decoder(z)), self.sigma()
        return (-0.5 * ((x - mean) / s) ** 2 - s.log() - 0.5 * LOG_2PI).sum(-1)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image ELBO: E_q[log p(x|z)] (one reparameterised sample) - KL(q(z|x) || N(0, I)) (closed form)."""
        mu, logvar = self.q(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
        return self.log_px_given_z(x, z) - kl

    @torch.no_grad()
    def iwae_bound(self, x: torch.Tensor, k: int = 1000, chunk: int = 250) -> torch.Tensor:
        """log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z|x): a lower bound on log p(x) for each image,
        tightening as k grows (Burda et al. 2016). Per image, in float64 at the log-sum-exp."""
        mu, logvar = self.q(x)
        std = (0.5 * logvar).exp()
        terms = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = torch.randn(n, *mu.shape, device=x.device)
            z = mu + std * eps
            log_q = (-0.5 * eps**2 - 0.5 * logvar - 0.5 * LOG_2PI).sum(-1)
            log_prior = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
            terms.append((self.log_px_given_z(x, z) + log_prior - log_q).double())
        w = torch.cat(terms)  # [k, N]
        return torch.logsumexp(w, 0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z), z ~ N(0, I): the model's samples, decoder noise included."""
        z = torch.randn(n, self.z_dim, generator=generator).to(self.log_sigma.device)
        noise = torch.randn(n, self.x_dim, generator=generator).to(z.device)
        return torch.sigmoid(self.decoder(z)) + self.sigma() * noise


def dequantise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(255 x + u) / 256, u ~ U[0, 1): 8-bit pixels in [0, 1] spread uniformly over their bins."""
    return (torch.round(x * 255) + torch.rand(x.shape, generator=generator)) / 256


def train(cfg: VAEConfig, out: str | Path, progress: bool = True, x: torch.Tensor | None = None) -> VAE:
    """Fit a VAE on the dataset's train split (images 0-49,999 for MNIST; or on `x`) by Adam on the ELBO; writes
    out/vae.pt (weights and config) and out/metrics.jsonl (mean ELBO per epoch, nats per image)."""
    from gankit.data import load_dataset

    out = Path(out)
    if (out / "vae.pt").exists():
        raise UsageError(f"{out} already holds a VAE; choose another --out")
    x = (load_dataset(cfg.dataset, "train", cfg.data_dir).x if x is None else x).flatten(1)
    torch.manual_seed(cfg.seed)
    model = VAE(x.shape[1], cfg.z_dim, cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    steps_per_epoch = max(1, len(x) // cfg.batch_size)
    total = max(1, round(cfg.epochs * steps_per_epoch))
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, disable=not progress, desc="vae")
    t0, step, rows = time.perf_counter(), 0, []
    while step < total:
        perm = torch.randperm(len(x), generator=g)
        acc = 0.0
        n = 0
        for i in range(steps_per_epoch):
            batch = dequantise(x[perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]], g)
            loss = -model.elbo(batch).mean()  # maximise the ELBO
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc, n, step = acc - loss.item(), n + 1, step + 1
            bar.update(1)
            if step == total:
                break
        rows.append({"step": step, "epoch": step / steps_per_epoch, "elbo": acc / n,
                     "seconds": round(time.perf_counter() - t0, 3)})
        bar.set_postfix(elbo=f"{acc / n:.1f}")
    bar.close()
    checkpoint.save({"config": asdict(cfg), "arch": {"x_dim": model.x_dim, "z_dim": model.z_dim,
                                                     "hidden": model.hidden},
                     "state": model.state_dict()}, out / "vae.pt")
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model


def load(path: str | Path) -> tuple[VAE, VAEConfig]:
    """A trained VAE from its directory (or vae.pt), loaded without running code from the file."""
    path = Path(path)
    path = path / "vae.pt" if path.is_dir() else path
    state = checkpoint.load(path)
    try:
        model = VAE(**state["arch"])
        model.load_state_dict(state["state"])
        cfg = VAEConfig(**state["config"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a gankit VAE: {first_line(e)}") from None
    return model.eval(), cfg


def table1_rows(model: VAE, cfg: VAEConfig, n_samples: int = 10_000, n_bound: int = 1000, k: int = 1000,
                seed: int = 0) -> dict:
    """The VAE's Table 1 entries: the Parzen estimate from n_samples of its samples (the paper's protocol) and the
    IWAE bound (k importance samples) on the first n_bound test images, dequantised with fixed noise."""
    from gankit.data import load_dataset
    from gankit.metrics.parzen import DEFAULT_SIGMAS, parzen_protocol

    valid = load_dataset(cfg.dataset, "valid", cfg.data_dir).x.flatten(1)[:1000]
    test = load_dataset(cfg.dataset, "test", cfg.data_dir).x.flatten(1)
    g = torch.Generator().manual_seed(seed)
    parzen = parzen_protocol(model.sample(n_samples, g), valid, test, DEFAULT_SIGMAS)
    torch.manual_seed(seed)
    x = dequantise(test[:n_bound], torch.Generator().manual_seed(seed + 1))
    bound = torch.cat([model.iwae_bound(x[i:i + 100], k) for i in range(0, len(x), 100)])
    return {"parzen": parzen, "iwae": {"mean": float(bound.mean()), "stderr": float(bound.std() / math.sqrt(len(bound))),
                                       "k": k, "n": len(bound)}}
