"""gankit inpaint: masks, completion by searching z against the visible pixels, the mean-image baseline, errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit import config as C, inpaint as P
from gankit.cli import main
from gankit.data import Data, DataSpec
from gankit.errors import UsageError
from gankit.gan import GAN

SHAPE = (1, 4, 4)


@pytest.mark.parametrize("name, hidden_rows_cols", [
    ("left", (slice(None), slice(0, 2))), ("right", (slice(None), slice(2, 4))),
    ("top", (slice(0, 2), slice(None))), ("bottom", (slice(2, 4), slice(None))),
    ("centre", (slice(1, 3), slice(1, 3))),
])
def test_named_masks(name, hidden_rows_cols):
    m = P.hidden_mask(name, (3, 4, 4))
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[hidden_rows_cols] = True
    assert m.shape == (3, 4, 4) and m.dtype == torch.bool
    assert all(torch.equal(m[c], expected) for c in range(3))


def test_random_mask_is_seeded_and_about_half():
    a, b, c = (P.hidden_mask("random", (1, 28, 28), seed=s) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.4 < a.float().mean() < 0.6
    with pytest.raises(UsageError, match="unknown mask"):
        P.hidden_mask("middle", SHAPE)


def affine_gan(z_dim=2, seed=0):
    """G(z) = 0.5 + 0.1 A z on 4 x 4 images in [0, 1]: two latent numbers fix every pixel, so the visible half
    of an image G(z*) determines z* and the hidden half exactly."""
    torch.manual_seed(seed)
    G = nn.Linear(z_dim, 16)
    with torch.no_grad():
        G.weight.mul_(1.0).copy_(0.1 * torch.randn(16, z_dim))
        G.bias.fill_(0.5)
    spec = DataSpec("mnist", SHAPE, "image", (0.0, 1.0))
    gan = GAN(G.requires_grad_(False), nn.Linear(16, 1), C.from_dict({"z_dim": z_dim}), spec, torch.device("cpu"))
    gan._data = Data("mnist", SHAPE, "image", (0.0, 1.0), x=gan.sample(200, torch.randn(200, z_dim)))
    return gan


def test_completion_keeps_visible_pixels_and_recovers_hidden_ones_of_a_reachable_image():
    gan = affine_gan()
    x = gan.sample(6, torch.randn(6, 2, generator=torch.Generator().manual_seed(3)))
    r = P.inpaint(gan, x, "left", k=3, steps=300, lr=0.05, seed=0)
    comp = r["completions"]
    assert comp.shape == (6, 3, 16) and r["hidden_error"].shape == (6, 3) == r["visible_error"].shape
    vis = ~r["hidden"].reshape(-1)
    assert torch.equal(comp[:, :, vis], x[:, None, vis].expand(-1, 3, -1))  # visible pixels untouched
    assert r["mse_hidden"] < 1e-5 < r["mse_hidden_mean_image"]
    assert r["mse_hidden_best_fit"] <= r["mse_hidden"] + 1e-12


def test_average_completion_error_is_at_most_the_average_error():
    """Jensen: the squared error of the mean of k completions is at most the mean of their squared errors."""
    gan = affine_gan()
    x = torch.rand(5, 16, generator=torch.Generator().manual_seed(0))  # not reachable: completions differ
    r = P.inpaint(gan, x, "right", k=3, steps=5, seed=1)
    assert r["mse_hidden_average_completion"] < r["mse_hidden"]
    h = r["hidden"].reshape(-1)
    assert r["mse_hidden_average_completion"] == pytest.approx(
        float(((r["completions"].mean(1).clamp(0, 1)[:, h] - x[:, h]) ** 2).mean()), rel=1e-5)  # images clamp to [0, 1]


def test_completion_is_seeded():
    gan = affine_gan()
    x = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    a, b = (P.inpaint(gan, x, "random", k=2, steps=10, seed=4) for _ in range(2))
    c = P.inpaint(gan, x, "random", k=2, steps=10, seed=5)
    assert torch.equal(a["completions"], b["completions"]) and not torch.equal(a["completions"], c["completions"])
    assert not torch.equal(a["completions"][:, 0], a["completions"][:, 1])  # restarts differ


def test_mean_image_baseline_closed_form():
    gan = affine_gan()
    x = torch.rand(4, 16, generator=torch.Generator().manual_seed(0))
    mean = torch.full((16,), 0.25)
    r = P.inpaint(gan, x, "top", k=1, steps=0, train_mean=mean)
    h = P.hidden_mask("top", SHAPE).reshape(-1)
    assert r["mse_hidden_mean_image"] == pytest.approx(float(((x[:, h] - 0.25) ** 2).mean()), rel=1e-6)


def test_errors():
    gan = affine_gan()
    x = torch.rand(2, 16)
    with pytest.raises(UsageError, match="hide some"):
        P.complete(gan, x, torch.ones(SHAPE, dtype=torch.bool))
    with pytest.raises(UsageError, match="hide some"):
        P.complete(gan, x, torch.zeros(SHAPE, dtype=torch.bool))
    with pytest.raises(UsageError, match="mask of 9"):
        P.complete(gan, x, torch.ones(1, 3, 3, dtype=torch.bool))
    toy = GAN(nn.Linear(2, 2), nn.Linear(2, 1), C.from_dict({}), DataSpec("ring8", (2,), "toy"), torch.device("cpu"))
    with pytest.raises(UsageError, match="toy"):
        P.inpaint(toy, torch.zeros(1, 2))


def test_figure(tmp_path):
    gan = affine_gan()
    x = torch.rand(3, 16)
    r = P.inpaint(gan, x, "centre", k=2, steps=5)
    P.figure_inpaint(gan, x, r, tmp_path / "f.png")
    img = np.asarray(Image.open(tmp_path / "f.png"))
    assert img.shape == (3 * (3 * 6 + 2), 3 * (4 * 6 + 2), 3)  # rows: images; columns: masked, 2 completions, original
    red = (img[..., 0] == 255) & (img[..., 1] == 0)
    assert red.any()  # hidden pixels drawn red in the first column


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny run on a folder of 8 x 8 images (two classes)."""
    from gankit.train import train

    root = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    for k in ("a", "b"):
        (root / "data" / k).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "data" / k / f"{i}.png")
    run = root / "run"
    train(C.from_dict(dict(dataset=f"folder:{root / 'data'}", image_size=8, model="mlp", hidden=16, layers=1, z_dim=4,
                           batch_size=8, steps=3, log_every=1, sample_every=10**6, checkpoint_every=10**6)), run,
          progress=False)
    return run


