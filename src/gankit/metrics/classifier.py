"""A small domain classifier for 28x28 image sets, trained by gankit itself (Inception weights cannot be
downloaded here), and the class-histogram mode coverage of generated samples.

The classifier is seeded and cached under the per-user cache with a SHA-256 of its weights, which is
checked on load; its penultimate layer (128 features) serves the Fréchet distance and its kin.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from gankit.checkpoint import atomic_write_bytes
from gankit.errors import CheckpointError, first_line
from gankit.data.mnist import cache_dir

VERSION = 2  # bump when the architecture or the training recipe changes


class SmallCNN(nn.Module):
    """conv 32 -> pool -> conv 64 -> pool -> 128 features -> 10 logits, for [N, 1, 28, 28] in [0, 1]."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, 128)
        self.out = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def _weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int = 6, batch: int = 128, seed: int = 0,
                     progress: bool = True) -> SmallCNN:
    """Adam, light random shifts; x is [N, 784] in [0, 1]."""
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
            loss = F.cross_entropy(model(x[idx]), y[idx])
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


def get_classifier(dataset: str, data_dir: str | None = None, progress: bool = True,
                   cache: Path | None = None) -> tuple[SmallCNN, dict]:
    """The cached classifier for an MNIST-family dataset (trained on its train split on first use)."""
    from gankit.data import load_dataset

    cache = cache or cache_dir("classifiers")
    path = cache / f"{dataset}-v{VERSION}.pt"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            model = SmallCNN(meta.get("n_classes", 10))
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            digest_ok = _weights_digest(model) == meta["sha256"]
        except Exception as e:  # noqa: BLE001 - any failure: the cached files are unusable
            raise CheckpointError(f"{path}: cached classifier is corrupt ({first_line(e, 100)}); delete {path} and {meta_path.name} "
                                  f"to retrain") from None
        if not digest_ok:
            raise CheckpointError(f"{path}: classifier weights do not match their checksum; delete the file to retrain")
        return model.eval(), meta
    train = load_dataset(dataset, "train", data_dir)
    test = load_dataset(dataset, "test", data_dir)
    model = train_classifier(train.x, train.labels, progress=progress)
    acc = float((predict(model, test.x) == test.labels).float().mean())
    meta = {"dataset": dataset, "version": VERSION, "n_classes": int(train.labels.max()) + 1, "test_accuracy": acc, "sha256": _weights_digest(model),
            "test_histogram": torch.bincount(test.labels, minlength=10).tolist()}
    cache.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode())
    return model, meta


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
