"""One typed configuration object for a run: defaults, presets, TOML I/O and validation.

The CLI settles a `Config` (defaults < preset < TOML file < flags); everything below the CLI
receives that object and never reads argv. Loading a TOML file only parses data.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from gankit.data.registry import DATASETS, dataset_entry
from gankit.errors import ConfigError, DataError, on_disk
from gankit.models import MODELS, OUTPUT_BIAS_MODELS
from gankit.monitor import MONITORS
from gankit.objectives import G_LOSSES, OBJECTIVES
from gankit.registry import help_text

UPDATES = ("alternating", "simultaneous")
OPTIMIZERS = ("adam", "sgd")
NOISES = ("normal", "uniform")
OUTPUT_BIASES = ("mean", "code", "zero")
SGD_FORMS = ("torch", "pylearn2")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
PIXEL_RANGES = ("01", "pm1")
SPLITS = ("train", "valid", "trainval", "test")

__all__ = ["Config", "ConfigError", "PRESETS", "settle", "from_dict", "load", "dumps", "diff", "run_keys",
           "member_config", "n_members", "parse_sweep"]


def _f(default, help: str, role: str = "run"):
    """A config field with its --help line. role: 'run' (defines the run: compared on resume), 'exec' (how
    it executes: free to change on resume) or 'length' (steps/epochs: a resume extends the run to them)."""
    return field(default=default, metadata={"help": help, "role": role})


@dataclass
class Config:
    """Everything that defines a training run, and how it executes. Defaults train ring8 in well under
    2 minutes on 2 CPU cores."""

    # data
    dataset: str = _f("ring8", help_text(DATASETS))
    data_dir: str | None = _f(None, "directory holding the dataset's files", "exec")
    split: str = _f("train", "train | valid | trainval | test")
    image_size: int = _f(32, "image side for folder: datasets")
    subset: int | None = _f(None, "keep the first N training samples")
    pixel_range: str = _f("01", "01 ([0, 1], sigmoid) | pm1 ([-1, 1], tanh)")
    # model
    model: str = _f("mlp", help_text(MODELS))
    z_dim: int = _f(2, "noise dimension")
    noise: str = _f("normal", "normal | uniform (on [-sqrt 3, sqrt 3])")
    output_bias: str = _f("mean", "the paper nets' G output bias: mean (the inverse of the output nonlinearity at "
                          "each pixel's training mean, clipped to [0.001, 0.999]) | code (clipped to [1e-7, 1 - 1e-7], "
                          "as pylearn2's init_sigmoid_bias_from_marginals in the released code) | zero")
    hidden: int = _f(256, "width of hidden layers (mlp), base width (dcgan)")
    layers: int = _f(3, "hidden layers of the MLPs")
    conditional: bool = _f(False, "p(x | c): G and D take the class label c (toys: the mode index)")
    encoder: bool = _f(False, "BiGAN / ALI: train an encoder E: x -> z jointly with G; D judges pairs (x, E(x)) "
                       "against (G(z), z) (Donahue et al. 2017; Dumoulin et al. 2017); models mlp, bn-mlp")
    inpaint: str = _f("", "inpainting, p(x | visible pixels): G(z, c) completes each image from its context c (visible "
                      "pixels, mask), D judges D(x, c); masks drawn per image from any of left,right,top,bottom,"
                      "centre,random (images; models mlp, bn-mlp, dcgan; '' = off)")
    labels: int | None = _f(None, "semi-supervised: N labelled training samples, balanced over the classes and "
                            "drawn by --seed (objective semi-supervised)")
    # objective and Algorithm 1
    objective: str = _f("logistic", help_text(OBJECTIVES))
    loss: str = _f("nonsaturating", "generator loss: nonsaturating (default) | minimax")
    update: str = _f("alternating", "alternating (Algorithm 1) | simultaneous (one minibatch, both updates)")
    k: int = _f(1, "discriminator steps per iteration (alternating update)")
    batch_size: int = _f(256, "m, samples per minibatch (per process under torchrun)")
    steps: int | None = _f(6000, "iterations to train (on resume: the total to reach)", "length")
    epochs: float | None = _f(None, "passes of D over the real data (on resume: the total to reach)", "length")
    # optimiser (momentum is SGD's initial momentum or Adam's beta1)
    optimizer: str = _f("adam", "adam | sgd")
    lr: float = _f(1e-3, "learning rate")
    lr_d: float | None = _f(None, "discriminator learning rate (default: --lr)")
    momentum: float = _f(0.5, "SGD's initial momentum or Adam's beta1")
    final_momentum: float = _f(0.7, "SGD momentum reached at --momentum-saturate epochs")
    momentum_saturate: float = _f(250.0, "epoch at which SGD momentum reaches --final-momentum")
    lr_decay: float = _f(1.0, "divide lr by this every step")
    lr_min: float = _f(1e-6, "floor of the decayed lr")
    beta2: float = _f(0.9, "Adam's beta2")
    sgd_form: str = _f("torch", "torch (v <- mu v + grad, step lr v; momentum rising smoothly) | pylearn2 (the paper's "
                       "code: v <- mu v - lr grad, step v; momentum raised once per epoch, MomentumAdjustor start 1)")
    d_loss_scale: float = _f(1.0, "multiply D's loss by this (the paper's released code: 0.5)")
    ema: float = _f(0.999, "decay of the moving average of G's weights used for sampling (0 = off)")
    # stabilisers
    gp_weight: float = _f(10.0, "weight of wgan-gp's gradient penalty (||grad D(x_hat)|| - 1)^2")
    clip: float = _f(0.01, "wgan-clip: D's weights are clipped to [-clip, clip] after every update")
    r1: float = _f(0.0, "R1 penalty gamma/2 E||grad D(x)||^2 on real data (Mescheder et al. 2018; 0 = off; "
                    "default 0.1 on the 2-D mixtures in the logistic game)")
    r2: float = _f(0.0, "R2: the same penalty on generated data (0 = off)")
    reg_every: int = _f(1, "apply R1/R2 every N D updates, scaled by N (lazy regularisation)")
    diversity: float = _f(0.0, "mode seeking (MSGAN, Mao et al. 2019): G also minimises LAMBDA / (d_I / d_z + eps) on "
                          "pairs G(z1, c), G(z2, c), so its outputs depend on z (--inpaint, --conditional; 0 = off)")
    topk: float = _f(1.0, "top-k training (Sinha et al. 2020): G's loss keeps the fraction max(NU, decay^epoch) of its "
                     "minibatch that D rates most real (1 = off)")
    topk_decay: float = _f(0.99, "top-k: the kept fraction is multiplied by this every epoch, down to --topk")
    spectral_norm: bool = _f(False, "spectral normalisation of every layer of D (Miyato et al. 2018)")
    pack: int = _f(1, "PacGAN: D judges N samples at once (Lin et al. 2018; 1 = off)")
    minibatch_std: bool = _f(False, "append the batch's standard deviation to D's input (after Karras et al. 2018)")
    augment: str = _f("", "differentiable augmentation of D's inputs: any of translation,cutout,color (images)")
    # execution
    seed: int = _f(0, "random seed")
    seeds: int = _f(1, "train N independent GANs in one process, seeds seed .. seed+N-1, as stacked networks "
                    "(a seed ensemble; mlp, bn-mlp, paper, paper-conv, dcgan)")
    sweep: str = _f("", "KEY=V1,V2,...: train the seed ensemble once per value of one config key (lr, lr_d, momentum, "
                    "beta2, ema, r1, r2, gp_weight), every value on the same --seeds; one key per run ('' = off)")
    device: str = _f("auto", "auto | cpu | cuda", "exec")
    precision: str = _f("fp32", "fp32 | bf16 (training passes on bf16 copies of the weights; fp32 masters)")
    out: str | None = _f(None, "run directory (default runs/<dataset>-<time>)", "exec")
    log_every: int = _f(100, "steps between logged metrics", "exec")
    sample_every: int = _f(1000, "steps between sample pictures (0: every epoch)", "exec")
    checkpoint_every: int = _f(1000, "steps between checkpoints", "exec")
    keep_checkpoints: int = _f(1, "numbered checkpoints to keep", "exec")
    monitor: str = _f("", "metric on held-out data during training, best kept as checkpoints/best.pt: "
                      "parzen | fd | modes ('' = off; a seed ensemble: every member's and their mean, best.pt at "
                      "the best mean)", "exec")
    monitor_every: int = _f(0, "steps between monitor evaluations (0: at each epoch's end)", "exec")
    tensorboard: bool = _f(False, "also write TensorBoard event files to RUN/tensorboard (pip install "
                                  "gankit[tensorboard])", "exec")
    threads: int = _f(0, "CPU threads for training (0: auto, min(cores free now, what the model can use); toy "
                         "MLPs use 1)", "exec")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_keys() -> tuple[str, ...]:
    """The keys that define a run (compared when resuming)."""
    return tuple(f.name for f in fields(Config) if f.metadata["role"] == "run")


def help_of(key: str) -> str:
    return next(f.metadata["help"] for f in fields(Config) if f.name == key)


PRESETS: dict[str, dict] = {
    # Goodfellow et al. (2014), MNIST: the pylearn2 configuration of the paper's code.
    "paper-mnist": dict(
        dataset="mnist", model="paper", z_dim=100, noise="uniform", loss="nonsaturating",
        k=1, batch_size=100, optimizer="sgd", lr=0.1, momentum=0.5, final_momentum=0.7,
        momentum_saturate=250.0, lr_decay=1.000004, lr_min=1e-6, pixel_range="01",
        epochs=5.0, log_every=100, sample_every=0, checkpoint_every=500, ema=0.0,
    ),
}
# The released code itself (goodfeli/adversarial, mnist.yaml + AdversaryCost2): both players' gradients from
# one minibatch and one dropout forward of D, D's cross-entropy halved, pylearn2's momentum rule and schedule,
# and the validation Parzen monitor; it ran until stopped, so give --epochs.
PRESETS["paper-mnist-code"] = {**PRESETS["paper-mnist"], "update": "simultaneous", "d_loss_scale": 0.5,
                               "sgd_form": "pylearn2", "output_bias": "code", "monitor": "parzen", "epochs": 50.0}
PRESETS["paper-fashion-mnist"] = {**PRESETS["paper-mnist"], "dataset": "fashion-mnist"}
PRESETS["paper-kmnist"] = {**PRESETS["paper-mnist"], "dataset": "kmnist"}
# The paper's CIFAR-10 experiment: maxout-conv D, "deconvolutional" G. Layer sizes are gankit's (the
# paper gives none); optimiser and schedule as for MNIST; no max-norm constraints (see README).
PRESETS["paper-cifar10"] = {**PRESETS["paper-mnist"], "dataset": "cifar10", "model": "paper-conv"}
# DCGAN-style nets (width 32 to suit a CPU) over the image defaults: ~6 minutes for 8 epochs on 2 cores (bf16 ~5).
# On Fashion-MNIST in the hinge game (Lim & Ye 2017) with lr 3e-4: --precision bf16, 11 epochs, 7.3 minutes, FD
# 21-27, precision 0.66-0.70, recall 0.62-0.68 over three seeds (lr 2e-4 at 12 epochs: FD 28-31, recall 0.57-0.60; the
# logistic game: FD 45); with --conditional FD 6-9, precision 0.79-0.81 (README, "Sample quality on Fashion-MNIST").
# dcgan-mnist keeps the logistic game and lr 2e-4, where its figures were measured. The Fashion presets run the
# 11 epochs that fit 8 minutes on 2 cores in bf16; cdcgan-fashion-mnist is the same given the class labels.
_DCGAN = dict(model="dcgan", hidden=32, epochs=8.0)
PRESETS["dcgan-fashion-mnist"] = {**_DCGAN, "dataset": "fashion-mnist", "objective": "hinge", "lr": 3e-4,
                                  "epochs": 11.0}
PRESETS["cdcgan-fashion-mnist"] = PRESETS["dcgan-fashion-mnist"] | {"conditional": True}
PRESETS["dcgan-mnist"] = dict(dataset="mnist", **_DCGAN)
# Salimans et al. (2016), semi-supervised MNIST with 100 labels: K+1-class D, feature matching, Adam (beta1 0.5),
# m = 100; the 100 labels drawn from all 60,000 training images (trainval); 8 epochs (4,800 steps) suit a CPU.
PRESETS["semi-mnist"] = dict(dataset="mnist", split="trainval", model="semi-mlp", objective="semi-supervised",
                             labels=100, z_dim=100, noise="uniform", pixel_range="01", batch_size=100,
                             optimizer="adam", lr=3e-4, momentum=0.5, beta2=0.999, ema=0.0, epochs=8.0,
                             sample_every=0, checkpoint_every=1000)

# Defaults that depend on the kind of data, applied under presets, files and flags (see `settle`):
# for images, the common tutorial MLP with weight averaging covers all ten classes in a few epochs.
IMAGE_DEFAULTS = dict(
    model="bn-mlp", z_dim=100, batch_size=64, lr=2e-4, beta2=0.999, pixel_range="pm1", ema=0.999, epochs=20.0,
    sample_every=0, checkpoint_every=1000,
)
# For the 2-D mixtures in the logistic game, the R1 penalty: gamma = 0.1 covered grid25's 25 modes on 10 of 10
# seeds (the unpenalised game: 4 of 10) and ring8's 8 on 10 of 10 (benchmarks/objectives.py, README); and for
# grid25 twice the toy length, 12,000 steps, which lifts every seed's high-quality share over 90 % (at 6,000: 8 of
# 10); for grid100 four times it, 24,000 steps (at 6,000 no seed found more than one of its 100 modes; at 24,000,
# 62-89). Not for the jointly trained encoder, which takes no penalty, nor for the other games (not measured there).
MIXTURE_DEFAULTS = {"ring8": dict(r1=0.1), "grid25": dict(r1=0.1, steps=12_000), "grid100": dict(r1=0.1, steps=24_000)}
MIXTURES = tuple(MIXTURE_DEFAULTS)

_CHOICES = {
    "model": tuple(MODELS), "objective": tuple(OBJECTIVES), "loss": G_LOSSES, "update": UPDATES, "optimizer": OPTIMIZERS,
    "noise": NOISES, "output_bias": OUTPUT_BIASES, "device": DEVICES, "precision": PRECISIONS,
    "pixel_range": PIXEL_RANGES, "split": SPLITS, "sgd_form": SGD_FORMS, "monitor": ("",) + tuple(MONITORS),
}
_POSITIVE = ("image_size", "z_dim", "hidden", "layers", "k", "batch_size", "log_every",
             "checkpoint_every", "keep_checkpoints", "lr", "lr_min", "momentum_saturate")


# upper ends of the ranges, so an absurd value is refused by name instead of failing inside torch
_AT_MOST = {"image_size": 4096, "z_dim": 65536, "hidden": 65536, "layers": 100, "k": 10_000, "batch_size": 2**24,
            "steps": 10**12, "epochs": 1e6, "log_every": 10**12, "sample_every": 10**12, "checkpoint_every": 10**12,
            "keep_checkpoints": 10_000, "momentum_saturate": 1e9, "lr": 1e38, "lr_d": 1e38, "lr_decay": 1e6}


def _field_types() -> dict[str, tuple[type, bool]]:
    """Map field name -> (base type, optional?) from the dataclass annotations."""
    hints = typing.get_type_hints(Config)
    out = {}
    for f in fields(Config):
        t = hints[f.name]
        optional = False
        if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
            args = [a for a in typing.get_args(t) if a is not type(None)]
            optional, t = True, args[0]
        out[f.name] = (t, optional)
    return out


FIELD_TYPES = _field_types()


def coerce(key: str, value):
    """Check one value's type against the field (ints are accepted for floats), naming the key."""
    if key not in FIELD_TYPES:
        raise ConfigError(f"unknown config key '{key}' (known: {', '.join(FIELD_TYPES)})")
    t, optional = FIELD_TYPES[key]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key '{key}' must not be empty")
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if t is int and isinstance(value, bool) or not isinstance(value, t):
        raise ConfigError(f"config key '{key}' must be of type {t.__name__}, got {type(value).__name__} {value!r}")
    return value


