"""BiGAN / ALI (--encoder): E: x -> z trained jointly with G, D judging (x, E(x)) against (G(z), z)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import sgd_step
from gankit import config as C, objectives
from gankit.checkpoint import load
from gankit.cli import main
from gankit.data import Data
from gankit.errors import ConfigError, UsageError
from gankit.gan import build, from_checkpoint
from gankit.models import architecture
from gankit.models.mlp import JointDiscriminator, MLPEncoder
from gankit.state import TrainState, player
from gankit.steps import bigan_d_step, bigan_ge_step
from gankit.train import train

SMALL = {"encoder": True, "hidden": 16, "layers": 1, "batch_size": 8, "log_every": 5, "sample_every": 1000,
         "checkpoint_every": 1000, "ema": 0.0}


def cfg_of(**kw):
    return C.from_dict({**SMALL, **kw})


def image_data(n=40, side=4):
    g = torch.Generator().manual_seed(0)
    return Data("mnist", (1, side, side), "image", (-1.0, 1.0), classes=tuple("0123456789"),
                x=torch.rand(n, side * side, generator=g) * 2 - 1)


def test_shapes_of_the_joint_discriminator_encoder_and_architecture():
    D = JointDiscriminator(x_dim=3, z_dim=2, hidden=8, layers=2)
    assert D(torch.randn(5, 3), torch.randn(5, 2)).shape == (5,)
    assert D.body[0].in_features == 5  # plain concatenation [x, z]
    Dz = JointDiscriminator(x_dim=3, z_dim=2, hidden=8, layers=2, z_hidden=4)
    assert Dz(torch.randn(5, 3), torch.randn(5, 2)).shape == (5,) and Dz.body[0].in_features == 7
    assert MLPEncoder(3, 2, 8, 2)(torch.randn(5, 3)).shape == (5, 2)
    gan = build(cfg_of())  # ring8
    assert gan.encode(gan.data.x[:7]).shape == (7, 2) and type(gan.D).__name__ == "JointDiscriminator"
    for model, z_hidden in (("bn-mlp", 256), ("mlp", 16)):
        cfg = cfg_of(dataset="mnist", model=model, z_dim=5, pixel_range="pm1")
        arch = architecture(cfg, image_data())
        assert arch["E"]["kwargs"]["x_dim"] == 16 and arch["E"]["kwargs"]["z_dim"] == 5
        assert arch["D"]["class"] == "JointDiscriminator" and arch["D"]["kwargs"]["z_hidden"] == z_hidden
        gan = build(cfg, image_data())
        assert gan.encode(gan.data.x[:3]).shape == (3, 5) and gan.sample(3).shape == (3, 16)
    assert "E" not in architecture(cfg_of(encoder=False), image_data())


def state_of(cfg, z):
    """A train state for `cfg` whose noise is always `z`; plain SGD so that one update is checkable by hand."""
    gan = build(cfg)
    s = TrainState(player(gan.G, cfg, cfg.lr), player(gan.D, cfg, cfg.lr), lambda: z, torch.device("cpu"),
                   E=player(gan.E, cfg, cfg.lr))
    return gan, s


SGD = dict(optimizer="sgd", momentum=0.0, final_momentum=0.0, lr=0.1)


def test_d_sees_pairs_and_its_update_is_the_closed_form_gradient():
    cfg = cfg_of(**SGD)
    z, x = torch.randn(8, 2), torch.randn(8, 2)
    gan, s = state_of(cfg, z)
    seen = []
    gan.D.register_forward_pre_hook(lambda m, args: seen.append([a.detach().clone() for a in args]))
    with torch.no_grad():
        e_x, g_z = gan.E(x), gan.G(z)
    l = gan.D(torch.cat([x, g_z]), torch.cat([e_x, z]))
    expected_D = sgd_step(gan.D, F.softplus(-l[:8]).mean() + F.softplus(l[8:]).mean(), 0.1)
    G0, E0 = [p.clone() for p in gan.G.parameters()], [p.clone() for p in gan.E.parameters()]
    seen.clear()
    stats = bigan_d_step(s, objectives.build(cfg), x)
    (xs, zs), = seen  # one forward of D on both halves: (x, E(x)) then (G(z), z)
    assert torch.equal(xs, torch.cat([x, g_z])) and torch.equal(zs, torch.cat([e_x, z]))
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(gan.D.parameters(), expected_D))
    assert all(torch.equal(p, q) for p, q in zip(gan.G.parameters(), G0))
    assert all(torch.equal(p, q) for p, q in zip(gan.E.parameters(), E0))
    assert set(stats) == {"d_loss", "d_real", "d_fake", "value"} and s.d_updates == 1


def test_g_and_e_descend_their_own_terms_through_a_frozen_d():
    cfg = cfg_of(**SGD)
    z, x = torch.randn(8, 2), torch.randn(8, 2)
    gan, s = state_of(cfg, z)
    expected_E = sgd_step(gan.E, F.softplus(gan.D(x, gan.E(x))).mean(), 0.1)  # E: -log(1 - D(x, E(x)))
    expected_G = sgd_step(gan.G, F.softplus(-gan.D(gan.G(z), z)).mean(), 0.1)  # G: -log D(G(z), z)
    D0 = [p.clone() for p in gan.D.parameters()]
    stats = bigan_ge_step(s, objectives.build(cfg), x_real=x)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(gan.E.parameters(), expected_E))
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(gan.G.parameters(), expected_G))
    assert all(torch.equal(p, q) for p, q in zip(gan.D.parameters(), D0))
    assert all(p.grad is None for p in gan.D.parameters())  # D frozen: no gradient buffers
    assert set(stats) == {"g_loss", "e_loss"}


class FixedLogits(torch.nn.Module):
    """A stand-in D(x, z) returning given logits for the concatenated batch (real half first)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x, z):
        assert len(x) == len(z) == len(self.logits)
        return self.logits


