"""Two CPU processes (gloo) against one process on the combined batch."""

import gc
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gankit import config as C
from gankit.train import fit

BASE = dict(hidden=16, layers=2, log_every=2, sample_every=10**6, checkpoint_every=10**6, steps=6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, run_dir, out_dir, update, precision, extra=None):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gan, summary = fit(C.from_dict({**BASE, "batch_size": 16, "update": update, "precision": precision,
                                        **(extra or {})}), run_dir, progress=False)
        torch.save({"G": gan.G.state_dict(), "D": gan.D.state_dict(), "d_loss": summary["d_loss"]},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        gc.collect()  # nothing of the run may outlive the process group
        dist.destroy_process_group()


@pytest.mark.parametrize("update,precision,extra", [("alternating", "fp32", {}), ("simultaneous", "fp32", {}),
                                                    ("alternating", "bf16", {}),
                                                    ("alternating", "fp32", {"seeds": 2})])  # a seed ensemble shards too
def test_two_processes_match_each_other_and_one_process_on_the_combined_batch(tmp_path, update, precision, extra):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path), update, precision, extra), nprocs=2,
             join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for net in ("G", "D"):
        for k, v in r0[net].items():
            assert torch.equal(v, r1[net][k]), f"{net}.{k} differs between ranks"
    gan, summary = fit(C.from_dict({**BASE, "batch_size": 32, "update": update, "precision": precision, **extra}),
                       tmp_path / "single", progress=False)
    # bf16: gradients are averaged across ranks in bf16, so agreement is to bf16 rounding of 6 Adam steps
    rtol, atol = (1e-4, 1e-6) if precision == "fp32" else (1e-2, 2e-3)
    for net, module in (("G", gan.G), ("D", gan.D)):
        for k, v in module.state_dict().items():
            assert torch.allclose(v, r0[net][k], rtol=rtol, atol=atol), f"{net}.{k} differs from single process"
    assert r0["d_loss"] == pytest.approx(summary["d_loss"], rel=rtol)
    # only rank 0 wrote the run directory, and it is complete
    assert (tmp_path / "ddp" / "checkpoints" / "last.pt").is_file() and (tmp_path / "ddp" / "summary.json").is_file()


def _penalty_worker(rank, world, port, run_dir, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gan, _ = fit(C.from_dict({**BASE, "batch_size": 16, "objective": "wgan-gp", "r1": 1.0, "k": 2}), run_dir,
                     progress=False)
        torch.save(gan.D.state_dict(), os.path.join(out_dir, f"pen{rank}.pt"))
        del gan
    finally:
        gc.collect()
        dist.destroy_process_group()


def test_gradient_penalties_under_ddp_keep_the_replicas_identical(tmp_path):
    """WGAN-GP's and R1's gradients (double backward through the plain module) reach DDP's all-reduce: were a
    rank's penalty gradient left out, each replica would follow its own shard's penalty and drift apart."""
    mp.spawn(_penalty_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "pen0.pt", weights_only=True)
    b = torch.load(tmp_path / "pen1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
