"""Where every benchmark writes its numbers: benchmarks/results/NAME.json (not committed)."""

import json
import os
from pathlib import Path


def save_results(name: str, obj) -> Path:
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(obj, indent=2))
    return path


def merge_results(name: str, rows: list[dict], key: tuple[str, ...]) -> Path:
    """Add `rows` to benchmarks/results/NAME.json (a list), replacing the rows that agree on `key`: a long grid
    run in parts, or stopped midway, keeps every run that finished. Written atomically."""
    path = Path(__file__).parent / "results" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else []
    new = {tuple(r.get(k) for k in key) for r in rows}
    kept = [r for r in old if tuple(r.get(k) for k in key) not in new] + rows
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept, indent=2))
    os.replace(tmp, path)
    return path
