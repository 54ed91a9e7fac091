"""A trained (or training) generator/discriminator pair with what is needed to use it, and the
self-contained checkpoint it is rebuilt from (no training data needed)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gankit import checkpoint
from gankit.config import Config, from_dict
from gankit.data import Data, DataSpec, load_dataset
from gankit.device import resolve_device
from gankit.errors import CheckpointError, GankitError, UsageError, first_line
from gankit.models import architecture, construct, construct_encoder, context_dim, n_classes
from gankit.noise import sample_noise

FORMAT = 2  # checkpoints that carry their config, the networks' constructor arguments and the data's spec


@dataclass
class GAN:
    """G and D (fp32 masters), the run's config and its data's spec; `data` loads the samples on demand."""

    G: torch.nn.Module
    D: torch.nn.Module
    cfg: Config
    spec: DataSpec
    device: torch.device
    G_ema: torch.nn.Module | None = None  # moving average of G's weights, when cfg.ema > 0
    arch: dict = field(default_factory=dict)
    _data: Data | None = None
    step: int | None = None  # the training step of the checkpoint it was loaded from
    E: torch.nn.Module | None = None  # the encoder x -> z trained jointly with G (BiGAN, cfg.encoder)
    truncation: float | None = None  # sampling only: z_i drawn from p_z restricted to [-t, t] (see sample_noise)

    @property
    def data(self) -> Data:
        """The training data (loaded on first use, per the config)."""
        if self._data is None:
            c = self.cfg
            self._data = load_dataset(c.dataset, c.split, c.data_dir, c.subset, c.pixel_range, image_size=c.image_size)
        return self._data

    @property
    def n_classes(self) -> int:
        """The number of classes of a conditional run (c in 0 .. n_classes - 1); 0 when unconditional."""
        return n_classes(self.G)

    @property
    def context_dim(self) -> int:
        """The length of the image context c an inpainting run's G and D take (trained with --inpaint); else 0."""
        return context_dim(self.G)

    def condition(self, n: int, c=None) -> torch.Tensor | None:
        """What n samples are conditioned on: class labels (see `classes`), or for an inpainting run the context
        c [n, context_dim] of each image (`gankit.inpaint.context`), which it requires."""
        if not self.context_dim:
            return self.classes(n, c)
        if c is None:
            raise UsageError("this run completes images (trained with --inpaint): G and D take the context c of each "
                             "image (see gankit.inpaint)")
        c = torch.as_tensor(c, device=self.device).float()
        if c.shape != (n, self.context_dim):
            raise UsageError(f"the contexts must have shape ({n}, {self.context_dim}), got {tuple(c.shape)}")
        return c

    def classes(self, n: int, c=None) -> torch.Tensor | None:
        """The labels of n conditional samples: `c` (an int or [n] labels) checked against the classes, or
        when None, 0, 1, ..., K-1, 0, 1, ... (balanced, as the label marginal of balanced data); None for an
        unconditional run, which refuses a given c."""
        k = self.n_classes
        if not k:
            if c is not None:
                raise UsageError(f"run on '{self.cfg.dataset}' is not conditional (trained without --conditional); "
                                 f"it takes no class")
            return None
        if c is None:
            return torch.arange(n, device=self.device) % k
        c = torch.as_tensor(c, device=self.device).long()
        c = c.expand(n) if c.dim() == 0 else c
        if c.shape != (n,):
            raise UsageError(f"class labels must be one label or {n}, got shape {tuple(c.shape)}")
        if len(c) and not (0 <= int(c.min()) and int(c.max()) < k):
            bad = int(c.min()) if int(c.min()) < 0 else int(c.max())
            raise UsageError(f"class {bad} is out of range: this run has {k} classes (0 to {k - 1})")
        return c

    @torch.no_grad()
    def sample(self, n: int, z: torch.Tensor | None = None, batch: int = 10_000, c=None) -> torch.Tensor:
        """n samples G(z) in eval mode (from the averaged G when there is one), z ~ p_z unless given (truncated to
        [-t, t] per coordinate when `truncation` is set). A
        conditional run samples p(x | c): c one class or n labels (default: every class in turn, see `classes`); an
        inpainting run completes images from their contexts c (see `condition`)."""
        G = self.G_ema if self.G_ema is not None else self.G
        if z is None:
            z = sample_noise(n, self.cfg.z_dim, self.cfg.noise, self.device, truncation=self.truncation)
        c = self.condition(len(z), c)
        with eval_mode(G):
            # (G(z) alone when there are no labels: any module taking z works)
            return torch.cat([(G(z[i:i + batch].to(self.device)) if c is None else
                               G(z[i:i + batch].to(self.device), c[i:i + batch])).float()
                              for i in range(0, len(z), batch)])

    @torch.no_grad()
    def discriminate(self, x: torch.Tensor, c=None) -> torch.Tensor:
        """D(x) in [0, 1] (eval mode: no dropout); D(x, c) for a conditional run (c: one class or a label per x) and
        for an inpainting run (c: each image's context)."""
        if self.n_classes and c is None:
            raise UsageError("this run's D is conditional: give the class c of the samples it judges")
        c = self.condition(len(x), c) if c is not None or self.context_dim else None
        if self.E is not None:  # a BiGAN's D judges pairs: D(x, E(x))
            x = x.to(self.device).float()
            with eval_mode(self.D):
                return torch.sigmoid(self.D(x, self.encode(x)))
        with eval_mode(self.D):
            x = x.to(self.device).float()
            return torch.sigmoid(self.D(x) if c is None else self.D(x, c))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch: int = 10_000) -> torch.Tensor:
        """E(x), the latents of samples x by the encoder trained jointly with G (eval mode); runs trained with
        --encoder only (`gankit.inference` fits one after training for the others)."""
        if self.E is None:
            raise UsageError(f"run on '{self.cfg.dataset}' has no jointly trained encoder (trained without --encoder)")
        with eval_mode(self.E):
            return torch.cat([self.E(x[i:i + batch].to(self.device).float()).float() for i in range(0, len(x), batch)])


