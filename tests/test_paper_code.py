"""The `paper-mnist-code` preset against the released code's update (goodfeli/adversarial: mnist.yaml and
AdversaryCost2), written out by hand: one shared minibatch and one dropout forward of D per update,
D's objective 0.5 (CE(D(x), 1) + CE(D(G(z)), 0)), G's CE(D(G(z)), 1) through that same forward, and pylearn2's
momentum rule v <- mu v - lr g, theta <- theta + v; plus pylearn2's epoch-wise momentum schedule."""

import math

import pytest
import torch
import torch.nn.functional as F

from gankit import checkpoint, config as C, optim
from gankit.data import Batches, Data
from gankit.models import layers
from gankit.train import fit


def _record(monkeypatch):
    """Record the noise the train state draws and the dropout masks D's forward uses."""
    import gankit.train as train_mod

    noise, masks = [], []
    draw, keep = train_mod.sample_noise, layers.keep_mask

    def recording_noise(n, z_dim, kind, device="cpu", generator=None):
        z = draw(n, z_dim, kind, device, generator)
        if generator is None:
            noise.append(z.clone())
        return z

    def recording_mask(shape, p, dtype, device):
        m = keep(shape, p, dtype, device)
        masks.append(m.clone())
        return m

    monkeypatch.setattr(train_mod, "sample_noise", recording_noise)
    monkeypatch.setattr(layers, "keep_mask", recording_mask)
    return noise, masks


