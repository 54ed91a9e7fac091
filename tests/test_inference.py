"""gankit encode: the encoder E fitted to predict z from G(z), refinement, the memorisation test, reading images."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit import config as C, inference as I
from gankit.cli import main
from gankit.data import Data, DataSpec
from gankit.errors import CheckpointError, UsageError
from gankit.gan import GAN
from gankit.train import train

A = torch.tensor([[2.0, 0.5], [-0.3, 1.5]])
B = torch.tensor([1.0, -2.0])


def linear_gan(z_dim=2, spec=None, G=None):
    """A GAN whose G is the affine map z -> A z + b (invertible): E can recover z exactly."""
    if G is None:
        G = nn.Linear(2, 2)
        with torch.no_grad():
            G.weight.copy_(A), G.bias.copy_(B)
    spec = spec or DataSpec("ring8", (2,), "toy")
    return GAN(G.requires_grad_(False), nn.Linear(spec.dim, 1), C.from_dict({"z_dim": z_dim}), spec,
               torch.device("cpu"), step=7)


def image_gan(side=4, z_dim=3, seed=0):
    """A GAN on 1 x side x side images in [0, 1]: G(z) = sigmoid(W z + b)."""
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(z_dim, side * side), nn.Sigmoid())
    spec = DataSpec("mnist", (1, side, side), "image", (0.0, 1.0), classes=tuple("01"))
    return GAN(G.requires_grad_(False), nn.Sequential(nn.Linear(side * side, 8), nn.ReLU(), nn.Linear(8, 1)),
               C.from_dict({"z_dim": z_dim}), spec, torch.device("cpu"), step=1)


def test_encoder_recovers_z_of_a_linear_generator():
    gan = linear_gan()
    enc = I.fit_encoder(gan, steps=300, batch_size=128, lr=3e-3, seed=0)
    assert enc.info["r2"] > 0.995
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(5))
    err = (enc(gan.sample(500, z)) - z).abs().mean()
    assert err < 0.05


def test_encoder_is_seeded_and_recorded():
    gan = linear_gan()
    a, b = I.fit_encoder(gan, steps=20, seed=1), I.fit_encoder(gan, steps=20, seed=1)
    c = I.fit_encoder(gan, steps=20, seed=2)
    sa, sb, sc = a.net.state_dict(), b.net.state_dict(), c.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.info["G_step"] == 7 and a.info["steps"] == 20 and a.arch["class"] == "MLPEncoder"
    assert I.encoder_arch(image_gan().spec, 3)["class"] == "ConvEncoder"


def test_r_squared_closed_forms():
    z = torch.randn(100, 3)
    assert I.r_squared(z, z) == pytest.approx(1.0)
    assert I.r_squared(z.mean(0).expand_as(z), z) == pytest.approx(0.0, abs=1e-6)


def test_refinement_reaches_the_exact_latent_and_reduces_the_error():
    gan = linear_gan()
    z_true = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    x = gan.sample(50, z_true)
    z0 = torch.zeros(50, 2)
    before = ((gan.sample(50, z0) - x) ** 2).sum()
    z = I.refine(gan, x, z0, steps=400, lr=0.1)
    assert ((gan.sample(50, z) - x) ** 2).sum() < 1e-3 * before
    assert torch.allclose(z, z_true, atol=1e-2)


def test_refine_keeps_uniform_latents_in_their_box():
    gan = linear_gan()
    gan.cfg.noise = "uniform"
    x = gan.sample(4, torch.full((4, 2), 10.0))  # reachable only outside the box
    z = I.refine(gan, x, torch.zeros(4, 2), steps=50, lr=0.5)
    assert z.abs().max() <= 3 ** 0.5 + 1e-6


def test_encode_shapes_and_refinement(tmp_path):
    gan = linear_gan()
    enc = I.fit_encoder(gan, steps=30, seed=0)
    x = gan.sample(20, torch.randn(20, 2))
    z, recon, err = I.encode(gan, enc, x)
    assert z.shape == (20, 2) and recon.shape == (20, 2) and err.shape == (20,)
    z2, _, err2 = I.encode(gan, enc, x, refine_steps=200)
    assert err2.mean() < err.mean()
    I.figure_encode(gan, x, recon, tmp_path / "toy.png")
    assert (tmp_path / "toy.png").stat().st_size > 0


def test_save_load_and_encoder_for(tmp_path):
    gan = linear_gan()
    msgs = []
    enc = I.encoder_for(gan, tmp_path, log=msgs.append, steps=10)
    assert (tmp_path / "encoder.pt").is_file() and "no encoder" in msgs[0]
    n = len(msgs)
    again = I.encoder_for(gan, tmp_path, log=msgs.append, steps=10)  # reused: nothing fitted, nothing said
    x = torch.randn(5, 2)
    assert torch.equal(enc(x), again(x)) and len(msgs) == n
    gan.step = 8  # G moved on: refitted
    I.encoder_for(gan, tmp_path, log=msgs.append, steps=10)
    assert any("refitting" in m for m in msgs)
    with pytest.raises(UsageError, match="no such file"):
        I.encoder_for(gan, tmp_path, path=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        I.load_encoder(tmp_path / "junk.pt")
    other = linear_gan(z_dim=3, G=nn.Linear(3, 2))
    with pytest.raises(UsageError, match="z_dim 3"):
        I.encoder_for(other, tmp_path, path=tmp_path / "encoder.pt")


def test_difference_interval():
    rng = np.random.default_rng(0)
    b = rng.normal(size=400)
    r = I.difference_interval(b - 0.5, b)
    assert r["difference"] == pytest.approx(-0.5)
    same = I.difference_interval(rng.normal(size=400), rng.normal(size=400))
    assert same["t_interval"][0] < 0 < same["t_interval"][1]
    assert same["bootstrap_interval"][0] < 0 < same["bootstrap_interval"][1]


def test_memorisation_detects_a_generator_that_reproduces_its_training_set():
    """Training images are G(z) exactly, test images are not: E (refined) reconstructs the former better."""
    gan = image_gan()
    z = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    train_x = gan.sample(100, z)
    gan._data = Data("mnist", (1, 4, 4), "image", (0.0, 1.0), x=train_x)
    test_x = torch.rand(100, 16, generator=torch.Generator().manual_seed(1))
    enc = I.fit_encoder(gan, steps=300, seed=0)
    m = I.memorisation(gan, enc, n=100, refine_steps=100, test=test_x)
    assert m["train_error"] < m["test_error"]
    assert m["t_interval"][1] < 0 and m["bootstrap_interval"][1] < 0
    with pytest.raises(UsageError, match="toy"):
        I.memorisation(linear_gan(), enc)


def test_read_images(tmp_path):
    spec = DataSpec("mnist", (1, 4, 4), "image", (-1.0, 1.0))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 16)).astype(np.float32)
    for i, arr in enumerate((x, x.reshape(3, 1, 4, 4), x.reshape(3, 4, 4))):
        np.save(tmp_path / f"{i}.npy", arr)
        assert torch.allclose(I.read_images(tmp_path / f"{i}.npy", spec), torch.from_numpy(x))
    np.save(tmp_path / "u8.npy", np.array([[0] * 16, [255] * 16], dtype=np.uint8))
    assert I.read_images(tmp_path / "u8.npy", spec).tolist() == [[-1.0] * 16, [1.0] * 16]
    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(folder / "a.png")
    assert I.read_images(folder, spec).tolist() == [[1.0] * 16]
    bad = [(np.zeros((3, 15), np.float32), "shape"), (np.array(["a"]), "dtype"),
           (np.full((1, 16), np.nan, np.float32), "NaN")]
    for i, (arr, what) in enumerate(bad):
        np.save(tmp_path / f"bad{i}.npy", arr)
        with pytest.raises(UsageError, match=what):
            I.read_images(tmp_path / f"bad{i}.npy", spec)
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(UsageError, match="cannot read"):
        I.read_images(tmp_path / "text.npy", spec)
    with pytest.raises(UsageError, match="expected a .npy"):
        I.read_images(tmp_path / "x.txt", spec)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "b.png")
    with pytest.raises(UsageError, match="5x5"):
        I.read_images(folder, spec)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("toy") / "run"
    train(C.from_dict(dict(hidden=16, layers=2, batch_size=32, steps=30, log_every=10, sample_every=10**6,
                           checkpoint_every=10**6)), run, progress=False)
    return run


def test_cli_encode_toy(toy_run, tmp_path, capsys):
    pts = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    out = tmp_path / "e.npz"
    args = ["encode", str(toy_run), "--images", str(tmp_path / "p.npy"), "--out", str(out), "--encoder-steps", "20"]
    assert main(args + ["--refine", "5"]) == 0
    err = capsys.readouterr().err
    assert "fitting one" in err
    f = np.load(out)
    assert f["z"].shape == (10, 2) and f["reconstructions"].shape == (10, 2) and f["errors"].shape == (10,)
    assert np.allclose(f["images"], pts) and out.with_suffix(".png").is_file()
    assert main(args) == 0  # reuses RUN/encoder.pt
    assert "fitting one" not in capsys.readouterr().err
    assert not np.allclose(np.load(out)["z"], f["z"])  # without --refine, z = E(x)


@pytest.mark.parametrize("extra, message", [
    (["--images", "MISSING.npy", "--out", "o.npz"], "cannot read"),
    (["--images", "p.npy", "--out", "o.txt"], "--out must end in .npz"),
    (["--images", "p.npy", "--out", "o.npz", "--encoder", "nope.pt"], "no such file"),
    (["--out", "o.npz"], "give --images"),
    ([], "give --out"),
    (["--memorisation", "10"], "toy run"),
    (["--images", "p.npy", "--out", "o.npz", "--refine", "-1"], "--refine must be"),
])
def test_cli_encode_errors(toy_run, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "p.npy", np.zeros((2, 2), np.float32))
    assert main(["encode", str(toy_run), "--encoder-steps", "5"] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()[-1]) < 300
