"""The validation monitor's curve of one or more runs against epoch, in one figure (e.g. a long bf16 run beside
the first epochs of the same preset in fp32).

    python benchmarks/monitor_curve.py RUN_DIR [RUN_DIR ...] --out docs/code-mnist-curve.png [--labels A,B]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gankit import rundir  # noqa: E402
from gankit.config import load_complete  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--labels", default=None, help="comma-separated legend entries (default: preset details)")
    ap.add_argument("--hline", type=float, default=None, help="a reference value to draw (e.g. 225)")
    args = ap.parse_args()
    labels = args.labels.split(",") if args.labels else None
    fig, ax = plt.subplots(figsize=(7, 4))
    key = None
    for i, run in enumerate(args.runs):
        rows = rundir.read_metrics(Path(run))
        keys = sorted({k for r in rows for k in r if k.startswith(rundir.MONITORED)})
        if not keys:
            raise SystemExit(f"{run}: no validation monitor values in metrics.jsonl")
        key = keys[0]
        cfg = load_complete(Path(run) / "config.toml")
        at = [r for r in rows if key in r]
        label = labels[i] if labels else f"{Path(run).name} ({cfg.precision})"
        ax.plot([r["epoch"] for r in at], [r[key] for r in at], marker=".", ms=3, label=label)
        best = max(at, key=lambda r: r[key]) if key != "valid_fd" else min(at, key=lambda r: r[key])
        print(f"{run}: {len(at)} evaluations to epoch {at[-1]['epoch']:.1f}; best {best[key]:.1f} at epoch "
              f"{best['epoch']:.1f}; last {at[-1][key]:.1f}")
    if args.hline is not None:
        ax.axhline(args.hline, color="gray", ls=":", lw=1, label=f"{args.hline:g}")
    ax.set_xlabel("epoch"), ax.set_ylabel(f"{key} (held-out)"), ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
