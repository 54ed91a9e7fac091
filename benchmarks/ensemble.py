"""Seed ensembles: the wall time of N seeds trained as one stacked run against one seed, and the ensemble's
per-member mode coverage against N separate runs.

    python benchmarks/ensemble.py [--seeds 10] [--dataset grid25] [--steps 2000] [--repeats 3] [--threads 2]
                                  [--modes-steps 6000] [--no-timing] [--no-modes] [--no-separate]

Timing: `--steps` iterations of the dataset's default run with 1 seed, then with `--seeds` (training-loop
seconds from the summary, so start-up and the final evaluation are left out), `--repeats` times; prints each
ratio and their median (target for grid25, 10 seeds, 2 cores: <= 2.5x). It also prints the arithmetic of
one iteration and this machine's batched-matmul rate, which bound the ratio from below.
Modes: one ensemble of `--seeds` members and (unless --no-separate) the same seeds as separate plain runs,
`--modes-steps` iterations each; prints modes covered and high-quality fraction, mean ± std over seeds.
Writes benchmarks/results/ensemble.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _save import save_results
from gankit import config as config_mod
from gankit.train import train

# the targets for 10 seeds on 2 cores, as a multiple of one seed's time
TARGETS = {"grid25": "2.5x", "fashion-mnist": "5x"}
QUIET = dict(sample_every=10**9, checkpoint_every=10**9, log_every=100)


def run(dataset: str, seeds: int, steps: int, seed: int = 0) -> dict:
    cfg = config_mod.settle({**QUIET, "dataset": dataset, "seeds": seeds, "steps": steps, "seed": seed})  # as the CLI
    with tempfile.TemporaryDirectory() as tmp:
        return train(cfg, Path(tmp) / "run", progress=False)


def iteration_gflop(cfg) -> float:
    """Matrix-product GFLOP of one Algorithm-1 iteration of one seed (k = 1), counted as benchmarks/speed.py counts."""
    from gankit.gan import build
    from speed import step_flops

    gan = build(cfg)
    return step_flops(gan.G, gan.D, cfg.batch_size, reuse_fake=False) / 1e9


def matmul_rate(seeds: int, cfg) -> float:
    """GFLOP/s of the ensemble's biggest batched product ([E, 2m, h] x [E, h, h]) on this machine now."""
    a, b = torch.randn(seeds, 2 * cfg.batch_size, cfg.hidden), torch.randn(seeds, cfg.hidden, cfg.hidden)
    for _ in range(3):
        torch.bmm(a, b)
    n, t = 20, time.perf_counter()
    for _ in range(n):
        torch.bmm(a, b)
    return 2 * seeds * 2 * cfg.batch_size * cfg.hidden**2 * n / (time.perf_counter() - t) / 1e9


def spread(values):
    return statistics.fmean(values), statistics.pstdev(values)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--dataset", default="grid25")
    p.add_argument("--steps", type=int, default=2000, help="iterations of each timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads for the timed runs")
    p.add_argument("--modes-steps", type=int, default=6000, help="iterations of the mode-coverage runs")
    p.add_argument("--no-timing", action="store_true")
    p.add_argument("--no-modes", action="store_true")
    p.add_argument("--no-separate", action="store_true", help="modes: the ensemble only")
    args = p.parse_args(argv)
    results: dict = {"seeds": args.seeds, "dataset": args.dataset}
    if not args.no_timing:
        torch.set_num_threads(args.threads)
        cfg = config_mod.settle({"dataset": args.dataset})
        rows = []
        for r in range(args.repeats):
            one = run(args.dataset, 1, args.steps)["seconds"]
            many = run(args.dataset, args.seeds, args.steps)["seconds"]
            rows.append({"one": one, "many": many, "ratio": many / one})
            print(f"repeat {r}: 1 seed {one:7.1f} s, {args.seeds} seeds {many:7.1f} s, ratio {many / one:5.2f}x "
                  f"(target <= {TARGETS.get(args.dataset, 'none')})", flush=True)
        ratio = statistics.median(r["ratio"] for r in rows)
        gflop = iteration_gflop(cfg)
        one = statistics.median(r["one"] for r in rows) / args.steps
        print(f"median ratio {ratio:.2f}x for {args.seeds} seeds vs 1 ({args.steps} steps, {args.threads} threads)")
        print(f"one seed: {gflop:.2f} GFLOP per iteration in {one * 1e3:.1f} ms = {gflop / one:.1f} GFLOP/s", flush=True)
        rate = None
        if cfg.model == "mlp":  # the toy MLP's layers are all hidden x hidden: one batched product bounds the ratio
            rate = matmul_rate(args.seeds, cfg)
            print(f"batched matmul here now: {rate:.1f} GFLOP/s, so {args.seeds} seeds need >= "
                  f"{args.seeds * gflop / rate / one:.1f}x one seed's time at that rate", flush=True)
        results["timing"] = {"steps": args.steps, "threads": args.threads, "rows": rows, "median_ratio": ratio,
                             "gflop_per_iteration": gflop, "matmul_gflops": rate}
    if not args.no_modes:
        torch.set_num_threads(1)
        t = time.perf_counter()
        summary = run(args.dataset, args.seeds, args.modes_steps)
        ens = [r["modes"] for r in summary["members"]]
        results["modes"] = {"steps": args.modes_steps, "ensemble": ens, "ensemble_seconds": time.perf_counter() - t}
        lines = [("ensemble", ens)]
        if not args.no_separate:
            t = time.perf_counter()
            sep = [run(args.dataset, 1, args.modes_steps, seed=s)["modes"] for s in range(args.seeds)]
            results["modes"] |= {"separate": sep, "separate_seconds": time.perf_counter() - t}
            lines.append(("separate", sep))
        for name, rows in lines:
            mc, hq = spread([r["modes_covered"] for r in rows]), spread([r["high_quality_fraction"] for r in rows])
            print(f"{name:9s} ({args.seeds} seeds, {args.modes_steps} steps): modes covered "
                  f"{' '.join(str(r['modes_covered']) for r in rows)}; mean {mc[0]:.1f} ± {mc[1]:.1f}/"
                  f"{rows[0]['n_modes']}, high-quality {hq[0]:.1%} ± {hq[1]:.1%}", flush=True)
    save_results("ensemble" + ("_timing" if args.no_modes else "") + ("_modes" if args.no_timing else ""), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
