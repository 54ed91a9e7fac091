"""Fingerprints of short training runs: a hash of every weight after N steps and the logged rows.

Recorded before a refactor of the trainer and compared after it (tests/test_fingerprints.py): the same
seed, config and thread count must give bit-identical results. Re-record (only when a change is meant to
move the numbers) with `python tests/fingerprint.py --record`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import torch

PATH = Path(__file__).with_name("data") / "fingerprints.json"
QUIET = dict(sample_every=10**6, checkpoint_every=10**6)
FASHION = dict(dataset="fashion-mnist", subset=2000, data_dir="/usr/share/datasets/fashion-mnist", log_every=5)
CASES: dict[str, dict] = {
    "ring8": dict(steps=60, log_every=10),
    "grid25": dict(dataset="grid25", steps=60, log_every=10),
    "ring8-simultaneous": dict(steps=60, log_every=10, update="simultaneous"),
    "ring8-k3-minimax-sgd": dict(steps=40, log_every=10, k=3, loss="minimax", optimizer="sgd", lr=0.01, lr_d=0.02,
                                 lr_decay=1.001, momentum=0.5, final_momentum=0.9, momentum_saturate=0.5, ema=0.9,
                                 noise="uniform", z_dim=3),
    "paper-fashion-fp32": dict(preset="paper-fashion-mnist", steps=10, **FASHION),
    "paper-fashion-bf16": dict(preset="paper-fashion-mnist", steps=10, precision="bf16", **FASHION),
    "paper-fashion-simultaneous": dict(preset="paper-fashion-mnist", steps=10, update="simultaneous", **FASHION),
    "bn-mlp-fashion": dict(steps=10, **FASHION),
    "dcgan-fashion": dict(model="dcgan", hidden=8, steps=5, **FASHION),
    "ring8-ddp2": dict(steps=10, log_every=2, batch_size=64, ddp=2),
}


def config(case: dict):
    from gankit import config as C

    values = {k: v for k, v in case.items() if k not in ("preset", "ddp")}
    layers = [C.preset(case["preset"])] if "preset" in case else []
    # the thread count as recorded (the harness's, not the automatic choice): it may change summation order
    return C.settle(*layers, {**QUIET, "threads": torch.get_num_threads(), **values})


def digest(named: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(named):
        t = named[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _weights(gan) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v for k, v in gan.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in gan.D.state_dict().items()})
    if gan.G_ema is not None:
        out.update({f"G_ema.{k}": v for k, v in gan.G_ema.state_dict().items()})
    return out


def _rows(run_dir) -> list[dict]:
    from gankit import rundir

    return [{k: v for k, v in r.items() if k != "seconds"} for r in rundir.read_metrics(run_dir)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, case, run_dir, out):
    import torch.distributed as dist

    from gankit.train import fit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gan, _ = fit(config(case), run_dir, progress=False)
        if rank == 0:
            Path(out).write_text(json.dumps({"weights": digest(_weights(gan)), "rows": _rows(run_dir)}))
        del gan
    finally:
        gc.collect()
        dist.destroy_process_group()


def fingerprint(name: str) -> dict:
    """{"weights": sha256 of all weights after the run, "rows": metrics.jsonl without timings}."""
    from gankit.train import fit

    case = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        if "ddp" in case:
            import torch.multiprocessing as mp

            out = Path(tmp) / "fp.json"
            mp.spawn(_ddp_worker, args=(case["ddp"], _free_port(), case, str(run_dir), str(out)),
                     nprocs=case["ddp"], join=True)
            return json.loads(out.read_text())
        gan, _ = fit(config(case), run_dir, progress=False)
        return {"weights": digest(_weights(gan)), "rows": _rows(run_dir)}


def environment() -> dict:
    return {"threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__.split("+")[0]}


if __name__ == "__main__":
    if "--record" not in sys.argv:
        sys.exit("usage: python tests/fingerprint.py --record")
    torch.set_num_threads(min(2, torch.get_num_threads()))  # as tests/conftest.py
    os.environ.setdefault("MPLBACKEND", "Agg")
    result = {"environment": environment(), "cases": {name: fingerprint(name) for name in CASES}}
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {PATH}")
