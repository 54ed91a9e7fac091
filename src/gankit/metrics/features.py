"""Feature extractors for FD / KID / precision-recall / density-coverage, and the image preparation every
one of them shares: samples quantised to 8-bit pixels first, as real images are.

    gankit-<dataset>-v1   gankit's shipped MNIST / Fashion-MNIST classifier (128 features), 28 x 28 grey
    inception-2015-12-05-clean   FID's Inception pool3 (2048), on the "clean" PIL-bicubic 299 x 299 resize
                          (Parmar et al. 2022); weights from a file the user supplies
    rand-conv-v1          a fixed random conv net (256 features) on a clean 32 x 32 resize: reproducible
                          everywhere without any weights file, but weaker than, and not comparable with, FID
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gankit.errors import UsageError

QUANTISATION = "8-bit: round(255 x) / 255, x clamped to [0, 1]"


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] rounded to the 256 levels of an 8-bit image."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def clean_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """The clean resize (Parmar et al. 2022): each channel of the 8-bit image resized with PIL's bicubic
    filter in float mode (no re-quantisation, no aliasing of torch's interpolate), clipped to [0, 255].
    images: [N, C, H, W] in [0, 1] (8-bit levels) -> float32 [N, C, size, size] in [0, 255]."""
    from PIL import Image

    pixels = torch.round(images.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    out = np.empty((*pixels.shape[:2], size, size), dtype=np.float32)
    for i in range(pixels.shape[0]):
        for c in range(pixels.shape[1]):
            img = Image.fromarray(pixels[i, c].astype(np.float32), mode="F")
            out[i, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC))
    return torch.from_numpy(out.clip(0, 255))


def _rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise UsageError(f"features need grey or RGB images, got {x.shape[1]} channels")
    return x


class RandConv(nn.Module):
    """Four 3x3/4x4 convolutions (32, 64, 128, 256 channels; strides 1, 2, 2, 2) with ReLU, then the global
    mean: [N, 3, 32, 32] in [0, 255] -> [N, 256]. Weights He-normal from numpy's frozen RandomState(seed),
    so they are the same bits on every machine and numpy version; biases zero."""

    LAYERS = ((3, 32, 3, 1), (32, 64, 4, 2), (64, 128, 4, 2), (128, 256, 4, 2))
    SIZE = 32

    def __init__(self, seed: int = 0):
        super().__init__()
        rs = np.random.RandomState(seed)
        self.convs = nn.ModuleList()
        for c_in, c_out, k, s in self.LAYERS:
            conv = nn.Conv2d(c_in, c_out, k, stride=s, padding=1)
            w = rs.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / (c_in * k * k))
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w.astype(np.float32)))
                conv.bias.zero_()
            self.convs.append(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 127.5 - 1
        for conv in self.convs:
            x = F.relu(conv(x))
        return x.mean((2, 3))


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's float32 parameters and buffers, in name order."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


RAND_CONV_SHA256 = "7f78bd14c0a6fed9a9ef5d7f61544951cde01d4be7be81fba8d3316c57f027d6"  # of RandConv(seed=0)'s weights; pinned so a change of numpy or of the code is caught


@dataclass
class Extractor:
    """Turns images [N, C, H, W] in [0, 1] (already quantised) into features [N, dim] (float64)."""

    protocol: str
    sha256: str
    dim: int
    describe: str
    fn: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    batch: int = 500
    extra: dict = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.fn(images[i:i + self.batch]).double() for i in range(0, len(images), self.batch)])

    def record(self) -> dict:
        return {"protocol": self.protocol, "sha256": self.sha256, "dim": self.dim, "describe": self.describe,
                **self.extra}


def rand_conv_extractor(device: str | torch.device = "cpu") -> Extractor:
    model = RandConv(0)
    digest = weights_sha256(model)
    if RAND_CONV_SHA256 and digest != RAND_CONV_SHA256:
        raise RuntimeError(f"rand-conv-v1 weights came out as {digest[:16]}..., not the pinned "
                           f"{RAND_CONV_SHA256[:16]}...: the protocol cannot be reproduced here")
    model = model.to(device).eval()
    return Extractor("rand-conv-v1", digest, 256,
                     "fixed random conv net (seed 0) on the clean 32 x 32 bicubic resize; NOT FID",
                     lambda x: model(_rgb(clean_resize(x, RandConv.SIZE)).to(device)).cpu(), batch=500)


def inception_extractor(device: str | torch.device = "cpu", path=None) -> Extractor:
    from gankit.metrics import inception as I

    model = I.load_inception(path).to(device)
    return Extractor(I.PROTOCOL, I.WEIGHTS_SHA256, 2048,
                     "FID Inception-v3 pool3 (pt_inception-2015-12-05) on the clean 299 x 299 PIL bicubic resize",
                     lambda x: model(_rgb(clean_resize(x, I.SIZE)).to(device)).cpu(), batch=50)


def classifier_extractor(dataset: str, protocol: str | None = None, data_dir=None,
                         device: str | torch.device = "cpu") -> Extractor:
    from gankit.metrics.classifier import get_classifier

    model, meta = get_classifier(dataset, data_dir, protocol=protocol)
    model = model.to(device)
    if model.conv1.in_channels != 1:
        raise UsageError("the classifier takes grey images")

    def fn(x):
        if x.shape[1:] != (1, 28, 28):
            raise UsageError(f"gankit's {dataset} classifier takes 1 x 28 x 28 images, not {tuple(x.shape[1:])}")
        return model.features(x.to(device)).cpu()

    return Extractor(meta["protocol"], meta["sha256"], 128,
                     f"gankit SmallCNN v{meta['version']} penultimate layer (128), float16 weights", fn, batch=2000,
                     extra={"test_accuracy": meta["test_accuracy"], "shipped": meta["shipped"]})


FEATURES = ("auto", "classifier", "inception", "rand-conv")


def get_extractor(kind: str, dataset: str, classifier: str | None = None, data_dir=None, device="cpu",
                  inception_path=None) -> Extractor:
    """`kind` from FEATURES; 'auto' is the classifier for the MNIST family (KMNIST: only a retrained one) and
    rand-conv for other images."""
    from gankit.data.mnist import IMAGE_SETS

    if kind == "auto":
        kind = "classifier" if dataset in IMAGE_SETS or classifier else "rand-conv"
    if kind == "classifier":
        return classifier_extractor(dataset, classifier, data_dir, device)
    if kind == "inception":
        return inception_extractor(device, inception_path)
    if kind == "rand-conv":
        return rand_conv_extractor(device)
    raise UsageError(f"unknown features '{kind}' (choose from {', '.join(FEATURES)})")
