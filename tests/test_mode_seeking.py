"""The mode-seeking term on G (--diversity, MSGAN: Mao et al. 2019): its closed form and gradient, the pairing of
G's minibatch, one training iteration recomputed by hand, the stat it logs, resume, and the config errors."""

import json
import math

import pytest
import torch
from conftest import assert_resume_is_bit_exact, random_png_folder, sgd_step, tiny

from gankit import config as C, objectives
from gankit.cli import main
from gankit.errors import ConfigError
from gankit.train import fit

SHAPE = (3, 8, 8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return random_png_folder(tmp_path_factory.mktemp("png") / "imgs", 64, side=8)


def image_cfg(folder, **kw):
    return tiny(**{"dataset": f"folder:{folder}", "image_size": 8, "z_dim": 4, "inpaint": "centre,random", **kw})


def test_the_term_is_one_over_the_ratio_of_mean_absolute_differences():
    x1, x2 = torch.tensor([[0.0, 1.0], [2.0, -1.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    z1, z2 = torch.tensor([[0.5], [0.0]]), torch.tensor([[0.0], [-1.5]])
    loss, ratio = objectives.mode_seeking(x1, x2, z1, z2, eps=1e-5)
    # d_I = (1 + 0 + 2 + 1) / 4 = 1, d_z = (0.5 + 1.5) / 2 = 1
    assert float(ratio) == pytest.approx(1.0) and float(loss) == pytest.approx(1 / (1 + 1e-5))
    loss, ratio = objectives.mode_seeking(x1, x2, 4 * z1, 4 * z2)  # z four times as far apart: a quarter the ratio
    assert float(ratio) == pytest.approx(0.25) and float(loss) == pytest.approx(1 / (0.25 + 1e-5))


def test_its_gradient_pushes_the_two_outputs_apart():
    """d loss / d x1 = -1 / (r + eps)^2 * sign(x1 - x2) / (n d_z): a descent step moves every pixel of x1 away from
    x2's (and x2 away from x1's), so their distance grows."""
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.rand(4, 6, generator=g).requires_grad_(True), torch.rand(4, 6, generator=g).requires_grad_(True)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    loss, r = objectives.mode_seeking(x1, x2, z1, z2, eps=1e-5)
    g1, g2 = torch.autograd.grad(loss, [x1, x2])
    d_z = (z1 - z2).abs().mean()
    want = -(x1 - x2).sign() / (x1.numel() * d_z) / (r.detach() + 1e-5) ** 2
    assert torch.allclose(g1, want) and torch.allclose(g2, -want)
    with torch.no_grad():
        before = (x1 - x2).abs()
        after = ((x1 - 0.01 * g1) - (x2 - 0.01 * g2)).abs()
    assert bool((after > before).all())


def test_g_s_minibatch_repeats_its_first_half_so_pairs_share_c():
    assert objectives.paired(torch.arange(4)).tolist() == [0, 1, 0, 1]
    assert objectives.paired(torch.arange(5)).tolist() == [0, 1, 2, 0, 1]  # odd m: the middle row goes unpaired
    off = objectives.build(C.from_dict({}))
    c = torch.arange(6.0)
    assert off.g_pairs(c) is c and off.g_regulariser(torch.rand(6, 2), torch.rand(6, 2)) == (None, {})
    game = objectives.build(C.from_dict({"dataset": "ring8", "conditional": True, "diversity": 0.5}))
    assert game.g_pairs(c).tolist() == [0, 1, 2, 0, 1, 2] and game.g_pairs(None) is None
    assert game.logged[-1] == "diversity"
    x, z = torch.rand(7, 3), torch.randn(7, 2)
    loss, stats = game.g_regulariser(x, z)
    want, ratio = objectives.mode_seeking(x[:3], x[4:], z[:3], z[4:])
    assert float(loss) == pytest.approx(0.5 * float(want)) and float(stats["diversity"]) == pytest.approx(float(ratio))


def test_one_iteration_recomputed_by_hand_with_the_term(folder, tmp_path):
    """Plain SGD, one iteration: D as without the term; G steps on its loss through the updated D on G(z2, c') with
    c' = the first half of the minibatch's contexts twice, plus lambda / (ratio + eps) on its two halves. A run that
    ignored --diversity, dropped the term or did not pair the contexts fails here."""
    from gankit.losses import generator_loss_nonsaturating
    from test_inpaint_conditional import first_inpaint_iteration

    gan, G, D, D1, c, z2 = first_inpaint_iteration(folder, tmp_path, diversity=0.3)
    cp = torch.cat([c[:16], c[:16]])
    fake = G(z2, cp)
    ratio = (fake[:16] - fake[16:]).abs().mean() / (z2[:16] - z2[16:]).abs().mean()
    G1 = sgd_step(G, generator_loss_nonsaturating(D(fake, cp)) + 0.3 / (ratio + 1e-5), 0.05)
    for got, want in zip([*gan.G.parameters(), *gan.D.parameters()], [*G1, *D1]):
        assert torch.allclose(got, want, atol=1e-6)


def test_the_flag_logs_the_ratio_and_changes_g(folder, tmp_path):
    """`--diversity` through the CLI: the ratio logged as 'diversity', and G's weights differ from lambda = 0's."""
    from gankit.gan import from_checkpoint

    common = ["train", "--dataset", f"folder:{folder}", "--image-size", "8", "--model", "bn-mlp", "--hidden", "16",
              "--inpaint", "left,random", "--steps", "4", "--log-every", "2", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "off")]) == 0
    assert main([*common, "--diversity", "1", "--out", str(tmp_path / "on")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "on" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["diversity"] > 0 and math.isfinite(r["diversity"]) for r in rows)
    assert "diversity" not in (tmp_path / "off" / "metrics.jsonl").read_text()
    on, off = (from_checkpoint(tmp_path / r / "checkpoints" / "last.pt", "cpu") for r in ("on", "off"))
    assert on.cfg.diversity == 1.0
    assert not all(torch.equal(a, b) for a, b in zip(on.G.parameters(), off.G.parameters()))


def test_a_conditional_run_takes_the_term_too(tmp_path):
    gan, summary = fit(tiny(dataset="ring8", conditional=True, diversity=1.0, steps=3), tmp_path / "r", progress=False)
    assert summary["diversity"] > 0


def test_resume_is_bit_exact_with_the_term(folder, tmp_path):
    assert_resume_is_bit_exact(tmp_path, dict(dataset=f"folder:{folder}", image_size=8, z_dim=4,
                                              inpaint="left,random", model="bn-mlp", diversity=0.5))


@pytest.mark.parametrize("kw, message", [
    (dict(diversity=-1.0), "must be >= 0"),
    (dict(diversity=math.nan), "must be >= 0"),
    (dict(diversity=math.inf), "must be >= 0"),
    (dict(diversity=1.0, inpaint=""), "--inpaint or --conditional"),
    (dict(diversity=1.0, update="simultaneous"), "alternating update"),
])
def test_bad_diversity_configs_are_refused_by_name(folder, kw, message):
    with pytest.raises(ConfigError, match="config key 'diversity'") as e:
        image_cfg(folder, steps=1, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
