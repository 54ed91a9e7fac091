"""Where every benchmark writes its numbers: benchmarks/results/NAME.json (not committed)."""

import json
from pathlib import Path


def save_results(name: str, obj) -> Path:
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(obj, indent=2))
    return path
