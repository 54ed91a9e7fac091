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
    """Row norms ||t_i||^2, which also reveal any NaN or infinite entry without a separate pass (as batched dot
    products: no temporary the size of t, several times faster than (t * t).sum(1) on 10,000 x 784)."""
    sq = torch.einsum("ij,ij->i", t, t)
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


EXACTNESS_NATS = 1e-11  # the float32 part of a result may move log p by at most this, beyond float64 rounding
TRY_NATS = 10.0  # how much closer to a row's top than the blind cut its float32 tail may start, if small
REFINE_ROWS = 64  # rows whose float64 products are taken together, over the union of the samples they need
U32 = 2.0**-24
FLOOR_NATS = 80.0  # float32 weights are floored at e^-80, above denormals (slow)
LANDMARKS = 32  # samples whose nearest groups the rows refined together


def _any_at_least(w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Columns j where w_ij >= t_i for some row i, in two vectorised passes (a boolean `any` over rows is many
    times slower). A float difference is >= 0 iff w >= t; with denormals flushed, a superset: no column is lost."""
    return (w - t[:, None]).amax(0) >= 0


class _Distances:
    """Squared distances from chunks of x to the samples mu.

    With several sigmas (or on a GPU) one float64 product ||x||^2 - 2 x.mu + ||mu||^2 per chunk serves every
    sigma. With one sigma on the CPU, `log_sum_exp` gives log sum_j exp(-||x - mu_j||^2 / 2 sigma^2) per row
    as the float64 sum would, at float32 speed: see there."""

    def __init__(self, samples: torch.Tensor, max_bytes: int):
        self.mu = samples  # any float dtype: widening to float64 is exact, so it happens where needed
        self.rows = max(1, max_bytes // (8 * 2 * len(samples)))  # distances plus one temporary
        self._mu32 = self._mu64 = self._mu_c64 = None
        self.exact_pairs = self.pairs = 0  # pairs recomputed in float64, out of all pairs, by log_sum_exp

    def exact(self, xc: torch.Tensor, x_sq: torch.Tensor) -> torch.Tensor:
        if self._mu64 is None:
            self._mu64 = self.mu.double()
            self._mu_sq = _squared_norms(self._mu64, "samples")
        return torch.addmm(self._mu_sq[None, :], xc, self._mu64.T, alpha=-2.0).add_(x_sq[:, None]).clamp_(min=0.0)

    def _center(self, block: int = 256):
        """The float32 screening's set-up, in one pass over the samples, block by block in cache: mu - center
        in float64 (exact for float32 samples and a float32 center), its squared norms, and its float32
        rounding. No float64 copy of all samples is kept; `log_sum_exp` centres the few it refines."""
        mu, (n, d) = self.mu, self.mu.shape
        # any center keeps the bound valid (it is in |x_c| and |mu_c|); a mean keeps it small, and that of at most
        # 1,024 evenly spaced samples (rounded to float32, so that mu - center is exact) costs little
        self.center = mu[::max(1, n // 1024)].double().mean(0).float().double()
        self._mu32 = torch.empty(n, d, dtype=torch.float32)
        self._mu_c_sq = torch.empty(n, dtype=torch.float64)
        buf = torch.empty(min(block, n), d, dtype=torch.float64)
        for i in range(0, n, block):
            b = buf[:min(block, n - i)]
            b.copy_(mu[i:i + block]).sub_(self.center)
            self._mu32[i:i + block].copy_(b)
            torch.linalg.vecdot(b, b, out=self._mu_c_sq[i:i + block])
        if not torch.isfinite(self._mu_c_sq).all():
            raise ValueError("samples contains NaN or infinite values")
        self._mu_c_sq32 = self._mu_c_sq.float()
        self._mu_c_max = float(self._mu_c_sq.max().sqrt())

    def log_sum_exp(self, xc: torch.Tensor, sigma: float) -> torch.Tensor:
        """log sum_j exp(-||x_i - mu_j||^2 / 2 sigma^2) for each row of the float64 chunk xc, within
        EXACTNESS_NATS of the float64 value.

        A float32 product on centred data gives every squared distance within a proven bound
        b_i = (d + 4) u (|x_i| + max|mu|)^2 (u = 2^-24), so each float32 weight w_ij (relative to the row's
        top) is within a factor e^beta_i of the true one. Per row, the pairs above a cut k nats below the top
        are recomputed in float64; the tail below keeps its float32 weights, which moves log p by at most
        about (e^beta - 1) e^beta * sum(tail). The cut where even n e^-k keeps that under EXACTNESS_NATS is
        safe blind; one TRY_NATS closer to the top is taken where the row's actual tail allows it. Rows are
        grouped by their nearest of LANDMARKS samples (ordered so before the float32 product), and the float64
        products are taken REFINE_ROWS rows at a time against the union of the samples they need, centred on
        the fly (a matrix product in cache; no float64 copy of all samples); every pair in that block counts
        as exact. The fixed set-up is one blocked pass over the samples (`_center`)."""
        if self._mu32 is None:
            self._center()
        c = 0.5 / sigma**2
        x_c = xc - self.center
        x32 = x_c.float()
        # rows taken together should need the same samples: group them by their nearest of a few landmarks, and
        # order the rows so before the product that every block is a slice of it (no gather)
        near = torch.addmm(self._mu_c_sq32[None, :LANDMARKS], x32, self._mu32[:LANDMARKS].T, alpha=-2.0).argmin(1)
        order = near.argsort(stable=True)
        x_c, x32 = x_c[order], x32[order]
        x_c_sq = (x_c * x_c).sum(1)
        d2 = torch.addmm(self._mu_c_sq32[None, :], x32, self._mu32.T, alpha=-2.0).add_(x_c_sq.float()[:, None])
        # float32 products and sums (inputs rounded too) err by at most (d + 4) u (|x_c| + |mu_c|)^2 <= bound; the
        # shift by the row's minimum (both ends err), the scaling and exp add a few roundings of d2 <= reach
        reach = (x_c_sq.sqrt() + self._mu_c_max) ** 2
        beta = c * (2 * (xc.shape[1] + 4) * U32 * reach + 4 * U32 * reach) + 8 * U32
        # the tail's float32 weights, and their float32 sum (relative error <= n u), move log p by at most f * tail
        n_u = len(self.mu) * U32
        f = ((torch.exp(beta) - 1) * (1 + n_u) + n_u) * torch.exp(beta)
        allowed = (EXACTNESS_NATS / f).float()
        # a cut k nats below the top leaves a tail < n e^-k: safe without looking; a cut TRY_NATS higher is
        # taken where the row's actual tail there is small enough
        safe = (allowed / len(self.mu)).clamp(min=1e-38)  # e^-k, k = log(n / allowed)
        attempt = (safe * math.exp(TRY_NATS)).clamp(max=0.5)
        out = torch.empty(len(xc), dtype=torch.float64)
        for i in range(0, len(xc), REFINE_ROWS):  # blocks small enough to stay in cache
            r = slice(i, i + REFINE_ROWS)
            d2r = d2[r]
            d2_min = d2r.amin(1)
            # float32 weights relative to the row's float32 top; floored at e^-FLOOR_NATS, beneath float32's
            # normal range (denormals are slow), which adds at most n e^-FLOOR_NATS to a sum that is >= 1
            w = d2r.sub_(d2_min[:, None]).mul_(-c).clamp_(min=-FLOOR_NATS).exp_()
            # the block refines every sample some row needs at the attempted cut; a row's tail is then what the
            # others leave (<= its tail at that cut). Rows where it is too large fall back to the safe cut.
            need = _any_at_least(w, attempt[r])
            tail = w.index_fill_(1, need.nonzero().squeeze(1), 0.0).sum(1)
            wide = tail * (1 + n_u) > allowed[r]
            if wide.any():
                need |= _any_at_least(w[wide], safe[r][wide])
                tail = w.index_fill_(1, need.nonzero().squeeze(1), 0.0).sum(1)
            cols = need.nonzero().squeeze(1)
            if len(cols) > len(self.mu) // 2:  # most samples: all of them, without gathering
                cols, tail = torch.arange(len(self.mu)), torch.zeros_like(tail)  # nothing left in float32
                if self._mu_c64 is None:
                    self._mu_c64 = self.mu.double() - self.center  # not in place: mu may be the caller's
                a = torch.addmm(self._mu_c_sq[None, :], x_c[r], self._mu_c64.T, alpha=-2.0).neg_()
            else:  # the few samples needed, centred in float64 as in `_center` (exact for float32 samples)
                mu_c = self.mu.index_select(0, cols).to(torch.float64).sub_(self.center)
                a = (x_c[r] @ mu_c.T).mul_(2.0).sub_(self._mu_c_sq[cols][None, :])
            a = a.sub_(x_c_sq[r, None])
            a = a.clamp_(max=0.0).mul_(c)  # -||x - mu||^2 / 2 sigma^2, exact in float64
            top = a.max(1).values
            tail = tail.double()  # the float32 weights of the pairs not refined
            total = torch.exp(a - top[:, None]).sum(1) + tail * torch.exp(-c * d2_min.double() - top)
            out[order[r]] = top + torch.log(total)
            self.exact_pairs += a.numel()
        self.pairs += d2.numel()
        return out

    def chunks(self, x: torch.Tensor):
        """Yield (slice, rows of x) over chunks of x."""
        if self.mu.shape[1] != x.shape[1]:
            raise ValueError(f"dimension mismatch: samples have d={self.mu.shape[1]}, data has d={x.shape[1]}")
        for i in range(0, len(x), self.rows):
            yield slice(i, min(i + self.rows, len(x))), x[i:i + self.rows]


def _log_likelihoods(d2: torch.Tensor, sigmas: list[float], d: int, n: int) -> torch.Tensor:
    """[len(sigmas), chunk] log p from one block of float64 squared distances (overwritten), REFINE_ROWS rows at
    a time so that every sigma reuses them from cache. Terms are shifted by the row's nearest sample and
    floored at e^-700, above float64's denormals (slow), which adds at most n e^-700 to a sum >= 1."""
    out = torch.empty(len(sigmas), d2.shape[0], dtype=torch.float64, device=d2.device)
    buf = torch.empty(min(REFINE_ROWS, d2.shape[0]), d2.shape[1], dtype=torch.float64, device=d2.device)
    for i in range(0, d2.shape[0], REFINE_ROWS):
        e = d2[i:i + REFINE_ROWS]
        low = e.min(1).values
        e.sub_(low[:, None])
        w = buf[:len(e)]
        for j, s in enumerate(sigmas):
            c = 0.5 / s**2
            total = torch.mul(e, -c, out=w).clamp_(min=-700.0).exp_().sum(1)
            out[j, i:i + len(e)] = torch.log(total) - c * low - math.log(n) - d * math.log(s * math.sqrt(2 * math.pi))
    return out


def log_likelihoods(samples, x, sigmas, max_bytes: int = MAX_BYTES, device=None) -> np.ndarray:
    """log p(x_i) for every sigma: float64 array [len(sigmas), N]."""
    sigmas = _check_sigmas(sigmas)
    mu = _as_matrix(samples, "samples", device, dtype=None)
    xs = _as_matrix(x, "x", mu.device)
    out = torch.empty(len(sigmas), len(xs), dtype=torch.float64, device=mu.device)
    distances = _Distances(mu, max_bytes)
    d, n = mu.shape[1], len(mu)
    x_sq = _squared_norms(xs, "x")
    for sl, xc in distances.chunks(xs):
        if len(sigmas) == 1 and xc.device.type == "cpu":
            norm = math.log(n) + d * math.log(sigmas[0] * math.sqrt(2 * math.pi))
            out[0, sl] = distances.log_sum_exp(xc, sigmas[0]) - norm
        else:
            out[:, sl] = _log_likelihoods(distances.exact(xc, x_sq[sl]), sigmas, d, n)
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
                 device: str = "auto", member: int | None = None, truncation: float | None = None) -> dict:
    """Parzen protocol for a trained image run: G's samples, the first `valid_size` validation images, the test set
    (`member`: which GAN of a seed ensemble; `truncation`: G's z restricted to [-t, t], see sample_noise)."""
    from gankit.data import load_dataset
    from gankit.sampling import load_run

    gan = load_run(run_dir, device, member=member, truncation=truncation)
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
