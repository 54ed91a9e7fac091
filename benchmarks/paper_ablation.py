"""Where Algorithm 1 as printed (`paper-mnist`) and the released code (`paper-mnist-code`) differ, one change
at a time: each variant is the code preset with one of its choices switched to Algorithm 1's (or to gankit's own
default), trained for the same epochs on each seed, judged by the validation Parzen log-likelihood (the monitor,
every epoch: its best and its last value) and by the Fréchet distance of the last G's samples to the test images
on the shipped classifier's features.

    python benchmarks/paper_ablation.py [--epochs 15] [--precision bf16] [--seeds 0,1,2] [--out runs/ablation]
                                        [--threads N]
                                        [--variants NAME,...]

A run whose directory already holds a finished summary is read, not retrained, and one whose directory exists
without it is skipped (another invocation is training it): two invocations of the same command, each with
--threads 1, share 2 cores, and a last one after both prints the whole table.
"""

import argparse
import json
import statistics
from pathlib import Path

from _save import save_results

from gankit import config as C, rundir
from gankit.evaluate import run_metric
from gankit.train import train

VARIANTS = {
    "released code (paper-mnist-code)": {},
    "alternating update (Algorithm 1)": {"update": "alternating"},
    "full D loss (no 1/2)": {"d_loss_scale": 1.0},
    "torch momentum rule, smooth schedule": {"sgd_form": "torch"},
    "Gaussian noise (gankit's default)": {"noise": "normal"},
    "output bias clipped at 1e-3 (gankit's)": {"output_bias": "mean"},
    "zero output bias": {"output_bias": "zero"},
    "Algorithm 1 as printed (paper-mnist + monitor)": {"update": "alternating", "d_loss_scale": 1.0,
                                                        "sgd_form": "torch", "output_bias": "mean"},
}


def one_run(change: dict, args, seed: int, run: Path) -> dict | None:
    """Train (unless finished before) and measure one variant on one seed; None for a run another invocation is
    training now (its directory there, its summary not yet: delete the directory of a run that was stopped)."""
    if run.exists() and not (run / "summary.json").exists():
        print(f"{run}: in progress elsewhere (or stopped): skipped", flush=True)
        return None
    if not (run / "summary.json").exists():
        values = {**C.preset("paper-mnist-code"), **change, "dataset": args.dataset, "epochs": args.epochs,
                  "precision": args.precision, "seed": seed, "checkpoint_every": 10**9, "threads": args.threads}
        train(C.settle(values), run, progress=False)
    curve = [(r["epoch"], r["valid_parzen"]) for r in rundir.read_metrics(run) if "valid_parzen" in r]
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best"]
    fd = rundir.read_json(run, "eval.json").get("fd") or run_metric(run, "fd", n_samples=10_000, bootstrap=0)
    return {"seed": seed, "best": best["value"], "best_epoch": best["step"] * 100 / 50_000, "last": curve[-1][1],
            "fd": fd["value"], "curve": curve, "seconds": summary["seconds"]}


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=15.0)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: auto)")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--variants", default="", help="comma-separated names' first words (default: all)")
    args = ap.parse_args()
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = {name: change for name, change in VARIANTS.items()
                if not chosen or any(name.startswith(c) for c in chosen)}
    measured = {name: [] for name in variants}
    for seed in seeds:  # seed by seed, so a benchmark stopped early has every variant on its first seeds
        for name, change in variants.items():
            slug = name.split(" (")[0].replace(" ", "-").replace(",", "")
            result = one_run(change, args, seed, Path(args.out) / f"{slug}-seed{seed}")
            if result is not None:
                measured[name].append(result)
    measured = {name: runs for name, runs in measured.items() if runs}
    rows = [{"variant": name, "change": variants[name], "runs": runs} for name, runs in measured.items()]
    for name, runs in measured.items():
        best, last, fd = (_spread([r[k] for r in runs]) for k in ("best", "last", "fd"))
        print(f"{name:50s} best {best:>14s}  last {last:>15s}  FD {fd:>13s}", flush=True)
    print(f"\n| variant | best validation Parzen (nats), mean ± std | per seed | after {args.epochs:g} epochs | "
          f"FD after {args.epochs:g} epochs |\n|---|---|---|---|---|")
    for r in rows:
        per_seed = " / ".join(f"{x['best']:.0f}" for x in r["runs"])
        print(f"| {r['variant']} | {_spread([x['best'] for x in r['runs']])} | {per_seed} | "
              f"{_spread([x['last'] for x in r['runs']])} | {_spread([x['fd'] for x in r['runs']])} |")
    print(f"\nwrote {save_results(f'paper_ablation_{args.dataset}', {'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