class eval_mode:
    """Eval mode inside, the module's previous train/eval mode restored after."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __enter__(self):
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc):
        self.module.train(self.was_training)


def build(cfg: Config, data: Data | None = None, device: torch.device | None = None) -> GAN:
    """Load the data, seed with cfg.seed and initialise G and D (and G's average) on the device."""
    device = device or resolve_device(cfg.device)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.split, cfg.data_dir, cfg.subset, cfg.pixel_range,
                            image_size=cfg.image_size)
    torch.manual_seed(cfg.seed)
    arch = architecture(cfg, data)
    G, D = construct(arch)
    E = construct_encoder(arch)  # after G and D: runs without an encoder initialise as before
    if hasattr(D, "init_from_data"):  # a weight-normalised D initialised on a batch of data (models.semi)
        D.init_from_data(data.x[torch.randperm(len(data.x))[:500]])
    G_ema = copy.deepcopy(G).requires_grad_(False).to(device) if cfg.ema > 0 else None
    return GAN(G.to(device), D.to(device), cfg, data.spec(), device, G_ema, arch, data,
               E=None if E is None else E.to(device))


def header(gan: GAN) -> dict:
    """What a checkpoint carries besides the train state: enough to rebuild the GAN alone."""
    return {"format": FORMAT, "config": gan.cfg.to_dict(), "arch": gan.arch, "data": gan.spec.to_dict()}


def check_finite_weights(path, *modules) -> None:
    """CheckpointError when a checkpoint's weights hold NaN or inf (gankit never saves such a state)."""
    for m in modules:
        if m is not None and not all(bool(torch.isfinite(t).all()) for t in m.state_dict().values()
                                     if t.is_floating_point()):
            raise CheckpointError(f"checkpoint {path} holds non-finite weights; it was not written by a healthy run")


def one_line(e: BaseException) -> str:
    """An exception's message as one short line."""
    return f"{type(e).__name__}: {first_line(e)}"


def read(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint of this format, loaded without running code from it."""
    state = checkpoint.load(path, device)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format", 1) if isinstance(state, dict) else "unknown"
        raise CheckpointError(f"checkpoint {path} has format {found}; this gankit reads format {FORMAT} "
                              f"(self-contained checkpoints). Retrain the run, or use the gankit that wrote it")
    return state


def from_checkpoint(path: str | Path, device: str = "auto", data: Data | None = None, member: int | None = None) -> GAN:
    """Rebuild a GAN from a checkpoint alone: config, architecture and weights (G's average when saved). A seed
    ensemble's checkpoint gives its `member` (required there) as a plain GAN."""
    dev = resolve_device(device)
    state = read(path, dev)
    if member is not None or (isinstance(state.get("arch"), dict) and "members" in state["arch"]):
        from gankit.ensemble import member_state

        state = member_state(state, member, path)
    try:
        cfg = from_dict(state["config"])
        G, D = construct(state["arch"])
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        E = construct_encoder(state["arch"])
        if E is not None:
            E.load_state_dict(state["E"])
        G_ema = None
        if "G_ema" in state:
            G_ema = copy.deepcopy(G).requires_grad_(False)
            G_ema.load_state_dict(state["G_ema"])
        spec = DataSpec.from_dict(state["data"])
        check_finite_weights(path, G, D, G_ema, E)
    except GankitError:
        raise
    except Exception as e:  # noqa: BLE001 - everything above interprets the file's content
        raise CheckpointError(f"checkpoint {path} does not hold a complete gankit run: {one_line(e)}") from None
    return GAN(G.to(dev), D.to(dev), cfg, spec, dev, None if G_ema is None else G_ema.to(dev), state["arch"], data,
               state.get("step"), None if E is None else E.to(dev))
