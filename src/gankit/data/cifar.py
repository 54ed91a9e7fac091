"""CIFAR-10 from its python-pickle batches, read without running code from them, and image folders.

CIFAR-10 files are looked for like the MNIST family's (--data-dir, $GANKIT_DATA, the per-user cache),
as the directory `cifar-10-batches-py` or the official archive, which is downloaded into the cache
when online and verified by its MD5. The batches are pickles: a restricted unpickler admits only the
numpy array reconstruction they need, so a tampered file cannot run code. Splits: train = training
images 0-44,999, valid = 45,000-49,999, test = the test batch.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from gankit.data.idx import IDXError
from gankit.data.mnist import DatasetNotFound, cache_dir, search_dirs
from gankit.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = {"train": (0, 45_000), "valid": (45_000, 50_000), "trainval": (0, 50_000), "test": None}

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # bytes in protocol-2 pickles


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 3, 32, 32] uint8 and labels [N] of one pickled batch."""
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise IDXError(f"{path}: file not found") from None
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise IDXError(f"{path}: not a CIFAR-10 batch ({e})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise IDXError(f"{path}: expected N x 3072 images with N labels, found {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _extract(archive: Path, dest: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / "cifar-10-batches-py"


def locate(data_dir=None, download: bool = True) -> Path:
    dirs = search_dirs("cifar10", data_dir)
    for d in dirs:
        if (d / "cifar-10-batches-py" / "test_batch").is_file():
            return d / "cifar-10-batches-py"
        if (d / "test_batch").is_file():
            return d
        if (d / "cifar-10-python.tar.gz").is_file():
            return _extract(d / "cifar-10-python.tar.gz", cache_dir("cifar10"))
    reason = "downloads disabled"
    if download and not os.environ.get("GANKIT_OFFLINE"):
        target = cache_dir("cifar10")
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / ".cifar-10-python.tar.gz.part"
        try:
            with urllib.request.urlopen(URL, timeout=30) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            if hashlib.md5(tmp.read_bytes()).hexdigest() != MD5:
                raise OSError("MD5 mismatch")
            os.replace(tmp, target / "cifar-10-python.tar.gz")
            return _extract(target / "cifar-10-python.tar.gz", target)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            reason = f"download failed ({str(e)[:200]})"
    raise DatasetNotFound(f"cifar10: cifar-10-batches-py not found in {', '.join(map(str, dirs))}; {reason}. "
                          f"Put cifar-10-python.tar.gz or its extracted folder in {cache_dir('cifar10')} "
                          f"or pass --data-dir DIR")


def load_cifar10(split: str = "train", data_dir=None, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    root = locate(data_dir, download)
    if split == "test":
        return read_batch(root / "test_batch")
    parts = [read_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    lo, hi = SPLITS[split]
    return images[lo:hi], labels[lo:hi]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_folder(path: str | Path, size: int = 32, with_labels: bool = False):
    """Every image under `path` (recursively), as RGB uint8 [N, 3, size, size]: resized so the short side is
    `size`, then centre-cropped. `with_labels`: also (labels, class names), the class of an image being its
    top-level sub-directory; (None, ()) when some image lies directly in `path`."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DatasetNotFound(f"folder:{path}: not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetNotFound(f"folder:{path}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                img = img.convert("RGB")
                scale = size / min(img.size)
                w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
                img = img.resize((w, h), Image.BICUBIC)
                left, top = (w - size) // 2, (h - size) // 2
                out[i] = np.asarray(img.crop((left, top, left + size, top + size))).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
            raise IDXError(f"{f}: not a readable image ({str(e).splitlines()[0][:200]})") from None
    if not with_labels:
        return out
    tops = [f.relative_to(root).parts[0] if len(f.relative_to(root).parts) > 1 else None for f in files]
    if None in tops:
        return out, None, ()
    classes = tuple(sorted(set(tops)))
    return out, np.array([classes.index(t) for t in tops], dtype=np.int64), classes


__all__ = ["load_cifar10", "load_folder", "read_batch", "CLASSES"]
