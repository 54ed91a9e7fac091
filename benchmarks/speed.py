"""Training speed: gankit against a reference written the way tutorials write GAN training.

    python benchmarks/speed.py [--steps 400] [--cases paper,tutorial,dcgan] [--precisions fp32,bf16] [--profile]

The reference: a per-image Dataset through a DataLoader, a sigmoid on D with BCELoss, noise drawn
with numpy, the generator step first reusing its fake batch for the discriminator step, a loss
.item() every step, fp32. gankit runs Algorithm 1 (a fresh fake batch for the D step: one more G
forward per iteration) in each precision asked for. Both train the same model at the same batch size
for the same number of steps on Fashion-MNIST (random images if the Debian package is absent).
images/s counts the real images the discriminator trains on per second; GFLOP/s counts the matrix
products and convolutions an iteration computes (forward and gradients); utilisation is against
this machine's matmul FLOP/s in the row's precision, measured in the same run. Each run is a fresh
subprocess, so its peak resident memory is its own. `--profile` adds, per run, where an iteration's
time goes (torch.profiler self time by kind of op). Prints tables; writes benchmarks/results/speed.json.
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

from gankit.precision import DTYPES

CASES = {  # name: (model, batch, z_dim, noise, pixel range, optimiser settings); no weight averaging (ema = 0),
    # as the reference has none
    "paper": dict(model="paper", batch_size=100, z_dim=100, noise="uniform", pixel_range="01", optimizer="sgd",
                  lr=0.1, momentum=0.5, final_momentum=0.7, lr_decay=1.000004, ema=0.0),
    "tutorial": dict(model="bn-mlp", batch_size=64, z_dim=100, noise="normal", pixel_range="pm1", optimizer="adam",
                     lr=2e-4, momentum=0.5, beta2=0.999, ema=0.0),
    "dcgan": dict(model="dcgan", hidden=32, batch_size=64, z_dim=100, noise="normal", pixel_range="pm1",
                  optimizer="adam", lr=2e-4, momentum=0.5, beta2=0.999, ema=0.0),
}
LABELS = {"paper": "paper nets, batch 100", "tutorial": "tutorial MLP, batch 64", "dcgan": "DCGAN width 32, batch 64"}


def load_images() -> tuple[np.ndarray, str]:
    try:
        from gankit.data.mnist import load_split

        images, _ = load_split("fashion-mnist", "train", download=False)
        return images, "fashion-mnist"
    except Exception:  # noqa: BLE001
        return np.random.default_rng(0).integers(0, 256, (50_000, 28, 28), dtype=np.uint8), "random"


def forward_flops(net: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(FLOPs of net(x) per sample, FLOPs of its first layer per sample), counted by torch's FlopCounterMode
    (matrix products and convolutions, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    first = next(m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)))
    seen = []
    hook = first.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    was_training = net.training
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as all_layers:
        net(x)
    with torch.no_grad(), FlopCounterMode(display=False) as first_layer:
        first(seen[0])
    hook.remove()
    net.train(was_training)
    return all_layers.get_total_flops() / len(x), first_layer.get_total_flops() / len(x)


def step_flops(G: nn.Module, D: nn.Module, m: int, reuse_fake: bool) -> float:
    """FLOPs of one iteration with k = 1, counting the gradients computed: weight gradients cost one
    forward, input gradients one forward less the first layer's (no input gradient is needed there)."""
    z = torch.zeros(2, G.z_dim)
    (g, g1) = forward_flops(G, z)
    (d, d1) = forward_flops(D, G.eval()(z).detach())
    G.train()
    d_step = 2 * (d + d + (d - d1)) + (0 if reuse_fake else g)  # D on m real + m fake; G fwd for fresh fakes
    g_step = g + d + d + g + (g - g1)  # G fwd, D fwd, D input grads, G weight and input grads
    return m * (d_step + g_step)


