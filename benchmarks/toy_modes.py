"""Mode coverage of `gankit train` defaults (settled as the CLI settles them: R1 0.1 on the mixtures) on ring8 and
grid25 over several seeds.

    python benchmarks/toy_modes.py [--seeds 10] [--datasets ring8,grid25] [--stacked] [key=value ...]

Prints one row per seed and a summary (modes covered, high-quality fraction), and writes JSON to
benchmarks/results/toy_modes.json. Target: ring8 8/8 and grid25 >= 23/25 with >= 80% high-quality
samples on at least 8 of 10 seeds. `--stacked` trains the seeds of each dataset as one seed ensemble (`gankit train
--seeds N`: the same runs up to floating-point rounding, which GAN training amplifies over thousands of steps; the
per-seed seconds are then the ensemble's divided by N).
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from pathlib import Path

import torch

from _save import save_results
from gankit import config as config_mod
from gankit.train import train


def _train(name: str, seed: int, overrides: dict, seeds: int = 1) -> tuple[dict, float]:
    cfg = config_mod.settle({**overrides, "dataset": name, "seed": seed, "seeds": seeds, "sample_every": 10**9,
                                "checkpoint_every": 10**9})
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = train(cfg, Path(tmp) / "run", progress=False)
        return summary, time.perf_counter() - t


def _separate(name: str, args, overrides: dict):
    """(seed, mode metrics, seconds) of one plain run per seed."""
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        summary, secs = _train(name, seed, overrides)
        yield seed, summary["modes"], secs


def _stacked(name: str, args, overrides: dict):
    """(seed, mode metrics, seconds / N) of each member of one seed ensemble."""
    summary, secs = _train(name, args.first_seed, overrides, seeds=args.seeds)
    for row in summary["members"]:
        yield row["seed"], row["modes"], secs / args.seeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--datasets", default="ring8,grid25")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--stacked", action="store_true", help="all seeds in one process as a seed ensemble (--seeds)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    results = {}
    for name in args.datasets.split(","):
        rows = []
        for seed, mm, secs in (_stacked if args.stacked else _separate)(name, args, overrides):
            rows.append({"seed": seed, "modes": mm["modes_covered"], "n_modes": mm["n_modes"],
                         "hq": mm["high_quality_fraction"], "kl": mm["kl_to_uniform"], "seconds": secs})
            print(f"{name:8s} seed {seed:2d}: modes {mm['modes_covered']:2d}/{mm['n_modes']}  "
                  f"high-quality {mm['high_quality_fraction']:.3f}  KL {mm['kl_to_uniform']:.3f}  {secs:5.1f} s",
                  flush=True)
        need = 8 if name == "ring8" else 23
        ok = sum(r["modes"] >= need and r["hq"] >= 0.8 for r in rows)
        print(f"{name}: mean modes {sum(r['modes'] for r in rows) / len(rows):.1f}/{rows[0]['n_modes']}, "
              f"mean high-quality {sum(r['hq'] for r in rows) / len(rows):.3f}, "
              f"seeds meeting target (>= {need} modes and >= 80% HQ): {ok}/{len(rows)}", flush=True)
        results[name] = rows
    save_results(f"toy_modes_{'_'.join(args.datasets.split(','))}{'_stacked' if args.stacked else ''}",
                 {"overrides": overrides, "stacked": args.stacked, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
