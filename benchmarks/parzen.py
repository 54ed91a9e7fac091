"""Parzen-window protocol speed and exactness, against sklearn's KernelDensity and a brute-force float64 sum.

    python benchmarks/parzen.py [--inputs fashion-mnist,sparse] [--n-samples 10000] [--n-test 10000]
                                [--sklearn-points 500] [--repeats 3]

Inputs: fashion-mnist = Fashion-MNIST (the Debian package; uniform random 784-d data if absent):
samples = training images, valid = 1,000 validation images, test = the test set. sparse = random 784-d
vectors in [0, 1], each entry nonzero with probability 0.3, nonzero values u^3 (u uniform): the hard case
for the float32 screening, as many samples lie at nearly the same distance. For each: the whole
protocol's time, the per-point speed ratio to sklearn (kernel='gaussian', same sigma, same points,
measured in the same run), and the largest relative error of each against the brute-force reference.
gankit's times are medians of --repeats runs; sklearn (slow) runs once. Targets: protocol <= 3 s on 2 CPU
cores, >= 50x faster than sklearn, relative error <= 1e-6.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gankit.metrics import parzen


def inputs(name: str, n_samples: int, n_test: int):
    g = torch.Generator().manual_seed(0)
    if name == "sparse":
        def draw(n):
            return (torch.rand(n, 784, generator=g) < 0.3) * torch.rand(n, 784, generator=g) ** 3

        return draw(n_samples), draw(1000), draw(n_test), "sparse random (p = 0.3, u^3)"
    try:
        from gankit.data import load_dataset

        tr = load_dataset("fashion-mnist", "train", download=False).x
        va = load_dataset("fashion-mnist", "valid", download=False).x
        te = load_dataset("fashion-mnist", "test", download=False).x
        return tr[:n_samples], va[:1000], te[:n_test], "fashion-mnist"
    except Exception:  # noqa: BLE001 - no data here: random inputs of the same shape
        return (torch.rand(n_samples, 784, generator=g), torch.rand(1000, 784, generator=g),
                torch.rand(n_test, 784, generator=g), "uniform random")


def median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], out


def bench(name: str, args) -> dict:
    samples, valid, test, source = inputs(name, args.n_samples, args.n_test)
    print(f"inputs: {source}; {len(samples)} samples, {len(valid)} valid, {len(test)} test, d = {samples.shape[1]}")
    parzen.parzen_protocol(samples[:500], valid[:100], test[:100])  # warm-up
    protocol_s, result = median_time(lambda: parzen.parzen_protocol(samples, valid, test), args.repeats)
    sigma = result["sigma"]
    print(f"  gankit protocol: {protocol_s:.2f} s  (log-likelihood {result['mean']:.2f} ± {result['stderr']:.2f}, "
          f"sigma {sigma:.4f})")
    pts = test[:args.sklearn_points]
    ours_s, ours = median_time(lambda: parzen.log_likelihood(samples, pts, sigma), args.repeats)
    from sklearn.neighbors import KernelDensity

    t = time.perf_counter()
    kde = KernelDensity(kernel="gaussian", bandwidth=sigma).fit(samples.numpy().astype(np.float64))
    theirs = kde.score_samples(pts.numpy().astype(np.float64))
    sk_s = time.perf_counter() - t
    ratio = sk_s / ours_s
    print(f"  {len(pts)} test points at sigma {sigma:.4f}: gankit {ours_s:.3f} s, sklearn KernelDensity {sk_s:.2f} s, "
          f"speed-up {ratio:.0f}x")
    bp = pts[:args.brute_points]
    ref = parzen.brute_force_log_likelihood(samples.numpy(), bp.numpy(), sigma)
    err_ours = float(np.max(np.abs(ours[:len(bp)] - ref) / np.abs(ref)))
    err_sk = float(np.max(np.abs(theirs[:len(bp)] - ref) / np.abs(ref)))
    abs_sk = float(np.max(np.abs(theirs[:len(bp)] - ref)))
    n_scored = len(result["sigmas"]) * len(valid) + len(test)
    print(f"  whole protocol ({n_scored} point-scorings): gankit {protocol_s:.2f} s; sklearn extrapolated from its "
          f"per-point time {sk_s / len(pts) * n_scored:.0f} s ({sk_s / len(pts) * n_scored / protocol_s:.0f}x)")
    print(f"  max relative error vs float64 brute force ({len(bp)} points): gankit {err_ours:.1e}, "
          f"sklearn {err_sk:.1e} (absolute {abs_sk:.2f} nats)")
    print(f"  targets: protocol <= 3 s: {'met' if protocol_s <= 3 else 'MISSED'}; >= 50x sklearn: "
          f"{'met' if ratio >= 50 else 'MISSED'}; error <= 1e-6: {'met' if err_ours <= 1e-6 else 'MISSED'}")
    return {"source": source, "protocol_seconds": protocol_s, "result": result, "points": len(pts),
            "gankit_seconds": ours_s, "sklearn_seconds": sk_s, "speedup": ratio, "rel_error_gankit": err_ours,
            "rel_error_sklearn": err_sk}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", default="fashion-mnist,sparse", help="comma-separated: fashion-mnist, sparse")
    p.add_argument("--n-samples", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--sklearn-points", type=int, default=500, help="test points scored by sklearn (it is slow)")
    p.add_argument("--brute-points", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3, help="gankit's times are medians of this many runs")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    runs = {name: bench(name, args) for name in args.inputs.split(",")}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "parzen.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