def validate(cfg: Config) -> Config:
    """Raise ConfigError naming the first bad key; return cfg unchanged when valid."""
    for key in FIELD_TYPES:
        coerce(key, getattr(cfg, key))
    try:
        data_kind = dataset_entry(cfg.dataset).kinds[0]
    except DataError as e:
        raise ConfigError(f"config key 'dataset': {e}") from None
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"config key '{key}': unknown value '{getattr(cfg, key)}' (choose from {', '.join(choices)})")
    for key in _POSITIVE:
        v = getattr(cfg, key)
        if not (v > 0) or (isinstance(v, float) and not math.isfinite(v)):
            raise ConfigError(f"config key '{key}' must be > 0, got {v!r}")
    for key, top in _AT_MOST.items():
        if getattr(cfg, key) is not None and getattr(cfg, key) > top:
            raise ConfigError(f"config key '{key}' must be at most {top:g}, got {getattr(cfg, key)!r}")
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"config key 'seed' must be in [0, 2^32), got {cfg.seed!r}")
    if not 1 <= cfg.seeds <= 1000 or cfg.seed + cfg.seeds > 2**32:
        raise ConfigError(f"config key 'seeds' must be in [1, 1000] with seed + seeds <= 2^32, got {cfg.seeds!r}")
    sweep = parse_sweep(cfg.sweep)
    if cfg.seeds > 1 or sweep:
        from gankit.ensemble import unsupported

        if unsupported(cfg):
            raise ConfigError(f"config key '{'sweep' if sweep else 'seeds'}': {unsupported(cfg)}")
    if cfg.sample_every < 0:
        raise ConfigError(f"config key 'sample_every' must be >= 0 (0 = every epoch), got {cfg.sample_every!r}")
    if (cfg.steps is None) == (cfg.epochs is None):
        raise ConfigError("config keys 'steps' and 'epochs': set exactly one (the length of the run)")
    for key in ("steps", "subset"):
        v = getattr(cfg, key)
        if v is not None and v < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {v!r}")
    if cfg.epochs is not None and not (cfg.epochs > 0 and math.isfinite(cfg.epochs)):
        raise ConfigError(f"config key 'epochs' must be > 0, got {cfg.epochs!r}")
    if cfg.lr_d is not None and not (cfg.lr_d > 0 and math.isfinite(cfg.lr_d)):
        raise ConfigError(f"config key 'lr_d' must be > 0, got {cfg.lr_d!r}")
    for key in ("momentum", "final_momentum"):
        v = getattr(cfg, key)
        if not 0 <= v < 1:
            raise ConfigError(f"config key '{key}' must be in [0, 1), got {v!r}")
    if not 0 <= cfg.ema < 1:
        raise ConfigError(f"config key 'ema' must be in [0, 1), got {cfg.ema!r}")
    if not 0 <= cfg.beta2 < 1:
        raise ConfigError(f"config key 'beta2' must be in [0, 1), got {cfg.beta2!r}")
    if not (cfg.lr_decay >= 1 and math.isfinite(cfg.lr_decay)):
        raise ConfigError(f"config key 'lr_decay' must be >= 1 (lr is divided by it each step), got {cfg.lr_decay!r}")
    if data_kind not in MODELS[cfg.model].kinds:
        raise ConfigError(f"config key 'model': '{cfg.model}' is for {' and '.join(MODELS[cfg.model].kinds)} data, "
                          f"not dataset '{cfg.dataset}'")
    if cfg.output_bias != "mean" and cfg.model not in OUTPUT_BIAS_MODELS:
        raise ConfigError(f"config key 'output_bias': only the paper nets ({', '.join(OUTPUT_BIAS_MODELS)}) take their "
                          f"output bias from the data, not model '{cfg.model}'")
    for key in ("gp_weight", "clip"):
        if not (getattr(cfg, key) > 0 and math.isfinite(getattr(cfg, key))):
            raise ConfigError(f"config key '{key}' must be > 0, got {getattr(cfg, key)!r}")
    for key in ("r1", "r2"):
        if not (0 <= getattr(cfg, key) < math.inf):
            raise ConfigError(f"config key '{key}' must be >= 0 (0 = off), got {getattr(cfg, key)!r}")
    if not 1 <= cfg.reg_every <= 1000:
        raise ConfigError(f"config key 'reg_every' must be in [1, 1000], got {cfg.reg_every!r}")
    if not 1 <= cfg.pack <= 64 or cfg.batch_size % cfg.pack:
        raise ConfigError(f"config key 'pack' must be in [1, 64] and divide batch_size {cfg.batch_size}, "
                          f"got {cfg.pack!r}")
    from gankit.augment import POLICIES, parse

    bad = [p for p in parse(cfg.augment) if p not in POLICIES]
    if bad:
        raise ConfigError(f"config key 'augment': unknown policy '{bad[0]}' (choose from {', '.join(POLICIES)})")
    if parse(cfg.augment) and data_kind != "image":
        raise ConfigError(f"config key 'augment': augmentation is for images, not dataset '{cfg.dataset}'")
    if not (cfg.d_loss_scale > 0 and math.isfinite(cfg.d_loss_scale)):
        raise ConfigError(f"config key 'd_loss_scale' must be > 0, got {cfg.d_loss_scale!r}")
    if cfg.monitor and data_kind not in MONITORS[cfg.monitor].kinds:
        raise ConfigError(f"config key 'monitor': '{cfg.monitor}' is for {' and '.join(MONITORS[cfg.monitor].kinds)} "
                          f"data, not dataset '{cfg.dataset}'")
    if cfg.monitor_every < 0:
        raise ConfigError(f"config key 'monitor_every' must be >= 0 (0 = every epoch), got {cfg.monitor_every!r}")
    if not 0 <= cfg.threads <= 4096:
        raise ConfigError(f"config key 'threads' must be in [0, 4096] (0 = auto), got {cfg.threads!r}")
    if cfg.conditional and cfg.pack > 1:
        raise ConfigError("config key 'conditional': a packed D (pack > 1) judges several samples at once and takes "
                          "no class labels; use pack = 1")
    if cfg.conditional and cfg.dataset == "gaussian1d":
        raise ConfigError("config key 'conditional': dataset 'gaussian1d' has a single class; nothing to condition on")
    if cfg.inpaint:
        _check_inpaint(cfg, data_kind)
    _check_diversity(cfg)
    _check_topk(cfg)
    if cfg.encoder and encoder_unsupported(cfg):
        raise ConfigError(f"config key 'encoder': {encoder_unsupported(cfg)}")
    _check_semi_supervised(cfg, data_kind)
    if cfg.update == "simultaneous" and cfg.k != 1:
        raise ConfigError(f"config key 'k': the simultaneous update makes one D and one G update per minibatch, "
                          f"so k must be 1, got {cfg.k}")
    _validate_sweep(cfg)
    return cfg


