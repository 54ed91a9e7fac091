"""The truncation trade-off of trained image runs: at each truncation t (G's z drawn from p_z restricted to
[-t, t] per coordinate, `gankit sample|eval --truncation t`), classes covered, FD, precision and recall of 10,000
samples against the test images on gankit's shipped classifier (as benchmarks/objectives.py scores its image runs),
per run and as mean ± std over the runs (seeds of one configuration).

    python benchmarks/truncation.py RUN_DIR [RUN_DIR ...] [--values none,2,1.5,1] [--checkpoint last]

Prints a Markdown table and writes benchmarks/results/truncation.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _save import save_results
from objectives import image_scores, mean_std


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--values", default="none,2,1.5,1", help="comma-separated truncations; none = the full prior")
    p.add_argument("--checkpoint", default="last")
    args = p.parse_args(argv)
    try:
        values = [None if v.strip() == "none" else float(v) for v in args.values.split(",")]
    except ValueError:
        p.error(f"--values takes numbers or 'none', got {args.values!r}")
    rows = []
    print("| truncation | run | classes | FD | precision | recall |")
    print("|---|---|---|---|---|---|")
    for t in values:
        for run in args.runs:
            r = {"truncation": t, "run": run, **image_scores(Path(run), truncation=t, checkpoint=args.checkpoint)}
            rows.append(r)
            print(f"| {t or 'none'} | {Path(run).name} | {r['classes']} | {r['fd']:.1f} | {r['precision']:.3f} | "
                  f"{r['recall']:.3f} |", flush=True)
    if len(args.runs) > 1:
        print("\n| truncation | runs | FD | precision | recall | runs with recall >= 0.5, precision >= 0.7, FD <= 30 |")
        print("|---|---|---|---|---|---|")
        for t in values:
            ok = [r for r in rows if r["truncation"] == t]
            met = sum(r["recall"] >= 0.5 and r["precision"] >= 0.7 and r["fd"] <= 30 for r in ok)
            print(f"| {t or 'none'} | {len(ok)} | {mean_std([r['fd'] for r in ok], 1)} | "
                  f"{mean_std([r['precision'] for r in ok])} | {mean_std([r['recall'] for r in ok])} | "
                  f"{met}/{len(ok)} |")
    save_results("truncation", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
