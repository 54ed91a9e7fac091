"""Checkpoints written atomically (temp file, fsync, rename) and loaded without running code."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from gankit.errors import CheckpointError, first_line, on_disk


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` so that `path` holds either its old content or the whole new content, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(state: dict, path: str | Path) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    with on_disk("write checkpoint", path):
        atomic_write_bytes(path, buf.getvalue())


def save_rotating(state: dict, ckpt_dir: str | Path, step: int, keep: int) -> Path:
    """Write `last.pt` and, when keep > 1, `step-XXXXXXXX.pt`, keeping the newest `keep` of those."""
    ckpt_dir = Path(ckpt_dir)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    with on_disk("write checkpoint", ckpt_dir / "last.pt"):
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(ckpt_dir / "last.pt", data)
        if keep > 1:
            atomic_write_bytes(ckpt_dir / f"step-{step:08d}.pt", data)
            for old in sorted(ckpt_dir.glob("step-*.pt"))[:-keep]:
                old.unlink(missing_ok=True)
    return ckpt_dir / "last.pt"


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a corrupt file to the user
        raise CheckpointError(f"checkpoint {path} is corrupt or not a gankit checkpoint: {first_line(e)}") from None
