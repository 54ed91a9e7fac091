"""One entry point for every dataset: `load_dataset(name, ...)` returns a `Data` holding one tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from gankit.data import mnist, toy

TOY = ("gaussian1d", "ring8", "grid25")
IMAGES = tuple(mnist.IMAGE_SETS)


@dataclass
class Data:
    """A dataset held as one float32 tensor `x` of shape [N, d]; `shape` is one sample's shape."""

    name: str
    x: torch.Tensor
    shape: tuple[int, ...]
    kind: str  # "toy" or "image"
    value_range: tuple[float, float] | None = None  # images: (0, 1) or (-1, 1)
    labels: torch.Tensor | None = None
    modes: torch.Tensor | None = None  # toy: mixture centres [K, d]
    mode_std: float | None = None
    classes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape flat samples to [N, C, H, W] scaled to [0, 1] for display."""
        lo, hi = self.value_range or (0.0, 1.0)
        return ((x.reshape(-1, *self.shape) - lo) / (hi - lo)).clamp(0, 1)


def image_data(name: str, images, labels, classes: tuple[str, ...], pixel_range: str) -> Data:
    """uint8 images [N, C, H, W] as one flat float tensor in [0, 1] ('01') or [-1, 1] ('pm1')."""
    x = torch.from_numpy(images.reshape(len(images), -1).astype("float32") / 255.0)
    if pixel_range == "pm1":
        x = x * 2 - 1
    return Data(name, x, tuple(images.shape[1:]), "image", (0.0, 1.0) if pixel_range == "01" else (-1.0, 1.0),
                None if labels is None else torch.from_numpy(labels.astype("int64")), classes=classes)


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None, subset: int | None = None,
                 pixel_range: str = "01", download: bool = True, image_size: int = 32) -> Data:
    """Load a dataset by name; `subset` keeps the first N samples; pixel_range is '01' or 'pm1'."""
    if name in TOY:
        modes, std = toy.toy_modes(name)
        data = Data(name, toy.toy_training_set(name), (modes.shape[1],), "toy", modes=modes, mode_std=std)
    elif name in IMAGES:
        images, labels = mnist.load_split(name, split, data_dir, download)
        data = image_data(name, images[:, None], labels, mnist.IMAGE_SETS[name].classes, pixel_range)
    elif name == "cifar10":
        from gankit.data import cifar

        images, labels = cifar.load_cifar10(split, data_dir, download)
        data = image_data(name, images, labels, cifar.CLASSES, pixel_range)
    elif name.startswith("folder:"):
        from gankit.data import cifar

        data = image_data(name, cifar.load_folder(name[len("folder:"):], image_size), None, (), pixel_range)
    else:
        raise ValueError(f"unknown dataset '{name}' (choose from {', '.join(TOY + IMAGES)}, cifar10, folder:PATH)")
    if subset is not None:
        if subset < 1:
            raise ValueError(f"subset must be >= 1, got {subset}")
        data.x = data.x[:subset]
        if data.labels is not None:
            data.labels = data.labels[:subset]
    return data