def _D_by_hand(p: dict, x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """The paper's D written out: dropout-scaled inputs to maxout 240 x 5, maxout 240 x 5, then the logit."""
    h = x * masks[0]
    for i, layer in enumerate(("net.1.affine", "net.3.affine")):
        y = h @ p[f"{layer}.weight"].T + p[f"{layer}.bias"]
        h = y.view(len(x), 5, 240).amax(1) * masks[i + 1]  # pieces laid out piece-major
    return (h @ p["net.5.weight"].T + p["net.5.bias"]).squeeze(-1)


def _G_by_hand(p: dict, z: torch.Tensor) -> torch.Tensor:
    h = torch.relu(z @ p["net.0.weight"].T + p["net.0.bias"])
    h = torch.relu(h @ p["net.2.weight"].T + p["net.2.bias"])
    return torch.sigmoid(h @ p["net.4.weight"].T + p["net.4.bias"])


def test_preset_matches_the_released_code_update_by_hand(tmp_path, monkeypatch):
    m, steps = 4, 3
    x_all = torch.rand(40, 784)
    data = Data("mnist", (1, 28, 28), "image", (0.0, 1.0), x=x_all)
    # lr_decay exaggerated (the preset's 1.000004 would hide the momentum rule's lr term below float tolerance)
    cfg = C.settle(C.preset("paper-mnist-code"), {"batch_size": m, "steps": steps, "monitor": "", "ema": 0.0,
                    "lr_decay": 2.0, "checkpoint_every": 1, "keep_checkpoints": steps + 1, "log_every": 1})
    assert (cfg.update, cfg.d_loss_scale, cfg.sgd_form, cfg.noise, cfg.output_bias) == (
        "simultaneous", 0.5, "pylearn2", "uniform", "code")
    x_all[:, :3] = 0  # never-lit pixels: pylearn2 clips their mean to 1e-7 (logit -16.1; gankit's own clip: -6.9)
    noise, masks = _record(monkeypatch)
    fit(cfg, tmp_path / "run", progress=False, data=data)
    # input include-probability 0.8 with scale 1.25; hidden 0.5 with scale 2 (pylearn2's dropout_fprop)
    assert set(masks[0].unique().tolist()) == {0.0, 1.25} and set(masks[1].unique().tolist()) == {0.0, 2.0}
    assert len(masks) == 3 * steps and len(noise) == steps

    load = lambda s: checkpoint.load(tmp_path / "run" / "checkpoints" / f"step-{s:08d}.pt")  # noqa: E731
    state = load(0)
    # G starts at the data's marginals: init_sigmoid_bias_from_marginals, mean clipped to [1e-7, 1 - 1e-7]
    marginals = torch.logit(x_all.double().mean(0).clamp(1e-7, 1 - 1e-7)).float()
    torch.testing.assert_close(state["G"]["net.4.bias"], marginals, rtol=1e-5, atol=1e-4)
    gp = {k: v.clone().requires_grad_(True) for k, v in state["G"].items()}
    dp = {k: v.clone().requires_grad_(True) for k, v in state["D"].items()}
    velocity = {k: torch.zeros_like(v) for k, v in {**gp, **dp}.items()}
    batches = Batches(x_all, m, cfg.seed, reals_per_step=1)
    for t in range(steps):
        x, _ = batches(t)
        z = noise[t]
        fake = _G_by_hand(gp, z)
        logits = _D_by_hand(dp, torch.cat([x, fake]), masks[3 * t:3 * t + 3])  # one forward on both batches
        real_l, fake_l = logits[:m], logits[m:]
        d_obj = 0.5 * (F.binary_cross_entropy_with_logits(real_l, torch.ones(m))
                       + F.binary_cross_entropy_with_logits(fake_l, torch.zeros(m)))
        g_obj = F.binary_cross_entropy_with_logits(fake_l, torch.ones(m))  # same dropout forward as D's
        d_grads = torch.autograd.grad(d_obj, list(dp.values()), retain_graph=True)
        g_grads = torch.autograd.grad(g_obj, list(gp.values()))
        lr = 0.1 / 2.0**t
        mu = 0.5  # epoch 0: MomentumAdjustor's first value
        with torch.no_grad():
            for (name, p), g in zip(list(dp.items()) + list(gp.items()), d_grads + g_grads):
                velocity[name] = mu * velocity[name] - lr * g
                p += velocity[name]
        after = load(t + 1)
        for name, p in gp.items():
            torch.testing.assert_close(after["G"][name], p.detach(), rtol=1e-4, atol=1e-6, msg=f"G.{name}, step {t + 1}")
        for name, p in dp.items():
            torch.testing.assert_close(after["D"][name], p.detach(), rtol=1e-4, atol=1e-6, msg=f"D.{name}, step {t + 1}")


def test_pylearn2_momentum_schedule_steps_once_per_epoch():
    cfg = C.from_dict({"optimizer": "sgd", "momentum": 0.5, "final_momentum": 0.7, "momentum_saturate": 250.0,
                       "sgd_form": "pylearn2"})
    # MomentumAdjustor(start=1, saturate=250): epoch e trains at 0.5 + 0.2 e / 249, constant within the epoch
    for epoch, expected in ((0.0, 0.5), (0.99, 0.5), (1.0, 0.5 + 0.2 / 249), (1.5, 0.5 + 0.2 / 249),
                            (124.2, 0.5 + 0.2 * 124 / 249), (249.0, 0.7), (400.0, 0.7)):
        assert math.isclose(optim.momentum(cfg, epoch), expected, rel_tol=1e-12), epoch
    smooth = C.from_dict({"optimizer": "sgd", "momentum": 0.5, "final_momentum": 0.7, "momentum_saturate": 250.0})
    assert math.isclose(optim.momentum(smooth, 125.0), 0.6) and math.isclose(optim.momentum(smooth, 0.5), 0.5004)


def test_d_loss_scale_scales_only_d_loss():
    from gankit import objectives

    D = torch.nn.Linear(3, 1)
    D2 = lambda x, c=None: D(x).squeeze(-1)  # noqa: E731
    x, fake = torch.randn(5, 3), torch.randn(5, 3)
    full = objectives.build(C.from_dict({}))
    half = objectives.build(C.from_dict({"d_loss_scale": 0.5}))
    (d1, s1), (d2, s2) = full.d_loss(D2, x, fake), half.d_loss(D2, x, fake)
    assert torch.allclose(d2, 0.5 * d1) and torch.equal(s1["d_loss"], s2["d_loss"])
    j1, j2 = full.joint_losses(D2, x, fake), half.joint_losses(D2, x, fake)
    assert torch.allclose(j2[0], 0.5 * j1[0]) and torch.equal(j1[1], j2[1])


@pytest.mark.parametrize("key,value", [("d_loss_scale", 0.0), ("sgd_form", "keras"), ("output_bias", "pylearn2"),
                                       ("output_bias", "zero")])  # the last: the default model, an MLP, has none
def test_bad_code_options_are_config_errors(key, value):
    with pytest.raises(C.ConfigError, match=key):
        C.from_dict({key: value})


def test_a_run_saved_before_the_code_options_existed_still_loads(tmp_path):
    """Their defaults are the behaviour before them, so an older config.toml without them means exactly that."""
    path = tmp_path / "config.toml"
    text = C.dumps(C.from_dict({"lr": 3e-4}))
    path.write_text("\n".join(line for line in text.splitlines()
                              if not line.startswith(("sgd_form", "d_loss_scale", "output_bias"))))
    cfg = C.load_complete(path)
    assert (cfg.sgd_form, cfg.d_loss_scale, cfg.output_bias, cfg.lr) == ("torch", 1.0, "mean", 3e-4)
