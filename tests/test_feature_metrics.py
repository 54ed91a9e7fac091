"""Feature extractors (8-bit quantisation, the clean resize, rand-conv, the FID Inception without its real
weights) and `gankit eval` on image runs with them."""

import json

import numpy as np
import pytest
import torch
from conftest import random_png_folder
from PIL import Image

from gankit.cli import main
from gankit.errors import CheckpointError, DataError
from gankit.metrics import features as Fe
from gankit.metrics import inception as I


def test_quantise_rounds_to_the_256_levels():
    x = torch.tensor([0.0, 0.51 / 255, 0.49 / 255, 1.51 / 255, 0.999, 1.2, -0.1])
    q = Fe.quantise(x)
    assert (q * 255).tolist() == pytest.approx([0, 1, 0, 2, 255, 255, 0], abs=1e-4)
    assert torch.equal(Fe.quantise(q), q)
    levels = torch.arange(256) / 255
    assert torch.equal(Fe.quantise(levels), levels)  # real 8-bit images are left exactly as they are


def test_clean_resize_is_pils_bicubic_on_each_channel():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 3, 12, 9), dtype=np.uint8)
    out = Fe.clean_resize(torch.from_numpy(pixels).float() / 255, 29)
    assert out.shape == (2, 3, 29, 29) and out.dtype == torch.float32
    for i in range(2):
        for c in range(3):
            ref = np.asarray(Image.fromarray(pixels[i, c].astype(np.float32), mode="F").resize((29, 29), Image.BICUBIC))
            assert np.array_equal(out[i, c].numpy(), ref.clip(0, 255))
    assert out.min() >= 0 and out.max() <= 255  # bicubic overshoots are clipped


def test_rand_conv_is_pinned_seeded_and_shaped():
    e = Fe.rand_conv_extractor()
    assert e.protocol == "rand-conv-v1" and e.sha256 == Fe.RAND_CONV_SHA256 and e.dim == 256
    assert Fe.weights_sha256(Fe.RandConv(1)) != Fe.RAND_CONV_SHA256
    x = Fe.quantise(torch.rand(6, 3, 20, 20, generator=torch.Generator().manual_seed(0)))
    f = e(x)
    assert f.shape == (6, 256) and f.dtype == torch.float64 and torch.isfinite(f).all()
    assert torch.equal(f, e(x)) and torch.allclose(e(x[:1]), f[:1])
    grey = e(x[:, :1])
    assert torch.equal(grey, e(x[:, :1].expand(-1, 3, -1, -1)))  # grey images are RGB with equal channels
    assert (f[0] - f[1]).abs().max() > 0  # different images, different features


