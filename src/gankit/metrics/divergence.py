"""Divergences between p_data and p_g tracked during training on the 2-D toys, where p_data is known.

JSD: between p_data and p_g each convolved with N(0, h^2 I), h the modes' standard deviation (so that p_g,
known only through samples, has a density): p_data * N is the mixture with std sqrt(2) h, p_g * N the kernel
estimate on G's samples; JSD = 1/2 E_p[log p/m] + 1/2 E_q[log q/m], m = (p + q)/2, by Monte Carlo on fresh
draws of each. W1: between G's samples and as many data samples, by an exact assignment."""

from __future__ import annotations

import math

import torch

from gankit.data.toy import mixture_log_density, sample_mixture


class Divergences:
    """Called with G's samples (of a fixed z), returns {"jsd": nats, "w1": distance}."""

    def __init__(self, modes: torch.Tensor, std: float, n: int = 500, n_w1: int = 200, seed: int = 0):
        g = torch.Generator().manual_seed(seed + 104729)
        self.modes, self.h, self.n_w1 = modes.double(), float(std), n_w1
        self.p_draws = (sample_mixture(modes, std, n, g).double() + std * torch.randn(n, modes.shape[1], generator=g,
                                                                                         dtype=torch.float64))
        self.noise = torch.randn(n, modes.shape[1], generator=g, dtype=torch.float64)
        self.data = sample_mixture(modes, std, n_w1, g).double()

    def _log_p(self, x):
        return mixture_log_density(x, self.modes, math.sqrt(2) * self.h)

    def _log_q(self, x, g):
        d = g.shape[1]
        log_k = -torch.cdist(x, g).pow(2) / (2 * self.h ** 2) - d * math.log(self.h * math.sqrt(2 * math.pi))
        return torch.logsumexp(log_k, 1) - math.log(len(g))

    def __call__(self, x: torch.Tensor) -> dict:
        g = x.detach().double().cpu()
        g = g[torch.isfinite(g).all(1)]
        if len(g) < 2:
            return {"jsd": math.log(2), "w1": math.inf}
        q_draws = g[torch.arange(len(self.noise)) % len(g)] + self.h * self.noise[:, :g.shape[1]]
        terms = []
        for draws in (self.p_draws, q_draws):
            lp, lq = self._log_p(draws), self._log_q(draws, g)
            lm = torch.logaddexp(lp, lq) - math.log(2)
            terms.append(((lp if draws is self.p_draws else lq) - lm).mean())
        jsd = float(0.5 * terms[0] + 0.5 * terms[1])
        from scipy.optimize import linear_sum_assignment

        sub = g[:self.n_w1]
        cost = torch.cdist(sub, self.data[:len(sub)]).numpy()
        rows, cols = linear_sum_assignment(cost)
        return {"jsd": min(max(jsd, 0.0), math.log(2)), "w1": float(cost[rows, cols].mean())}
