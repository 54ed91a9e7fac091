"""The train state: everything a run holds between two steps, with one state_dict for resume and loading.

Per network a `Player`: the fp32 master (what the optimiser, the weight average, checkpoints and
sampling use), the module the training passes run on (a bf16 working copy in bf16, the master in
fp32) and, under torchrun, its DDP wrapper; with its optimiser and base learning rate. The
`TrainState` adds the weight average of G, the step, the clock, the noise prior and the RNG.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from gankit import optim
from gankit.precision import DTYPES, Working


@dataclass
class Player:
    """One network in training. `local` runs without synchronising replicas (the other player's step);
    `net` is what its own step calls (the DDP wrapper under torchrun, else `local`)."""

    master: nn.Module
    work: Working
    net: nn.Module
    opt: torch.optim.Optimizer
    lr: float  # base learning rate, before the schedule

    def __post_init__(self):
        self.local = self.work.module
        self.params = list(self.local.parameters())

    def input(self, t: torch.Tensor) -> torch.Tensor:
        """t in the working precision."""
        return self.work.input(t)

    def zero_grad(self) -> None:
        self.work.zero_grad()

    def step(self) -> None:
        """Apply the optimiser to the masters (working gradients handed over in fp32), refresh the copy."""
        self.work.step(self.opt)

    @contextlib.contextmanager
    def frozen(self):
        """No gradient buffers for this network while the other player steps through it."""
        flags = [p.requires_grad for p in self.params]
        self.local.requires_grad_(False)
        try:
            yield
        finally:
            for p, f in zip(self.params, flags):
                p.requires_grad_(f)


def player(master: nn.Module, cfg, lr: float, distributed: bool = False) -> Player:
    """A Player for `master`: working copy in cfg.precision, cfg.optimizer at `lr`, DDP when `distributed`."""
    work = Working(master, DTYPES[cfg.precision])
    net = work.module
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(work.module)
    return Player(master, work, net, optim.build_optimizer(cfg, master.parameters(), lr), lr)


def load_optimizer_state(opt: torch.optim.Optimizer, saved: dict) -> None:
    """The saved per-parameter state (moments, momentum buffers, step counts), checked against the parameters;
    the hyperparameters stay the config's (the schedule sets lr and momentum at every step anyway)."""
    opt.load_state_dict({"state": saved["state"], "param_groups": opt.state_dict()["param_groups"]})
    params = [p for group in opt.param_groups for p in group["params"]]
    if len(saved["state"]) > len(params):
        raise ValueError(f"optimiser state for {len(saved['state'])} parameters, the network has {len(params)}")
    expected = next(keys for cls, keys in _STATE_KEYS.items() if isinstance(opt, cls))
    for i, p in enumerate(params):
        state = opt.state.get(p, {})
        if state and set(state) != expected:
            raise ValueError(f"optimiser state of parameter {i} has {sorted(state)}, expected {sorted(expected)}")
        for name, v in state.items():
            if name == "step":
                ok = isinstance(v, torch.Tensor) and v.numel() == 1 and bool(torch.isfinite(v).all()) and v >= 0
            else:
                ok = (v is None and name == "momentum_buffer") or (
                    isinstance(v, torch.Tensor) and v.shape == p.shape and v.dtype == p.dtype
                    and bool(torch.isfinite(v).all()))
            if not ok:
                raise ValueError(f"optimiser state '{name}' of parameter {i} does not fit it")


_STATE_KEYS = {torch.optim.Adam: {"step", "exp_avg", "exp_avg_sq"}, torch.optim.SGD: {"momentum_buffer"}}


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta; buffers are copied."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1.0 - decay)
    buffers = list(G_ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(G.buffers()))


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class TrainState:
    G: Player
    D: Player
    noise: Callable[[], torch.Tensor]  # this process's m noise vectors z ~ p_z
    device: torch.device
    G_ema: nn.Module | None = None
    ema: float = 0.0
    step: int = 0
    d_updates: int = 0  # D's updates so far (k per iteration): the clock of lazy regularisation
    seconds: float = 0.0  # training time before this process's start
    _t0: float = field(default_factory=time.perf_counter)
    E: Player | None = None  # the encoder x -> z trained with G against D (BiGAN, cfg.encoder)
    held: dict = field(default_factory=dict)  # stats logged between their lazy updates (R1, R2: Penalties.last)

    def players(self) -> dict[str, Player]:
        """The networks in training by name: G, D and, in a BiGAN, E."""
        return {"G": self.G, "D": self.D, **({"E": self.E} if self.E is not None else {})}

    def update_ema(self) -> None:
        """Average G's weights, with a decay that ramps up from 0.1 so early weights fade fast."""
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G.master, min(self.ema, (1 + self.step) / (10 + self.step)))

    def clock(self) -> float:
        """Seconds of training so far, over every process start of the run."""
        return self.seconds + time.perf_counter() - self._t0

    def schedule(self, cfg, epoch: float) -> None:
        """The step's learning rates (lr / decay^t, floored) and SGD momentum (rising with the epoch)."""
        for p in self.players().values():
            optim.apply_schedule(p.opt, cfg, p.lr, self.step, epoch)

    def state_dict(self) -> dict:
        return {**{key: p.master.state_dict() for key, p in self.players().items()},
                **{f"opt_{key}": p.opt.state_dict() for key, p in self.players().items()},
                "step": self.step, "d_updates": self.d_updates, "seconds": self.clock(), "rng": rng_state(self.device),
                "held": {k: v.detach().cpu() for k, v in self.held.items()},
                **({"G_ema": self.G_ema.state_dict()} if self.G_ema is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        for key, p in self.players().items():
            p.master.load_state_dict(state[key])
            load_optimizer_state(p.opt, state[f"opt_{key}"])
            p.work.refresh()
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.step, self.seconds, self._t0 = int(state["step"]), float(state.get("seconds", 0.0)), time.perf_counter()
        self.d_updates = int(state["d_updates"])
        self.held.clear()
        self.held.update({k: v.to(self.device) for k, v in state.get("held", {}).items()})
        set_rng_state(state["rng"], self.device)
