"""Reader for the IDX format of MNIST-family files (gzip-compressed or raw), with strict validation."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from gankit.errors import GankitError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXError(GankitError, ValueError):
    """An IDX file is missing, corrupt, truncated or of unexpected shape; the message names the file."""


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic bytes, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IDXError(f"{path}: file not found") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise IDXError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes: 2 zero bytes, a dtype code, the number of dimensions, big-endian sizes, data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IDXError(f"{name}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise IDXError(f"{name}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise IDXError(f"{name}: truncated IDX header ({ndim} dimensions, {len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        what = "truncated" if len(body) < expected else "has trailing bytes"
        raise IDXError(f"{name}: {what}: dimensions {dims} need {expected} data bytes, found {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def read_idx(path: str | Path, expect_shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Read an IDX file; `expect_shape` (None = any size) checks the dimensions."""
    arr = parse_idx(read_bytes(path), str(path))
    if expect_shape is not None:
        ok = len(arr.shape) == len(expect_shape) and all(e is None or e == s for e, s in zip(expect_shape, arr.shape))
        if not ok:
            want = "x".join("N" if e is None else str(e) for e in expect_shape)
            raise IDXError(f"{path}: expected dimensions {want}, found {'x'.join(map(str, arr.shape))}")
    return arr


def write_idx(path: str | Path, arr: np.ndarray, compress: bool | None = None) -> None:
    """Write an array as IDX (gzip when the name ends in .gz); used to make test fixtures."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k for k, v in _DTYPES.items()}
    dt = np.dtype(arr.dtype).newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    data = bytes([0, 0, codes[dt], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(dt).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
