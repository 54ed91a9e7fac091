"""Every option that changes training reaches the step that uses it: each test here fails when its option is
ignored, checked against a closed form where there is one."""

import math

import pytest
import torch
from conftest import sgd_step

from gankit import config as C, objectives
from gankit.gan import build
from gankit.hooks import Hook
from gankit.train import fit

TINY = dict(hidden=16, layers=2, batch_size=32, log_every=5, sample_every=10**6, checkpoint_every=10**6)


def tiny(**kw):
    return C.from_dict({**TINY, **kw})


class Record(Hook):
    """After every step: G's master weights, both optimisers' lr and momentum, a draw of the noise and dtypes."""

    def __init__(self):
        self.rows = []

    def after_step(self, s, stats, last):
        self.rows.append({
            "step": s.step, "G": [p.detach().clone() for p in s.G.master.parameters()],
            "lr_G": s.G.opt.param_groups[0]["lr"], "lr_D": s.D.opt.param_groups[0]["lr"],
            "mom_G": s.G.opt.param_groups[0].get("momentum"), "mom_D": s.D.opt.param_groups[0].get("momentum"),
            "work_dtype": next(s.D.local.parameters()).dtype, "master_dtype": next(s.D.master.parameters()).dtype,
            "stats": sorted(stats),
        })


def run(tmp_path, name="r", **kw):
    rec = Record()
    gan, summary = fit(tiny(**kw), tmp_path / name, progress=False, hooks=[rec])
    return gan, summary, rec.rows


def test_ema_weights_follow_their_closed_form(tmp_path):
    """theta_ema(t+1) = d_t theta_ema(t) + (1 - d_t) theta(t+1), d_t = min(ema, (1 + t)/(10 + t)), from G's init."""
    cfg = tiny(steps=6, ema=0.3)  # the ramp (1 + t)/(10 + t) passes 0.3 at t = 3
    gan, _, rows = run(tmp_path, steps=6, ema=0.3)
    ema = [p.detach().clone() for p in build(cfg).G.parameters()]
    for t, row in enumerate(rows):
        d = min(0.3, (1 + t) / (10 + t))
        ema = [d * e + (1 - d) * g for e, g in zip(ema, row["G"])]
    for got, want in zip(gan.G_ema.parameters(), ema):
        assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(next(gan.G_ema.parameters()), rows[-1]["G"][0])  # an average, not a copy


def test_sgd_momentum_and_decayed_learning_rates_reach_both_optimisers(tmp_path):
    """At iteration t (from 0): lr = base / decay^t for G (lr) and D (lr_d); momentum rises linearly with the
    epoch t m / N from `momentum` to `final_momentum` at `momentum_saturate` epochs."""
    kw = dict(steps=8, optimizer="sgd", lr=0.05, lr_d=0.02, lr_decay=1.01, momentum=0.5, final_momentum=0.9,
              momentum_saturate=0.002, subset=None)
    _, _, rows = run(tmp_path, **kw)
    per_epoch = 100_000 // 32
    for row in rows:
        t = row["step"] - 1
        assert row["lr_G"] == pytest.approx(0.05 / 1.01**t, rel=1e-12)
        assert row["lr_D"] == pytest.approx(0.02 / 1.01**t, rel=1e-12)
        mom = 0.5 + min(t / per_epoch / 0.002, 1.0) * 0.4
        assert row["mom_G"] == pytest.approx(mom, rel=1e-12) and row["mom_D"] == pytest.approx(mom, rel=1e-12)
    assert rows[-1]["mom_D"] == pytest.approx(0.9)  # saturated


def test_adam_betas_come_from_momentum_and_beta2(tmp_path):
    gan, _, _ = run(tmp_path, steps=1, momentum=0.3, beta2=0.95)
    from gankit import checkpoint

    state = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert state["opt_G"]["param_groups"][0]["betas"] == (0.3, 0.95) == tuple(state["opt_D"]["param_groups"][0]["betas"])


@pytest.mark.parametrize("form", ["minimax", "nonsaturating"])
def test_generator_loss_gradient_follows_its_closed_form(form):
    """d/dl of G's loss at D's logit l: minimax log(1 - sigmoid(l)) gives -sigmoid(l)/m, non-saturating
    -log sigmoid(l) gives -(1 - sigmoid(l))/m."""
    objective = objectives.build(tiny(loss=form))
    l = torch.linspace(-6, 6, 13, requires_grad=True)
    objective.g_loss_from_logits(l)[0].backward()
    s = torch.sigmoid(l.detach())
    want = -(s if form == "minimax" else 1 - s) / len(l)
    assert torch.allclose(l.grad, want, atol=1e-7)


def test_the_generator_loss_changes_only_g(tmp_path):
    """One iteration from the same start: D's step is the same under both G losses, G's is not."""
    a, _, _ = run(tmp_path, "a", steps=1, loss="minimax", ema=0.0)
    b, _, _ = run(tmp_path, "b", steps=1, loss="nonsaturating", ema=0.0)
    assert all(torch.equal(p, q) for p, q in zip(a.D.parameters(), b.D.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.G.parameters(), b.G.parameters()))


