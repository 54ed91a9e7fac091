"""Sharing the machine: a ring8 run alone and beside a single-threaded busy job, with the automatic
thread count (`--threads 0`) and with two threads forced.

    python benchmarks/sharing.py [--steps 1500] [--modes 0,2]

Each run is `python -m gankit train --dataset ring8 --steps N --threads T` in a fresh process; its time is
the training loop's (summary.json "seconds"). The busy job is a pure-Python loop in another process (one
thread, never waiting). Prints each time and the slowdown beside / alone per mode. Target: beside
another job no more than about 2x slower than alone. Only meaningful on an otherwise idle machine:
the load average is printed before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _save import save_results

BUSY = "while True:\n    pass\n"


def train_seconds(steps: int, threads: int, out: Path) -> tuple[float, int]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("OMP_NUM_THREADS", None)  # as a user runs it: torch's own default, then --threads decides
    subprocess.run([sys.executable, "-m", "gankit", "train", "--dataset", "ring8", "--steps", str(steps),
                    "--threads", str(threads), "--out", str(out), "--no-progress", "--sample-every", "1000000",
                    "--checkpoint-every", "1000000"], env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    return summary["seconds"], summary["threads"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--modes", default="0,2", help="--threads values to compare (0 = auto)")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in [int(m) for m in args.modes.split(",")]:
            times = {}
            for beside in (False, True):
                busy = subprocess.Popen([sys.executable, "-c", BUSY]) if beside else None
                try:
                    if busy:
                        time.sleep(1.0)
                    load = os.getloadavg()[0]
                    out = Path(tmp) / f"t{mode}-{int(beside)}"
                    seconds, used = train_seconds(args.steps, mode, out)
                finally:
                    if busy:
                        busy.kill()
                        busy.wait()
                times[beside] = seconds
                print(f"--threads {mode} ({used} used) {'beside a busy job' if beside else 'alone            '}: "
                      f"{seconds:6.2f} s for {args.steps} steps (load average before: {load:.1f})", flush=True)
            ratio = times[True] / times[False]
            print(f"--threads {mode}: beside / alone = {ratio:.2f}x  (target <= ~2x)", flush=True)
            rows.append({"threads": mode, "alone_s": times[False], "beside_s": times[True], "slowdown": ratio})
    save_results("sharing", {"date": time.strftime("%Y-%m-%d"), "steps": args.steps, "cores": os.cpu_count(),
                             "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
