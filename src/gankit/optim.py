"""Optimisers for G and D and the paper's schedules, as pure functions of the step (so resume is exact).

SGD uses classical momentum; the paper's schedule raises momentum linearly from `momentum` to
`final_momentum` by epoch `momentum_saturate` and divides the learning rate by `lr_decay` every
step, never below `lr_min`. Adam uses betas (momentum, beta2).
"""

from __future__ import annotations

import math

import torch


def build_optimizer(cfg, params, lr: float) -> torch.optim.Optimizer:
    """SGD or Adam, with torch's fused kernels where this torch has them for the device (one kernel for
    all parameters instead of several per parameter: on the CPU the per-parameter loop costs about a
    third of a small model's step), otherwise the multi-tensor implementation."""
    params = list(params)
    if cfg.optimizer == "sgd":
        make = lambda **kw: torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, **kw)  # noqa: E731
    elif cfg.optimizer == "adam":
        make = lambda **kw: torch.optim.Adam(params, lr=lr, betas=(cfg.momentum, cfg.beta2), **kw)  # noqa: E731
    else:
        raise ValueError(f"unknown optimizer '{cfg.optimizer}' (choose from sgd, adam)")
    try:
        return make(fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or torch version
        return make(foreach=True)


def learning_rate(base: float, cfg, step: int) -> float:
    """lr after `step` updates: base / lr_decay^step, floored at lr_min (never raising a smaller base)."""
    if cfg.lr_decay == 1.0:
        return base
    floor = min(cfg.lr_min, base)
    if step * math.log(cfg.lr_decay) > 700:  # decay^step would overflow; lr is long at its floor by then
        return floor
    return max(base / cfg.lr_decay**step, floor)


def momentum(cfg, epoch: float) -> float:
    """SGD momentum at a (fractional) epoch: linear from cfg.momentum to cfg.final_momentum by epoch
    cfg.momentum_saturate; under sgd_form 'pylearn2', raised once per epoch as pylearn2's MomentumAdjustor(start=1,
    saturate=S) does (it counts the monitor call before the first epoch: epoch e trains at fraction e / (S - 1))."""
    if cfg.sgd_form == "pylearn2":
        t = math.floor(epoch + 1e-9) / max(cfg.momentum_saturate - 1, 1e-9)
    else:
        t = epoch / cfg.momentum_saturate
    t = min(max(t, 0.0), 1.0)
    return cfg.momentum + t * (cfg.final_momentum - cfg.momentum)


def apply_schedule(opt: torch.optim.Optimizer, cfg, base_lr: float, step: int, epoch: float) -> None:
    """Set this step's lr (and SGD momentum) on every parameter group.

    pylearn2's rule keeps a velocity of steps, v <- mu v - lr_t g, theta <- theta + v; torch's keeps one of
    gradients, b <- mu' b + g, theta <- theta - lr_t b. They agree when mu' = mu lr_{t-1} / lr_t, which is how
    the 'pylearn2' form runs on torch's (fused) SGD."""
    lr = learning_rate(base_lr, cfg, step)
    for group in opt.param_groups:
        group["lr"] = lr
        if cfg.optimizer == "sgd":
            mu = momentum(cfg, epoch)
            if cfg.sgd_form == "pylearn2" and step > 0:
                mu *= learning_rate(base_lr, cfg, step - 1) / lr
            group["momentum"] = mu