def test_cli_inpaint(image_run, tmp_path, capsys):
    out = tmp_path / "i.png"
    assert main(["inpaint", str(image_run), "--mask", "bottom", "--split", "train", "--n", "3", "--n-completions", "2",
                 "--steps", "3", "--candidates", "2", "--out", str(out), "--json"]) == 0
    import json

    r = json.loads(capsys.readouterr().out)
    assert r["mask"] == "bottom" and r["n"] == 3 and r["k"] == 2 and out.is_file()
    assert np.asarray(Image.open(out)).shape[1] == 3 * (4 * 10 + 2)


@pytest.mark.parametrize("extra, message", [
    (["--out", "x.jpg"], "--out must end in .png"),
    (["--n-completions", "0"], "--n-completions must be"),
    (["--images", "none.npy"], "cannot read"),
])
def test_cli_inpaint_errors(image_run, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main(["inpaint", str(image_run), "--split", "train", "--steps", "1"] + extra) == 2
    assert message in capsys.readouterr().err


def test_cli_inpaint_toy_run_and_bad_mask(tmp_path, capsys):
    from gankit.train import train

    train(C.from_dict(dict(hidden=8, layers=1, batch_size=16, steps=2, log_every=1, sample_every=10**6,
                           checkpoint_every=10**6)), tmp_path / "toy", progress=False)
    np.save(tmp_path / "p.npy", np.zeros((2, 2), np.float32))
    assert main(["inpaint", str(tmp_path / "toy"), "--images", str(tmp_path / "p.npy"),
                 "--out", str(tmp_path / "o.png")]) == 2
    assert "toy" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["inpaint", str(tmp_path / "toy"), "--mask", "middle"])
    assert e.value.code == 2