CATEGORIES = (  # (category, predicate on a profiler event name), first match wins
    ("matmul", lambda n: n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::mkldnn_convolution",
                               "aten::convolution_backward", "aten::mkldnn_matmul")),
    ("optimiser", lambda n: n.startswith(("Optimizer.", "aten::_fused_", "aten::_foreach_"))),
    ("casts and copies", lambda n: n in ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    ("random numbers", lambda n: n in ("aten::random_", "aten::uniform_", "aten::normal_", "aten::bernoulli_",
                                       "aten::randperm")),
    ("other tensor ops", lambda n: n.startswith("aten::")),
    ("data loader", lambda n: n.startswith("enumerate(DataLoader)")),  # its Python; its tensor ops are above
    ("autograd engine", lambda n: True),
)


def timed(fn, steps: int, profile: bool) -> dict:
    """Seconds for fn(); with `profile`, also each category's self time per step under torch.profiler (which
    slows everything a little), the rest of the wall time being Python and the dispatcher."""
    if not profile:
        t = time.perf_counter()
        fn()
        return {"seconds": time.perf_counter() - t}
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        fn()
        secs = time.perf_counter() - t
    ms = {name: 0.0 for name, _ in CATEGORIES}
    for e in prof.key_averages():
        cat = next(name for name, test in CATEGORIES if test(e.key))
        ms[cat] += e.self_cpu_time_total / 1e3 / steps
    return {"seconds": secs, "profile_ms_per_step": ms}


def run_gankit(case: str, steps: int, precision: str, profile: bool = False) -> dict:
    from gankit import config as config_mod, rundir
    from gankit.data.registry import image_data
    from gankit.train import fit

    images, source = load_images()
    data = image_data(source, images[:, None], None, (), CASES[case]["pixel_range"])
    warm = 20  # iterations before the clock starts, as for the reference
    base = {**CASES[case], "dataset": "fashion-mnist", "precision": precision, "log_every": warm,
            "sample_every": 10**9, "checkpoint_every": 10**9}
    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        r = timed(lambda: out.update(gan=fit(config_mod.from_dict({**base, "steps": warm + steps}), Path(tmp) / "run",
                                             progress=False, data=data)[0]), warm + steps, profile)
        # the loop's own clock, from the first logged iteration to the last: setup, the first checkpoint and the
        # closing pictures are left out, as the reference's setup is
        rows = rundir.read_metrics(Path(tmp) / "run")
        r["seconds"] = rows[-1]["seconds"] - rows[0]["seconds"]
    G, D = out["gan"].G, out["gan"].D
    return {**r, "flops": step_flops(G, D, CASES[case]["batch_size"], False), "source": source}


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
    G.z_dim = 100
    return G, D


def run_reference(case: str, steps: int, profile: bool = False) -> dict:
    """The tutorial way (deliberately not gankit's code; the tutorial MLP's classes are plain nn layers)."""
    from torch.utils.data import DataLoader, Dataset

    from gankit.models.conv import DCGANDiscriminator, DCGANGenerator, sizes
    from gankit.models.mlp import BNMLPGenerator, TutorialDiscriminator

    c = CASES[case]
    images, source = load_images()

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
            return img, 0  # the label, unused

    torch.manual_seed(0)
    if case == "paper":
        G, D0 = reference_paper_nets()
        opt = lambda p: torch.optim.SGD(p, lr=c["lr"], momentum=c["momentum"])  # noqa: E731
    else:
        G, D0 = (BNMLPGenerator(), TutorialDiscriminator()) if case == "tutorial" else (
            DCGANGenerator(100, (1, 28, 28), c["hidden"], **sizes(c["hidden"])[0])  # the nets `dcgan` builds
            .to(memory_format=torch.contiguous_format),
            DCGANDiscriminator((1, 28, 28), c["hidden"], **sizes(c["hidden"])[1])
            .to(memory_format=torch.contiguous_format))  # gankit's conv weights are channels_last; tutorials leave
        # them in the default layout
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
    return {**timed(lambda: loop(steps), steps, profile), "flops": step_flops(G, D0, m, True), "source": source}


