"""Conditional generation p(x | c) (--conditional): the class reaches G and D, every step passes it, checkpoints
rebuild conditional nets without data, and what cannot be conditioned is refused by name."""

import numpy as np
import pytest
import torch
from conftest import sgd_d_step, sgd_step
from PIL import Image

from gankit import config as C
from gankit.cli import main
from gankit.errors import ConfigError, UsageError
from gankit.gan import build, from_checkpoint
from gankit.models import construct
from gankit.train import fit

TINY = dict(hidden=16, layers=2, batch_size=32, log_every=5, sample_every=10**6, checkpoint_every=10**6)


def tiny(**kw):
    return C.from_dict({**TINY, **kw})


def _folder(root, classes=("a", "b", "c"), per_class=12, size=8):
    """A folder dataset of solid squares, one sub-directory (and one colour) per class."""
    rng = np.random.default_rng(0)
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            pixel = np.zeros((size, size, 3), np.uint8)
            pixel[..., i % 3] = 120 + rng.integers(0, 100)
            Image.fromarray(pixel).save(root / name / f"{j}.png")
    return root


# a small conditional architecture of each network family
ARCHS = {
    "mlp": dict(G={"class": "MLPGenerator", "kwargs": dict(z_dim=3, x_dim=2, hidden=16, layers=2, n_classes=8,
                                                           c_dim=8)},
                D={"class": "MLPDiscriminator", "kwargs": dict(x_dim=2, hidden=16, layers=2, n_classes=8)}),
    "bn-mlp": dict(G={"class": "BNMLPGenerator", "kwargs": dict(z_dim=5, x_dim=784, n_classes=10, c_dim=10)},
                   D={"class": "TutorialDiscriminator", "kwargs": dict(x_dim=784, n_classes=10)}),
    "paper": dict(G={"class": "PaperGenerator", "kwargs": dict(z_dim=5, x_dim=784, hidden=32, n_classes=10,
                                                               c_dim=10)},
                  D={"class": "PaperDiscriminator", "kwargs": dict(x_dim=784, units=16, n_classes=10)}),
    "dcgan": dict(G={"class": "DCGANGenerator", "kwargs": dict(z_dim=5, shape=(1, 28, 28), width=8, n_classes=10,
                                                               c_dim=10)},
                  D={"class": "DCGANDiscriminator", "kwargs": dict(shape=(1, 28, 28), width=8, n_classes=10)}),
    "paper-conv": dict(G={"class": "PaperConvGenerator", "kwargs": dict(z_dim=5, shape=(3, 32, 32), n_classes=10,
                                                                        c_dim=10)},
                       D={"class": "PaperConvDiscriminator", "kwargs": dict(shape=(3, 32, 32), n_classes=10)}),
}


@pytest.mark.parametrize("model", list(ARCHS))
def test_conditional_nets_shapes_and_both_read_c(model):
    """G(z, c) [N, d] and D(x, c) [N]; changing c alone changes G's sample and D's verdict (eval mode: no dropout);
    a conditional net called without c says so."""
    torch.manual_seed(0)
    G, D = construct(ARCHS[model])
    G.eval(), D.eval()
    z = torch.randn(6, G.z_dim)
    c0, c1 = torch.zeros(6, dtype=torch.long), torch.arange(6)
    x0, x1 = G(z, c0), G(z, c1)
    d = x0.shape[1]
    assert x0.shape == (6, d) and torch.isfinite(x0).all()
    assert torch.equal(x0[0], x1[0]) and not torch.allclose(x0[1:], x1[1:])  # same c, same sample
    y0, y1 = D(x0, c0), D(x0, c1)
    assert y0.shape == (6,) and y0[0] == y1[0] and not torch.allclose(y0[1:], y1[1:])
    with pytest.raises(ValueError, match="conditional"):
        G(z)
    with pytest.raises(ValueError, match="conditional"):
        D(x0)


def test_projection_discriminator_is_psi_plus_inner_product():
    """DCGAN's conditional D: D(x, c) = psi(phi(x)) + <embed(c), phi(x)> (Miyato & Koyama 2018)."""
    torch.manual_seed(0)
    _, D = construct(ARCHS["dcgan"])
    x, c = torch.rand(4, 784), torch.tensor([0, 3, 3, 9])
    phi = D.net[:-1](x.view(-1, 1, 28, 28))
    want = D.net[-1](phi).squeeze(-1) + (D.project.embed.weight[c] * phi).sum(1)
    assert torch.allclose(D(x, c), want, atol=1e-6)


def test_unconditional_architecture_is_unchanged():
    """Without --conditional the nets record no classes and ignore c (the fingerprints stay bit-identical)."""
    gan = build(tiny(steps=1))
    assert "n_classes" not in gan.arch["G"]["kwargs"] and "n_classes" not in gan.arch["D"]["kwargs"]
    assert gan.n_classes == 0
    z = torch.randn(5, 2)
    assert torch.equal(gan.G(z), gan.G(z, torch.arange(5)))
    cond = build(tiny(steps=1, conditional=True))
    assert cond.arch["G"]["kwargs"]["n_classes"] == 8 and cond.arch["D"]["kwargs"]["n_classes"] == 8
    assert cond.n_classes == 8