def check_used(cfg: Config, given) -> None:
    """An option its game would ignore, given (a key of `given`) away from its default, is an error rather than a
    silent no-op: --loss (the logistic game's G loss), --gp-weight (wgan-gp's), --clip (wgan-clip's), --reg-every
    (R1 and R2's). Checked where values are given (`settle`), not on saved configs, which load as they ran."""
    default = {f.name: f.default for f in dataclasses.fields(Config)}
    sweep = parse_sweep(cfg.sweep)
    penalised = cfg.r1 > 0 or cfg.r2 > 0 or (sweep is not None and sweep[0] in ("r1", "r2") and max(sweep[1]) > 0)
    for key, used, by in (("loss", cfg.objective == "logistic", "the logistic game's generator loss"),
                          ("gp_weight", cfg.objective == "wgan-gp", "objective wgan-gp's penalty weight"),
                          ("clip", cfg.objective == "wgan-clip", "objective wgan-clip's weight bound"),
                          ("reg_every", penalised, "the R1/R2 penalties' interval")):
        if key in given and not used and getattr(cfg, key) != default[key]:
            where = f"objective '{cfg.objective}'" if key != "reg_every" else "a run with r1 = r2 = 0"
            raise ConfigError(f"config key '{key}': {getattr(cfg, key)!r} is {by}; {where} would ignore it")


