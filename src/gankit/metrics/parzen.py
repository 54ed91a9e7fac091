"""Parzen-window log-likelihood, the protocol of the paper's Table 1.

    log p(x) = logmeanexp_j( -||x - mu_j||^2 / (2 sigma^2) ) - d log(sigma sqrt(2 pi))   [nats]

with mu_j the generator's samples. Pairwise squared distances come from one float64 matrix product
per chunk (||x||^2 - 2 x.mu + ||mu||^2), computed once and reused for every sigma; chunks keep
memory under `max_bytes`. sigma is chosen on validation data, the result reported on the test set
as mean +/- std(ddof=0)/sqrt(N).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

DEFAULT_SIGMAS = tuple(np.logspace(-1, 0, 10).tolist())
MAX_BYTES = 512 * 2**20


def _as_matrix(a, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, d], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    return t.to(device=device or t.device, dtype=torch.float64)


def _squared_norms(t: torch.Tensor, name: str) -> torch.Tensor:
    """Row norms ||t_i||^2, which also reveal any NaN or infinite entry without a separate pass."""
    sq = (t * t).sum(1)
    if not torch.isfinite(sq).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return sq


def _check_sigmas(sigmas) -> list[float]:
    s = [float(v) for v in np.atleast_1d(np.asarray(sigmas, dtype=np.float64))]
    if not s:
        raise ValueError("sigmas is empty")
    bad = [v for v in s if not (v > 0 and math.isfinite(v))]
    if bad:
        raise ValueError(f"sigma must be > 0 and finite, got {bad[0]}")
    return s


def _pairs(samples: torch.Tensor, x: torch.Tensor, max_bytes: int):
    """Yield (slice, squared distances [chunk, n_samples]) over chunks of x."""
    if samples.shape[1] != x.shape[1]:
        raise ValueError(f"dimension mismatch: samples have d={samples.shape[1]}, data has d={x.shape[1]}")
    mu_sq = _squared_norms(samples, "samples")
    x_sq = _squared_norms(x, "x")
    rows = max(1, max_bytes // (8 * 2 * len(samples)))  # distances plus one temporary
    for i in range(0, len(x), rows):
        xc = x[i:i + rows]
        d2 = torch.addmm(mu_sq[None, :], xc, samples.T, alpha=-2.0).add_(x_sq[i:i + rows, None])
        yield slice(i, i + len(xc)), d2.clamp_(min=0.0)


def _log_likelihoods(d2: torch.Tensor, sigmas: list[float], d: int, n: int) -> torch.Tensor:
    """[len(sigmas), chunk] log p from one block of squared distances."""
    out = torch.empty(len(sigmas), d2.shape[0], dtype=torch.float64, device=d2.device)
    for j, s in enumerate(sigmas):
        out[j] = torch.logsumexp(d2 * (-0.5 / s**2), 1) - math.log(n) - d * math.log(s * math.sqrt(2 * math.pi))
    return out


def log_likelihoods(samples, x, sigmas, max_bytes: int = MAX_BYTES, device=None) -> np.ndarray:
    """log p(x_i) for every sigma: float64 array [len(sigmas), N]."""
    sigmas = _check_sigmas(sigmas)
    mu = _as_matrix(samples, "samples", device)
    xs = _as_matrix(x, "x", mu.device)
    out = torch.empty(len(sigmas), len(xs), dtype=torch.float64, device=mu.device)
    for sl, d2 in _pairs(mu, xs, max_bytes):
        out[:, sl] = _log_likelihoods(d2, sigmas, mu.shape[1], len(mu))
    return out.cpu().numpy()


def log_likelihood(samples, x, sigma: float, max_bytes: int = MAX_BYTES, device=None) -> np.ndarray:
    """Per-point Parzen log-likelihood (nats, float64 [N]) of x under a Gaussian KDE on `samples`."""
    return log_likelihoods(samples, x, [sigma], max_bytes, device)[0]


def select_sigma(samples, valid, sigmas=DEFAULT_SIGMAS, max_bytes: int = MAX_BYTES, device=None):
    """(best sigma, mean validation log-likelihood per sigma): distances computed once for all sigmas."""
    sigmas = _check_sigmas(sigmas)
    scores = log_likelihoods(samples, valid, sigmas, max_bytes, device).mean(1)
    return sigmas[int(np.argmax(scores))], scores


def brute_force_log_likelihood(samples, x, sigma: float) -> np.ndarray:
    """Reference: the definition in float64 with explicit differences (slow; for tests and benchmarks)."""
    mu = np.asarray(samples, dtype=np.float64)
    xs = np.asarray(x, dtype=np.float64)
    out = np.empty(len(xs))
    for i, xi in enumerate(xs):
        a = -((xi - mu) ** 2).sum(1) / (2 * sigma**2)
        m = a.max()
        out[i] = m + math.log(np.exp(a - m).mean()) - mu.shape[1] * math.log(sigma * math.sqrt(2 * math.pi))
    return out


def parzen_protocol(samples, valid, test, sigmas=DEFAULT_SIGMAS, max_bytes: int = MAX_BYTES, device=None) -> dict:
    """The whole Table-1 protocol: choose sigma on `valid`, report mean +/- standard error on `test`."""
    t0 = time.perf_counter()
    sigma, scores = select_sigma(samples, valid, sigmas, max_bytes, device)
    ll = log_likelihood(samples, test, sigma, max_bytes, device)
    return {
        "mean": float(ll.mean()),
        "stderr": float(ll.std() / math.sqrt(len(ll))),
        "sigma": sigma,
        "sigmas": [float(s) for s in _check_sigmas(sigmas)],
        "valid_scores": [float(v) for v in scores],
        "n_samples": int(len(samples)),
        "n_valid": int(len(valid)),
        "n_test": int(len(test)),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def evaluate_run(run_dir, n_samples: int = 10_000, seed: int = 0, sigmas=None, valid_size: int = 1000,
                 device: str = "auto") -> dict:
    """Parzen protocol for a trained image run: G's samples, the first `valid_size` validation images, the test set."""
    from gankit.data import load_dataset
    from gankit.sampling import load_run

    gan = load_run(run_dir, device)
    cfg = gan.cfg
    if isinstance(sigmas, str):
        sigmas = [float(s) for s in sigmas.split(",") if s.strip()]
    sigmas = sigmas or DEFAULT_SIGMAS
    if gan.data.kind == "image":
        valid = load_dataset(cfg.dataset, "valid", cfg.data_dir, None, cfg.pixel_range).x[:valid_size]
        test = load_dataset(cfg.dataset, "test", cfg.data_dir, None, cfg.pixel_range).x
    else:  # toy: fresh draws from the known distribution
        from gankit.data.toy import sample_mixture

        g = torch.Generator().manual_seed(seed + 1)
        valid = sample_mixture(gan.data.modes, gan.data.mode_std, valid_size, g)
        test = sample_mixture(gan.data.modes, gan.data.mode_std, 10_000, g)
    torch.manual_seed(seed)
    samples = gan.sample(n_samples)
    result = parzen_protocol(samples, valid, test, sigmas, device=gan.device)
    result.update({"protocol": f"parzen{n_samples // 1000}k_{cfg.dataset}", "valid_split": "valid",
                   "test_split": "test"})
    return result