def test_one_conditional_iteration_computed_by_hand(tmp_path):
    """Plain SGD, one alternating iteration: D steps on (x, c) against (G(z1, c), c) with c the real minibatch's
    labels, then G steps on G(z2, c) through the updated D, both with the same c. Ignoring c anywhere, or
    giving G other classes than D, moves the weights away from these."""
    from gankit.data import Batches
    from gankit.losses import generator_loss_nonsaturating
    from gankit.noise import sample_noise

    kw = dict(steps=1, optimizer="sgd", lr=0.05, lr_d=0.02, momentum=0.0, final_momentum=0.0, ema=0.0,
              conditional=True)
    gan, _ = fit(tiny(**kw), tmp_path / "r", progress=False)
    cfg = tiny(**kw)
    ref = build(cfg)
    G, D = ref.G, ref.D
    x, c = Batches(ref.data.x, 32, cfg.seed, labels=ref.data.labels)(0)
    assert len(set(c.tolist())) > 1
    torch.manual_seed(cfg.seed + 1)
    z1 = sample_noise(32, cfg.z_dim, cfg.noise)

    sgd = sgd_step
    D1 = sgd_d_step(D, G, x, c, z1, 0.02)
    z2 = sample_noise(32, cfg.z_dim, cfg.noise)
    G1 = sgd(G, generator_loss_nonsaturating(D(G(z2, c), c)), 0.05)
    for got, want in zip([*gan.G.parameters(), *gan.D.parameters()], [*G1, *D1]):
        assert torch.allclose(got, want, atol=1e-6)


def test_conditional_toy_training_puts_each_class_on_its_mode(tmp_path):
    """300 steps on ring8: samples asked for class c land on mode c (the run's summary says so too)."""
    from gankit.metrics.conditional import on_mode

    cfg = C.from_dict(dict(steps=300, conditional=True, sample_every=10**6, checkpoint_every=10**6, log_every=100))
    gan, summary = fit(cfg, tmp_path / "r", progress=False)
    c = torch.arange(800) % 8
    r = on_mode(gan.sample(800, c=c), c, gan.spec.modes, gan.spec.mode_std)
    assert r["accuracy"] > 0.95 and r["worst"] > 0.8
    assert summary["class_on_mode"]["accuracy"] > 0.95
    wrong = on_mode(gan.sample(800, c=c), (c + 1) % 8, gan.spec.modes, gan.spec.mode_std)
    assert wrong["accuracy"] < 0.05  # the metric can fail: the classes shifted by one miss


def test_conditional_runs_are_deterministic(tmp_path):
    """The same seed and config end at the same weights; another seed does not."""
    weights = [fit(tiny(steps=5, conditional=True, seed=seed), tmp_path / f"r{i}", progress=False)[0].G.state_dict()
               for i, seed in enumerate((0, 0, 1))]
    assert all(torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values()))
    assert not torch.equal(weights[0]["embed.weight"], weights[2]["embed.weight"])


def test_checkpoint_rebuilds_a_conditional_run_without_data(tmp_path, monkeypatch):
    gan, _ = fit(tiny(steps=3, conditional=True, dataset="grid25"), tmp_path / "r", progress=False)
    import gankit.gan as gan_mod

    monkeypatch.setattr(gan_mod, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))
    back = from_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt", "cpu")
    assert back.n_classes == 25 and back.arch["G"]["kwargs"]["c_dim"] == 25
    z = torch.randn(7, 2)
    assert torch.equal(back.sample(7, z, c=3), gan.sample(7, z, c=3))
    assert not torch.equal(back.sample(7, z, c=3), back.sample(7, z, c=4))
    assert torch.equal(back.sample(7, z), back.sample(7, z, c=torch.arange(7)))  # default: classes in turn
    assert back.discriminate(z, 2).shape == (7,)
    with pytest.raises(UsageError, match="out of range: this run has 25 classes"):
        back.sample(3, c=25)
    with pytest.raises(UsageError, match="give the class"):
        back.discriminate(z)


def test_conditional_image_run_draws_one_row_per_class(tmp_path):
    """A folder dataset with 3 class sub-directories: the pictures in samples/ hold 3 rows of 10 samples."""
    root = _folder(tmp_path / "f")
    cfg = C.settle(dict(dataset=f"folder:{root}", image_size=8, conditional=True, batch_size=8, steps=2,
                        sample_every=2, log_every=1))
    gan, _ = fit(cfg, tmp_path / "r", progress=False)
    assert gan.n_classes == 3
    img = Image.open(tmp_path / "r" / "samples" / "step-00000002.png")
    assert img.size == ((10 * (8 + 2) + 2) * 2, (3 * (8 + 2) + 2) * 2)  # 10 columns, 3 rows, padding 2, scale 2