def inpaint_masks(text: str) -> tuple[str, ...]:
    """The mask kinds of `inpaint` ('centre' or 'left,right,...'), each checked against gankit.inpaint.MASKS."""
    from gankit.inpaint import MASKS

    names = tuple(w.strip() for w in text.split(","))
    for name in names:
        if name not in MASKS:
            raise ConfigError(f"config key 'inpaint': unknown mask {name!r} (choose any of {', '.join(MASKS)}, "
                              f"comma-separated)")
    if len(set(names)) < len(names):
        raise ConfigError(f"config key 'inpaint': a mask is named twice in {text!r}")
    return names


def _check_inpaint(cfg: Config, data_kind: str) -> None:
    """--inpaint: known masks, image data, a model that takes the context, and nothing it does not combine with."""
    from gankit.models import INPAINT_MODELS

    inpaint_masks(cfg.inpaint)
    if data_kind != "image":
        raise ConfigError(f"config key 'inpaint': inpainting hides pixels of images, not points of dataset "
                          f"'{cfg.dataset}'")
    if cfg.model not in INPAINT_MODELS:
        raise ConfigError(f"config key 'inpaint': models {', '.join(INPAINT_MODELS)} take an image context, not "
                          f"'{cfg.model}'")
    for key, off, what in (("conditional", False, "--conditional"), ("encoder", False, "--encoder"),
                           ("seeds", 1, "seed ensembles (--seeds > 1)"), ("sweep", "", "--sweep"),
                           ("pack", 1, "packing (--pack)"), ("minibatch_std", False, "--minibatch-std"),
                           ("augment", "", "--augment (it would change x but not its context)"),
                           ("labels", None, "the semi-supervised objective"), ("monitor", "", "--monitor"),
                           ("tensorboard", False, "--tensorboard")):
        if getattr(cfg, key) != off:
            raise ConfigError(f"config key 'inpaint': does not support {what} yet")