@pytest.mark.parametrize("update,k,steps_per_epoch", [("alternating", 1, 10), ("alternating", 2, 5),
                                                      ("simultaneous", 1, 10)])
def test_an_epoch_is_one_pass_of_d_over_the_data(tmp_path, update, k, steps_per_epoch):
    """320 samples in batches of 32: 10 real minibatches an epoch, whatever the update and k."""
    from gankit import checkpoint

    _, summary, rows = run(tmp_path, epochs=2.0, subset=320, update=update, k=k)
    assert summary["step"] == len(rows) == 2 * steps_per_epoch
    state = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    d_updates = {int(v["step"]) for v in state["opt_D"]["state"].values()}
    assert d_updates == {20}  # D saw 20 minibatches: two passes over the data
    if update == "simultaneous":
        assert rows[0]["stats"] == ["d_fake", "d_loss", "d_real", "g_loss", "value"]


def test_bf16_passes_run_on_bf16_working_copies(tmp_path):
    _, _, rows = run(tmp_path, "b", steps=2, precision="bf16")
    assert rows[0]["work_dtype"] == torch.bfloat16 and rows[0]["master_dtype"] == torch.float32
    _, _, rows = run(tmp_path, "f", steps=2, precision="fp32")
    assert rows[0]["work_dtype"] == torch.float32


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_the_noise_prior_reaches_the_steps(tmp_path, noise):
    zs = []

    class Noise(Hook):
        def after_step(self, s, stats, last):
            zs.append(s.noise())

    fit(tiny(steps=3, noise=noise, batch_size=512), tmp_path / "r", progress=False, hooks=[Noise()])
    z = torch.cat(zs)
    assert abs(z.var().item() - 1) < 0.1
    beyond = (z.abs() > math.sqrt(3) + 1e-6).float().mean().item()
    assert (beyond == 0) if noise == "uniform" else (beyond > 0.05)


def test_collapse_warnings_reach_the_summary_and_the_terminal(tmp_path, monkeypatch, capsys):
    import gankit.train

    class Collapsing:
        def __init__(self, spec):
            pass

        def __call__(self, step, x):
            return {}, f"step {step}: possible mode collapse (test)"

    monkeypatch.setattr(gankit.train, "CollapseMonitor", Collapsing)
    _, summary, _ = run(tmp_path, steps=4, sample_every=2)
    assert summary["warnings"] == ["step 2: possible mode collapse (test)", "step 4: possible mode collapse (test)"]
    assert "possible mode collapse" in capsys.readouterr().err


def test_k_discriminator_steps_use_k_fresh_minibatches(tmp_path):
    """k = 3 alternating: 3 D updates per G update, on 3 different real minibatches (the epoch advances 3x)."""
    _, _, rows = run(tmp_path, steps=4, k=3, log_every=1)
    from gankit import rundir

    epochs = [r["epoch"] for r in rundir.read_metrics(tmp_path / "r")]
    assert epochs == pytest.approx([3 * s / (100_000 // 32) for s in range(1, 5)])


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_one_iteration_computed_by_hand(tmp_path, update):
    """Plain SGD (momentum 0), one iteration, against Algorithm 1 written out: alternating, D steps on
    (x, G(z1)), then G steps on a fresh z2 through the updated D; simultaneous, both gradients come from one
    z and one forward of D, before either update."""
    from gankit.data import Batches
    from gankit.losses import discriminator_loss, generator_loss_nonsaturating
    from gankit.noise import sample_noise

    kw = dict(steps=1, update=update, optimizer="sgd", lr=0.05, lr_d=0.02, momentum=0.0, final_momentum=0.0,
              ema=0.0)
    gan, _, _ = run(tmp_path, **kw)
    cfg = tiny(**kw)
    ref = build(cfg)
    G, D = ref.G, ref.D
    x = Batches(ref.data.x, 32, cfg.seed)(0)[0]
    torch.manual_seed(cfg.seed + 1)
    z1 = sample_noise(32, cfg.z_dim, cfg.noise)

    sgd = sgd_step
    if update == "simultaneous":
        fake = G(z1)
        real_l, fake_l = D(x), D(fake)
        D1 = sgd(D, discriminator_loss(real_l, fake_l), 0.02)
        G1 = sgd(G, generator_loss_nonsaturating(fake_l), 0.05)
    else:
        D1 = sgd(D, discriminator_loss(D(x), D(G(z1).detach())), 0.02)
        with torch.no_grad():
            for p, v in zip(D.parameters(), D1):
                p.copy_(v)
        z2 = sample_noise(32, cfg.z_dim, cfg.noise)
        G1 = sgd(G, generator_loss_nonsaturating(D(G(z2))), 0.05)
    for got, want in zip([*gan.G.parameters(), *gan.D.parameters()], [*G1, *D1]):
        assert torch.allclose(got, want, atol=1e-6)