def test_losses_equal_their_closed_forms_at_known_logits():
    l3 = math.log(3.0)
    D = FixedLogits(torch.tensor([0.0, l3, 0.0, -l3]))  # real: D = 1/2, 3/4; generated: D = 1/2, 1/4
    x, z = torch.zeros(2, 2), torch.zeros(2, 2)
    game = objectives.build(cfg_of())
    d, stats = game.d_loss(D, x, z, x, z)
    # -[log D(x, E(x)) + log(1 - D(G(z), z))]: log 2 and log 4/3 on each half
    assert d.item() == pytest.approx(math.log(2) + math.log(4 / 3))
    assert stats["d_real"].item() == pytest.approx(0.625) and stats["d_fake"].item() == pytest.approx(0.375)
    assert stats["value"].item() == pytest.approx(-d.item())
    ge, st = game.ge_loss(D, x, z, x, z)  # -log(1 - D(x, E(x))) - log D(G(z), z): (log 2 + log 4) / 2 each
    assert st["e_loss"].item() == pytest.approx(1.5 * math.log(2)) and st["g_loss"].item() == pytest.approx(1.5 * math.log(2))
    assert ge.item() == pytest.approx(3 * math.log(2))
    mm, _ = objectives.build(cfg_of(loss="minimax")).ge_loss(D, x, z, x, z)  # minimax: G and E descend V
    assert mm.item() == pytest.approx(-d.item())
    scaled, _ = objectives.build(cfg_of(d_loss_scale=0.5)).d_loss(D, x, z, x, z)
    assert scaled.item() == pytest.approx(0.5 * d.item())


def test_resume_is_bit_exact(tmp_path):
    cfg = cfg_of(steps=12)
    train(cfg, tmp_path / "whole", progress=False)
    train(cfg_of(steps=6), tmp_path / "split", progress=False)
    train(cfg, tmp_path / "split", resume=True, progress=False)
    a, b = (load(tmp_path / d / "checkpoints" / "last.pt") for d in ("whole", "split"))
    assert a["step"] == b["step"] == 12 and {"E", "opt_E"} <= set(a)
    for key in ("G", "D", "E"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    sa, sb = a["opt_E"]["state"], b["opt_E"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_checkpoint_rebuilds_e_without_the_data(tmp_path, monkeypatch):
    train(cfg_of(steps=4), tmp_path / "run", progress=False)
    state = load(tmp_path / "run" / "checkpoints" / "last.pt")
    import gankit.gan as gan_mod

    monkeypatch.setattr(gan_mod, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    gan = from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", "cpu")
    assert all(torch.equal(v, state["E"][k]) for k, v in gan.E.state_dict().items())
    x = torch.randn(5, 2)
    assert torch.allclose(gan.encode(x), gan.E(x))
    assert torch.allclose(gan.discriminate(x), torch.sigmoid(gan.D(x, gan.E(x))))


def test_a_run_without_encoder_has_none():
    gan = build(cfg_of(encoder=False))
    assert gan.E is None
    with pytest.raises(UsageError, match="no jointly trained encoder"):
        gan.encode(torch.zeros(1, 2))


@pytest.mark.parametrize("extra, words", [
    ({"seeds": 2}, "seed ensembles"), ({"conditional": True}, "--conditional"),
    ({"dataset": "mnist", "model": "dcgan"}, "model mlp, bn-mlp"), ({"objective": "hinge"}, "logistic game only"),
    ({"update": "simultaneous"}, "simultaneous"), ({"pack": 2}, "packing"), ({"r1": 1.0}, "R1"),
])
def test_unsupported_combinations_are_one_line_config_errors(extra, words):
    with pytest.raises(ConfigError, match="config key 'encoder'") as e:
        cfg_of(**extra)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cli_refuses_an_unsupported_combination(tmp_path, capsys):
    assert main(["train", "--encoder", "--seeds", "2", "--steps", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "encoder" in err[0] and not (tmp_path / "r").exists()


def test_encode_uses_the_jointly_trained_encoder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--encoder", "--steps", "4", "--hidden", "16", "--layers", "1", "--batch-size", "8",
                 "--ema", "0", "--out", str(run), "--no-progress"]) == 0
    pts = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    np.save(tmp_path / "pts.npy", pts)
    capsys.readouterr()
    assert main(["encode", str(run), "--images", str(tmp_path / "pts.npy"), "--out", str(tmp_path / "e.npz")]) == 0
    out = capsys.readouterr()
    assert "jointly trained" in out.out and "jointly trained" in out.err and "fitting" not in out.err
    assert not (run / "encoder.pt").exists()  # nothing fitted after training
    gan = from_checkpoint(run / "checkpoints" / "last.pt", "cpu")
    z = np.load(tmp_path / "e.npz")["z"]
    assert np.allclose(z, gan.encode(torch.from_numpy(pts)).numpy(), atol=1e-6)
    assert main(["encode", str(run), "--images", str(tmp_path / "pts.npy"), "--out", str(tmp_path / "f.npz"),
                 "--retrain"]) == 2
