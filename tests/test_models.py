import math

import pytest

import torch

from gankit.config import Config
from gankit.data.registry import Data
from gankit.models import build_models
from gankit.models.mlp import MLPDiscriminator, MLPGenerator
from gankit.models.paper import Maxout, PaperDiscriminator, PaperGenerator, output_bias_from_mean
from gankit.noise import sample_noise


def test_mlp_shapes():
    G, D = MLPGenerator(2, 3, hidden=16, layers=2), MLPDiscriminator(3, hidden=16, layers=2)
    x = G(torch.randn(5, 2))
    assert x.shape == (5, 3)
    assert D(x).shape == (5,)


def test_maxout_takes_max_over_pieces():
    m = Maxout(2, units=3, pieces=4, irange=0.1)
    x = torch.randn(7, 2)
    pre = m.affine(x).view(7, 4, 3)
    assert torch.equal(m(x), pre.max(1).values)


def test_paper_nets_shapes_init_and_output_bias():
    torch.manual_seed(0)
    mean = torch.full((784,), 0.13)
    G = PaperGenerator(output_bias=output_bias_from_mean(mean))
    D = PaperDiscriminator()
    assert [p.shape for p in G.parameters()][::2] == [(1200, 100), (1200, 1200), (784, 1200)]
    for p in list(G.parameters())[::2]:
        assert p.abs().max() <= 0.05
    for name, p in D.named_parameters():
        if name.endswith("weight"):
            assert p.abs().max() <= 0.005
    assert D.net[1].affine.out_features == 240 * 5 and D.net[3].affine.out_features == 240 * 5
    assert math.isclose(D.net[0].p, 0.2) and math.isclose(D.net[2].p, 0.5) and math.isclose(D.net[4].p, 0.5)
    # with zero input weights, G outputs exactly the data mean
    with torch.no_grad():
        G.net[4].weight.zero_()
    assert torch.allclose(G(torch.randn(3, 100)), mean.expand(3, 784), atol=1e-6)
    D.eval()
    assert D(torch.rand(4, 784)).shape == (4,)


@pytest.mark.parametrize("kind, eps", [("mean", 1e-3), ("code", 1e-7), ("zero", None)])
def test_build_models_for_images_uses_mean_pixel(kind, eps):
    x = torch.rand(50, 784) * 0.5
    x[:, :5] = 0  # pixels never lit: their bias is where gankit's clip (1e-3) and pylearn2's (1e-7) differ
    data = Data("mnist", (1, 28, 28), "image", (0.0, 1.0), x=x)
    G, D = build_models(Config(dataset="mnist", model="paper", z_dim=100, output_bias=kind), data)
    assert isinstance(G, PaperGenerator)
    expected = torch.zeros(784) if eps is None else torch.logit(x.mean(0).double().clamp(eps, 1 - eps)).float()
    assert torch.allclose(G.net[4].bias, expected, atol=1e-4)
    if kind == "code":
        assert G.net[4].bias[0].item() == pytest.approx(-16.118, abs=1e-3)


def test_noise_distributions():
    g = torch.Generator().manual_seed(0)
    u = sample_noise(200_000, 2, "uniform", generator=g)
    assert u.abs().max() <= math.sqrt(3) and abs(u.var().item() - 1) < 0.01
    n = sample_noise(200_000, 2, "normal", generator=g)
    assert abs(n.std().item() - 1) < 0.01


