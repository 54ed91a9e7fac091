"""Conditional inpainting (train --inpaint MASKS): the context c of an image, the per-image masks of each minibatch,
G(z, c) and D(x, c) of every model that takes it, training wired through the steps, checkpoints, resume, the
completions of `gankit inpaint` on such a run, and the errors."""

import json

import numpy as np
import pytest
import torch
from conftest import assert_resume_is_bit_exact, random_png_folder, sgd_d_step, sgd_step, tiny

from gankit import inpaint as P
from gankit.cli import main
from gankit.errors import ConfigError, UsageError
from gankit.models import INPAINT_MODELS, build_models
from gankit.train import fit

SHAPE = (3, 8, 8)
D_X = 3 * 8 * 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return random_png_folder(tmp_path_factory.mktemp("png") / "imgs", 64, side=8)


def image_cfg(folder, **kw):
    return tiny(**{"dataset": f"folder:{folder}", "image_size": 8, "z_dim": 4, "inpaint": "centre,random", **kw})


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    """A tiny bn-mlp inpainting run (6 steps), and its directory."""
    out = tmp_path_factory.mktemp("run") / "r"
    gan, _ = fit(image_cfg(folder, model="bn-mlp", steps=6, sample_every=3), out, progress=False)
    return gan, out


def test_context_zeroes_the_hidden_pixels_and_marks_the_visible_ones():
    x = torch.rand(5, D_X) + 0.5
    h = P.hidden_mask("left", SHAPE)
    c = P.context(x, h)
    vis = ~h.reshape(-1)
    assert c.shape == (5, 2 * D_X)
    assert torch.equal(c[:, :D_X][:, vis], x[:, vis]) and bool((c[:, :D_X][:, ~vis] == 0).all())
    assert torch.equal(c[:, D_X:], vis.float().expand(5, -1))
    per_image = torch.stack([P.hidden_mask(k, SHAPE) for k in ("top", "bottom", "left", "right", "centre")])
    assert torch.equal(P.context(x, per_image)[:, D_X:], (~per_image).reshape(5, -1).float())


def test_each_minibatch_draws_a_mask_per_image_from_the_kinds_reproducibly():
    x = torch.rand(40, D_X)
    b = P.ContextBatches(x, 16, 3, ("top", "left", "random"), SHAPE)
    x0, c0 = b(0)
    assert c0.shape == (16, 2 * D_X)
    assert torch.equal(c0[:, :D_X], x0 * c0[:, D_X:])  # the visible pixels are the image's own
    fixed = {k: ~P.hidden_mask(k, SHAPE).reshape(-1) for k in ("top", "left")}
    kinds = ["top" if torch.equal(v, fixed["top"]) else "left" if torch.equal(v, fixed["left"]) else "random"
             for v in c0[:, D_X:].bool()]
    assert set(kinds) == {"top", "left", "random"}  # 16 draws of 3 kinds
    randoms = [v for v, k in zip(c0[:, D_X:], kinds) if k == "random"]
    assert len({tuple(v.tolist()) for v in randoms}) == len(randoms)  # each random mask its own
    again = P.ContextBatches(x, 16, 3, ("top", "left", "random"), SHAPE)
    assert torch.equal(again(0)[1], c0) and not torch.equal(again(1)[1], c0)
    only = P.ContextBatches(x, 16, 3, ("bottom",), SHAPE)(0)[1][:, D_X:]
    assert torch.equal(only, (~P.hidden_mask("bottom", SHAPE)).reshape(1, -1).float().expand(16, -1))


@pytest.mark.parametrize("model", INPAINT_MODELS)
def test_g_keeps_the_visible_pixels_and_both_nets_read_the_context(folder, model):
    cfg = image_cfg(folder, model=model, steps=1)
    from gankit.data import load_dataset

    data = load_dataset(cfg.dataset, image_size=8)
    torch.manual_seed(0)
    G, D = build_models(cfg, data)
    G.eval()
    x = data.x[:6]
    hidden = torch.stack([P.hidden_mask(k, SHAPE, i) for i, k in
                          enumerate(("left", "right", "top", "bottom", "centre", "random"))])
    c = P.context(x, hidden)
    z = torch.randn(6, 4)
    out = G(z, c)
    vis = ~hidden.reshape(6, -1)
    assert out.shape == (6, D_X) and G.context_dim == D.context_dim == 2 * D_X
    assert torch.equal(out[vis], x[vis])  # composited: the visible pixels exactly
    other = P.context(data.x[6:12], hidden)
    assert not torch.allclose(G(z, other)[~vis], out[~vis])  # the hidden pixels depend on the visible ones
    assert D(x, c).shape == (6,) and not torch.allclose(D(x, c), D(x, other))
    with pytest.raises(ValueError, match="conditional"):
        G(z)


def first_inpaint_iteration(folder, tmp_path, **extra):
    """A one-iteration inpainting run (mlp, plain SGD) and its reference by hand up to G's step: (the run's GAN, the
    reference G and D, D's parameters after the hand-made D step on the first minibatch (x, c), c, and G's z)."""
    from gankit.data import load_dataset
    from gankit.gan import build
    from gankit.noise import sample_noise

    kw = dict(model="mlp", steps=1, optimizer="sgd", lr=0.05, lr_d=0.02, momentum=0.0, final_momentum=0.0, ema=0.0,
              **extra)
    gan, _ = fit(image_cfg(folder, **kw), tmp_path / "r", progress=False)
    cfg = image_cfg(folder, **kw)
    ref = build(cfg, load_dataset(cfg.dataset, image_size=8))
    G, D = ref.G, ref.D
    x, c = P.ContextBatches(ref.data.x, 32, cfg.seed, ("centre", "random"), SHAPE)(0)
    torch.manual_seed(cfg.seed + 1)
    D1 = sgd_d_step(D, G, x, c, sample_noise(32, cfg.z_dim, cfg.noise), 0.02)
    return gan, G, D, D1, c, sample_noise(32, cfg.z_dim, cfg.noise)


