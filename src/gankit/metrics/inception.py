"""The FID Inception-v3 (the TensorFlow graph "inception-2015-12-05" ported to PyTorch as pytorch-fid's
pt_inception-2015-12-05-6726825d.pth): its pool3 layer's 2048 features are what papers report as FID.

gankit builds the network itself (no torchvision) with the parameter names of that file, and loads the
weights only from a file the user supplies, checked against its SHA-256; nothing is downloaded. It differs
from the ImageNet Inception-v3 of torchvision in three places, as the TF graph does: average pools ignore
the zero padding, and the last block's pool branch is a max pool.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from gankit.errors import CheckpointError, DataError, first_line

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_BYTES = 95_628_359
WEIGHTS_ENV = "GANKIT_INCEPTION_WEIGHTS"
PROTOCOL = "inception-2015-12-05-clean"  # pool3 features of the clean-resized (PIL bicubic) 8-bit image
SIZE = 299


class Conv(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3, as in TF) -> ReLU; named `conv` and `bn` like the weights file."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    """3x3 average pool, stride 1, whose mean is over the pixels inside the image (TF's padding='SAME')."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35 x 35: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1; 224 + pool_features channels."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = Conv(c_in, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = Conv(c_in, 48, 1), Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Conv(c_in, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(c_in, pool_features, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg3(x))], 1)


class BlockB(nn.Module):
    """35 -> 17: 3x3 stride 2 | 1x1 -> 3x3 -> 3x3 stride 2 | max pool; 384 + 96 + c_in channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = Conv(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = Conv(c_in, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = Conv(64, 96, 3, padding=1), Conv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """17 x 17 with factorised 7x7 convolutions (1x7 and 7x1); 4 x 192 channels."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = Conv(c_in, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = Conv(c_in, c7, 1), Conv(c7, c7, **row), Conv(c7, 192, **col)
        self.branch7x7dbl_1 = Conv(c_in, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = Conv(c7, c7, **col), Conv(c7, c7, **row)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = Conv(c7, c7, **col), Conv(c7, 192, **row)
        self.branch_pool = Conv(c_in, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class BlockD(nn.Module):
    """17 -> 8: 1x1 -> 3x3 stride 2 | 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 | max pool; 320 + 192 + c_in channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = Conv(c_in, 192, 1), Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(c_in, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x):
        b = x
        for i in range(1, 5):
            b = getattr(self, f"branch7x7x3_{i}")(b)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8 x 8 with split 1x3 / 3x1 outputs; 320 + 768 + 768 + 192 = 2048 channels. The FID graph's second
    block pools by max where the first averages (`max_pool`)."""

    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        self.branch1x1 = Conv(c_in, 320, 1)
        self.branch3x3_1 = Conv(c_in, 384, 1)
        self.branch3x3_2a, self.branch3x3_2b = Conv(384, 384, **row), Conv(384, 384, **col)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(c_in, 448, 1), Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a, self.branch3x3dbl_3b = Conv(384, 384, **row), Conv(384, 384, **col)
        self.branch_pool = Conv(c_in, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """Inception-v3 up to pool3: [N, 3, 299, 299] pixel values in [0, 255] -> [N, 2048] features.
    Pixels map to [-1, 1] as x / 127.5 - 1 (pytorch-fid's 2 (x / 255) - 1). `fc` (1008 ImageNet logits of
    the TF graph) is kept only so the weights file loads whole; features do not use it."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def stages(self, x: torch.Tensor):
        """Yield (name, activation) through the network, ending with ("pool3", [N, 2048])."""
        x = x / 127.5 - 1
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = getattr(self, name)(x)
            yield name, x
        x = F.max_pool2d(x, 3, stride=2)
        yield "maxpool1", x
        for name in ("Conv2d_3b_1x1", "Conv2d_4a_3x3"):
            x = getattr(self, name)(x)
            yield name, x
        x = F.max_pool2d(x, 3, stride=2)
        yield "maxpool2", x
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
            yield name, x
        yield "pool3", x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, x in self.stages(x):
            pass
        return x


def weights_path(path: str | Path | None = None) -> Path:
    """Where the weights file is looked for: `path`, else $GANKIT_INCEPTION_WEIGHTS, else the per-user cache."""
    from gankit.data.mnist import cache_dir

    if path:
        return Path(path)
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    return cache_dir("weights") / WEIGHTS_FILE


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_inception(path: str | Path | None = None) -> FIDInception:
    """The FID Inception with the user's weights file (SHA-256 checked; loaded with weights_only=True)."""
    p = weights_path(path)
    if not p.is_file():
        raise DataError(f"Inception FID needs the weights file {WEIGHTS_FILE} (sha256 {WEIGHTS_SHA256[:16]}..., "
                        f"published with pytorch-fid; gankit never downloads it): put it at {p} or name it with "
                        f"${WEIGHTS_ENV}; without it, --features rand-conv gives a weaker, reproducible FD")
    digest = _sha256_file(p)
    if digest != WEIGHTS_SHA256:
        raise CheckpointError(f"{p}: not the FID Inception weights (sha256 {digest[:16]}..., expected "
                              f"{WEIGHTS_SHA256[:16]}...)")
    model = FIDInception()
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - the file passed its hash, so this is a gankit bug or torch change
        raise CheckpointError(f"{p}: cannot load the FID Inception weights ({first_line(e, 150)})") from None
    return model.eval()