def _check_topk(cfg: Config) -> None:
    """--topk NU in (0, 1] with a decay in (0, 1]; not for games without a per-sample G loss over D's outputs."""
    if not (0 < cfg.topk <= 1):
        raise ConfigError(f"config key 'topk' must be in (0, 1] (1 = off), got {cfg.topk!r}")
    if not (0 < cfg.topk_decay <= 1):
        raise ConfigError(f"config key 'topk_decay' must be in (0, 1], got {cfg.topk_decay!r}")
    if cfg.topk < 1 and (cfg.encoder or cfg.objective == "semi-supervised"):
        raise ConfigError("config key 'topk': top-k training ranks G's samples by D's one output; not for "
                          + ("a jointly trained encoder" if cfg.encoder else "the semi-supervised game"))
    if cfg.topk < 1 and cfg.pack > 1:
        raise ConfigError("config key 'topk': a packed D rates groups of samples, not samples; use pack = 1")


def _check_diversity(cfg: Config) -> None:
    """--diversity: a finite weight >= 0, on a conditional generator (pairs share c), in the alternating update."""
    if not (0 <= cfg.diversity < math.inf):
        raise ConfigError(f"config key 'diversity' must be >= 0 (0 = off), got {cfg.diversity!r}")
    if not cfg.diversity:
        return
    if not (cfg.inpaint or cfg.conditional):
        raise ConfigError("config key 'diversity': the mode-seeking term compares G(z1, c) with G(z2, c); it needs a "
                          "conditional generator (--inpaint or --conditional)")
    if cfg.update != "alternating":
        raise ConfigError("config key 'diversity': supported in the alternating update (Algorithm 1) only, not "
                          f"'{cfg.update}'")