def matmul_peak(dtype: torch.dtype) -> float:
    a, b = torch.randn(100, 1200, dtype=dtype), torch.randn(1200, 1200, dtype=dtype)
    for _ in range(20):
        a @ b
    t = time.perf_counter()
    for _ in range(300):
        a @ b
    return 2 * 100 * 1200 * 1200 * 300 / (time.perf_counter() - t)


def child(args) -> int:
    if args.impl == "gankit":
        r = run_gankit(args.case, args.steps, args.precision, args.profile)
    else:
        r = run_reference(args.case, args.steps, args.profile)
    if "profile_ms_per_step" in r:  # the rest of an iteration's wall time: Python and the dispatcher
        ms = r["profile_ms_per_step"]
        ms["Python and dispatch"] = max(0.0, r["seconds"] * 1e3 / args.steps - sum(ms.values()))
    r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(r))
    return 0


def run_child(case: str, impl: str, steps: int, precision: str, profile: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--case", case, "--impl", impl, "--steps", str(steps),
           "--precision", precision] + (["--profile"] if profile else [])
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--cases", default="paper,tutorial,dcgan")
    p.add_argument("--precisions", default="fp32,bf16", help="gankit's precisions (the reference is fp32)")
    p.add_argument("--profile", action="store_true", help="also profile each run: where an iteration's time goes")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    precisions = args.precisions.split(",")
    peaks = {prec: matmul_peak(DTYPES[prec]) for prec in {"fp32", *precisions}}
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; matmul peak at 100x1200x1200: "
          + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in sorted(peaks.items())))
    print(f"{'case':26s} {'loop':10s} {'prec':5s} {'steps/s':>8s} {'images/s':>9s} {'ratio':>6s} {'GFLOP/s':>8s} "
          f"{'util':>5s} {'peak MiB':>9s}")
    rows, profiles = [], []
    for case in args.cases.split(","):
        runs = [("reference", "fp32")] + [("gankit", prec) for prec in precisions]
        res = {run: run_child(case, run[0], args.steps, run[1], False) for run in runs}
        ref_sps = args.steps / res[runs[0]]["seconds"]
        for impl, prec in runs:
            r = res[(impl, prec)]
            sps = args.steps / r["seconds"]
            gflops = r["flops"] * sps / 1e9
            row = {"case": case, "impl": impl, "precision": prec, "steps_per_s": sps,
                   "images_per_s": sps * CASES[case]["batch_size"], "ratio": sps / ref_sps, "gflops": gflops,
                   "utilisation": gflops * 1e9 / peaks[prec], "peak_rss_mib": r["peak_rss_mib"], "data": r["source"]}
            rows.append(row)
            print(f"{LABELS[case]:26s} {impl:10s} {prec:5s} {sps:8.1f} {row['images_per_s']:9.0f} "
                  f"{row['ratio']:5.2f}x {gflops:8.0f} {row['utilisation']:5.0%} {r['peak_rss_mib']:9.0f}")
        if args.profile:
            for impl, prec in runs:
                prof = run_child(case, impl, min(args.steps, 200), prec, True)["profile_ms_per_step"]
                profiles.append({"case": case, "impl": impl, "precision": prec, "ms_per_step": prof})
    if profiles:
        names = list(profiles[0]["ms_per_step"])
        print("\nwhere an iteration's time goes (ms per iteration under torch.profiler, self time by kind of op)")
        print(f"{'case':26s} {'loop':10s} {'prec':5s} " + " ".join(f"{n[:12]:>12s}" for n in names) + f" {'total':>7s}")
        for pr in profiles:
            ms = pr["ms_per_step"]
            print(f"{LABELS[pr['case']]:26s} {pr['impl']:10s} {pr['precision']:5s} "
                  + " ".join(f"{ms[n]:12.2f}" for n in names) + f" {sum(ms.values()):7.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "speed.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                                                "torch": torch.__version__, "threads": torch.get_num_threads(),
                                                "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
                                                "rows": rows, "profiles": profiles}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
