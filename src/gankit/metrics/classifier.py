"""gankit's domain classifiers for 28x28 image sets, and the class-histogram mode coverage of samples.

The MNIST and Fashion-MNIST classifiers are trained once and shipped inside the package
(gankit/metrics/weights/*.pt, float16, SHA-256 of each file pinned below and checked on load), so feature
metrics mean the same on every machine and torch version: that is the protocol "gankit-<dataset>-v1".
`gankit classifier train` retrains one with the same recipe into the per-user cache under a different
protocol name ("<dataset>-retrained-..."), which metrics then report. The penultimate layer (128
features) serves the Fréchet distance and its kin.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from gankit.checkpoint import atomic_write_bytes
from gankit.errors import CheckpointError, DataError, first_line
from gankit.data.mnist import cache_dir

VERSION = 3  # bump when the architecture or the training recipe changes


class SmallCNN(nn.Module):
    """Three conv 3x3 + max-pool stages (32, 64, 64 channels) -> 128 features -> logits, for [N, 1, 28, 28]
    in [0, 1]; about 131k parameters, so its float16 weights fit in ~260 kB."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 3 * 3, 128)
        self.out = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14 x 14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 7 x 7
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)  # 3 x 3
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


@dataclass(frozen=True)
class Shipped:
    """A classifier trained once and shipped with gankit: its file, the file's SHA-256 and what it scored."""

    protocol: str
    file: str
    sha256: str
    test_accuracy: float
    test_histogram: tuple[int, ...]