def test_tutorial_mlp_shapes_and_batchnorm():
    from gankit.models import has_batchnorm
    from gankit.models.mlp import BNMLPGenerator, TutorialDiscriminator

    G, D = BNMLPGenerator(), TutorialDiscriminator()
    x = G(torch.randn(8, 100))
    assert x.shape == (8, 784) and x.abs().max() <= 1
    assert D(x).shape == (8,)
    assert has_batchnorm(G) and not has_batchnorm(D)
    widths = [m.out_features for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 256, 512, 1024, 784]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_dcgan_shapes(shape):
    from gankit.models.conv import DCGANDiscriminator, DCGANGenerator

    G, D = DCGANGenerator(16, shape, width=8), DCGANDiscriminator(shape, width=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, math.prod(shape)) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    D.eval()
    assert torch.allclose(D(x[:2]), D(x)[:2], atol=1e-6)  # no batch dependence in D
    with pytest.raises(ValueError, match="divisible by 4"):
        DCGANGenerator(16, (1, 30, 30))


def test_dcgan_nets_by_default_and_old_checkpoints_rebuild_the_original_nets():
    from gankit.models import architecture, construct
    from gankit.models.conv import DCGANGenerator

    data = Data(x=torch.rand(8, 784), kind="image", name="mnist", shape=(1, 28, 28), value_range=(-1.0, 1.0))
    arch = architecture(Config(model="dcgan", hidden=8, z_dim=16), data)
    assert arch["G"]["kwargs"]["top"] == 4 and arch["G"]["kwargs"]["refine"] == 8
    G, _ = construct(arch)
    convs = [m for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    # 7x7x32 -> 14x14x8 -> 28x28x8 (transposed, then BatchNorm, ReLU) -> a 3x3 conv to the image's channel
    assert [(type(m).__name__, m.in_channels, m.out_channels) for m in convs] == [
        ("ConvTranspose2d", 32, 8), ("ConvTranspose2d", 8, 8), ("Conv2d", 8, 1)]
    assert G.project[0].out_features == 32 * 7 * 7 and G(torch.randn(3, 16)).shape == (3, 784)
    old = {**arch, "G": {**arch["G"], "kwargs": {k: v for k, v in arch["G"]["kwargs"].items()
                                                 if k not in ("top", "refine")}}}
    G_old, _ = construct(old)  # a checkpoint written before 2026-11-30: the nets it was trained with
    assert [type(m).__name__ for m in G_old.net] == ["ConvTranspose2d", "BatchNorm2d", "ReLU", "ConvTranspose2d",
                                                     "Tanh"]
    assert G_old.project[0].out_features == 16 * 7 * 7
    D = construct(arch)[1]  # D: 14x14x8 -> 7x7x16 -> a third strided conv to 4x4x32 -> the logit
    assert arch["D"]["kwargs"]["third"] == 32
    assert [(m.out_channels, m.kernel_size) for m in D.modules() if isinstance(m, torch.nn.Conv2d)] == [
        (8, (4, 4)), (16, (4, 4)), (32, (3, 3))]
    assert D.net[-1].in_features == 32 * 4 * 4 and D(torch.randn(3, 784)).shape == (3,)
    D_old = construct({**old, "D": {**old["D"], "kwargs": {k: v for k, v in old["D"]["kwargs"].items()
                                                          if k != "third"}}})[1]
    assert D_old.net[-1].in_features == 16 * 7 * 7
    assert sum(p.numel() for p in G_old.parameters()) == sum(
        p.numel() for p in DCGANGenerator(16, (1, 28, 28), 8).parameters())


def test_paper_conv_nets():
    from gankit.models.paper import MaxoutConv2d, PaperConvDiscriminator, PaperConvGenerator

    m = MaxoutConv2d(3, 4, 2, 3, 1, 1, 0.1)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(m(x), m.affine(x).view(2, 2, 4, 8, 8).amax(1))
    G = PaperConvGenerator(100, (3, 32, 32), output_bias=torch.zeros(3 * 32 * 32))
    D = PaperConvDiscriminator((3, 32, 32))
    img = G(torch.rand(4, 100))
    assert img.shape == (4, 3072) and 0 <= img.min() and img.max() <= 1
    D.eval()
    assert D(img).shape == (4,)
    assert PaperConvGenerator(100, (1, 28, 28))(torch.rand(2, 100)).shape == (2, 784)
