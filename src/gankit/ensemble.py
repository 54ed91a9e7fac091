"""Seed ensembles: N independent GANs trained in one process as stacked networks (`gankit train --seeds N`).

Member e is the plain run `member_config(cfg, e)`: seed `seed + e` (with `--sweep KEY=V1,V2,...`: value
e // seeds of KEY and seed `seed + e % seeds`, every value on the same seeds), initialised exactly as that run
initialises its nets, with that run's noise stream (its own generator, seeded as that run seeds its global one),
its data order and its own optimiser state and weight average. Nothing of the training loop changes: the stacked
networks take and return tensors with a member dimension after the sample dimension,

    G: z [m, E, z_dim] -> x [m, E, d],    D: x [m, E, d] -> logits [m, E],

so `len(x)` is still m, real and generated batches still concatenate along dim 0 for one D forward, and
every loss is still a mean over the batch. That mean runs over E * m logits, which scales each member's
gradient by 1/E; `Game` multiplies both players' losses (and D's penalties) by E, so every member's
gradient is a plain run's. Adam and SGD update each element on its own, so one optimiser over stacked
parameters is E independent optimisers; the weight average is elementwise too. A sweep of an optimiser key swaps
in `optim.MemberAdam`/`MemberSGD`, which take each member's lr, betas or momentum as tensors [E] over the leading
member dimension; a sweep of ema or of a penalty weight does the same for the average's decay and the penalty.

A stacked network is the plain network with every `nn.Linear` replaced by an `EnsembleLinear` (weight
[E, out, in], one batched matrix product per layer): the parameter names stay the plain ones with a
leading member dimension, so member e's plain network is `{name: p[e]}` and every tool that takes a
plain GAN works on a member (`member`, `gankit sample RUN --member i`). Why not `torch.func.stack_module_state`
and `vmap`: on the 2-core CPU both cost the same within noise (a D forward and backward, 10 members of 3 x 256,
512 samples: 165-215 ms either way; the matrix products dominate), and batched products keep ordinary modules,
leaf parameters, optimisers, state dicts and bf16 working copies working unchanged. BatchNorm1d becomes an
`EnsembleBatchNorm1d` (each member normalised over its own batch).

Inside, the plain forward runs on member-major samples [E * n, ...] (class labels [E * n]), so its own code --
concatenating [z, embed(c)] or [x, one-hot(c)] along dim 1, reshaping to images, a projection D's <embed(c), phi(x)>
-- runs unchanged; only layers with weights (EnsembleLinear, EnsembleConv, EnsembleEmbedding, the BatchNorms,
`EnsembleSpectralNorm` under --spectral-norm) and the batch-wide wrappers (`EnsembleMinibatchStd`,
`EnsemblePacked`) split the first dimension into members.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

from gankit import hooks, optim
from gankit.config import member_config, n_members, parse_sweep
from gankit.data import Batches as PlainBatches
from gankit.data.toy import eval_samples
from gankit.errors import CheckpointError, ConfigError, UsageError, on_disk
from gankit.hooks import Hook, check_finite
from gankit.models.layers import Dropout, MinibatchStd, Packed, Projection
from gankit.models.paper import Maxout, MaxoutConv2d
from gankit.noise import sample_noise
from gankit.state import Player, TrainState

SUPPORTED_MODELS = ("mlp", "bn-mlp", "paper", "dcgan", "paper-conv")
OPTIMISER_KEYS = ("lr", "lr_d", "momentum", "beta2")
PENALTY_KEYS = {"r1": "r1", "r2": "r2", "gp_weight": "gp"}  # swept key -> the penalty it weighs


def unsupported(cfg) -> str | None:
    """Why `cfg.seeds > 1` (or `cfg.sweep`) cannot run with the rest of `cfg` (one line), or None when it can."""
    if n_members(cfg) <= 1:
        return None
    who = "--sweep" if cfg.sweep else "--seeds > 1"
    if cfg.model not in SUPPORTED_MODELS:
        return f"{who} supports model {', '.join(SUPPORTED_MODELS)} so far, not '{cfg.model}'"
    return None


class EnsembleLinear(nn.Module):
    """E independent linear layers y_e = x_e W_e^T + b_e: weight [E, out, in], bias [E, out]; x [E, n, in] ->
    [E, n, out] by one batched matrix product."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight  # (read once: under spectral normalisation each read is a power iteration)
        flat = x.dim() == 2  # [E * n, in], member-major (how stacked networks pass samples): [E * n, out] out
        if flat:
            x = x.reshape(len(w), -1, x.shape[-1])
        y = torch.bmm(x, w.transpose(1, 2)) if self.bias is None else \
            torch.baddbmm(self.bias.unsqueeze(1), x, w.transpose(1, 2))
        return y.reshape(-1, y.shape[-1]) if flat else y

    def extra_repr(self) -> str:
        E, out, d_in = _raw_weight(self).shape
        return f"members={E}, in_features={d_in}, out_features={out}, bias={self.bias is not None}"


