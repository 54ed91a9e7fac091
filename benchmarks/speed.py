"""Training speed: gankit against a reference written the way tutorials write GAN training.

    python benchmarks/speed.py [--steps 400] [--cases paper,tutorial] [--precision fp32|bf16]

The reference: a per-image Dataset through a DataLoader, a sigmoid on D with BCELoss, noise drawn
with numpy, the generator step first reusing its fake batch for the discriminator step, a loss
.item() every step. Both train the same model at the same batch size for the same number of steps on
Fashion-MNIST (random images if the Debian package is absent). images/s counts the real images
the discriminator trains on per second. Each run is a fresh subprocess, so
its peak resident memory is its own. Prints a table (steps/s, ratio, model GFLOP/s and utilisation
of this machine's measured matmul FLOP/s, peak memory) and writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

CASES = {  # name: (model, batch, z_dim, noise, pixel range, optimiser settings); no weight averaging (ema = 0),
    # as the reference has none
    "paper": dict(model="paper", batch_size=100, z_dim=100, noise="uniform", pixel_range="01", optimizer="sgd",
                  lr=0.1, momentum=0.5, final_momentum=0.7, lr_decay=1.000004, ema=0.0),
    "tutorial": dict(model="bn-mlp", batch_size=64, z_dim=100, noise="normal", pixel_range="pm1", optimizer="adam",
                     lr=2e-4, momentum=0.5, beta2=0.999, ema=0.0),
}


def load_images(pixel_range: str) -> tuple[np.ndarray, str]:
    try:
        from gankit.data.mnist import load_split

        images, _ = load_split("fashion-mnist", "train", download=False)
        return images, "fashion-mnist"
    except Exception:  # noqa: BLE001
        return np.random.default_rng(0).integers(0, 256, (50_000, 28, 28), dtype=np.uint8), "random"


def linear_flops(module: nn.Module) -> tuple[int, int]:
    """(FLOPs of one forward pass per sample, FLOPs of its first layer), 2 per multiply-add."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return sum(2 * m.in_features * m.out_features for m in layers), 2 * layers[0].in_features * layers[0].out_features


def step_flops(G: nn.Module, D: nn.Module, m: int, reuse_fake: bool) -> float:
    """FLOPs of one iteration with k = 1, counting the gradients computed: weight gradients cost one
    forward, input gradients one forward less the first layer's (no input gradient is needed there)."""
    (g, g1), (d, d1) = linear_flops(G), linear_flops(D)
    d_step = 2 * (d + d + (d - d1)) + (0 if reuse_fake else g)  # D on m real + m fake; G fwd for fresh fakes
    g_step = g + d + d + g + (g - g1)  # G fwd, D fwd, D input grads, G weight and input grads
    return m * (d_step + g_step)


def run_gankit(case: str, steps: int, precision: str) -> dict:
    from gankit import config as config_mod
    from gankit.data.registry import Data
    from gankit.train import fit

    images, source = load_images(CASES[case]["pixel_range"])
    x = torch.from_numpy(images.reshape(len(images), -1)).float() / 255
    if CASES[case]["pixel_range"] == "pm1":
        x = x * 2 - 1
    rng = (0.0, 1.0) if CASES[case]["pixel_range"] == "01" else (-1.0, 1.0)
    data = Data(source, x, (1, 28, 28), "image", rng)
    base = {**CASES[case], "dataset": "fashion-mnist", "precision": precision, "log_every": 100,
            "sample_every": 10**9, "checkpoint_every": 10**9}
    with tempfile.TemporaryDirectory() as tmp:
        fit(config_mod.from_dict({**base, "steps": 20}), Path(tmp) / "warm", progress=False, data=data)
        t = time.perf_counter()
        gan, _ = fit(config_mod.from_dict({**base, "steps": steps}), Path(tmp) / "run", progress=False, data=data)
        secs = time.perf_counter() - t
    return {"seconds": secs, "flops": step_flops(gan.G, gan.D, CASES[case]["batch_size"], False), "source": source}


class RefMaxout(nn.Module):
    """Maxout as tutorials write it: a Linear, then max over the last axis of a [units, pieces] view."""

    def __init__(self, d_in, units, pieces):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.lin = nn.Linear(d_in, units * pieces)

    def forward(self, x):
        return self.lin(x).view(-1, self.units, self.pieces).max(-1)[0]


def reference_paper_nets() -> tuple[nn.Module, nn.Module]:
    """The paper's MNIST nets, tutorial style (nn.Dropout, view-and-max maxout), same shapes as gankit's."""
    G = nn.Sequential(nn.Linear(100, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(), nn.Linear(1200, 784),
                      nn.Sigmoid())
    D = nn.Sequential(nn.Dropout(0.2), RefMaxout(784, 240, 5), nn.Dropout(0.5), RefMaxout(240, 240, 5),
                      nn.Dropout(0.5), nn.Linear(240, 1), nn.Flatten(0))
    for layer in G.modules():
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -0.05, 0.05)
    for layer in D.modules():
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -0.005, 0.005)
    return G, D


