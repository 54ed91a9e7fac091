"""The batch sampler, and with it the one place that says what an epoch is.

An epoch is one pass of D over the real data: `per_epoch` minibatches of m * world samples (the
remainder of a permutation is dropped). An Algorithm-1 iteration takes k real minibatches
(alternating) or one (simultaneous), so every step count, epoch fraction and epoch boundary comes
from `reals_per_step` here, under every update mode and k.
"""

from __future__ import annotations

import math

import torch

from gankit.errors import DataError


class Batches:
    """Minibatch b of the run is a slice of the permutation of its epoch, drawn from (seed, epoch), so a
    run is reproducible and resumes exactly. With `world` processes the global batch of m * world is split
    into disjoint shards by `rank`. Calling it gives (x, y), y the labels' slice or None."""

    def __init__(self, x: torch.Tensor, m: int, seed: int, rank: int = 0, world: int = 1,
                 labels: torch.Tensor | None = None, reals_per_step: int = 1):
        if len(x) < m * world:
            raise DataError(f"dataset has {len(x)} samples, fewer than one batch of {m * world} "
                            f"(batch size {m}{f' x {world} processes' if world > 1 else ''})")
        self.x, self.y, self.m, self.seed, self.rank, self.world = x, labels, m, seed, rank, world
        self.per_epoch = len(x) // (m * world)
        self.reals_per_step = reals_per_step
        self._epoch, self._perm = -1, None

    def epoch_at(self, step: int) -> float:
        """Epochs of real data seen after `step` iterations."""
        return step * self.reals_per_step / self.per_epoch

    def steps_for(self, epochs: float) -> int:
        """Iterations that make `epochs` passes over the real data (at least one)."""
        return max(1, math.ceil(epochs * self.per_epoch / self.reals_per_step - 1e-9))

    def epoch_ends_at(self, step: int) -> bool:
        """Whether iteration `step` (counted from 1) finished an epoch."""
        r, n = self.reals_per_step, self.per_epoch
        return (step * r) // n > ((step - 1) * r) // n

    def first_of(self, step: int) -> int:
        """Index of the first real minibatch iteration `step` (counted from 0) takes."""
        return step * self.reals_per_step

    def __call__(self, b: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        epoch, i = divmod(b, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(len(self.x), generator=g).to(self.x.device)
            self._epoch = epoch
        start = (i * self.world + self.rank) * self.m
        idx = self._perm[start:start + self.m]
        return self.x.index_select(0, idx), None if self.y is None else self.y.index_select(0, idx)


class Labelled:
    """The labelled minibatches of a semi-supervised run: the N labelled samples as an endless stream of passes,
    each pass in its own order drawn from (seed, pass), cut into minibatches of min(m, N). Minibatch i depends on
    i alone (the D update's index), so a run is reproducible and resumes exactly."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, m: int, seed: int):
        self.x, self.y, self.m, self.seed = x, y, min(m, len(x)), seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, p: int) -> torch.Tensor:
        if p not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7 + p * 9_176_867)
            self._perms = {q: v for q, v in self._perms.items() if q >= p - 1}  # keep the current pass or two
            self._perms[p] = torch.randperm(len(self.x), generator=g).to(self.x.device)
        return self._perms[p]

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.x)
        first = i * self.m
        p0, p1 = first // n, (first + self.m - 1) // n
        order = torch.cat([self._perm(p) for p in range(p0, p1 + 1)])[first - p0 * n:first - p0 * n + self.m]
        return self.x.index_select(0, order), self.y.index_select(0, order)
