"""gankit probe: a linear classifier on D's penultimate features, on raw pixels, and D's architecture from scratch."""

import pytest
import torch
from torch import nn

from gankit import config as C, probe as P
from gankit.cli import main
from gankit.data import Data
from gankit.errors import UsageError
from gankit.gan import GAN
from gankit.models import construct
from gankit.models.mlp import MLPDiscriminator


def separable(n=200, d=5, k=3, seed=0):
    """Points around k well-separated centres: linearly separable."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    centres = torch.eye(k, d) * 10
    return centres[y] + 0.5 * torch.randn(n, d, generator=g), y


def test_logistic_regression_separates_separable_classes():
    x, y = separable()
    predict = P.fit_logistic(x, y, 3)
    assert (predict(x) == y).all()
    xt, yt = separable(seed=1)
    assert (predict(xt) == yt).double().mean() == 1.0
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert (P.fit_logistic(x, shuffled, 3, l2=1.0)(xt) == yt).double().mean() < 0.7  # no signal, no accuracy


@pytest.mark.parametrize("model", ["mlp", "bn-mlp", "dcgan", "paper"])
def test_features_are_the_input_of_the_last_linear_layer(model):
    cfg = C.from_dict({"model": model, "dataset": "mnist", "z_dim": 8, "hidden": 8, "pixel_range": "01"})
    data = Data("mnist", (1, 8, 8), "image", (0.0, 1.0), x=torch.rand(10, 64))
    arch = {"G": None, "D": None}
    from gankit.models import architecture

    arch = architecture(cfg, data)
    G, D = construct(arch)
    gan = GAN(G, D, cfg, data.spec(), torch.device("cpu"), arch=arch)
    _, _, layer = P.last_linear(D)
    f = P.d_features(gan, data.x)
    assert f.shape == (10, layer.in_features)
    with torch.no_grad():
        D.eval()
        assert torch.allclose(layer(f).squeeze(-1), D(data.x), atol=1e-5)  # the logit is the last layer of f
    assert D.training is False


def test_features_of_an_mlp_discriminator_by_hand():
    D = MLPDiscriminator(3, hidden=4, layers=2)
    gan = GAN(nn.Identity(), D, C.from_dict({}), None, torch.device("cpu"))
    x = torch.randn(6, 3)
    with torch.no_grad():
        assert torch.allclose(P.d_features(gan, x), nn.Sequential(*list(D)[:-1])(x))
    D.train()
    P.d_features(gan, x)
    assert D.training  # its mode restored


def test_balanced_indices():
    labels = torch.arange(100) % 4
    idx = P.balanced_indices(labels, 10, 4, seed=0)
    assert len(idx) == len(set(idx.tolist())) == 10
    assert torch.bincount(labels[idx], minlength=4).tolist() == [3, 3, 2, 2]
    assert torch.equal(idx, P.balanced_indices(labels, 10, 4, seed=0))
    assert not torch.equal(idx, P.balanced_indices(labels, 10, 4, seed=1))
    with pytest.raises(UsageError, match="at least one"):
        P.balanced_indices(labels, 3, 4, seed=0)
    with pytest.raises(UsageError, match="only 25"):
        P.balanced_indices(labels, 200, 4, seed=0)


def labelled_gan(n=300, seed=0, **cfg_values):
    """A dcgan D on 8 x 8 images whose class (of 3) sets which third of the image is bright."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    for k in range(3):
        x[y == k, :, :, 2 * k:2 * k + 3] += 0.6
    data = Data("mnist", (1, 8, 8), "image", (0.0, 1.0), classes=tuple("abc"), x=x.reshape(n, -1), labels=y)
    cfg = C.from_dict({"model": "dcgan", "dataset": "mnist", "z_dim": 4, "hidden": 4, "pixel_range": "01", **cfg_values})
    from gankit.models import architecture

    torch.manual_seed(0)
    arch = architecture(cfg, data)
    G, D = construct(arch)
    return GAN(G, D, cfg, data.spec(), torch.device("cpu"), arch=arch, _data=data)


def test_scratch_network_is_D_with_a_k_way_head_freshly_initialised():
    gan = labelled_gan()
    a, b = P.scratch_network(gan, 3, seed=0), P.scratch_network(gan, 3, seed=0)
    x = gan.data.x[:5]
    with torch.no_grad():
        assert a(x).shape == (5, 3) and torch.equal(a(x), b(x))
        assert not torch.equal(a(x), P.scratch_network(gan, 3, seed=1)(x))
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in gan.D.parameters()) + 2 * (
        P.last_linear(a)[2].in_features + 1)


@pytest.mark.parametrize("stabiliser", [{"pack": 2}, {"minibatch_std": True}])
def test_scratch_network_of_a_wrapped_D_predicts_every_image(stabiliser):
    gan = labelled_gan(**stabiliser)
    x, y = gan.data.x[:8], gan.data.labels[:8]
    net = P.train_scratch(P.scratch_network(gan, 3, seed=0), x, y, steps=2, batch=4)
    assert net(x).shape == (8, 3) and P._predict_net(net, x, "cpu").shape == (8,)
    assert P.d_features(gan, x).shape[0] == 8


def test_probe_end_to_end():
    gan = labelled_gan()
    test = (gan.data.x[150:], gan.data.labels[150:])
    r = P.probe(gan, 30, seeds=2, test=test, scratch_steps=150)
    assert r["n_labels"] == 30 and r["seeds"] == 2 and r["n_test"] == 150
    for m in P.METHODS:
        assert len(r[m]["runs"]) == 2 and 0 <= r[m]["mean"] <= 1 and r[m]["std"] >= 0
    assert r["raw pixels"]["mean"] > 0.95 and r["D from scratch"]["mean"] > 0.8
    again = P.probe(gan, 30, seeds=2, test=test, scratch_steps=150)
    assert all(again[m]["runs"] == r[m]["runs"] for m in P.METHODS)


def test_probe_errors(tmp_path):
    gan = labelled_gan()
    with pytest.raises(UsageError, match="unknown probe"):
        P.probe(gan, 30, methods=("nope",))
    gan._data.labels = None
    with pytest.raises(UsageError, match="no labels"):
        P.probe(gan, 30, test=(gan.data.x, torch.zeros(len(gan.data.x))))
    from gankit.train import train

    run = tmp_path / "toy"
    train(C.from_dict(dict(hidden=8, layers=1, batch_size=16, steps=2, log_every=1, sample_every=10**6,
                           checkpoint_every=10**6)), run, progress=False)
    assert main(["probe", str(run), "--labels", "10"]) == 2
    assert main(["probe", str(run), "--labels", "0"]) == 2