def run_reference(case: str, steps: int) -> dict:
    """The tutorial way (deliberately not gankit's code; the tutorial MLP's classes are plain nn layers)."""
    from torch.utils.data import DataLoader, Dataset

    from gankit.models.mlp import BNMLPGenerator, TutorialDiscriminator

    c = CASES[case]
    images, source = load_images(c["pixel_range"])
    labels = np.zeros(len(images), np.int64)

    class Images(Dataset):
        """Per image, what torchvision's FashionMNIST with ToTensor (+ Normalize(0.5, 0.5)) does: a PIL
        image, converted to a float tensor in [0, 1], normalised in place (written out: torchvision cannot
        be installed beside the CPU torch here)."""

        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            pic = Image.fromarray(images[i], mode="L")
            img = torch.from_numpy(np.array(pic, np.uint8, copy=True)).view(28, 28, 1).permute(2, 0, 1)
            img = img.contiguous().float().div(255)
            if c["pixel_range"] == "pm1":
                img = img.sub_(0.5).div_(0.5)
            return img, int(labels[i])

    torch.manual_seed(0)
    if case == "paper":
        G, D0 = reference_paper_nets()
        opt = lambda p: torch.optim.SGD(p, lr=c["lr"], momentum=c["momentum"])  # noqa: E731
    else:
        G, D0 = BNMLPGenerator(), TutorialDiscriminator()
        opt = lambda p: torch.optim.Adam(p, lr=c["lr"], betas=(0.5, 0.999))  # noqa: E731
    D = nn.Sequential(D0, nn.Sigmoid())
    opt_G, opt_D = opt(G.parameters()), opt(D.parameters())
    bce = nn.BCELoss()
    loader = DataLoader(Images(), batch_size=c["batch_size"], shuffle=True, drop_last=True)
    m = c["batch_size"]

    def loop(n):
        done = 0
        while done < n:
            for imgs, _ in loader:
                real = imgs.view(imgs.size(0), -1)
                valid, fake = torch.ones(m), torch.zeros(m)
                if c["noise"] == "normal":
                    z = torch.tensor(np.random.normal(0, 1, (m, c["z_dim"])), dtype=torch.float32)
                else:
                    z = torch.tensor(np.random.uniform(-3**0.5, 3**0.5, (m, c["z_dim"])), dtype=torch.float32)
                opt_G.zero_grad()
                gen = G(z)
                g_loss = bce(D(gen), valid)
                g_loss.backward()
                opt_G.step()
                opt_D.zero_grad()
                d_loss = (bce(D(real), valid) + bce(D(gen.detach()), fake)) / 2
                d_loss.backward()
                opt_D.step()
                _ = (d_loss.item(), g_loss.item())
                done += 1
                if done >= n:
                    return

    loop(20)
    t = time.perf_counter()
    loop(steps)
    return {"seconds": time.perf_counter() - t, "flops": step_flops(G, D0, m, True), "source": source}


def matmul_peak(dtype: torch.dtype) -> float:
    a, b = torch.randn(100, 1200, dtype=dtype), torch.randn(1200, 1200, dtype=dtype)
    for _ in range(20):
        a @ b
    t = time.perf_counter()
    for _ in range(300):
        a @ b
    return 2 * 100 * 1200 * 1200 * 300 / (time.perf_counter() - t)


def child(args) -> int:
    r = run_gankit(args.case, args.steps, args.precision) if args.impl == "gankit" else run_reference(args.case,
                                                                                                     args.steps)
    r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(r))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--cases", default="paper,tutorial")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    peak = matmul_peak(torch.bfloat16 if args.precision == "bf16" else torch.float32)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; matmul peak at 100x1200x1200 ({args.precision}): {peak / 1e9:.0f} GFLOP/s")
    rows = []
    header = (f"{'case':10s} {'impl':10s} {'steps/s':>8s} {'images/s':>9s} {'ratio':>6s} {'GFLOP/s':>8s} {'util':>6s} "
              f"{'peak MiB':>9s}")
    print(header)
    for case in args.cases.split(","):
        res = {}
        for impl in ("reference", "gankit"):
            out = subprocess.run([sys.executable, __file__, "--child", "--case", case, "--impl", impl, "--steps",
                                  str(args.steps), "--precision", args.precision], capture_output=True, text=True,
                                 check=True)
            res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        for impl in ("reference", "gankit"):
            r = res[impl]
            sps = args.steps / r["seconds"]
            ratio = sps / (args.steps / res["reference"]["seconds"])
            gflops = r["flops"] * sps / 1e9
            row = {"case": case, "impl": impl, "steps_per_s": sps, "images_per_s": sps * CASES[case]["batch_size"],
                   "ratio": ratio, "gflops": gflops,
                   "utilisation": gflops * 1e9 / peak, "peak_rss_mib": r["peak_rss_mib"], "data": r["source"],
                   "precision": args.precision if impl == "gankit" else "fp32"}
            rows.append(row)
            print(f"{case:10s} {impl:10s} {sps:8.1f} {row['images_per_s']:9.0f} {ratio:5.2f}x {gflops:8.0f} "
                  f"{row['utilisation']:6.0%} "
                  f"{r['peak_rss_mib']:9.0f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"speed_{args.precision}.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                                                                  "matmul_peak_gflops": peak / 1e9, "rows": rows},
                                                                 indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
