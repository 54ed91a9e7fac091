"""Parzen-window log-likelihood, the protocol of the paper's Table 1.

    log p(x) = logmeanexp_j( -||x - mu_j||^2 / (2 sigma^2) ) - d log(sigma sqrt(2 pi))   [nats]

with mu_j the generator's samples. Pairwise squared distances come from matrix products, computed
once per chunk and reused for every sigma; chunks keep memory under `max_bytes`. Results equal a
float64 brute-force sum (see `_Distances` for how a float32 product is made exact). sigma is chosen on validation data, the result reported on the test set
as mean +/- std(ddof=0)/sqrt(N).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

DEFAULT_SIGMAS = tuple(np.logspace(-1, 0, 10).tolist())
MAX_BYTES = 512 * 2**20


def _as_matrix(a, name: str, device: torch.device | None = None, dtype=torch.float64) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, d], got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if not t.is_floating_point():
        t = t.double()
    return t.to(device=device or t.device, dtype=dtype or t.dtype)


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


TAIL_NATS = 40.0  # terms this far below the largest weigh < n e^-40 together: beneath float64's resolution
REFINE_LIMIT = 0.05  # refine at most this fraction of the pairs; beyond it float64 products are cheaper


class _Distances:
    """Squared distances from chunks of x to the samples mu.

    With one sigma on the CPU, a float32 product on centred data gives every distance to within a
    proven bound (K u |x| |mu|); the distances that matter for sigma (within TAIL_NATS of the nearest,
    plus twice the bound) are then recomputed exactly in float64 as sum((x - mu)^2), so the result is
    the float64 one. Otherwise (several sigmas, a GPU, or too many pairs to refine) one float64
    product ||x||^2 - 2 x.mu + ||mu||^2 per chunk serves every sigma."""

    def __init__(self, samples: torch.Tensor, max_bytes: int):
        self.mu = samples  # any float dtype: widening to float64 is exact, so it happens where needed
        self.rows = max(1, max_bytes // (8 * 2 * len(samples)))  # distances plus one temporary
        self.center = torch.mean(samples, 0, dtype=torch.float64)
        self._mu32 = self._mu64 = None

    def exact(self, xc: torch.Tensor, x_sq: torch.Tensor) -> torch.Tensor:
        if self._mu64 is None:
            self._mu64 = self.mu.double()
            self._mu_sq = _squared_norms(self._mu64, "samples")
        return torch.addmm(self._mu_sq[None, :], xc, self._mu64.T, alpha=-2.0).add_(x_sq[:, None]).clamp_(min=0.0)

    def nearest(self, xc: torch.Tensor, sigma: float):
        """(rows, cols, exact squared distances) of every pair within TAIL_NATS of its row's nearest sample at
        this sigma, or None when more than REFINE_LIMIT of the pairs qualify. The pairs left out weigh less
        than n e^-40 relative to the nearest, below the resolution of a float64 sum."""
        if self._mu32 is None:
            mu_c = self.mu - self.center
            self._mu32, self._mu_c_sq = mu_c.float(), _squared_norms(mu_c, "samples").float()
            self._mu_c_max = float(self._mu_c_sq.max().sqrt())
        x_c = xc - self.center
        x_c_sq = (x_c * x_c).sum(1)
        d2 = (x_c.float() @ self._mu32.T).mul_(-2.0).add_(self._mu_c_sq[None, :]).add_(x_c_sq.float()[:, None])
        # float32 products and sums (inputs rounded too) err by at most (d + 4) u (|x_c| + |mu_c|)^2, u = 2^-24
        bound = (xc.shape[1] + 4) * 2.0**-24 * (x_c_sq.sqrt() + self._mu_c_max) ** 2
        threshold = d2.min(1).values.double() + 2 * sigma**2 * TAIL_NATS + 2 * bound
        rows, cols = (d2 <= threshold.float()[:, None]).nonzero(as_tuple=True)
        if len(rows) > REFINE_LIMIT * d2.numel():
            return None
        exact = torch.cat([((xc[rows[i:i + 8192]] - self.mu[cols[i:i + 8192]].double()) ** 2).sum(1)
                           for i in range(0, len(rows), 8192)])
        return rows, cols, exact

    def chunks(self, x: torch.Tensor, sigma: float | None = None):
        """Yield (slice, dense [chunk, n] squared distances or sparse (rows, cols, values)) over chunks of x."""
        if self.mu.shape[1] != x.shape[1]:
            raise ValueError(f"dimension mismatch: samples have d={self.mu.shape[1]}, data has d={x.shape[1]}")
        x_sq = _squared_norms(x, "x")
        for i in range(0, len(x), self.rows):
            xc = x[i:i + self.rows]
            near = self.nearest(xc, sigma) if sigma is not None and xc.device.type == "cpu" else None
            yield slice(i, i + len(xc)), near if near is not None else self.exact(xc, x_sq[i:i + self.rows])


def _sparse_log_likelihood(near, n_rows: int, sigma: float, d: int, n: int) -> torch.Tensor:
    """log p per row from the (rows, cols, squared distances) that carry its mass."""
    rows, _, d2 = near
    a = d2 * (-0.5 / sigma**2)
    top = torch.full((n_rows,), -math.inf, dtype=torch.float64).scatter_reduce_(0, rows, a, "amax")
    total = torch.zeros(n_rows, dtype=torch.float64).index_add_(0, rows, torch.exp(a - top[rows]))
    return top + torch.log(total) - math.log(n) - d * math.log(sigma * math.sqrt(2 * math.pi))


def _log_likelihoods(d2: torch.Tensor, sigmas: list[float], d: int, n: int) -> torch.Tensor:
    """[len(sigmas), chunk] log p from one block of squared distances."""
    out = torch.empty(len(sigmas), d2.shape[0], dtype=torch.float64, device=d2.device)
    for j, s in enumerate(sigmas):
        out[j] = torch.logsumexp(d2 * (-0.5 / s**2), 1) - math.log(n) - d * math.log(s * math.sqrt(2 * math.pi))
    return out


def log_likelihoods(samples, x, sigmas, max_bytes: int = MAX_BYTES, device=None) -> np.ndarray:
    """log p(x_i) for every sigma: float64 array [len(sigmas), N]."""
    sigmas = _check_sigmas(sigmas)
    mu = _as_matrix(samples, "samples", device, dtype=None)
    xs = _as_matrix(x, "x", mu.device)
    out = torch.empty(len(sigmas), len(xs), dtype=torch.float64, device=mu.device)
    distances = _Distances(mu, max_bytes)
    for sl, d2 in distances.chunks(xs, sigmas[0] if len(sigmas) == 1 else None):
        if isinstance(d2, tuple):
            out[0, sl] = _sparse_log_likelihood(d2, sl.stop - sl.start, sigmas[0], mu.shape[1], len(mu))
        else:
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
                 device: str = "auto", member: int | None = None) -> dict:
    """Parzen protocol for a trained image run: G's samples, the first `valid_size` validation images, the test set
    (`member`: which GAN of a seed ensemble)."""
    from gankit.data import load_dataset
    from gankit.sampling import load_run

    gan = load_run(run_dir, device, member=member)
    cfg = gan.cfg
    if isinstance(sigmas, str):
        sigmas = [float(s) for s in sigmas.split(",") if s.strip()]
    sigmas = sigmas or DEFAULT_SIGMAS
    if gan.spec.kind == "image":
        valid = load_dataset(cfg.dataset, "valid", cfg.data_dir, None, cfg.pixel_range).x[:valid_size]
        test = load_dataset(cfg.dataset, "test", cfg.data_dir, None, cfg.pixel_range).x
    else:  # toy: fresh draws from the known distribution
        from gankit.data.toy import sample_mixture

        g = torch.Generator().manual_seed(seed + 1)
        valid = sample_mixture(gan.spec.modes, gan.spec.mode_std, valid_size, g)
        test = sample_mixture(gan.spec.modes, gan.spec.mode_std, 10_000, g)
    torch.manual_seed(seed)
    samples = gan.sample(n_samples)
    result = parzen_protocol(samples, valid, test, sigmas, device=gan.device)
    result.update({"protocol": f"parzen{n_samples // 1000}k_{cfg.dataset}", "valid_split": "valid",
                   "test_split": "test"})
    return result
