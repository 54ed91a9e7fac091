"""The run directory, the interface between commands.

    config.toml          fully resolved Config (what defines the run and how it executes)
    metrics.jsonl        one JSON object per log interval
    samples/             pictures from fixed noise during training
    losses.png           loss curves
    checkpoints/last.pt  everything needed to resume, sample or evaluate
    summary.json         final metrics (or how the run ended: interrupted, diverged)
    .lock                held (flock) by the one process that trains in it

A directory holds a run when it holds config.toml; a fresh run writes its first checkpoint before its
config, so a run stopped while being created leaves nothing that blocks a fresh start. Every file read
back is validated; a bad one is an error naming the file and line.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from gankit import config as config_mod
from gankit.checkpoint import atomic_write_bytes
from gankit.errors import GankitError, on_disk


class RunDirError(GankitError, RuntimeError):
    """The run directory is missing, holds a different run, is in use, or holds a malformed file."""


def default_path(cfg) -> Path:
    base = Path("runs") / f"{cfg.dataset.replace('/', '_').replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return path


def holds_run(path: Path) -> bool:
    return (Path(path) / "config.toml").exists()


class Lock:
    """An exclusive lock on a run directory, held while one process trains in it; the OS releases it when that
    process dies. A second writer gets a one-line error naming the process that holds it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        with on_disk("lock", self.path):
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise RunDirError(f"{run_dir} is in use by another gankit process (pid {holder}); wait for it to "
                              f"finish or stop it") from None
        with on_disk("write", self.path):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class NewRun:
    """Creating a run directory as a whole: `begin` makes and locks it (refusing one that holds a run);
    the caller writes the first checkpoint, then `commit` writes config.toml. `abort` removes what
    `begin` made, so bad input or a failure leaves nothing behind."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} exists and is not a directory; choose another --out")
        if holds_run(self.path):
            raise RunDirError(f"{self.path} already holds a run; continue it with --resume {self.path} or choose "
                              f"another --out")
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        self.root = missing[-1] if missing else None  # the topmost directory this creation makes
        self.new = [self.path / sub for sub in ("samples", "checkpoints") if not (self.path / sub).exists()]
        self.lock = None
        try:
            with on_disk("create run directory", self.path):
                self.path.mkdir(parents=True, exist_ok=True)
            self.lock = Lock(self.path)
            if holds_run(self.path):  # another process created it meanwhile
                raise RunDirError(f"{self.path} already holds a run; choose another --out")
            with on_disk("create run directory", self.path):
                for sub in ("samples", "checkpoints"):
                    (self.path / sub).mkdir(exist_ok=True)
                (self.path / "metrics.jsonl").unlink(missing_ok=True)  # an orphan of a creation that never finished
        except BaseException:
            self.abort()
            raise

    def commit(self, cfg) -> Lock:
        write_config(self.path, cfg)
        return self.lock

    def abort(self) -> None:
        """Remove what this creation made (in a directory that existed before, what it added)."""
        if self.lock is not None:
            self.lock.release()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for d in self.new:
            shutil.rmtree(d, ignore_errors=True)
        for name in ("config.toml", "metrics.jsonl", ".lock"):
            (self.path / name).unlink(missing_ok=True)


def open_existing(path: Path) -> Lock:
    """Lock a run directory that holds a run, for resuming it."""
    path = Path(path)
    if not path.is_dir() or not holds_run(path):
        raise RunDirError(f"{path} is not a gankit run directory (no config.toml)")
    return Lock(path)


def write_config(path: Path, cfg) -> None:
    with on_disk("write", Path(path) / "config.toml"):
        atomic_write_bytes(Path(path) / "config.toml", config_mod.dumps(cfg).encode())


def read_config(path: Path):
    """The run's config.toml, complete and valid, or a RunDirError naming the file and the problem."""
    path = Path(path)
    if not (path / "config.toml").is_file():
        raise RunDirError(f"{path} is not a gankit run directory (no config.toml)")
    try:
        return config_mod.load_complete(path / "config.toml")
    except config_mod.ConfigError as e:
        raise RunDirError(f"{path / 'config.toml'}: {e}") from None


def append_metrics(path: Path, row: dict) -> None:
    p = Path(path) / "metrics.jsonl"
    with on_disk("append to", p), open(p, "a") as f:
        f.write(json.dumps(row) + "\n")


def _check_row(row, p: Path, lineno: int, previous: int) -> int:
    if not isinstance(row, dict):
        raise RunDirError(f"{p}:{lineno}: not a metrics row (a JSON object), got {type(row).__name__}")
    step = row.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step <= previous:
        raise RunDirError(f"{p}:{lineno}: 'step' must be an integer above the previous row's {previous}, "
                          f"got {step!r}")
    for key, v in row.items():
        if key != "step" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise RunDirError(f"{p}:{lineno}: '{key}' must be a number, got {v!r}")
    return step


def read_metrics(path: Path) -> list[dict]:
    """The logged rows, validated (objects with increasing integer steps, numeric values and the same keys, bar
    the validation monitor's 'valid_*', present where it was evaluated). A last line cut
    short by a crash (no newline, not JSON) is dropped with a warning; any other bad line is an error."""
    p = Path(path) / "metrics.jsonl"
    if not p.exists():
        return []
    with on_disk("read", p):
        raw = p.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        raise RunDirError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = text.split("\n")
    rows, previous = [], 0
    for i, line in enumerate(lines, 1):
        if i == len(lines) and line == "":
            break
        try:
            row = json.loads(line, parse_constant=lambda c: float(c))
        except json.JSONDecodeError as e:
            if i == len(lines):  # the unterminated last line: an append cut short
                print(f"gankit: warning: {p}:{i}: dropped an incomplete last line (a write cut short)",
                      file=sys.stderr)
                break
            raise RunDirError(f"{p}:{i}: not JSON ({e.msg})") from None
        previous = _check_row(row, p, i, previous)
        if rows and _core(row) != _core(rows[0]):
            raise RunDirError(f"{p}:{i}: a row with keys {sorted(row)} among rows with {sorted(rows[0])}")
        rows.append(row)
    return rows


MONITORED = "valid_"  # keys of the validation monitor's values: only in the rows it was evaluated at


def _core(row: dict) -> set:
    """The keys every row of a run has (all but the monitor's)."""
    return {k for k in row if not k.startswith(MONITORED)}


def truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after `step` (written after the checkpoint a resume starts from)."""
    rows = [r for r in read_metrics(path) if r["step"] <= step]
    p = Path(path) / "metrics.jsonl"
    with on_disk("write", p):
        atomic_write_bytes(p, "".join(json.dumps(r) + "\n" for r in rows).encode())


def write_json(path: Path, name: str, obj: dict) -> None:
    with on_disk("write", Path(path) / name):
        atomic_write_bytes(Path(path) / name, (json.dumps(obj, indent=2, default=_plain) + "\n").encode())


def _plain(v):
    return v if not isinstance(v, float) or math.isfinite(v) else str(v)


def read_json(path: Path, name: str) -> dict:
    """A JSON object the run wrote (summary.json, eval.json); {} when absent; an error naming the file when bad."""
    p = Path(path) / name
    if not p.exists():
        return {}
    try:
        with on_disk("read", p):
            obj = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{p}: not valid JSON ({getattr(e, 'msg', e)}); delete it to start it afresh") from None
    if not isinstance(obj, dict):
        raise RunDirError(f"{p}: expected a JSON object, got {type(obj).__name__}; delete it to start it afresh")
    return obj