def encoder_unsupported(cfg: Config) -> str | None:
    """Why a BiGAN run (`encoder`) cannot run with the rest of `cfg` (one line), or None when it can."""
    from gankit.models import ENCODER_MODELS

    if cfg.model not in ENCODER_MODELS:
        return f"the jointly trained encoder supports model {', '.join(ENCODER_MODELS)} so far, not '{cfg.model}'"
    if cfg.objective != "logistic":
        return f"the jointly trained encoder plays the logistic game only, not objective '{cfg.objective}'"
    for key, off, what in (("seeds", 1, "seed ensembles (--seeds > 1)"), ("conditional", False, "--conditional"),
                           ("update", "alternating", "the simultaneous update"), ("pack", 1, "packing (--pack)"),
                           ("minibatch_std", False, "--minibatch-std"), ("augment", "", "--augment"),
                           ("r1", 0.0, "the R1 penalty"), ("r2", 0.0, "the R2 penalty"),
                           ("precision", "fp32", "bf16 precision"), ("tensorboard", False, "--tensorboard")):
        if getattr(cfg, key) != off:
            return f"does not support {what} yet"
    if cfg.sweep:
        return "does not support --sweep yet"
    return None


# keys a sweep may vary: none changes a tensor's shape, so the members still stack
SWEEPABLE = ("lr", "lr_d", "momentum", "beta2", "ema", "r1", "r2", "gp_weight")
MAX_MEMBERS = 1000


