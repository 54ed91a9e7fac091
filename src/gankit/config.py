"""One typed configuration object for a run: defaults, presets, TOML I/O and validation.

The CLI settles a `Config` (defaults < preset < TOML file < flags); everything below the CLI
receives that object and never reads argv. Loading a TOML file only parses data.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path

DATASETS_TOY = ("gaussian1d", "ring8", "grid25")
DATASETS_IMAGE = ("mnist", "fashion-mnist", "kmnist")
MODELS = ("mlp", "bn-mlp", "dcgan", "paper", "paper-conv")
LOSSES = ("nonsaturating", "minimax")
UPDATES = ("alternating", "simultaneous")
OPTIMIZERS = ("adam", "sgd")
NOISES = ("normal", "uniform")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
PIXEL_RANGES = ("01", "pm1")
SPLITS = ("train", "valid", "trainval", "test")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


@dataclass
class Config:
    """Everything that defines a training run. Defaults train ring8 in well under 2 minutes on 2 CPU cores."""

    # data
    dataset: str = "ring8"
    data_dir: str | None = None
    split: str = "train"
    image_size: int = 32  # side of the square images of a folder: dataset
    subset: int | None = None
    pixel_range: str = "01"
    # model
    model: str = "mlp"
    z_dim: int = 2
    noise: str = "normal"
    hidden: int = 256
    layers: int = 3
    # objective and Algorithm 1
    loss: str = "nonsaturating"
    update: str = "alternating"
    k: int = 1
    batch_size: int = 256
    steps: int | None = None
    epochs: float | None = None
    # optimiser (momentum is SGD's initial momentum or Adam's beta1)
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_d: float | None = None
    momentum: float = 0.5
    final_momentum: float = 0.7
    momentum_saturate: float = 250.0
    lr_decay: float = 1.0
    lr_min: float = 1e-6
    beta2: float = 0.9
    ema: float = 0.999  # decay of an exponential moving average of G's weights used for sampling; 0 = off
    # execution
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    out: str | None = None
    log_every: int = 100
    sample_every: int = 1000  # steps between sample pictures; 0 = at the end of every epoch
    checkpoint_every: int = 1000
    keep_checkpoints: int = 1

    def total_steps(self, n_data: int) -> int:
        """Number of Algorithm-1 iterations; an epoch is one pass of D over the real data."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * n_data / (self.batch_size * self.k)))
        return 6000

    def steps_per_epoch(self, n_data: int) -> float:
        return n_data / (self.batch_size * self.k)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict] = {
    # Goodfellow et al. (2014), MNIST: the pylearn2 configuration of the paper's code.
    "paper-mnist": dict(
        dataset="mnist", model="paper", z_dim=100, noise="uniform", loss="nonsaturating",
        k=1, batch_size=100, optimizer="sgd", lr=0.1, momentum=0.5, final_momentum=0.7,
        momentum_saturate=250.0, lr_decay=1.000004, lr_min=1e-6, pixel_range="01",
        epochs=5.0, log_every=100, sample_every=0, checkpoint_every=500, ema=0.0,
    ),
}
PRESETS["paper-fashion-mnist"] = {**PRESETS["paper-mnist"], "dataset": "fashion-mnist"}
PRESETS["paper-kmnist"] = {**PRESETS["paper-mnist"], "dataset": "kmnist"}
# The paper's CIFAR-10 experiment: maxout-conv D, "deconvolutional" G. Layer sizes are gankit's (the
# paper gives none); optimiser and schedule as for MNIST; no max-norm constraints (see README).
PRESETS["paper-cifar10"] = {**PRESETS["paper-mnist"], "dataset": "cifar10", "model": "paper-conv"}
# DCGAN-style nets (width 32 to suit a CPU) over the image defaults: ~3 minutes for 8 epochs on 2 cores.
PRESETS["dcgan-fashion-mnist"] = dict(dataset="fashion-mnist", model="dcgan", hidden=32, epochs=8.0)
PRESETS["dcgan-mnist"] = {**PRESETS["dcgan-fashion-mnist"], "dataset": "mnist"}

