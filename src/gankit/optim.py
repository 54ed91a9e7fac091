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


def schedule_at(cfg, base_lr: float, step: int, epoch: float) -> tuple[float, float | None]:
    """This step's lr and SGD momentum (None for Adam).

    pylearn2's rule keeps a velocity of steps, v <- mu v - lr_t g, theta <- theta + v; torch's keeps one of
    gradients, b <- mu' b + g, theta <- theta - lr_t b. They agree when mu' = mu lr_{t-1} / lr_t, which is how
    the 'pylearn2' form runs on torch's (fused) SGD."""
    lr = learning_rate(base_lr, cfg, step)
    if cfg.optimizer != "sgd":
        return lr, None
    mu = momentum(cfg, epoch)
    if cfg.sgd_form == "pylearn2" and step > 0:
        mu *= learning_rate(base_lr, cfg, step - 1) / lr
    return lr, mu


def apply_schedule(opt: torch.optim.Optimizer, cfg, base_lr: float, step: int, epoch: float) -> None:
    """Set this step's lr (and SGD momentum) on every parameter group (see `schedule_at`)."""
    lr, mu = schedule_at(cfg, base_lr, step, epoch)
    for group in opt.param_groups:
        group["lr"] = lr
        if mu is not None:
            group["momentum"] = mu


def _per_member(h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """A member's hyperparameter h [E] broadcast over p's leading member dimension, in p's dtype and device."""
    if h.shape[0] != p.shape[0]:
        raise ValueError(f"{h.shape[0]} members' hyperparameters for a parameter of {p.shape[0]} members")
    return h.to(device=p.device, dtype=p.dtype).view(-1, *([1] * (p.dim() - 1)))


def _with_grads(opt: torch.optim.Optimizer):
    """(group, parameter) for every parameter of `opt` that has a gradient."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                yield group, p


class MemberAdam(torch.optim.Adam):
    """Adam over stacked parameters (leading dimension: the member) with each member's own lr, beta1 and beta2
    (float64 tensors [E] in `hyper`; the schedule sets `hyper['lr']` every step). Torch's update, elementwise, so
    member e moves as a plain Adam with its values would; the state is torch Adam's (checkpoints look alike)."""

    def __init__(self, params, lr: torch.Tensor, beta1: torch.Tensor, beta2: torch.Tensor):
        super().__init__(params, lr=float(lr.max()), betas=(float(beta1.max()), float(beta2.max())), foreach=False)
        self.hyper = {"lr": lr, "beta1": beta1, "beta2": beta2}

    @torch.no_grad()
    def step(self, closure=None):
        h = self.hyper
        for group, p in _with_grads(self):
            g, state = p.grad, self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            t = float(state["step"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(g, _per_member(1 - h["beta1"], p))  # m <- beta1 m + (1 - beta1) g
            v.mul_(_per_member(h["beta2"], p)).addcmul_(g, g * _per_member(1 - h["beta2"], p))
            step_size = _per_member(h["lr"] / (1 - h["beta1"] ** t), p)
            denom = (v.sqrt() / _per_member((1 - h["beta2"] ** t).sqrt(), p)).add_(group["eps"])
            p.sub_(step_size * m / denom)


class MemberSGD(torch.optim.SGD):
    """SGD with classical momentum (torch's form: b <- mu b + g, theta <- theta - lr b) over stacked parameters, with
    each member's own lr and momentum (float64 tensors [E] in `hyper`, set by the schedule every step)."""

    def __init__(self, params, lr: torch.Tensor, momentum: torch.Tensor):
        super().__init__(params, lr=float(lr.max()), momentum=float(momentum.max()), foreach=False)
        self.hyper = {"lr": lr, "momentum": momentum}

    @torch.no_grad()
    def step(self, closure=None):
        h = self.hyper
        for _, p in _with_grads(self):
            state = self.state[p]
            if state.get("momentum_buffer") is None:  # the first step: b = g, as torch's
                state["momentum_buffer"] = p.grad.detach().clone()
            else:
                state["momentum_buffer"].mul_(_per_member(h["momentum"], p)).add_(p.grad)
            p.sub_(_per_member(h["lr"], p) * state["momentum_buffer"])