@functools.lru_cache(maxsize=64)
def parse_sweep(text: str) -> tuple[str, tuple] | None:
    """'KEY=V1,V2,...' as (key, values of the key's type), None for ''; ConfigError for an unknown or unsweepable
    key, a value of the wrong type, fewer than two values or a repeated one (the values' ranges: `validate`)."""
    if not text:
        return None
    key, sep, rest = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"config key 'sweep' must be KEY=V1,V2,... (e.g. lr=1e-4,1e-3), got {text!r}")
    if key not in SWEEPABLE:
        raise ConfigError(f"config key 'sweep': cannot sweep '{key}' (choose from {', '.join(SWEEPABLE)}: the keys "
                          f"that leave the networks' shapes alone)")
    typ = FIELD_TYPES[key][0]
    values = []
    for word in rest.split(","):
        try:
            values.append(typ(word.strip()))
        except ValueError:
            raise ConfigError(f"config key 'sweep': {key} value {word.strip()!r} is not a {typ.__name__}") from None
    if len(values) < 2:
        raise ConfigError(f"config key 'sweep': give at least 2 values of {key}, got {text!r}")
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ConfigError(f"config key 'sweep': {key} value {repeated[0]!r} is given twice")
    return key, tuple(values)


def _validate_sweep(cfg: Config) -> tuple[str, tuple] | None:
    """The parsed sweep, each value checked by the rules of its plain key (a config with that value must validate)
    and against what the rest of the config uses."""
    sweep = parse_sweep(cfg.sweep)
    if sweep is None:
        return None
    key, values = sweep
    if cfg.seeds * len(values) > MAX_MEMBERS:
        raise ConfigError(f"config key 'sweep': {len(values)} values x {cfg.seeds} seeds is more than {MAX_MEMBERS} "
                          f"members")
    if key == "gp_weight" and cfg.objective != "wgan-gp":
        raise ConfigError(f"config key 'sweep': gp_weight is wgan-gp's; objective '{cfg.objective}' ignores it")
    if key == "beta2" and cfg.optimizer != "adam":
        raise ConfigError(f"config key 'sweep': beta2 is Adam's; optimizer '{cfg.optimizer}' ignores it")
    if key == "ema" and 0 in values:
        raise ConfigError("config key 'sweep': ema values must be > 0 (0 turns the weight average off, which every "
                          "member of one run shares)")
    for v in values:
        try:
            validate(dataclasses.replace(cfg, sweep="", seeds=1, **{key: v}))
        except ConfigError as e:
            raise ConfigError(f"config key 'sweep': {key} = {v!r}: {e}") from None
    return sweep


def n_members(cfg: Config) -> int:
    """GANs a run trains: seeds x (values swept, 1 without a sweep)."""
    sweep = parse_sweep(cfg.sweep)
    return cfg.seeds * (len(sweep[1]) if sweep else 1)