# Made by `gankit classifier train --dataset D --seed 0 --epochs 8 --out src/gankit/metrics/weights/D-v1.pt`
# (VERSION 3 recipe, torch 2.13.0 on CPU, one thread); the accuracies are those of the float16 weights.
SHIPPED: dict[str, Shipped] = {
    "mnist": Shipped("gankit-mnist-v1", "mnist-v1.pt",
                    "14e52536d50f51463de1224e4a02d4557ff09fd8c43127349d8a25ffcce71ca3",
                    0.9949, (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)),
    "fashion-mnist": Shipped("gankit-fashion-mnist-v1", "fashion-mnist-v1.pt",
                    "779b271cda66e29517c096b16b02fd547bfff09785fa2cd58d7bf8c2701fc6c9",
                    0.9098, (1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)),
}


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """The batch translated by one random (dy, dx) in [-max_shift, max_shift]^2, zero-filled."""
    dy, dx = (torch.randint(-max_shift, max_shift + 1, (2,), generator=g)).tolist()
    img = F.pad(x.reshape(-1, 1, 28, 28), (max_shift,) * 4)
    return img[:, :, max_shift - dy:max_shift - dy + 28, max_shift - dx:max_shift - dx + 28]


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 8, batch: int = 128, seed: int = 0,
                     progress: bool = True) -> SmallCNN:
    """Adam with a one-cycle schedule and random shifts of up to 1 pixel; x is [N, 784] in [0, 1]."""
    torch.manual_seed(seed)
    model = SmallCNN(int(y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    bar = tqdm(total=steps, desc="classifier", disable=not progress, leave=False)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(_shift(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    return model.eval()


@torch.no_grad()
def predict(model: SmallCNN, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


@torch.no_grad()
def features(model: SmallCNN, x: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    return torch.cat([model.features(x[i:i + batch]) for i in range(0, len(x), batch)])


def weights_bytes(model: SmallCNN) -> bytes:
    """The model's weights as a float16 state dict, serialised by torch.save: the shipped file format."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_from_bytes(data: bytes, name: str, n_classes: int = 10) -> SmallCNN:
    """A SmallCNN from float16 weights (loaded with weights_only=True, so the file runs no code)."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model = SmallCNN(n_classes)
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except Exception as e:  # noqa: BLE001 - any failure: the file is unusable
        raise CheckpointError(f"{name}: not gankit classifier weights ({first_line(e, 100)})") from None
    return model.eval()


def _read_checked(path: Path, sha256: str, remedy: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read classifier weights ({e.strerror or e}); {remedy}") from None
    if sha256_bytes(data) != sha256:
        raise CheckpointError(f"{path}: classifier weights do not match their SHA-256 {sha256[:12]}...; {remedy}")
    return data


def shipped_path(dataset: str) -> Path:
    return Path(str(resources.files("gankit.metrics").joinpath("weights", SHIPPED[dataset].file)))


def load_shipped(dataset: str, path: Path | None = None) -> tuple[SmallCNN, dict]:
    """The shipped classifier of `dataset` (file checked against its pinned SHA-256) and its metadata."""
    s = SHIPPED[dataset]
    path = path or shipped_path(dataset)
    data = _read_checked(path, s.sha256, "reinstall gankit")
    meta = {"protocol": s.protocol, "dataset": dataset, "version": VERSION, "n_classes": len(s.test_histogram),
            "test_accuracy": s.test_accuracy, "sha256": s.sha256, "test_histogram": list(s.test_histogram),
            "shipped": True}
    return model_from_bytes(data, str(path), meta["n_classes"]), meta


def retrained_dir() -> Path:
    return cache_dir("classifiers")


def retrain(dataset: str, data_dir: str | None = None, seed: int = 0, epochs: int = 8, progress: bool = True,
            out: str | Path | None = None, cache: Path | None = None) -> dict:
    """Train `dataset`'s classifier on its train split and write its float16 weights (and a .json of its
    metadata) as `out` or, by default, into the cache under a protocol name of its own; returns the metadata."""
    from gankit.data import load_dataset

    if dataset not in SHIPPED and dataset not in ("mnist", "fashion-mnist", "kmnist"):
        raise DataError(f"classifiers exist for the MNIST family only, not '{dataset}'")
    train = load_dataset(dataset, "train", data_dir)
    test = load_dataset(dataset, "test", data_dir)
    n_classes = int(train.labels.max()) + 1
    data = weights_bytes(train_classifier(train.x, train.labels, epochs=epochs, seed=seed, progress=progress))
    model = model_from_bytes(data, "retrained", n_classes)  # score the float16 weights that are kept
    digest = sha256_bytes(data)
    acc = float((predict(model, test.x) == test.labels).float().mean())
    protocol = f"{dataset}-retrained-v{VERSION}-s{seed}-e{epochs}-{digest[:8]}"
    meta = {"protocol": protocol, "dataset": dataset, "version": VERSION, "n_classes": n_classes, "seed": seed,
            "epochs": epochs, "test_accuracy": acc, "sha256": digest,
            "test_histogram": torch.bincount(test.labels, minlength=n_classes).tolist(), "shipped": False,
            "torch": torch.__version__}
    path = Path(out) if out else (cache or retrained_dir()) / f"{protocol}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    meta["path"] = str(path)
    return meta


def get_classifier(dataset: str, data_dir: str | None = None, progress: bool = True, cache: Path | None = None,
                   protocol: str | None = None) -> tuple[SmallCNN, dict]:
    """The classifier of an MNIST-family dataset: the shipped one by default, or the retrained one named by
    `protocol` (made by `gankit classifier train`); weights are checked against their SHA-256."""
    if protocol is None or (dataset in SHIPPED and protocol == SHIPPED[dataset].protocol):
        if dataset not in SHIPPED:
            raise DataError(f"gankit ships classifiers for {', '.join(SHIPPED) or 'no dataset'}, not '{dataset}'; "
                            f"train one with `gankit classifier train --dataset {dataset}` and pass its protocol")
        return load_shipped(dataset)
    cache = cache or retrained_dir()
    path = cache / f"{protocol}.pt"
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        raise DataError(f"no classifier '{protocol}' in {cache}; make one with `gankit classifier train --dataset "
                        f"{dataset}`")
    try:
        meta = json.loads(meta_path.read_text())
        sha, n_classes = meta["sha256"], int(meta.get("n_classes", 10))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{meta_path}: unreadable classifier metadata ({first_line(e, 100)})") from None
    if meta.get("dataset") != dataset:
        raise DataError(f"classifier '{protocol}' is for '{meta.get('dataset')}', not '{dataset}'")
    data = _read_checked(path, sha, f"delete {path.name} and retrain")
    return model_from_bytes(data, str(path), n_classes), meta


def class_coverage(pred: torch.Tensor, reference_hist, min_share: float = 0.1) -> dict:
    """Predicted-class histogram of samples: classes covered (at least `min_share` of the class's expected
    count) and KL(sample histogram || reference histogram) in nats."""
    ref = np.asarray(reference_hist, dtype=np.float64)
    ref = ref / ref.sum()
    counts = np.bincount(np.asarray(pred), minlength=len(ref)).astype(np.float64)
    p = counts / counts.sum()
    nz = p > 0
    return {"classes_covered": int((counts >= min_share * ref * counts.sum()).sum()), "n_classes": len(ref),
            "kl_to_test": float((p[nz] * np.log(p[nz] / ref[nz])).sum()) if (ref[nz] > 0).all() else math.inf,
            "histogram": counts.astype(int).tolist(), "n_samples": int(counts.sum())}