def test_conditional_refused_without_labels(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for j in range(4):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / f"{j}.png")
    cfg = C.settle(dict(dataset=f"folder:{flat}", image_size=8, conditional=True, batch_size=2, steps=1))
    with pytest.raises(ConfigError, match="has no class labels"):
        build(cfg)
    with pytest.raises(ConfigError, match="single class"):
        C.from_dict(dict(dataset="gaussian1d", conditional=True))
    with pytest.raises(ConfigError, match="pack"):
        C.from_dict(dict(conditional=True, pack=2))


def test_sample_class_from_the_command_line(tmp_path, capsys):
    run, plain = tmp_path / "run", tmp_path / "plain"
    common = ["--steps", "3", "--hidden", "16", "--layers", "2", "--batch-size", "32", "--no-progress"]
    assert main(["train", "--out", str(run), "--conditional", *common]) == 0
    assert main(["sample", str(run), "--class", "3", "--n", "64", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (64, 2)
    gan = from_checkpoint(run / "checkpoints" / "last.pt", "cpu")
    from gankit.sampling import _z

    assert np.array_equal(s, gan.sample(64, _z(gan, 64, 0), c=3).numpy())
    assert main(["sample", str(run), "--class", "3", "--out", str(tmp_path / "s.png")]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--class", "8", "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gankit: error: --class 8 is out of range: {run} has 8 classes (0 to 7)"
    assert main(["train", "--out", str(plain), *common]) == 0
    capsys.readouterr()
    assert main(["sample", str(plain), "--class", "3", "--out", str(tmp_path / "s.png")]) == 2
    assert "not a conditional run" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["eval", str(run), "--metric", "conditional", "--n-samples", "80", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert len(result["per_class"]) == 8 and result["n_samples"] == 80 and 0 <= result["accuracy"] <= 1


@pytest.mark.parametrize("option", [dict(update="simultaneous"), dict(k=2), dict(objective="wgan-gp"), dict(r1=1.0),
                                    dict(spectral_norm=True), dict(minibatch_std=True), dict(precision="bf16"),
                                    dict(objective="relativistic")])
def test_conditional_runs_under_every_update_and_stabiliser(tmp_path, option):
    """c goes through the simultaneous update, k > 1, the penalties' extra passes of D, the wrappers of D and
    bf16 working copies: a few steps train and the classes still change the samples."""
    gan, _ = fit(tiny(steps=3, conditional=True, **option), tmp_path / "r", progress=False)
    z = torch.randn(8, 2)
    assert torch.isfinite(gan.sample(8, z, c=0)).all()
    assert not torch.equal(gan.sample(8, z, c=0), gan.sample(8, z, c=5))


def test_trained_conditional_d_approaches_the_optimal_conditional_d():
    """With G held fixed, the inner loop drives D(x, c) to D*(x|c) = p_data(x|c) / (p_data(x|c) + p_g(x|c)) (the
    paper's Proposition 1, class by class); asked about the wrong class, the same D is far from it."""
    from gankit import theory

    pairs = theory.conditional_pairs()
    D = theory.train_conditional_discriminator(pairs, steps=800, batch=256)
    err = theory.conditional_discriminator_error(D, pairs, n=1000)
    assert err["mean"] < 0.08 and max(err["per_class_mean"]) < 0.1
    assert err["wrong_class_mean"] > 0.25


def test_conditional_run_resumes_bit_exactly_and_refuses_to_drop_its_classes(tmp_path):
    from gankit import checkpoint, rundir

    kw = dict(conditional=True, dataset="grid25", log_every=1)
    fit(tiny(steps=4, **kw), tmp_path / "full", progress=False)
    fit(tiny(steps=2, **kw), tmp_path / "split", progress=False)
    fit(tiny(steps=4, **kw), tmp_path / "split", resume=True, progress=False)
    a = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "split" / "checkpoints" / "last.pt")
    assert all(torch.equal(a[n][k], b[n][k]) for n in ("G", "D") for k in a[n])
    with pytest.raises(rundir.RunDirError, match="conditional"):
        fit(tiny(steps=6, **{**kw, "conditional": False}), tmp_path / "split", resume=True, progress=False)


@pytest.mark.parametrize("command", [["encode", "--out", "x.npz"], ["probe", "--labels", "10"], ["inpaint"]])
def test_encode_probe_inpaint_refuse_a_conditional_run_in_one_line(tmp_path, capsys, command):
    from gankit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--dataset", "ring8", "--conditional", "--steps", "2", "--hidden", "8", "--layers", "1",
                 "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main([command[0], str(run), *command[1:]]) == 2
    assert "works on unconditional runs" in capsys.readouterr().err
