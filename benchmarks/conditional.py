"""Conditional generation (--conditional): do samples asked for class c come out as class c?

    python benchmarks/conditional.py toys [--seeds 3] [--datasets ring8,grid25] [--steps 2000]
    python benchmarks/conditional.py images [--dataset fashion-mnist] [--preset dcgan-fashion-mnist]
                                            [--epochs 4] [--data-dir DIR] [--run RUN_DIR]

toys: per seed, train the toy defaults (as the CLI settles them: R1 0.1) with --conditional, then draw 1,000 samples of every class and count
those on mode c (nearest mode c, within 3 std). Target >= 99 % on every seed.
images: train the preset with --conditional (or take --run), then `gankit eval --metric conditional`: gankit's
classifier's label against the requested class over 10,000 samples (1,000 per class), and the FD per class.
Targets: >= 97 % on MNIST, >= 85 % on Fashion-MNIST. Results go to benchmarks/results/conditional_*.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from _save import save_results
from gankit import config as config_mod
from gankit.evaluate import run_metric
from gankit.metrics.conditional import on_mode
from gankit.train import fit


def toys(args) -> dict:
    results = {}
    for name in args.datasets.split(","):
        rows = []
        for seed in range(args.seeds):
            cfg = config_mod.settle({"dataset": name, "seed": seed, "steps": args.steps, "conditional": True,
                                        "sample_every": 10**9, "checkpoint_every": 10**9})
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                gan, summary = fit(cfg, Path(tmp) / "run", progress=False)
                secs = time.perf_counter() - t
            k = gan.n_classes
            c = torch.arange(1000 * k) % k
            torch.manual_seed(1000 + seed)
            r = on_mode(gan.sample(len(c), c=c).cpu(), c, gan.spec.modes, gan.spec.mode_std)
            rows.append({"seed": seed, "on_mode": r["accuracy"], "worst_class": r["worst_class"], "worst": r["worst"],
                         "modes_covered": summary["modes"]["modes_covered"], "seconds": round(secs, 1)})
            print(f"{name:7s} seed {seed}: on mode c {r['accuracy']:.4f} (worst class {r['worst_class']}: "
                  f"{r['worst']:.4f}), modes covered {summary['modes']['modes_covered']}/{k}, {secs:.0f} s", flush=True)
        mean = sum(r["on_mode"] for r in rows) / len(rows)
        print(f"{name}: mean on-mode fraction {mean:.4f}, min {min(r['on_mode'] for r in rows):.4f}, "
              f"seeds >= 99 %: {sum(r['on_mode'] >= 0.99 for r in rows)}/{len(rows)}", flush=True)
        results[name] = rows
    save_results("conditional_toys", {"steps": args.steps, "results": results})
    return results


def images(args) -> dict:
    run = args.run
    secs = None
    if run is None:
        preset = config_mod.preset(args.preset) if args.preset != "none" else {}  # none: the image defaults
        values = {**preset, "dataset": args.dataset, "conditional": True,
                  "epochs": args.epochs, "seed": args.seed}
        if args.data_dir:
            values["data_dir"] = args.data_dir
        cfg = config_mod.settle(values)
        run = args.out or str(Path(tempfile.mkdtemp(prefix="conditional-")) / "run")
        cfg.out = run
        t = time.perf_counter()
        fit(cfg, run, progress=False)
        secs = time.perf_counter() - t
    r = run_metric(run, "conditional", n_samples=10_000, seed=0)
    print(f"{args.dataset}: classifier agrees with c on {r['accuracy']:.4f} of 10,000 samples; worst class "
          f"{r['worst_class']} ({r['worst']:.4f}); per class {', '.join(f'{v:.3f}' for v in r['per_class'])}"
          + (f"; FD per class {', '.join(f'{v:.1f}' for v in r['fd_per_class'])}" if "fd_per_class" in r else "")
          + (f"; trained {secs:.0f} s" if secs else "") + f"; run {run}", flush=True)
    save_results(f"conditional_{args.dataset}_{args.preset}", {**r, "run": run, "train_seconds": secs, "preset": args.preset,
                                                 "epochs": args.epochs})
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("toys")
    t.add_argument("--seeds", type=int, default=3)
    t.add_argument("--datasets", default="ring8,grid25")
    t.add_argument("--steps", type=int, default=2000)
    i = sub.add_parser("images")
    i.add_argument("--dataset", default="fashion-mnist")
    i.add_argument("--preset", default="dcgan-fashion-mnist", help="a preset, or none for the image defaults (bn-mlp)")
    i.add_argument("--epochs", type=float, default=4.0)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--data-dir", default=None)
    i.add_argument("--run", default=None, help="evaluate this finished conditional run instead of training one")
    i.add_argument("--out", default=None, help="where to keep the trained run (default: a temporary directory)")
    args = p.parse_args(argv)
    toys(args) if args.what == "toys" else images(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