class EnsembleBatchNorm1d(nn.Module):
    """E independent BatchNorm1d layers over [E, n, C]: each member normalised over its own n samples, with its own
    affine parameters and running statistics ([E, C], updated in place through flat views)."""

    normalises = True  # a bf16 working copy keeps its parameters fp32, shared with the master (gankit.precision)

    def __init__(self, layers: list[nn.BatchNorm1d]):
        super().__init__()
        first = layers[0]
        self.momentum, self.eps = first.momentum, first.eps
        self.weight = nn.Parameter(torch.stack([bn.weight.detach() for bn in layers]).clone())
        self.bias = nn.Parameter(torch.stack([bn.bias.detach() for bn in layers]).clone())
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, torch.stack([getattr(bn, name) for bn in layers]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, E, C = x.shape, len(self.weight), x.shape[-1]
        x = x.reshape(E, -1, C)  # [E, n, C], or member-major [E * n, C]
        n = x.shape[1]
        if self.training:
            self.num_batches_tracked.add_(1)
        y = nn.functional.batch_norm(x.transpose(0, 1).reshape(n, E * C), self.running_mean.view(-1),
                                     self.running_var.view(-1), self.weight.view(-1), self.bias.view(-1),
                                     self.training, self.momentum, self.eps)
        return y.view(n, E, C).transpose(0, 1).reshape(shape)


def _grouped(x: torch.Tensor, E: int) -> torch.Tensor:
    """Images [E * n, C, H, W] (member-major) as [n, E * C, H, W]: each member's channels one group."""
    _, C, H, W = x.shape
    return x.reshape(E, -1, C, H, W).transpose(0, 1).reshape(-1, E * C, H, W)


def _ungrouped(y: torch.Tensor, E: int) -> torch.Tensor:
    """[n, E * C, H, W] back to [E * n, C, H, W]."""
    n, EC, H, W = y.shape
    return y.reshape(n, E, EC // E, H, W).transpose(0, 1).reshape(-1, EC // E, H, W)


class EnsembleConv(nn.Module):
    """E independent Conv2d (or ConvTranspose2d) layers as one grouped convolution: weight [E, *plain shape],
    bias [E, out]; images [E * n, C, H, W] member-major in and out."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        first = layers[0]
        self.transposed = isinstance(first, nn.ConvTranspose2d)
        self.stride, self.padding = first.stride, first.padding
        self.output_padding, self.dilation = getattr(first, "output_padding", 0), first.dilation
        if first.groups != 1 or first.padding_mode != "zeros":
            raise ConfigError("seed ensembles stack plain convolutions only (groups 1, zero padding)")
        self.weight = nn.Parameter(torch.stack([_raw_weight(m).detach() for m in layers]).contiguous())
        self.bias = None if first.bias is None else nn.Parameter(torch.stack([m.bias.detach() for m in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight  # (read once: under spectral normalisation each read is a power iteration)
        E = len(w)
        w = w.reshape(-1, *w.shape[2:])  # [E * out, in, k, k] (transposed: [E * in, out, k, k])
        b = None if self.bias is None else self.bias.reshape(-1)
        if self.transposed:
            y = nn.functional.conv_transpose2d(_grouped(x, E), w, b, self.stride, self.padding, self.output_padding,
                                               E, self.dilation)
        else:
            y = nn.functional.conv2d(_grouped(x, E), w, b, self.stride, self.padding, self.dilation, E)
        return _ungrouped(y, E)


class EnsembleBatchNorm2d(EnsembleBatchNorm1d):
    """E independent BatchNorm2d layers over member-major images [E * n, C, H, W]: each member's channels
    normalised over its own n samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        E = len(self.weight)
        if self.training:
            self.num_batches_tracked.add_(1)
        y = nn.functional.batch_norm(_grouped(x, E), self.running_mean.view(-1), self.running_var.view(-1),
                                     self.weight.view(-1), self.bias.view(-1), self.training, self.momentum, self.eps)
        return _ungrouped(y, E)


class EnsembleEmbedding(nn.Module):
    """E independent embeddings (a conditional G's class vectors, a projection D's): weight [E, K, dim]; labels c
    [E * n] member-major (or [E, n]) -> member e's rows for its own labels, [*c.shape, dim]."""

    def __init__(self, layers: list[nn.Embedding]):
        super().__init__()
        first = layers[0]
        if first.padding_idx is not None or first.max_norm is not None or first.sparse:
            raise ConfigError("seed ensembles stack plain embeddings only (no padding_idx, max_norm or sparse)")
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        w = self.weight
        E, K, _ = w.shape
        rows = c.long().reshape(E, -1) + K * torch.arange(E, device=c.device).unsqueeze(1)  # member e: rows e K + c
        return nn.functional.embedding(rows, w.reshape(E * K, -1)).reshape(*c.shape, -1)


class EnsembleSpectralNorm(nn.Module):
    """Spectral normalisation of a stacked weight [E, ...] (a parametrization): member e's slice W_e divided by its
    own largest singular value, sigma_e = u_e^T W_e v_e, with one power iteration per training forward on its own
    u_e [E, h] and v_e [E, w] -- torch's `spectral_norm` of each member (same buffer names, so a member's state is a
    plain run's); the iteration and sigma in fp32 also for a bf16 working weight (as `precision._FP32SpectralNorm`)."""

    def __init__(self, u: torch.Tensor, v: torch.Tensor, dim: int, eps: float, n_power_iterations: int):
        super().__init__()
        self.dim, self.eps, self.n_power_iterations = dim, eps, n_power_iterations
        self.register_buffer("_u", u)
        self.register_buffer("_v", v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        W = weight.float().movedim(self.dim + 1, 1).flatten(2)  # [E, h, w]: each member's matrix
        if self.training:
            with torch.no_grad():
                for _ in range(self.n_power_iterations):  # in place: a bf16 working copy shares these buffers
                    self._u.copy_(nn.functional.normalize((W @ self._v.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps))
                    self._v.copy_(nn.functional.normalize((W.transpose(1, 2) @ self._u.unsqueeze(2)).squeeze(2), dim=1,
                                                          eps=self.eps))
        u, v = self._u.clone(), self._v.clone()
        sigma = (u.unsqueeze(1) @ (W @ v.unsqueeze(2))).reshape(-1, *[1] * (weight.dim() - 1))  # [E, 1, ...]
        return (weight.float() / sigma).to(weight.dtype)


def _raw_weight(layer: nn.Module) -> torch.Tensor:
    """A layer's weight parameter itself (under spectral normalisation: the unnormalised one, computing nothing)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def _stack_spectral_norm(stacked: nn.Module, layers: list[nn.Module]) -> None:
    """Give a stacked layer the members' spectral normalisation (their u, v as they are: nothing iterates here)."""
    if not parametrize.is_parametrized(layers[0]):
        return
    lists = [layer.parametrizations for layer in layers]
    if set(lists[0].keys()) != {"weight"} or len(lists[0].weight) != 1 or not isinstance(lists[0].weight[0],
                                                                                          _SpectralNorm):
        raise ConfigError("seed ensembles stack spectral normalisation of the weight only")
    sns = [p.weight[0] for p in lists]
    first = sns[0]
    sn = EnsembleSpectralNorm(torch.stack([m._u for m in sns]).clone(), torch.stack([m._v for m in sns]).clone(),
                              first.dim, first.eps, first.n_power_iterations)
    parametrize.register_parametrization(stacked, "weight", sn, unsafe=True)  # unsafe: no trial forward


class EnsembleMinibatchStd(MinibatchStd):
    """MinibatchStd over member-major samples [E * n, ...]: member e's statistic over its own n samples only."""

    def __init__(self, inner: nn.Module, extra: int, members: int):
        super().__init__(inner, extra)
        self.members = members

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        each = x.reshape(self.members, -1, *x.shape[1:]).flatten(2)  # [E, n, d]
        n = each.shape[1]
        s = each.float().std(1, unbiased=False).mean(1).to(x.dtype) if n > 1 else x.new_zeros(self.members)
        return self.inner(torch.cat([x, s.repeat_interleave(n).unsqueeze(1).expand(-1, self.extra)], 1), c)


class EnsemblePacked(Packed):
    """Packed over member-major samples [E * n, ...]: groups of `pack` consecutive samples of one member (a member's
    batch that does not divide is judged as a plain run's: every sample packed with copies of itself)."""

    def __init__(self, inner: nn.Module, pack: int, members: int):
        super().__init__(inner, pack)
        self.members = members

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or (len(x) // self.members) % self.pack:
            x = x.repeat_interleave(self.pack, 0)
        return self.inner(x.reshape(len(x) // self.pack, -1))


_STACKED: dict[type, type] = {}


def _stacked_class(cls: type) -> type:
    """`cls` whose forward takes sample-major tensors [n, E, ...] (class labels c [n, E]) and runs `cls.forward` on
    member-major ones [E * n, ...]: the plain code (concatenations along dim 1, one-hot labels, reshapes to images)
    runs unchanged, and the stacked layers split the first dimension into members."""
    if cls not in _STACKED:
        def forward(self, x, c=None):
            n, E = x.shape[:2]
            x = x.transpose(0, 1).reshape(E * n, *x.shape[2:])
            if c is None:
                out = cls.forward(self, x)
            else:
                out = cls.forward(self, x, c.transpose(0, 1).reshape(E * n, *c.shape[2:]))
            return out.reshape(E, -1, *out.shape[1:]).transpose(0, 1)  # (a packed D: n / pack outputs per member)

        _STACKED[cls] = type(f"Stacked{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__,
                                                                 "__doc__": f"E stacked {cls.__name__}s."})
    return _STACKED[cls]


def _linear(layers: list[nn.Linear]) -> EnsembleLinear:
    bias = None if layers[0].bias is None else torch.stack([layer.bias.detach() for layer in layers]).clone()
    return EnsembleLinear(torch.stack([_raw_weight(layer).detach() for layer in layers]).clone(), bias)


def _batchnorm(stacked: type):
    def build(layers):
        if not (layers[0].affine and layers[0].track_running_stats):
            raise ConfigError("seed ensembles stack BatchNorm with affine parameters and running statistics only")
        return stacked(layers)
    return build


# layers with weights: plain type -> what builds its stacked version from the members' layers
_STACKABLE = {nn.Linear: _linear, nn.BatchNorm1d: _batchnorm(EnsembleBatchNorm1d),
              nn.BatchNorm2d: _batchnorm(EnsembleBatchNorm2d), nn.Conv2d: EnsembleConv, nn.ConvTranspose2d: EnsembleConv,
              nn.Embedding: EnsembleEmbedding}
# layers that act on each sample alone (or hold layers that stack): they run unchanged on member-major samples
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Sigmoid, nn.Tanh, nn.Sequential, nn.Flatten, Maxout,
                MaxoutConv2d, Dropout, Projection)


def stack(nets: list[nn.Module]) -> nn.Module:
    """One network running `nets` (same architecture) side by side: every nn.Linear becomes an EnsembleLinear of
    the members' weights (convolutions, BatchNorms and embeddings likewise, spectral normalisation per member);
    parameter and buffer names are the plain ones, with a leading member dimension."""
    stacked = _stack_layers(nets)
    stacked.__class__ = _stacked_class(type(stacked))
    return stacked


def _stack_layers(nets: list[nn.Module]) -> nn.Module:
    """`stack` without the sample-major interface: takes and returns member-major samples [E * n, ...]."""
    first = nets[0]
    if isinstance(first, MinibatchStd):  # D's wrappers: the statistic and the groups per member
        return EnsembleMinibatchStd(_stack_layers([net.inner for net in nets]), first.extra, len(nets))
    if isinstance(first, Packed):
        return EnsemblePacked(_stack_layers([net.inner for net in nets]), first.pack, len(nets))
    stacked = copy.deepcopy(first)
    per_member = [dict(net.named_modules()) for net in nets]
    replaced: list[str] = []
    for name, module in list(stacked.named_modules()):
        if any(name.startswith(r + ".") for r in replaced):  # inside a layer already stacked (its parametrization)
            continue
        build = next((b for t, b in _STACKABLE.items() if isinstance(module, t)), None)
        if build is not None:
            layers = [m[name] for m in per_member]
            new = build(layers)
            _stack_spectral_norm(new, layers)
            parent, _, child = name.rpartition(".")
            setattr(stacked.get_submodule(parent) if parent else stacked, child, new)
            replaced.append(name)
        elif not isinstance(module, _ELEMENTWISE) and name:
            raise ConfigError(f"seed ensembles cannot stack layer {name} ({type(module).__name__}) yet")
    return stacked


def unstack(state: dict, e: int) -> dict:
    """Member e's plain state dict from a stacked one."""
    return {k: v[e].clone() for k, v in state.items()}


def members_of(arch: dict) -> int:
    return int(arch.get("members", 1))


def swept(cfg) -> tuple[str, list] | None:
    """(key, each member's value) of the run's sweep, or None."""
    sweep = parse_sweep(cfg.sweep)
    if sweep is None:
        return None
    return sweep[0], [getattr(member_config(cfg, e), sweep[0]) for e in range(n_members(cfg))]


def _per_member(values) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def build(cfg, data=None, device=None):
    """The ensemble's GAN: member e initialised as `gankit.gan.build` initialises `member_config(cfg, e)` (same RNG
    seeding, same construction order), then stacked."""
    from gankit.data import load_dataset
    from gankit.device import resolve_device
    from gankit.gan import GAN
    from gankit.models import architecture, construct

    reason = unsupported(cfg)
    if reason:
        raise ConfigError(reason)
    device = device or resolve_device(cfg.device)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.split, cfg.data_dir, cfg.subset, cfg.pixel_range,
                            image_size=cfg.image_size)
    Gs, Ds, arch, n = [], [], None, n_members(cfg)
    for e in range(n):
        torch.manual_seed(member_config(cfg, e).seed)
        arch = architecture(cfg, data)
        G, D = construct(arch)
        Gs.append(G)
        Ds.append(D)
    G, D = stack(Gs), stack(Ds)
    G_ema = copy.deepcopy(G).requires_grad_(False).to(device) if member_config(cfg, 0).ema > 0 else None
    return GAN(G.to(device), D.to(device), cfg, data.spec(), device, G_ema, {**arch, "members": n}, data)


def member_state(state: dict, e: int | None, path) -> dict:
    """A checkpoint dict of an ensemble run turned into member e's plain one (config `member_config(cfg, e)`, plain
    arch and weights), which `gankit.gan.from_checkpoint` loads like any run's."""
    from gankit.config import from_dict

    n = members_of(state.get("arch", {})) if isinstance(state.get("arch"), dict) else 1
    if n == 1:
        if e not in (None, 0):
            raise UsageError(f"--member {e}: {path} holds one GAN, not an ensemble")
        return state
    if e is None:
        c = state.get("config", {})
        what = f"sweep {c['sweep']} x " if c.get("sweep") else ""
        what += f"seeds {c.get('seed', 0)}..{c.get('seed', 0) + c.get('seeds', n) - 1}"
        raise UsageError(f"{path} holds an ensemble of {n} GANs ({what}); choose one with --member 0..{n - 1}")
    if not 0 <= e < n:
        raise UsageError(f"--member must be in [0, {n - 1}] for this ensemble of {n}, got {e}")
    try:
        cfg = from_dict(state["config"])
        if n_members(cfg) != n:
            raise CheckpointError(f"checkpoint {path} holds {n} members, its config makes {n_members(cfg)}")
        out = {**state, "config": member_config(cfg, e).to_dict(),
               "arch": {k: v for k, v in state["arch"].items() if k != "members"}}
        for key in ("G", "D", "G_ema"):
            if key in state:
                out[key] = unstack(state[key], e)
    except (KeyError, TypeError, IndexError, AttributeError, ConfigError) as err:
        raise CheckpointError(f"checkpoint {path} does not hold a complete ensemble: {type(err).__name__}: {err}") \
            from None
    return out


def member(gan, e: int):
    """Member e of an ensemble GAN as a plain GAN (its own copy of the current weights): every tool works on it."""
    from gankit.gan import GAN
    from gankit.models import construct

    arch = {k: v for k, v in gan.arch.items() if k != "members"}
    G, D = construct(arch)
    G_ema = None if gan.G_ema is None else copy.deepcopy(G).requires_grad_(False).to(gan.device)
    cfg = member_config(gan.cfg, e)
    one = GAN(G.to(gan.device), D.to(gan.device), cfg, gan.spec, gan.device, G_ema, arch, gan._data, gan.step)
    return load_member(one, gan, e)


def load_member(one, gan, e: int):
    """Member e's current weights (G, D, G's average) copied into `one`, a plain GAN of the ensemble's architecture."""
    one.G.load_state_dict(unstack(gan.G.state_dict(), e))
    one.D.load_state_dict(unstack(gan.D.state_dict(), e))
    if gan.G_ema is not None:
        one.G_ema.load_state_dict(unstack(gan.G_ema.state_dict(), e))
    return one


class Batches:
    """Each member's minibatches in its own data order (a plain run's `Batches` with its seed), stacked as
    [m, E, ...], with (conditional) each member's own labels [m, E]; counting (epochs, steps) is the plain runs'."""

    def __init__(self, x: torch.Tensor, m: int, seeds: list[int], rank: int = 0, world: int = 1, labels=None,
                 reals_per_step: int = 1):
        self.members = [PlainBatches(x, m, seed, rank, world, labels, reals_per_step) for seed in seeds]
        first = self.members[0]
        self.per_epoch, self.reals_per_step = first.per_epoch, first.reals_per_step
        self.epoch_at, self.steps_for, self.epoch_ends_at, self.first_of = (first.epoch_at, first.steps_for,
                                                                            first.epoch_ends_at, first.first_of)

    def __call__(self, b: int):
        xs, ys = zip(*(batches(b) for batches in self.members))
        return torch.stack(xs, 1), None if ys[0] is None else torch.stack(ys, 1)


class Noise:
    """Each member's m noise vectors from its own generator, seeded as the member's plain run seeds its global one
    for training (its seed + 1), stacked as [m, E, z_dim]. Under torchrun, as a plain run: every rank draws the
    global m * world and keeps its own shard."""

    def __init__(self, cfg, m: int, device, rank: int = 0, world: int = 1):
        self.cfg, self.m, self.device, self.rank, self.world = cfg, m, torch.device(device), rank, world
        self.generators = [torch.Generator(self.device).manual_seed(member_config(cfg, e).seed + 1)
                           for e in range(n_members(cfg))]

    def __call__(self) -> torch.Tensor:
        lo, n = self.rank * self.m, self.m * self.world
        return torch.stack([sample_noise(n, self.cfg.z_dim, self.cfg.noise, self.device, g)[lo:lo + self.m]
                            for g in self.generators], 1)

    def state_dict(self) -> list:
        return [g.get_state() for g in self.generators]

    def load_state_dict(self, states: list) -> None:
        if not isinstance(states, list) or len(states) != len(self.generators):
            raise ValueError(f"noise generator states for {len(states)} members, the ensemble has "
                             f"{len(self.generators)}")
        for g, s in zip(self.generators, states):
            g.set_state(s)


@dataclasses.dataclass
class State(TrainState):
    """The train state of an ensemble: a plain one whose checkpoint also holds the members' noise generators. Under
    a sweep of an optimiser key (`cfg`), each player's optimiser is a `MemberAdam`/`MemberSGD` whose per-member lr
    (and momentum) the schedule sets from each member's own config; under a sweep of ema, each member's weight
    average decays at its own rate."""

    cfg: object = None  # the ensemble's config (None: every member trains with the config's own values)

    def __post_init__(self):
        self.members = [] if self.cfg is None else [member_config(self.cfg, e) for e in range(n_members(self.cfg))]
        key = parse_sweep(self.cfg.sweep)[0] if self.cfg is not None and self.cfg.sweep else None
        self.emas = _per_member(c.ema for c in self.members) if key == "ema" else None
        if key in OPTIMISER_KEYS:
            for p, role in ((self.G, "G"), (self.D, "D")):
                p.opt = _member_optimiser(self.cfg, self.members, p, role)

    def schedule(self, cfg, epoch: float) -> None:
        super().schedule(cfg, epoch)
        for p, role in ((self.G, "G"), (self.D, "D")):
            if isinstance(p.opt, (optim.MemberAdam, optim.MemberSGD)):
                now = [optim.schedule_at(c, _base_lr(c, role), self.step, epoch) for c in self.members]
                p.opt.hyper["lr"] = _per_member(lr for lr, _ in now)
                if isinstance(p.opt, optim.MemberSGD):
                    p.opt.hyper["momentum"] = _per_member(mu for _, mu in now)

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.G_ema is None or self.emas is None:
            return super().update_ema()
        decay = self.emas.clamp(max=(1 + self.step) / (10 + self.step))  # each member's min(ema, ramp)
        for avg, p in zip(self.G_ema.parameters(), self.G.master.parameters()):
            avg.lerp_(p, optim._per_member(1 - decay, p))
        buffers = list(self.G_ema.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(self.G.master.buffers()))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "noise_rng": self.noise.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.noise.load_state_dict(state["noise_rng"])


def _base_lr(c, role: str) -> float:
    return c.lr if role == "G" else c.lr_d or c.lr


def _member_optimiser(cfg, members: list, p: Player, role: str) -> torch.optim.Optimizer:
    """The player's optimiser with each member's own hyperparameters (tensors [E])."""
    params, lr = list(p.master.parameters()), _per_member(_base_lr(c, role) for c in members)
    if cfg.optimizer == "adam":
        return optim.MemberAdam(params, lr, _per_member(c.momentum for c in members),
                                _per_member(c.beta2 for c in members))
    return optim.MemberSGD(params, lr, _per_member(c.momentum for c in members))


class Game:
    """An objective for stacked networks: the plain game's losses and stats (means over all E * m logits), the
    losses and D's penalties multiplied by E so that each member's gradient is the plain run's. Gradient penalties
    stay per member: the penalty's samples are indexed by (sample, member); a swept penalty weight weighs each
    member's samples by its own value."""

    def __init__(self, game, cfg):
        from gankit.objectives import Penalties

        self.game, self.E = game, float(n_members(cfg))
        sweep = swept(cfg)
        if sweep and sweep[0] in PENALTY_KEYS and game.penalties is not None:
            name, weights, old = PENALTY_KEYS[sweep[0]], _per_member(sweep[1]), game.penalties
            scalars = {"gp": old.gp, "r1": old.r1, "r2": old.r2, name: float(weights.max())}
            game.penalties = Penalties(**scalars, every=old.every, members={name: weights})
            game.logged = type(game).logged + game.penalties.names
        if game.penalties is not None:
            game.penalties.lead = 2

    def __getattr__(self, name):
        return getattr(self.game, name)

    def d_loss(self, *args, **kwargs):
        loss, stats = self.game.d_loss(*args, **kwargs)
        return self.E * loss, stats

    def g_loss(self, *args, **kwargs):
        loss, stats = self.game.g_loss(*args, **kwargs)
        return self.E * loss, stats

    def joint_losses(self, *args, **kwargs):
        d, g, stats = self.game.joint_losses(*args, **kwargs)
        return self.E * d, self.E * g, stats

    def d_penalty(self, *args, **kwargs):
        penalty, stats = self.game.d_penalty(*args, **kwargs)
        return (None if penalty is None else self.E * penalty), stats


SHOWN = 4  # members side by side in the pictures


def shown(cfg) -> range:
    """The members the pictures show: the first SHOWN (a sweep: the first seed of each value)."""
    return range(0, n_members(cfg), cfg.seeds if cfg.sweep else 1)[:SHOWN]


class Pictures(Hook):
    """The first few members' samples of fixed noise over their D, side by side in one picture (every `every` steps,
    or at each epoch's end when 0, and at the end)."""

    def __init__(self, run_dir: Path, gan, z_fixed: torch.Tensor, every: int, epoch_ends_at):
        self.run_dir, self.gan, self.z, self.every, self.epoch_ends_at = run_dir, gan, z_fixed, every, epoch_ends_at
        self.drawn = None

    def after_step(self, s, stats, last):
        due = s.step % self.every == 0 if self.every else self.epoch_ends_at(s.step)
        if due or last:
            check_finite(s.step, modules={"G": s.G.master, "D": s.D.master})
            self.draw(s.step)

    def draw(self, step: int) -> None:
        import tempfile

        from PIL import Image

        from gankit.plots import conditional_layout, plot_conditional, plot_samples

        cfg = self.gan.cfg
        path = self.run_dir / "samples" / f"step-{step:08d}.png"
        with tempfile.TemporaryDirectory() as tmp, on_disk("write", path):
            tiles = []
            for e in shown(cfg):
                gan = member(self.gan, e)
                tile = Path(tmp) / f"{e}.png"
                title = f"{gan.cfg.dataset}, seed {gan.cfg.seed}{_label(cfg, gan.cfg)}, step {step}"
                if gan.n_classes:  # conditional: one row (images) or one colour (toys) per class, as a plain run's
                    c = conditional_layout(gan.n_classes, len(self.z) // gan.n_classes)
                    plot_conditional(gan.sample(len(c), self.z[:len(c)], c=c).cpu(), c, gan.spec, tile, title)
                else:
                    plot_samples(gan.sample(len(self.z), self.z).cpu(), gan.spec,
                                 lambda t, g=gan: g.discriminate(t).cpu().numpy(), tile, title)
                tiles.append(Image.open(tile).convert("RGB"))
            picture = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)), "white")
            x = 0
            for t in tiles:
                picture.paste(t, (x, 0))
                x += t.width
            picture.save(path)
        self.drawn = (step, path)

    def close(self, s, summary):
        summary["warnings"] = []


def _label(cfg, c) -> str:
    """', KEY VALUE' of member config c in a sweep run `cfg` ('' without a sweep)."""
    sweep = parse_sweep(cfg.sweep)
    return f", {sweep[0]} {getattr(c, sweep[0]):g}" if sweep else ""


def spread(values: list[float]) -> dict:
    """mean, std (population), min, max of a metric over the members."""
    mean = sum(values) / len(values)
    return {"mean": mean, "std": (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5,
            "min": min(values), "max": max(values)}


MODE_NUMBERS = ("modes_covered", "high_quality_fraction", "kl_to_uniform")
RANKED_BY = ("modes_covered", "high_quality_fraction")  # toys: more modes first, then more high-quality samples


def ranking(rows: list[dict], key: str, metric: str = "modes") -> list[dict]:
    """The swept values of `key`, best first by the mean over their seeds of each of RANKED_BY in turn (every value
    on the same seeds): per value its seeds and the spread of each of MODE_NUMBERS of the members' `metric`."""
    out = []
    for value in dict.fromkeys(r[key] for r in rows):
        mine = [r for r in rows if r[key] == value]
        out.append({"value": value, "seeds": [r["seed"] for r in mine],
                    **{k: spread([float(r[metric][k]) for r in mine]) for k in MODE_NUMBERS}})
    out.sort(key=lambda r: tuple(-r[k]["mean"] for k in RANKED_BY))
    return [{"rank": i + 1, **r} for i, r in enumerate(out)]


def member_key(name: str, e: int) -> str:
    """The metrics.jsonl key of member e's value of a monitor (as `gankit eval` names a member's result)."""
    return f"{name}:member{e}"


class Monitors:
    """The validation monitor (`gankit.monitor`) of every member: one plain monitor, built once (held-out data,
    classifier, fixed z) on a plain GAN of the ensemble's architecture that takes each member's current weights in
    turn, so member e's value is the plain monitor's on `member(gan, e)`."""

    def __init__(self, name: str, gan):
        from gankit.monitor import build as build_monitor

        self.gan, self.one, self.members = gan, member(gan, 0), members_of(gan.arch)
        self.plain = build_monitor(name, self.one)
        self.name, self.higher, self.better = self.plain.name, self.plain.higher, self.plain.better

    def values(self) -> list[float]:
        out = []
        for e in range(self.members):
            load_member(self.one, self.gan, e)
            out.append(float(self.plain.value()))
        return out


class Validation(hooks.Validation):
    """An ensemble's validation monitor (`monitor`: a `Monitors`): each member's value (row key NAME:memberE) and
    their mean (NAME, which the plotting and the plain run's readers take); checkpoints/best.pt, one stacked file,
    is kept at the best mean, and each member's own best logged value, step and epoch go to summary.json (a resumed
    run folds in the rows already logged)."""

    def __init__(self, run_dir: Path, monitor, every: int, epoch_ends_at, header: dict, epoch_at):
        from gankit import rundir

        super().__init__(run_dir, monitor, every, epoch_ends_at, header)
        self.epoch_at = epoch_at
        self.members_best: list[dict | None] = [None] * (monitor.members if monitor is not None else 0)
        for row in rundir.read_metrics(run_dir) if monitor is not None else []:
            for e in range(monitor.members):
                if member_key(monitor.name, e) in row:
                    self._member(e, row[member_key(monitor.name, e)], row["step"], row["epoch"])

    def _member(self, e: int, value: float, step: int, epoch: float) -> None:
        best = self.members_best[e]
        if self.monitor.better(value, None if best is None else best["value"]):
            self.members_best[e] = {"metric": self.monitor.name, "value": value, "step": step, "epoch": epoch}

    def __call__(self, s) -> dict:
        values = self.monitor.values()
        row = self.keep(s, sum(values) / len(values))
        for e, v in enumerate(values):
            row[member_key(self.monitor.name, e)] = round(v, 4)
            self._member(e, round(v, 4), s.step, self.epoch_at(s.step))
        return row


class Summary(Hook):
    """At the end: every member's mode coverage (toy data, finished runs) and the ensemble's mean, std, min and
    max of each, the loss curves and summary.json (`members`, `ensemble`; under a sweep each row's value and
    `sweep`: the values ranked by mode coverage, mean ± std over the seeds; with --monitor each row's `best`)."""

    def __init__(self, run_dir: Path, gan, validation: Validation | None = None):
        self.run_dir, self.gan, self.validation = run_dir, gan, validation

    def close(self, s, summary):
        from gankit import rundir
        from gankit.metrics.modes import mode_metrics
        from gankit.plots import plot_losses

        spec, cfg = self.gan.spec, self.gan.cfg
        sweep = parse_sweep(cfg.sweep)
        rows = []
        for e in range(n_members(cfg)):
            c = member_config(cfg, e)
            row = {"member": e, "seed": c.seed, **({sweep[0]: getattr(c, sweep[0])} if sweep else {})}
            if spec.kind == "toy" and not summary["interrupted"]:
                g = torch.Generator().manual_seed(c.seed + 2)  # each member's own evaluation noise (a seed's, paired)
                z = sample_noise(eval_samples(len(spec.modes)), cfg.z_dim, cfg.noise, "cpu", g).to(self.gan.device)
                one = member(self.gan, e)
                row["modes"] = mode_metrics(one.sample(len(z), z).cpu(), spec.modes, spec.mode_std)
                if one.n_classes:  # conditional: each class on its own mode? (a plain run's summary, on the same z)
                    from gankit.metrics.conditional import on_mode

                    c = torch.arange(len(z)) % one.n_classes
                    row["class_on_mode"] = on_mode(one.sample(len(z), z, c=c).cpu(), c, spec.modes, spec.mode_std)
            if self.validation is not None and self.validation.members_best[e] is not None:
                row["best"] = self.validation.members_best[e]  # its own best logged value (best.pt: the mean's)
            rows.append(row)
        summary["members"] = rows
        if "modes" in rows[0]:
            summary["ensemble"] = {"modes": {k: spread([float(r["modes"][k]) for r in rows]) for k in MODE_NUMBERS}}
            if sweep:
                summary["sweep"] = {"key": sweep[0], "ranked": ranking(rows, sweep[0])}
        with on_disk("write", self.run_dir / "losses.png"):
            plot_losses(rundir.read_metrics(self.run_dir), self.run_dir / "losses.png")
        rundir.write_json(self.run_dir, "summary.json", summary)


def summary_line(summary: dict) -> str:
    """The ensemble's mode coverage in one line, for the CLI (a sweep: each value's, best first)."""
    ens = summary.get("ensemble", {}).get("modes")
    if not ens:
        return ""
    n = summary["members"][0]["modes"]["n_modes"]
    if "sweep" in summary:
        ranked = summary["sweep"]["ranked"]
        each = " | ".join(f"{r['value']:g}: {r['modes_covered']['mean']:.1f} ± {r['modes_covered']['std']:.1f}/{n} "
                          f"modes, high-quality {r['high_quality_fraction']['mean']:.1%} ± "
                          f"{r['high_quality_fraction']['std']:.1%}" for r in ranked)
        return f"; {summary['sweep']['key']} over {len(ranked[0]['seeds'])} seeds, best first: {each}"
    mc, hq = ens["modes_covered"], ens["high_quality_fraction"]
    return (f"; {len(summary['members'])} seeds: modes covered {mc['mean']:.1f} ± {mc['std']:.1f}/{n} "
            f"(min {mc['min']:.0f}, max {mc['max']:.0f}), high-quality {hq['mean']:.1%} ± {hq['std']:.1%}")


__all__ = ["EnsembleLinear", "stack", "unstack", "build", "member", "member_state", "Batches", "Noise", "State", "Game",
           "Pictures", "Summary", "Monitors", "Validation", "spread", "ranking", "unsupported", "member_config",
           "n_members", "swept"]
