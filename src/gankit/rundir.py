"""The run directory, the interface between commands.

    config.toml          fully resolved Config
    metrics.jsonl        one JSON object per log interval
    samples/             pictures from fixed noise during training
    losses.png           loss curves
    checkpoints/last.pt  everything needed to resume or sample
    summary.json         final metrics
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from gankit import config as config_mod
from gankit.checkpoint import atomic_write_bytes
from gankit.errors import GankitError


class RunDirError(GankitError, RuntimeError):
    """The run directory is missing, or holds a different run."""


def default_path(cfg) -> Path:
    base = Path("runs") / f"{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return path


def holds_run(path: Path) -> bool:
    return (path / "config.toml").exists() or (path / "checkpoints" / "last.pt").exists()


def create(path: Path, cfg) -> Path:
    """Make a new run directory and write its config; never overwrite one that holds a run."""
    path = Path(path)
    if holds_run(path):
        raise RunDirError(f"{path} already holds a run; continue it with --resume {path} or choose another --out")
    (path / "samples").mkdir(parents=True, exist_ok=True)
    (path / "checkpoints").mkdir(exist_ok=True)
    write_config(path, cfg)
    return path


def write_config(path: Path, cfg) -> None:
    atomic_write_bytes(Path(path) / "config.toml", config_mod.dumps(cfg).encode())


def read_config(path: Path):
    path = Path(path)
    if not (path / "config.toml").is_file():
        raise RunDirError(f"{path} is not a gankit run directory (no config.toml)")
    return config_mod.load(path / "config.toml")


def append_metrics(path: Path, row: dict) -> None:
    with open(Path(path) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    p = Path(path) / "metrics.jsonl"
    if not p.exists():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a crash ends the usable log
    return rows


def truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after `step` (written after the checkpoint a resume starts from)."""
    rows = [r for r in read_metrics(path) if r["step"] <= step]
    atomic_write_bytes(Path(path) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())


def write_json(path: Path, name: str, obj: dict) -> None:
    atomic_write_bytes(Path(path) / name, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: Path, name: str) -> dict:
    p = Path(path) / name
    return json.loads(p.read_text()) if p.exists() else {}
