"""The remedy benchmark: each objective and stabiliser on the toy mixtures, several seeds each, modes covered
and high-quality fraction (2,500 samples, as in benchmarks/toy_modes.py; 100 per mode on grid100), and the
final JSD(p_data || p_g) and W1 that every 2-D toy run logs (its last logged row).

    python benchmarks/objectives.py [--seeds 3] [--datasets grid25] [--jobs 2] [--configs NAME,...] [--steps 6000]

Every run has the same length (--steps, 6,000 by default: the toy budget the README's tables use). Runs `--jobs`
trainings side by side, one torch thread each; prints a Markdown table and writes benchmarks/results/objectives.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _save import save_results

CONFIGS = {  # name: config overrides over the toy defaults (as the CLI settles them: R1 0.1 in the logistic game)
    "logistic (no penalty)": {"r1": 0.0},
    "least-squares": {"objective": "least-squares"},
    "hinge": {"objective": "hinge"},
    "wgan-gp": {"objective": "wgan-gp", "k": 5},
    "wgan-clip": {"objective": "wgan-clip", "k": 5, "lr": 5e-5},
    "relativistic": {"objective": "relativistic"},
    "relativistic + R1 0.1": {"objective": "relativistic", "r1": 0.1},
    "logistic + R1 0.1 (default)": {},
    "logistic + spectral norm": {"r1": 0.0, "spectral_norm": True},
    "logistic + pack 2": {"r1": 0.0, "pack": 2},
    "hinge + spectral norm": {"objective": "hinge", "spectral_norm": True},
}


def one(job: tuple[str, str, int, int | None]) -> dict:
    name, dataset, seed, steps = job
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from gankit import config as config_mod, rundir
    from gankit.train import train

    length = {"steps": steps} if steps else {}
    cfg = config_mod.settle({**CONFIGS[name], "dataset": dataset, "seed": seed, "sample_every": 10**9,
                                "checkpoint_every": 10**9, **length})
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        try:
            summary = train(cfg, Path(tmp) / "run", progress=False)
        except Exception as e:  # noqa: BLE001 - a diverged configuration is a result too
            return {"config": name, "dataset": dataset, "seed": seed, "error": str(e)[:120]}
        secs = time.perf_counter() - t
        last = [row for row in rundir.read_metrics(Path(tmp) / "run") if "jsd" in row][-1]
    mm = summary["modes"]
    return {"config": name, "dataset": dataset, "seed": seed, "modes": mm["modes_covered"], "n_modes": mm["n_modes"],
            "hq": mm["high_quality_fraction"], "jsd": last["jsd"], "w1": last["w1"], "seconds": secs}


def mean_std(values: list[float]) -> str:
    m = sum(values) / len(values)
    s = (sum((v - m) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return f"{m:.3f} ± {s:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", default="grid25")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--steps", type=int, default=6000, help="every run's length, so the games compare at one budget "
                   "(0: as the CLI settles it, grid25's logistic runs 12,000)")
    args = p.parse_args(argv)
    names = [n for n in CONFIGS if n in args.configs.split(",")]
    jobs = [(n, d, s, args.steps) for d in args.datasets.split(",") for n in names for s in range(args.seeds)]
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, jobs):  # each run as it ends, so a long grid shows its progress
            results.append(r)
            print(f"{r['dataset']} {r['config']} seed {r['seed']}: "
                  + (f"{r['modes']}/{r['n_modes']} modes, {r['hq']:.1%} HQ, {r['seconds']:.0f} s" if "modes" in r
                     else r["error"]), file=sys.stderr, flush=True)
    print("| dataset | configuration | modes per seed | mean modes | mean high-quality | final JSD | final W1 | "
          "seeds with all modes and >= 90 % HQ |")
    print("|---|---|---|---|---|---|---|---|")
    for d in args.datasets.split(","):
        for n in names:
            rows = [r for r in results if r["config"] == n and r["dataset"] == d]
            ok = [r for r in rows if "modes" in r]
            if not ok:
                print(f"| {d} | {n} | diverged | | | | | 0/{len(rows)} |")
                continue
            full = sum(r["modes"] == r["n_modes"] and r["hq"] >= 0.9 for r in ok)
            per_seed = " ".join(str(r["modes"]) if "modes" in r else "x" for r in rows)
            print(f"| {d} | {n} | {per_seed} | {sum(r['modes'] for r in ok) / len(ok):.1f} / {ok[0]['n_modes']} | "
                  f"{100 * sum(r['hq'] for r in ok) / len(ok):.1f} % | {mean_std([r['jsd'] for r in ok])} | "
                  f"{mean_std([r['w1'] for r in ok])} | {full}/{len(rows)} |", flush=True)
    save_results("objectives", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
