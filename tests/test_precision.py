"""bf16 training through working copies: fp32 masters, bf16 passes, shared normalisation layers."""

import math

import torch

from gankit import checkpoint, config as C
from gankit.models.mlp import BNMLPGenerator
from gankit.precision import Working
from gankit.train import train


def test_fp32_working_copy_is_the_model_itself():
    G = BNMLPGenerator(8, 16)
    w = Working(G, torch.float32)
    assert w.module is G and not w.pairs


def test_bf16_copy_step_updates_fp32_masters_exactly_like_an_fp32_step():
    torch.manual_seed(0)
    G = BNMLPGenerator(8, 16)
    w = Working(G, torch.bfloat16)
    i = next(i for i, m in enumerate(G) if isinstance(m, torch.nn.BatchNorm1d))
    bn_master = G[i]
    assert w.module[i].weight is bn_master.weight and w.module[i].running_mean is bn_master.running_mean
    assert all(p.dtype == torch.float32 for p in G.parameters())
    assert w.module[0].weight.dtype == torch.bfloat16 and len(w.pairs) == 2 * 5  # 5 linear layers

    with torch.no_grad():
        out = w(w.input(torch.randn(32, 8)))
    assert out.dtype == torch.bfloat16
    assert bn_master.num_batches_tracked.item() == 1  # statistics land in the master
    opt = torch.optim.SGD(G.parameters(), lr=0.1)
    for _ in range(2):  # the second step reuses the masters' gradient buffers
        w.zero_grad()
        w(w.input(torch.randn(32, 8))).float().square().mean().backward()
        grads = {id(p): wp.grad.float() for p, wp in w.pairs}
        before = {id(p): p.detach().clone() for p, _ in w.pairs}
        w.step(opt)
        for p, wp in w.pairs:
            assert torch.allclose(p.detach(), before[id(p)] - 0.1 * grads[id(p)], rtol=0, atol=1e-7)  # fp32 update
            assert torch.equal(wp.detach(), p.detach().to(torch.bfloat16))  # copy refreshed
    assert bn_master.weight.grad is not None and bn_master.weight.grad.dtype == torch.float32


def test_bf16_training_resumes_bit_identically_and_saves_fp32(tmp_path):
    cfg = dict(dataset="ring8", hidden=16, layers=2, batch_size=32, log_every=1, sample_every=10**6,
               checkpoint_every=10**6, precision="bf16", ema=0.9)
    train(C.from_dict({**cfg, "steps": 4}), tmp_path / "full", progress=False)
    train(C.from_dict({**cfg, "steps": 2}), tmp_path / "split", progress=False)
    summary = train(C.from_dict({**cfg, "steps": 4}), tmp_path / "split", resume=True, progress=False)
    a = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "split" / "checkpoints" / "last.pt")
    for net in ("G", "D", "G_ema"):
        for k, v in a[net].items():
            assert v.dtype == b[net][k].dtype
            if v.is_floating_point():
                assert v.dtype == torch.float32
            assert torch.equal(v, b[net][k]), f"{net}.{k}"
    assert summary["step"] == 4 and math.isfinite(summary["d_loss"])


def test_a_shared_weight_gets_one_working_copy():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4)
    net = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    x = torch.randn(3, 4)
    net(x).sum().backward()
    expected = lin.weight.grad.clone()  # fp32: the sum over both uses
    lin.zero_grad()
    w = Working(net, torch.bfloat16)
    assert len(w.pairs) == 2 and w.module[0].weight is w.module[2].weight
    w(w.input(x)).float().sum().backward()
    w.step(torch.optim.SGD(net.parameters(), lr=0.0))
    assert torch.allclose(lin.weight.grad, expected, rtol=0.05, atol=0.05)