def test_training_gives_g_and_d_the_real_minibatch_s_context(folder, tmp_path):
    """One plain-SGD iteration computed by hand: D steps on (x, c) against (G(z1, c), c), c the context of the real
    minibatch; then G steps on G(z2, c) through the updated D. A run that ignored --inpaint fails here."""
    from gankit.losses import generator_loss_nonsaturating

    gan, G, D, D1, c, z2 = first_inpaint_iteration(folder, tmp_path)
    G1 = sgd_step(G, generator_loss_nonsaturating(D(G(z2, c), c)), 0.05)
    assert gan.context_dim == 2 * D_X
    for got, want in zip([*gan.G.parameters(), *gan.D.parameters()], [*G1, *D1]):
        assert torch.allclose(got, want, atol=1e-6)


def test_the_checkpoint_rebuilds_the_inpainting_nets_without_data(run):
    from gankit.gan import from_checkpoint

    gan, out = run
    again = from_checkpoint(out / "checkpoints" / "last.pt")
    assert again._data is None and again.arch["G"]["kwargs"]["context_dim"] == 2 * D_X == again.context_dim
    x = gan.data.x[:4]
    c = P.context(x, P.hidden_mask("centre", SHAPE))
    z = torch.randn(4, 4)
    assert torch.equal(again.sample(4, z, c=c), gan.sample(4, z, c=c))
    assert torch.equal(again.discriminate(x, c=c), gan.discriminate(x, c=c))
    pictures = sorted((out / "samples").glob("*.png"))
    assert len(pictures) == 2  # steps 3 and 6: training images, masked, completed and whole


def test_inpaint_completes_with_g_keeping_the_visible_pixels_and_is_seeded(run):
    gan, _ = run
    x = gan.data.x[:5]
    r = P.inpaint(gan, x, "bottom", k=3, seed=1)
    comp, vis = r["completions"], ~r["hidden"].reshape(-1)
    assert r["method"] == "conditional G(z, c)" and comp.shape == (5, 3, D_X) and r["d_score"].shape == (5, 3)
    assert torch.equal(comp[:, :, vis], x[:, None, vis].expand(-1, 3, -1))
    assert float(r["visible_error"].abs().max()) == 0.0
    assert not torch.allclose(comp[:, 0, ~vis], comp[:, 1, ~vis])  # a fresh z per completion
    best = r["hidden_error"][torch.arange(5), r["d_score"].argmax(1)].mean()
    assert r["mse_hidden_best_fit"] == pytest.approx(float(best))
    again, other = P.inpaint(gan, x, "bottom", k=3, seed=1), P.inpaint(gan, x, "bottom", k=3, seed=2)
    assert torch.equal(again["completions"], comp) and not torch.equal(other["completions"], comp)


def test_an_inpainting_run_needs_the_context(run):
    gan, _ = run
    with pytest.raises(UsageError, match="--inpaint"):
        gan.sample(3)
    with pytest.raises(UsageError, match="shape"):
        gan.sample(3, torch.randn(3, 4), c=torch.zeros(3, D_X))


def test_inpainting_resumes_bit_exactly(folder, tmp_path):
    assert_resume_is_bit_exact(tmp_path, dict(dataset=f"folder:{folder}", image_size=8, z_dim=4,
                                              inpaint="left,random", model="bn-mlp"))


@pytest.mark.parametrize("kw, message", [
    (dict(inpaint="middle"), "unknown mask 'middle'"),
    (dict(inpaint="left,,top"), "unknown mask ''"),
    (dict(inpaint="left,left"), "named twice"),
    (dict(dataset="ring8"), "not points of dataset 'ring8'"),
    (dict(model="paper"), "not 'paper'"),
    (dict(conditional=True), "--conditional"),
    (dict(seeds=2), "seed ensembles"),
    (dict(augment="translation"), "--augment"),
])
def test_bad_inpaint_configs_are_refused_by_name(folder, kw, message):
    with pytest.raises(ConfigError, match="config key 'inpaint'") as e:
        image_cfg(folder, steps=1, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_cli_train_inpaint_sample_and_complete(folder, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--dataset", f"folder:{folder}", "--image-size", "8", "--inpaint", "top", "--steps", "2",
                 "--no-progress", "--out", str(out)]) == 0
    assert main(["train", "--dataset", f"folder:{folder}", "--image-size", "8", "--inpaint", "upper", "--steps", "2",
                 "--no-progress", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown mask 'upper'" in capsys.readouterr().err
    assert main(["sample", str(out), "--out", str(tmp_path / "s.png")]) == 2
    assert "--inpaint" in capsys.readouterr().err
    assert main(["encode", str(out), "--memorisation", "2"]) == 2
    assert "--inpaint" in capsys.readouterr().err
    fig = tmp_path / "i.png"
    assert main(["inpaint", str(out), "--mask", "random", "--split", "train", "--n", "3", "--n-completions", "2",
                 "--out", str(fig), "--json"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    assert r["method"] == "conditional G(z, c)" and r["n"] == 3 and r["k"] == 2
    assert "trained on masks top, not random" in captured.err
    from PIL import Image

    assert np.asarray(Image.open(fig)).shape[:2] == (3 * (3 * 10 + 2), 3 * (4 * 10 + 2))
