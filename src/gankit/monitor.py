"""Validation monitors: a metric of G's samples against held-out data, evaluated during training, so a run
can be judged (and its best checkpoint kept) on data it never trained on, as the paper's code did with its
Parzen `monitor_ll` on MNIST images 50,000-59,999.

A monitor is built once per run from the trained GAN and returns a callable giving one number; `higher`
says which way is better. `MONITORS` is the registry that config validation and the CLI derive from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from gankit.errors import ConfigError, DataError, first_line
from gankit.noise import sample_noise
from gankit.registry import Entry

N_VALID = 1000  # held-out points scored (the Parzen protocol selects sigma on the first 1,000 validation images)
Z_SEED = 104729  # the monitor's own noise: the same z at every evaluation, and training's RNG is untouched


@dataclass
class Monitor:
    """One named held-out metric of a run: `value()` evaluates it now; `higher` is True when larger is better."""

    name: str
    value: Callable[[], float]
    higher: bool

    def better(self, a: float, b: float | None) -> bool:
        """Whether value a beats the best so far, b (None: nothing yet)."""
        if not math.isfinite(a):
            return False
        return b is None or (a > b if self.higher else a < b)


def _fixed_z(gan, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(Z_SEED)
    return sample_noise(n, gan.cfg.z_dim, gan.cfg.noise, "cpu", g).to(gan.device)


def _validation_images(cfg, pixel_range: str) -> torch.Tensor:
    """The validation split of the run's image dataset, flattened; refused when training used it."""
    from gankit.data import load_dataset

    if cfg.split != "train":
        raise ConfigError(f"config key 'monitor': held-out data is the validation split, so train on split 'train', "
                          f"not '{cfg.split}'")
    try:
        return load_dataset(cfg.dataset, "valid", cfg.data_dir, None, pixel_range).x.flatten(1)
    except DataError as e:
        raise DataError(f"monitor: dataset '{cfg.dataset}' has no validation split ({first_line(e)})") from None


def _held_out(gan) -> torch.Tensor:
    """N_VALID points G never trained on: the first validation images in [0, 1] (those the Parzen protocol
    selects sigma on), or fresh draws from a toy mixture."""
    from gankit.data.toy import sample_mixture

    if gan.spec.kind == "toy":
        return sample_mixture(gan.spec.modes, gan.spec.mode_std, N_VALID, torch.Generator().manual_seed(Z_SEED))
    return _validation_images(gan.cfg, "01")[:N_VALID]


def parzen(gan, n_samples: int = 10_000) -> Monitor:
    """The Parzen-window log-likelihood (nats) of held-out points under n_samples of G, at the best sigma of the
    protocol's grid: the number the protocol maximises to choose sigma, so it tracks Table 1's."""
    from gankit.metrics.parzen import DEFAULT_SIGMAS, log_likelihoods

    valid = _held_out(gan)
    sigmas = DEFAULT_SIGMAS if gan.spec.kind == "image" else tuple(np.logspace(-2, 0, 10).tolist())
    z = _fixed_z(gan, n_samples)

    def value() -> float:
        samples = gan.sample(len(z), z).cpu()
        if gan.spec.kind == "image":  # on pixels in [0, 1], as Table 1
            samples = gan.spec.images(samples)
        samples = samples.flatten(1)
        return float(log_likelihoods(samples, valid, sigmas, device=gan.device).mean(1).max())

    return Monitor("valid_parzen", value, higher=True)


def fd(gan, n_samples: int = 10_000) -> Monitor:
    """Fréchet distance on the domain classifier's features between n_samples of G and the validation images."""
    from gankit.metrics.classifier import features, get_classifier
    from gankit.metrics.features import quantise
    from gankit.metrics.frechet import frechet_distance

    cfg = gan.cfg
    valid = _validation_images(cfg, "01")[:n_samples]
    model, _ = get_classifier(cfg.dataset, cfg.data_dir)
    real = features(model, valid)
    z = _fixed_z(gan, len(valid))

    def value() -> float:  # 8-bit pixels, as the real images are (and as `gankit eval` does)
        x = quantise(gan.spec.images(gan.sample(len(z), z).cpu())).reshape(len(z), -1)
        return frechet_distance(features(model, x), real)

    return Monitor("valid_fd", value, higher=False)


def modes(gan, n_samples: int | None = None) -> Monitor:
    """Modes covered plus the fraction of high-quality samples (so among equal coverage, the sharper wins)."""
    from gankit.data.toy import eval_samples
    from gankit.metrics.modes import mode_metrics

    z = _fixed_z(gan, n_samples or eval_samples(len(gan.spec.modes)))

    def value() -> float:
        m = mode_metrics(gan.sample(len(z), z).cpu(), gan.spec.modes, gan.spec.mode_std)
        return float(m["modes_covered"] + m["high_quality_fraction"])

    return Monitor("valid_modes", value, higher=True)


MONITORS: dict[str, Entry] = {
    "parzen": Entry(parzen, "Parzen log-likelihood of 1,000 held-out points (validation images; fresh toy draws)",
                    ("image", "toy")),
    "fd": Entry(fd, "Fréchet distance to the validation images on the domain classifier's features (MNIST family)",
                ("image",)),
    "modes": Entry(modes, "toy modes covered + fraction of high-quality samples", ("toy",)),
}


def build(name: str, gan) -> Monitor:
    """The monitor `name` for a trained-or-training GAN; ConfigError when the data cannot serve it."""
    entry = MONITORS[name]
    if gan.spec.kind not in entry.kinds:
        raise ConfigError(f"config key 'monitor': '{name}' is for {' and '.join(entry.kinds)} data, not dataset "
                          f"'{gan.cfg.dataset}'")
    return entry.build(gan)