def test_rand_conv_refuses_weights_that_differ_from_the_pinned_ones(monkeypatch):
    monkeypatch.setattr(Fe, "RAND_CONV_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="cannot be reproduced"):
        Fe.rand_conv_extractor()


def _random_inception(seed=0):
    """The network with He-normal random weights and non-trivial batch-norm statistics, so activations neither
    vanish nor explode through its 94 convolutions."""
    torch.manual_seed(seed)
    net = I.FIDInception()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(2.0)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def test_inception_has_the_weights_files_parameter_names_and_shapes():
    sd = I.FIDInception().state_dict()
    assert len(sd) == 566  # as in pt_inception-2015-12-05-6726825d.pth: 94 conv+bn blocks x 6 entries, fc x 2
    assert sum(v.numel() for k, v in sd.items() if k.endswith(("weight", "bias"))) == 23_834_568 + 16_392
    assert sd["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert sd["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert sd["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert sd["fc.weight"].shape == (1008, 2048)


def test_inception_stage_shapes_and_determinism_with_random_weights():
    net = _random_inception()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 255
    x[1, :, :150] = 0  # a dark upper half
    with torch.no_grad():
        shapes = {name: tuple(a.shape[1:]) for name, a in net.stages(x)}
        f = net(x)
        again = net(x[:1])
    assert shapes["Conv2d_1a_3x3"] == (32, 149, 149) and shapes["maxpool1"] == (64, 73, 73)
    assert shapes["maxpool2"] == (192, 35, 35) and shapes["Mixed_5d"] == (288, 35, 35)
    assert shapes["Mixed_6e"] == (768, 17, 17) and shapes["Mixed_7a"] == (1280, 8, 8)
    assert shapes["Mixed_7c"] == (2048, 8, 8) and shapes["pool3"] == (2048,)
    assert f.shape == (2, 2048) and torch.isfinite(f).all() and f.abs().mean() > 1e-3
    assert torch.allclose(again, f[:1], rtol=1e-4, atol=1e-6)  # eval mode: an image's features ignore its batch
    assert (f[0] - f[1]).abs().max() > 1e-4


class _Capture(torch.nn.Module):
    def forward(self, x):
        self.seen = x
        return x[:, :1]


def test_inception_pools_as_the_tensorflow_graph_does():
    """Average pools ignore the zero padding; the last block's pool branch is a max pool; pixels in [0, 255]
    enter as x / 127.5 - 1."""
    ones = torch.ones(1, 2, 5, 5)
    assert torch.equal(I._avg3(ones), ones)  # a padding-counting pool would give 4/9 in the corners
    x = torch.randn(1, 2048, 8, 8)
    net = I.FIDInception().eval()
    for name, pool in (("Mixed_5b", I._avg3), ("Mixed_6b", I._avg3), ("Mixed_7b", I._avg3),
                       ("Mixed_7c", lambda t: torch.nn.functional.max_pool2d(t, 3, stride=1, padding=1))):
        block = getattr(net, name)
        block.branch_pool = _Capture()
        c_in = block.branch1x1.conv.in_channels
        with torch.no_grad():
            block(x[:, :c_in])
        assert torch.equal(block.branch_pool.seen, pool(x[:, :c_in])), name
    net = I.FIDInception().eval()
    img = torch.rand(1, 3, 80, 80) * 255
    with torch.no_grad():
        first = next(net.stages(img))[1]
        assert torch.equal(first, net.Conv2d_1a_3x3(img / 127.5 - 1))


def test_missing_inception_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(I.WEIGHTS_ENV, raising=False)
    with pytest.raises(DataError) as e:
        I.load_inception()
    msg = str(e.value)
    assert "\n" not in msg and I.WEIGHTS_FILE in msg and I.WEIGHTS_ENV in msg and "never downloads" in msg
    assert str(tmp_path / "cache" / "gankit" / "weights" / I.WEIGHTS_FILE) in msg and "rand-conv" in msg


def test_inception_weights_are_checked_by_hash_then_loaded(tmp_path, monkeypatch):
    net = _random_inception(3)
    path = tmp_path / "w.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setenv(I.WEIGHTS_ENV, str(path))
    with pytest.raises(CheckpointError, match="not the FID Inception weights"):
        I.load_inception()
    monkeypatch.setattr(I, "WEIGHTS_SHA256", I._sha256_file(path))  # pretend these are the published ones
    loaded = I.load_inception()
    x = torch.rand(1, 3, 299, 299) * 255
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    e = Fe.inception_extractor()
    assert e.protocol == I.PROTOCOL and e.dim == 2048
    assert e(Fe.quantise(torch.rand(2, 1, 28, 28))).shape == (2, 2048)  # grey images of any size


# --- gankit eval on an RGB folder run ---

@pytest.fixture
def folder_run(tmp_path):
    folder = random_png_folder(tmp_path / "imgs", 300)
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{folder}", "--image-size", "8", "--model", "paper", "--steps", "2",
                 "--batch-size", "16", "--hidden", "16", "--out", str(run), "--no-progress"]) == 0
    return run


def test_eval_feature_metrics_on_a_folder_run(folder_run, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(I.WEIGHTS_ENV, raising=False)
    capsys.readouterr()
    results = {}
    for metric in ("fd", "kid", "pr", "dc"):
        assert main(["eval", str(folder_run), "--metric", metric, "--n-samples", "260", "--bootstrap", "20",
                     "--json"]) == 0
        results[metric] = json.loads(capsys.readouterr().out)
    fd = results["fd"]
    assert fd["protocol"] == "rand-conv-v1-fd260_folder-imgs" and fd["features"]["sha256"] == Fe.RAND_CONV_SHA256
    assert fd["n_generated"] == fd["n_reference"] == 260 and "all its images" in fd["reference"]
    assert fd["quantisation"].startswith("8-bit") and set(fd["versions"]) == {"gankit", "torch", "numpy"}
    assert fd["bootstrap"]["n_boot"] == 20 and fd["bootstrap"]["ci_low"] <= fd["bootstrap"]["ci_high"]
    assert "skipped" in fd["fd_inf"]  # 260 samples are too few for several N above 2 x 256 dimensions
    assert 0 <= results["dc"]["coverage"] <= 1 and results["dc"]["k"] == 5 and results["pr"]["k"] == 3
    assert results["kid"]["subset_size"] == 260
    # fid needs the Inception weights: one line saying where they go, exit code 2
    assert main(["eval", str(folder_run), "--metric", "fid", "--n-samples", "260"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and I.WEIGHTS_FILE in err
    assert main(["eval", str(folder_run), "--metric", "fid", "--features", "rand-conv"]) == 2
    assert "use --metric fd" in capsys.readouterr().err
    assert main(["eval", str(folder_run), "--metric", "fd", "--features", "classifier"]) == 2
    assert "ships classifiers for" in capsys.readouterr().err


@pytest.mark.slow  # ~13 s on one thread: 12 images through Inception at 299 x 299
def test_eval_fid_runs_the_inception_network(folder_run, capsys, tmp_path, monkeypatch):
    """With random weights standing in for the real file: 12 samples reach the 2048 pool3 features, too few
    for FID's covariance, which is said in one line."""
    net = _random_inception(4)
    path = tmp_path / "w.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setenv(I.WEIGHTS_ENV, str(path))
    monkeypatch.setattr(I, "WEIGHTS_SHA256", I._sha256_file(path))
    capsys.readouterr()
    assert main(["eval", str(folder_run), "--metric", "fid", "--n-samples", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "inception-2015-12-05-clean" in err and "6 samples for 2048 feature dimensions" in err


def test_eval_fid_protocol_and_bootstrap_zero(folder_run, capsys, monkeypatch):
    """fid is FD on the Inception extractor (a cheap stand-in here); --bootstrap 0 leaves the interval out."""
    def fake_inception(device="cpu", path=None):
        return Fe.Extractor("inception-2015-12-05-clean", "f" * 64, 12, "stand-in",
                            lambda x: x.flatten(1)[:, :12], batch=100)

    monkeypatch.setattr(Fe, "inception_extractor", fake_inception)
    capsys.readouterr()
    assert main(["eval", str(folder_run), "--metric", "fid", "--n-samples", "260", "--bootstrap", "0", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["protocol"] == "inception-2015-12-05-clean-fid260_folder-imgs" and r["features"]["dim"] == 12
    assert "bootstrap" not in r and r["n_generated"] == 260 and np.isfinite(r["value"])
    assert r["fd_inf"]["ns"][0] == 52 and r["fd_inf"]["ns"][-1] == 260
    assert main(["eval", str(folder_run), "--metric", "fd", "--features", "inception", "--n-samples", "260",
                 "--bootstrap", "5", "--json"]) == 0
    r2 = json.loads(capsys.readouterr().out)
    assert r2["value"] == r["value"] and r2["bootstrap"]["n_boot"] == 5


def test_eval_on_a_cifar10_run_compares_with_the_test_split(tmp_path, isolated_cache, monkeypatch, capsys):
    import gankit.data.cifar as cifar
    from test_cifar_folder import _write_cifar

    monkeypatch.setattr(cifar, "SPLITS", {"train": (0, 90), "valid": (90, 100), "trainval": (0, 100), "test": None})
    _write_cifar(tmp_path / "c", n=40)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "c"), "--model", "paper", "--steps", "2",
                 "--batch-size", "16", "--hidden", "16", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--metric", "dc", "--n-samples", "30", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["protocol"] == "rand-conv-v1-dc30_cifar10" and r["reference"] == "cifar10 test split, first 30 images"
    assert r["n_generated"] == r["n_reference"] == 30 and r["features"]["protocol"] == "rand-conv-v1"
    assert main(["eval", str(run), "--metric", "classes"]) == 2  # the classifier is for the MNIST family
    assert "MNIST-family" in capsys.readouterr().err