# Defaults that depend on the kind of data, applied under presets, files and flags (see `settle`):
# for images, the common tutorial MLP with weight averaging covers all ten classes in a few epochs.
IMAGE_DEFAULTS = dict(
    model="bn-mlp", z_dim=100, batch_size=64, lr=2e-4, beta2=0.999, pixel_range="pm1", ema=0.999, epochs=20.0,
    sample_every=0, checkpoint_every=1000,
)

_CHOICES = {
    "model": MODELS, "loss": LOSSES, "update": UPDATES, "optimizer": OPTIMIZERS,
    "noise": NOISES, "device": DEVICES, "precision": PRECISIONS, "pixel_range": PIXEL_RANGES, "split": SPLITS,
}
_POSITIVE = ("image_size", "z_dim", "hidden", "layers", "k", "batch_size", "log_every",
             "checkpoint_every", "keep_checkpoints", "lr", "lr_min", "momentum_saturate")


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
    if cfg.dataset not in DATASETS_TOY + DATASETS_IMAGE + ("cifar10",) and not (
            cfg.dataset.startswith("folder:") and len(cfg.dataset) > len("folder:")):
        raise ConfigError(f"config key 'dataset': unknown dataset '{cfg.dataset}' "
                          f"(choose from {', '.join(DATASETS_TOY + DATASETS_IMAGE)}, cifar10, folder:PATH)")
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"config key '{key}': unknown value '{getattr(cfg, key)}' (choose from {', '.join(choices)})")
    for key in _POSITIVE:
        v = getattr(cfg, key)
        if not (v > 0) or (isinstance(v, float) and not math.isfinite(v)):
            raise ConfigError(f"config key '{key}' must be > 0, got {v!r}")
    if cfg.sample_every < 0:
        raise ConfigError(f"config key 'sample_every' must be >= 0 (0 = every epoch), got {cfg.sample_every!r}")
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
    if cfg.model in ("paper", "paper-conv", "dcgan", "bn-mlp") and cfg.dataset in DATASETS_TOY:
        raise ConfigError(f"config key 'model': '{cfg.model}' is for images, not dataset '{cfg.dataset}'")
    return cfg


def from_dict(values: dict, base: Config | None = None) -> Config:
    """Overlay `values` on `base` (default: the defaults), type-checking every key."""
    cfg = dataclasses.replace(base) if base is not None else Config()
    for key, value in values.items():
        setattr(cfg, key, coerce(key, value))
    return validate(cfg)


def settle(*layers: dict) -> Config:
    """Merge layers of values (later wins) over the defaults for the chosen dataset's kind, and validate."""
    merged: dict = {}
    for layer in layers:
        merged.update(layer)
    dataset = merged.get("dataset", Config.dataset)
    base = IMAGE_DEFAULTS if dataset not in DATASETS_TOY else {}
    values = {**base, **merged}
    if values.get("steps") is not None and "epochs" not in merged:
        values["epochs"] = None
    return from_dict(values)


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    return dict(PRESETS[name])


def read_toml(path: str | Path) -> dict:
    """Parse a TOML config file into a flat dict (a `preset = "..."` key expands first)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"config key '{key}' in {path}: tables are not supported, use flat keys")
    if "preset" in data:
        name = data.pop("preset")
        if not isinstance(name, str):
            raise ConfigError(f"config key 'preset' must be a string, got {name!r}")
        data = {**preset(name), **data}
    return data


def load(path: str | Path) -> Config:
    return from_dict(read_toml(path))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def dumps(cfg: Config) -> str:
    """Serialise to TOML; None values are written as comments since TOML has no null."""
    lines = []
    for key, value in cfg.to_dict().items():
        lines.append(f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def diff(a: Config, b: Config, ignore: tuple[str, ...] = ()) -> list[str]:
    """Keys whose values differ between two configs."""
    da, db = a.to_dict(), b.to_dict()
    return [k for k in da if k not in ignore and da[k] != db[k]]
