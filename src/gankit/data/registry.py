"""One entry point for every dataset: `load_dataset(name, ...)` returns a `Data` holding one tensor.

`DATASETS` is the registry (name -> loader, kind, help); `folder:PATH` names any image folder.
A `DataSpec` is what a trained model needs to know of its data (shape, kind, range, modes, classes):
checkpoints carry it, so sampling and figures work without the data itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from gankit.data import mnist, toy
from gankit.errors import DataError
from gankit.registry import Entry

FOLDER = "folder:"


@dataclass
class DataSpec:
    """A dataset's description without its samples."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "toy" or "image"
    value_range: tuple[float, float] | None = None  # images: (0, 1) or (-1, 1)
    modes: torch.Tensor | None = None  # toy: mixture centres [K, d]
    mode_std: float | None = None
    classes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dim(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape flat samples to [N, C, H, W] scaled to [0, 1] for display."""
        lo, hi = self.value_range or (0.0, 1.0)
        return ((x.reshape(-1, *self.shape) - lo) / (hi - lo)).clamp(0, 1)

    def to_dict(self) -> dict:
        """Plain values (and one tensor) for a checkpoint."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(DataSpec)}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(name=d["name"], shape=tuple(d["shape"]), kind=d["kind"],
                   value_range=None if d["value_range"] is None else tuple(d["value_range"]), modes=d["modes"],
                   mode_std=d["mode_std"], classes=tuple(d["classes"]))


@dataclass
class Data(DataSpec):
    """A dataset held as one float32 tensor `x` of shape [N, d] (one sample's shape is `shape`), with
    class labels `y` [N] where the dataset has them (the toy mixtures: the mode a sample came from)."""

    x: torch.Tensor = None
    labels: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def spec(self) -> DataSpec:
        return DataSpec(**{f.name: getattr(self, f.name) for f in fields(DataSpec)})


def image_data(name: str, images, labels, classes: tuple[str, ...], pixel_range: str) -> Data:
    """uint8 images [N, C, H, W] as one flat float tensor in [0, 1] ('01') or [-1, 1] ('pm1')."""
    x = torch.from_numpy(images.reshape(len(images), -1).astype("float32") / 255.0)
    if pixel_range == "pm1":
        x = x * 2 - 1
    return Data(name, tuple(images.shape[1:]), "image", (0.0, 1.0) if pixel_range == "01" else (-1.0, 1.0),
                classes=classes, x=x, labels=None if labels is None else torch.from_numpy(labels.astype("int64")))


def _toy(name: str, split: str, data_dir, download: bool, pixel_range: str, image_size: int) -> Data:
    modes, std = toy.toy_modes(name)
    x, y = toy.toy_training_set(name, with_modes=True)
    return Data(name, (modes.shape[1],), "toy", modes=modes, mode_std=std,
                classes=tuple(f"mode {i}" for i in range(len(modes))), x=x, labels=y)


def _mnist_family(name: str, split: str, data_dir, download: bool, pixel_range: str, image_size: int) -> Data:
    images, labels = mnist.load_split(name, split, data_dir, download)
    return image_data(name, images[:, None], labels, mnist.IMAGE_SETS[name].classes, pixel_range)


def _cifar10(name: str, split: str, data_dir, download: bool, pixel_range: str, image_size: int) -> Data:
    from gankit.data import cifar

    images, labels = cifar.load_cifar10(split, data_dir, download)
    return image_data(name, images, labels, cifar.CLASSES, pixel_range)


def _folder(name: str, split: str, data_dir, download: bool, pixel_range: str, image_size: int) -> Data:
    from gankit.data import cifar

    images, labels, classes = cifar.load_folder(name[len(FOLDER):], image_size, with_labels=True)
    return image_data(name, images, labels, classes, pixel_range)


DATASETS: dict[str, Entry] = {
    "gaussian1d": Entry(_toy, "N(2, 0.5^2), the 1-D setting of the paper's Figure 1", ("toy",)),
    "ring8": Entry(_toy, "8 Gaussians on a circle (embedded; the default)", ("toy",)),
    "grid25": Entry(_toy, "5 x 5 grid of Gaussians (embedded)", ("toy",)),
    "grid100": Entry(_toy, "10 x 10 grid of Gaussians, the harder mixture (embedded)", ("toy",)),
    **{name: Entry(_mnist_family, f"{what}, 28 x 28 (IDX files; downloaded once)", ("image",)) for name, what in
       {"mnist": "handwritten digits", "fashion-mnist": "Zalando's garments", "kmnist": "cursive Japanese"}.items()},
    "cifar10": Entry(_cifar10, "CIFAR-10 32 x 32 colour images (python batches)", ("image",)),
    FOLDER + "PATH": Entry(_folder, "every image under PATH, class = sub-directory", ("image",)),
}
TOY = tuple(n for n, e in DATASETS.items() if e.kinds == ("toy",))
IMAGES = tuple(mnist.IMAGE_SETS)


def dataset_entry(name: str) -> Entry:
    """The registry entry for a dataset name (`folder:PATH` included); DataError naming the choices."""
    if name.startswith(FOLDER) and len(name) > len(FOLDER):
        return DATASETS[FOLDER + "PATH"]
    if name in DATASETS and not name.startswith(FOLDER):
        return DATASETS[name]
    raise DataError(f"unknown dataset '{name}' (choose from {', '.join(DATASETS)})")


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None, subset: int | None = None,
                 pixel_range: str = "01", download: bool = True, image_size: int = 32) -> Data:
    """Load a dataset by name; `subset` keeps the first N samples; pixel_range is '01' or 'pm1'."""
    data = dataset_entry(name).build(name, split, data_dir, download, pixel_range, image_size)
    if subset is not None:
        if subset < 1:
            raise DataError(f"subset must be >= 1, got {subset}")
        data.x = data.x[:subset]
        if data.labels is not None:
            data.labels = data.labels[:subset]
    return data
