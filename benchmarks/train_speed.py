"""Training throughput of the paper preset (Algorithm 1, paper MNIST nets, batch 100, k = 1).

    python benchmarks/train_speed.py [--steps 300] [--precision fp32|bf16] [--device auto]

Trains on Fashion-MNIST when the Debian package is installed (random images otherwise) and prints
steps/s, training images/s (real images seen by D per second) and the model FLOP rate next to this
machine's measured matrix-multiply FLOP/s at the paper nets' shapes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from gankit import config as config_mod
from gankit.data.registry import Data
from gankit.train import train


def paper_flops_per_step(m: int, k: int) -> float:
    """Multiply-add FLOPs of one Algorithm-1 iteration with the paper nets (2 per MAC, backward = 2x forward)."""
    g = 100 * 1200 + 1200 * 1200 + 1200 * 784
    d = 784 * 1200 + 240 * 1200 + 240
    per_sample = 2 * (k * (g + 3 * 2 * d) + 3 * g + 3 * d)  # D steps: G fwd, D fwd+bwd on 2m; G step
    return per_sample * m


def matmul_peak(dtype=torch.float32, n: int = 1200, m: int = 100, reps: int = 200) -> float:
    a, b = torch.randn(m, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(10):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * n * n * reps / (time.perf_counter() - t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    cfg = config_mod.from_dict({**config_mod.preset("paper-fashion-mnist"), "steps": args.steps, "epochs": None,
                                "precision": args.precision, "device": args.device, "sample_every": 10**9,
                                "checkpoint_every": 10**9, "log_every": 100})
    try:
        from gankit.data import load_dataset
        data = load_dataset("fashion-mnist", download=False)
    except Exception:  # noqa: BLE001
        data = Data("random", torch.rand(50_000, 784), (1, 28, 28), "image", (0.0, 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        train(config_mod.from_dict({**cfg.to_dict(), "steps": 20}), Path(tmp) / "warm", progress=False, data=data)
        t = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False, data=data)
        secs = time.perf_counter() - t
    steps_s = args.steps / secs
    flops = paper_flops_per_step(cfg.batch_size, cfg.k) * steps_s
    peak = matmul_peak(torch.bfloat16 if args.precision == "bf16" else torch.float32)
    row = {"date": time.strftime("%Y-%m-%d"), "data": data.name, "precision": args.precision,
           "steps_per_s": steps_s, "images_per_s": steps_s * cfg.batch_size * cfg.k,
           "model_gflops": flops / 1e9, "matmul_peak_gflops": peak / 1e9, "utilisation": flops / peak,
           "threads": torch.get_num_threads()}
    print(f"paper preset ({data.name}, {args.precision}, batch {cfg.batch_size}): {steps_s:.1f} steps/s, "
          f"{row['images_per_s']:.0f} training images/s, {row['model_gflops']:.0f} GFLOP/s = "
          f"{row['utilisation']:.0%} of measured matmul peak {row['matmul_peak_gflops']:.0f} GFLOP/s")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"train_speed_{args.precision}.json").write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
