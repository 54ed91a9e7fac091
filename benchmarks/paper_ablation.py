"""Where Algorithm 1 as printed (`paper-mnist`) and the released code (`paper-mnist-code`) differ, one change
at a time: each variant is the code preset with one of its choices switched to Algorithm 1's, trained for the
same epochs, judged by the validation Parzen log-likelihood (the monitor, every epoch) and its best value.

    python benchmarks/paper_ablation.py [--epochs 10] [--precision bf16] [--seed 0] [--out runs/ablation]
                                        [--variants NAME,...]
"""

import argparse
import time
from pathlib import Path

from _save import save_results

from gankit import config as C, rundir
from gankit.train import train

VARIANTS = {
    "released code (paper-mnist-code)": {},
    "alternating update (Algorithm 1)": {"update": "alternating"},
    "full D loss (no 1/2)": {"d_loss_scale": 1.0},
    "torch momentum rule, smooth schedule": {"sgd_form": "torch"},
    "Gaussian noise (gankit's default)": {"noise": "normal"},
    "Algorithm 1 as printed (paper-mnist + monitor)": {"update": "alternating", "d_loss_scale": 1.0,
                                                        "sgd_form": "torch"},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=10.0)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--variants", default="", help="comma-separated names' first words (default: all)")
    args = ap.parse_args()
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    rows = []
    for name, change in VARIANTS.items():
        if chosen and not any(name.startswith(c) for c in chosen):
            continue
        values = {**C.preset("paper-mnist-code"), **change, "dataset": args.dataset, "epochs": args.epochs,
                  "precision": args.precision, "seed": args.seed, "checkpoint_every": 10**9}
        run = Path(args.out) / name.split(" (")[0].replace(" ", "-").replace(",", "")
        t = time.perf_counter()
        summary = train(C.settle(values), run, progress=False)
        curve = [(r["epoch"], r["valid_parzen"]) for r in rundir.read_metrics(run) if "valid_parzen" in r]
        rows.append({"variant": name, "change": change, "best": summary["best"], "last": curve[-1][1],
                     "curve": curve, "seconds": round(time.perf_counter() - t, 1)})
        print(f"{name:50s} best {summary['best']['value']:8.1f} (epoch {summary['best']['step'] * 100 / 50_000:.0f})"
              f"  last {curve[-1][1]:8.1f}  {rows[-1]['seconds']:.0f} s", flush=True)
    print(f"\n| variant | best validation Parzen (nats) | at epoch | after {args.epochs:g} epochs |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['best']['value']:.1f} | {r['best']['step'] * 100 / 50_000:.0f} | {r['last']:.1f} |")
    print(f"\nwrote {save_results(f'paper_ablation_{args.dataset}', {'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
