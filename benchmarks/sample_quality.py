"""Sample-quality table for trained image runs: classes covered, FD (95 % bootstrap interval, FD_inf), KID,
precision/recall and density/coverage on the features of gankit's shipped domain classifier (protocol
gankit-<dataset>-v1), 10,000 samples against the 10,000 test images.

    python benchmarks/sample_quality.py RUN_DIR [RUN_DIR ...]

Prints a Markdown table (one row per run, with its model and training length) and writes
benchmarks/results/sample_quality.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _save import save_results

from gankit import rundir
from gankit.evaluate import run_metric


def main(argv=None) -> int:
    runs = (argv if argv is not None else sys.argv[1:])
    if not runs:
        print(__doc__)
        return 2
    rows = []
    print("| run | model | training | classes covered | KL to test classes | FD [95 % interval] | FD_inf | KID | "
          "precision | recall | density | coverage |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        cfg = rundir.read_config(run)
        summary = rundir.read_json(run, "summary.json")
        r = {m: run_metric(run, m) for m in ("classes", "fd", "kid", "pr", "dc")}
        epochs = summary.get("step", 0) * cfg.batch_size * cfg.k / 50_000
        rows.append({"run": run, "model": cfg.model, "epochs": epochs, "seconds": summary.get("seconds"), **r})
        print(f"| {Path(run).name} | {cfg.model} | {epochs:.0f} epochs, {summary.get('seconds', 0):.0f} s | "
              f"{r['classes']['classes_covered']}/10 | {r['classes']['kl_to_test']:.3f} | {r['fd']['value']:.1f} "
              f"[{r['fd']['bootstrap']['ci_low']:.1f}, {r['fd']['bootstrap']['ci_high']:.1f}] | "
              f"{r['fd']['fd_inf'].get('fd_inf', float('nan')):.1f} | {r['kid']['mean']:.2f} ± {r['kid']['std']:.2f} | "
              f"{r['pr']['precision']:.3f} | {r['pr']['recall']:.3f} | {r['dc']['density']:.3f} | "
              f"{r['dc']['coverage']:.3f} |",
              flush=True)
    save_results("sample_quality", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