def member_config(cfg: Config, e: int) -> Config:
    """The plain run that member e of a seed ensemble is: value e // seeds of the sweep, seed cfg.seed + e % seeds
    (every value trained on the same seeds, so values compare seed by seed)."""
    n = n_members(cfg)
    if not 0 <= e < n:
        raise IndexError(f"member {e} of a run of {n}")
    changes = {"seed": cfg.seed + e % cfg.seeds, "seeds": 1, "sweep": ""}
    sweep = parse_sweep(cfg.sweep)
    if sweep:
        changes[sweep[0]] = sweep[1][e // cfg.seeds]
    return dataclasses.replace(cfg, **changes)


def _check_semi_supervised(cfg: Config, data_kind: str) -> None:
    """--labels goes with the semi-supervised objective, and it with a classifying D and a plain one-net run."""
    from gankit.models import CLASSIFIERS

    semi = cfg.objective == "semi-supervised"
    if cfg.labels is not None and not semi:
        raise ConfigError(f"config key 'labels': labelled samples are used by objective semi-supervised only, not "
                          f"'{cfg.objective}'")
    if not semi:
        return
    if cfg.labels is None:
        raise ConfigError("config key 'labels': objective semi-supervised needs the number of labelled samples "
                          "(--labels N)")
    if not 1 <= cfg.labels <= 10**9:
        raise ConfigError(f"config key 'labels' must be >= 1, got {cfg.labels!r}")
    if cfg.model not in CLASSIFIERS:
        raise ConfigError(f"config key 'model': objective semi-supervised needs a classifying D "
                          f"({', '.join(CLASSIFIERS)}), not '{cfg.model}'")
    if cfg.dataset == "gaussian1d":
        raise ConfigError("config key 'labels': dataset 'gaussian1d' has a single class; nothing to classify")
    for key, off, what in (("conditional", False, "--conditional"), ("pack", 1, "packing (--pack)"),
                           ("minibatch_std", False, "--minibatch-std"), ("seeds", 1, "seed ensembles (--seeds)"),
                           ("sweep", "", "sweeps (--sweep)")):
        if getattr(cfg, key) != off:
            raise ConfigError(f"config key '{key}': objective semi-supervised does not support {what}")


def from_dict(values: dict, base: Config | None = None) -> Config:
    """Overlay `values` on `base` (default: the defaults), type-checking every key."""
    cfg = dataclasses.replace(base) if base is not None else Config()
    values = dict(values)
    for key, other in (("steps", "epochs"), ("epochs", "steps")):  # one of them is the run's length
        if values.get(key) is not None and other not in values:
            values[other] = None
    for key, value in values.items():
        setattr(cfg, key, coerce(key, value))
    return validate(cfg)


def settle(*layers: dict, base: Config | None = None) -> Config:
    """The one settle path, for fresh and resumed runs: layers of values (later wins) over `base` (a resumed
    run's saved config) or over the defaults for the chosen dataset's kind (images: IMAGE_DEFAULTS; the 2-D
    mixtures in the logistic game: MIXTURE_DEFAULTS); validated.

    steps and epochs are one setting, the run's length: the last layer that gives either decides it."""
    merged: dict = {}
    for i, layer in enumerate(layers):
        given = [k for k in ("steps", "epochs") if layer.get(k) is not None]
        if len(given) == 2:
            raise ConfigError("config keys 'steps' and 'epochs' are both set; keep one")
        if given:
            merged.update({"steps": None, "epochs": None})
        merged.update(layer)
    if base is None:
        dataset = merged.get("dataset", Config.dataset)
        image = dataset_entry(dataset).kinds[0] == "image" if _known(dataset) else False
        defaults = dict(IMAGE_DEFAULTS) if image else {}
        if (dataset in MIXTURES and merged.get("objective", Config.objective) == "logistic"
                and not merged.get("encoder", Config.encoder)):
            defaults.update(MIXTURE_DEFAULTS[dataset])
        if any(k in merged for k in ("steps", "epochs")):
            defaults.pop("epochs", None)
        values = {**defaults, **merged}
        if values.get("epochs") is not None and "steps" not in merged:
            values["steps"] = None
        cfg = from_dict(values)
    else:
        cfg = from_dict(merged, base)
    check_used(cfg, merged)
    return cfg


def _known(dataset) -> bool:
    try:
        dataset_entry(dataset)
        return True
    except (DataError, AttributeError):
        return False


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    return dict(PRESETS[name])


def read_toml(path: str | Path, presets: bool = True) -> dict:
    """Parse a TOML config file into a flat dict (a `preset = "..."` key expands first)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with on_disk("read", path):
            data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"config key '{key}' in {path}: tables are not supported, use flat keys")
    unset = data.pop("unset", [])  # keys whose value is None (TOML has no null)
    if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
        raise ConfigError(f"config key 'unset' in {path} must be a list of config keys")
    data.update({k: None for k in unset})
    if "preset" in data and presets:
        name = data.pop("preset")
        if not isinstance(name, str):
            raise ConfigError(f"config key 'preset' must be a string, got {name!r}")
        data = {**preset(name), **data}
    return data


def load(path: str | Path) -> Config:
    return from_dict(read_toml(path))


# run keys newer than saved runs; their defaults change nothing
ADDED_LATER = ("sgd_form", "d_loss_scale", "conditional", "seeds", "encoder", "sweep", "labels", "inpaint",
               "diversity", "output_bias", "topk", "topk_decay")


def load_complete(path: str | Path) -> Config:
    """A saved run config: every key present, or listed in `unset` (TOML has no null). A key that a run saved
    before gankit had it lacks takes its default: any key of how the run executes (role 'exec'), and the run keys
    of `ADDED_LATER`, whose defaults are the behaviour before they existed."""
    data = read_toml(path, presets=False)
    optional = {f.name for f in fields(Config) if f.metadata["role"] == "exec"} | set(ADDED_LATER)
    missing = [k for k in FIELD_TYPES if k not in data and k not in optional]
    if missing:
        raise ConfigError(f"missing config keys {', '.join(missing)} (not a config gankit saved, or cut short)")
    return from_dict(data)


def dumps(cfg: Config) -> str:
    """TOML by a TOML writer (any string round-trips); None values are listed under `unset`."""
    import tomli_w

    values = cfg.to_dict()
    return tomli_w.dumps({**{k: v for k, v in values.items() if v is not None},
                          "unset": [k for k, v in values.items() if v is None]})


def diff(a: Config, b: Config, keys: tuple[str, ...] | None = None) -> list[str]:
    """Keys (of `keys`, default all) whose values differ between two configs."""
    da, db = a.to_dict(), b.to_dict()
    return [k for k in (keys or tuple(da)) if da[k] != db[k]]
