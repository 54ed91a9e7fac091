"""The objective family and the stabilisers, each against its definition: losses and gradients at known outputs,
penalties on critics with known gradients, spectral norms, augmentation; and each option reaching training."""

import math

import pytest
import torch
import torch.nn.functional as F

from gankit import augment, config as C, objectives
from gankit.train import fit

TINY = dict(hidden=16, layers=2, batch_size=32, log_every=5, sample_every=10**6, checkpoint_every=10**6)
r = torch.tensor([0.5, -1.0, 2.0, 0.0])  # D's raw outputs on a real batch
f = torch.tensor([-0.5, 1.5, 0.25, -2.0])  # and on a generated one


def game(name, **kw):
    return objectives.build(C.from_dict({"objective": name, **NEEDS.get(name, {}), **kw}))


NEEDS = {"semi-supervised": dict(model="semi-mlp", labels=16)}  # what an objective needs besides the defaults
LOGIT_GAMES = [n for n in objectives.OBJECTIVES if n != "semi-supervised"]  # games on D's one logit (test_semi.py)


def grads(loss_fn, *xs):
    xs = [x.clone().requires_grad_(True) for x in xs]
    loss_fn(*xs)[0].backward()
    return [x.grad for x in xs]


@pytest.mark.parametrize("name,a,b,c", [("least-squares", -1, 1, 0), ("least-squares-01", 0, 1, 1)])
def test_least_squares(name, a, b, c):
    g = game(name)
    assert g.d_loss_from_logits(r, f)[0] == pytest.approx(0.5 * ((r - b) ** 2).mean() + 0.5 * ((f - a) ** 2).mean())
    assert g.g_loss_from_logits(f)[0] == pytest.approx(0.5 * ((f - c) ** 2).mean())
    gr, gf = grads(g.d_loss_from_logits, r, f)
    assert torch.allclose(gr, (r - b) / 4) and torch.allclose(gf, (f - a) / 4)


def test_hinge():
    g = game("hinge")
    assert g.d_loss_from_logits(r, f)[0] == pytest.approx(((1 - r).clamp(min=0).mean() + (1 + f).clamp(min=0).mean()))
    gr, gf = grads(g.d_loss_from_logits, r, f)
    assert torch.equal(gr, -(r < 1).float() / 4) and torch.equal(gf, (f > -1).float() / 4)
    assert g.g_loss_from_logits(f)[0] == pytest.approx(-f.mean())


@pytest.mark.parametrize("name", ["wgan-clip", "wgan-gp"])
def test_wasserstein(name):
    g = game(name)
    loss, stats = g.d_loss_from_logits(r, f)
    assert loss == pytest.approx(f.mean() - r.mean()) and stats["wasserstein"] == pytest.approx(r.mean() - f.mean())
    gr, gf = grads(g.d_loss_from_logits, r, f)
    assert torch.allclose(gr, torch.full((4,), -0.25)) and torch.allclose(gf, torch.full((4,), 0.25))


def test_relativistic():
    g = game("relativistic")
    want_d = F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean()
    want_g = F.softplus(-(f - r.mean())).mean() + F.softplus(r - f.mean()).mean()
    assert g.d_loss_from_logits(r, f)[0] == pytest.approx(want_d)
    assert g.g_loss_from_logits(f, r)[0] == pytest.approx(want_g)
    assert g.g_needs_real


def test_every_loss_is_finite_for_extreme_outputs():
    big = torch.tensor([-1e4, 1e4, 0.0])
    for name in LOGIT_GAMES:
        g = game(name)
        d = g.d_loss_from_logits(big, -big)[0]
        gl = g.g_loss_from_logits(big, -big)[0]
        assert math.isfinite(d) and math.isfinite(gl), name


class Linear(torch.nn.Module):
    """D(x) = w . x + b: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self, x, c=None):
        return x @ self.w + 1.0


class Quadratic(torch.nn.Module):
    """D(x) = 1/2 ||x||^2: its input gradient is x."""

    def forward(self, x, c=None):
        return 0.5 * (x ** 2).sum(1)


def test_gradient_penalty_on_a_linear_critic_is_its_definition():
    D = Linear([3.0, 4.0])
    x, y = torch.randn(16, 2), torch.randn(16, 2)
    assert objectives.gradient_penalty(D, x, y).item() == pytest.approx((5.0 - 1.0) ** 2)  # ||w|| = 5 at every x_hat
    p = objectives.gradient_penalty(D, x, y)
    (gw,) = torch.autograd.grad(p, D.w)
    assert torch.allclose(gw, 2 * (5 - 1) * D.w.detach() / 5)  # d/dw (||w|| - 1)^2


@pytest.mark.parametrize("lead", [1, 2])
def test_gradient_penalty_interpolates_each_sample_between_real_and_fake(lead):
    """On D(x) = ||x||^2 / 2, whose gradient is x itself, the penalty is E(||x_hat|| - 1)^2 at x_hat = eps x + (1 -
    eps) G(z), one eps per sample (per sample and member, [m, E], in a seed ensemble)."""
    shape = (16, 2) if lead == 1 else (16, 3, 2)
    x, y = torch.randn(shape), torch.randn(shape)
    torch.manual_seed(3)
    got = objectives.gradient_penalty(Quadratic(), x, y, lead=lead)
    torch.manual_seed(3)
    eps = torch.rand(*shape[:-1], 1)
    assert got.item() == pytest.approx((((eps * x + (1 - eps) * y).norm(dim=-1) - 1) ** 2).mean().item(), rel=1e-6)


def test_r1_is_the_mean_squared_gradient_norm():
    x = torch.randn(32, 3)
    assert objectives.gradient_square(Quadratic(), x).item() == pytest.approx((x ** 2).sum(1).mean().item(), rel=1e-6)


def test_lazy_r1_is_applied_every_n_updates_scaled_by_n():
    pen = objectives.Penalties(r1=2.0, every=4)
    x = torch.randn(8, 3)
    for i in range(8):
        total, stats = pen(Quadratic(), x, x, None, i)
        if i % 4:
            assert total is None
        else:
            assert total.item() == pytest.approx(2.0 / 2 * 4 * (x ** 2).sum(1).mean().item(), rel=1e-6)
        assert stats["r1"].item() == pytest.approx((x ** 2).sum(1).mean().item(), rel=1e-6)


def test_spectral_norm_makes_each_layers_largest_singular_value_one(tmp_path):
    gan, _ = fit(C.from_dict({**TINY, "steps": 30, "spectral_norm": True}), tmp_path / "r", progress=False)
    layers = [m for m in gan.D.modules() if isinstance(m, torch.nn.Linear)]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for m in layers:
        assert torch.linalg.matrix_norm(m.weight.detach(), ord=2) == pytest.approx(1.0, abs=0.05)


def test_spectral_norm_in_bf16_keeps_the_power_iteration_in_fp32_on_the_masters(tmp_path):
    from gankit.models import MLPDiscriminator, spectral_normalise
    from gankit.precision import Working

    torch.manual_seed(0)
    D = spectral_normalise(MLPDiscriminator(x_dim=2, hidden=32, layers=2))
    master_u = [m.parametrizations.weight[0]._u for m in D.modules() if isinstance(m, torch.nn.Linear)]
    before = [u.clone() for u in master_u]
    work = Working(D, torch.bfloat16)
    x = torch.randn(64, 2)
    out = work(work.input(x))  # a training-mode forward runs one power iteration, on the masters' u and v
    assert out.dtype == torch.bfloat16
    assert all(u.dtype == torch.float32 for u in master_u) and any(not torch.equal(u, b) for u, b in zip(master_u, before))
    D.eval()
    work.module.eval()
    assert torch.allclose(work(work.input(x)).float(), D(x), rtol=0.05, atol=0.05)  # the fp32 model, to bf16 rounding
    out.float().sum().backward()  # gradients reach the working weights through sigma
    assert all(p.grad is not None for p in work.module.parameters())
    gan, _ = fit(C.from_dict({**TINY, "steps": 30, "spectral_norm": True, "precision": "bf16"}), tmp_path / "r",
                 progress=False)
    for m in (m for m in gan.D.modules() if isinstance(m, torch.nn.Linear)):
        assert torch.linalg.matrix_norm(m.weight.detach(), ord=2) == pytest.approx(1.0, abs=0.05)


def test_augmentation_is_differentiable_and_the_same_law_for_every_batch():
    aug = augment.Augment(augment.POLICIES, (1, 8, 8))
    x = torch.rand(64, 64, requires_grad=True)
    y = aug(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(0)
    a = aug(x.detach())
    torch.manual_seed(0)
    assert torch.equal(aug(x.detach()), a)  # one random law, drawn from torch's RNG
    shifted = augment.translation(torch.ones(4000, 1, 8, 8))
    assert 0.6 < shifted.mean() < 0.9  # shifts of up to 1 pixel each way zero-fill a border on average
    kept = augment.cutout(torch.ones(4000, 1, 8, 8)).mean()
    assert 0.7 < kept < 0.85  # a 4 x 4 square of 64 pixels, partly outside the image at the edges
    ens = torch.rand(16, 3, 64)  # a seed ensemble's [m, E, d] samples keep their shape
    torch.manual_seed(1)
    out = aug(ens)
    torch.manual_seed(1)
    assert out.shape == ens.shape and torch.equal(out, aug(ens.reshape(48, 64)).reshape(16, 3, 64))


def test_every_input_of_d_is_augmented_real_and_generated_alike():
    """D's loss, G's loss (with and without real data) and the penalties all see augmented inputs: with the
    augmentation a sign flip and D the sum of its input, each equals the same loss on the flipped batches."""

    def D(x, c=None):
        return x.sum(-1)

    x_real, x_fake = torch.rand(4, 3), -torch.rand(4, 3)
    for name in ["logistic", "relativistic"]:
        plain, flipped = game(name, r1=1.0, r2=1.0), game(name, r1=1.0, r2=1.0)
        flipped.augment = torch.neg
        assert flipped.d_loss(D, x_real, x_fake)[0] == pytest.approx(plain.d_loss(D, -x_real, -x_fake)[0].item())
        assert flipped.g_loss(D, x_fake, x_real=x_real)[0] == pytest.approx(
            plain.g_loss(D, -x_fake, x_real=-x_real)[0].item())

    def quad(x, c=None):  # gradient 2x
        return (x ** 2).sum(-1)

    doubled = game("logistic", r1=1.0, r2=1.0)
    doubled.augment = lambda x: 2 * x  # R1 and R2 at the doubled batches: E||4x||^2
    stats = doubled.d_penalty(quad, x_real, x_fake)[1]
    assert stats["r1"] == pytest.approx(16 * (x_real ** 2).sum(-1).mean().item())
    assert stats["r2"] == pytest.approx(16 * (x_fake ** 2).sum(-1).mean().item())


def _params(gan):
    return [p.detach().clone() for p in gan.D.parameters()]


@pytest.mark.parametrize("option", [dict(r1=10.0), dict(r2=10.0), dict(objective="wgan-gp", gp_weight=5.0),
                                    dict(spectral_norm=True), dict(pack=2), dict(minibatch_std=True)])
def test_each_stabiliser_changes_training(tmp_path, option):
    base = dict(**TINY, steps=3, ema=0.0)
    ref = "wgan-gp" if option.get("objective") == "wgan-gp" else "logistic"
    a, _ = fit(C.from_dict({**base, "objective": ref}), tmp_path / "a", progress=False)
    b, _ = fit(C.from_dict({**base, **option}), tmp_path / "b", progress=False)
    pa, pb = _params(a), _params(b)
    assert len(pa) != len(pb) or any(p.shape != q.shape or not torch.equal(p, q) for p, q in zip(pa, pb))


def test_the_lazy_interval_reaches_training(tmp_path):
    base = dict(**TINY, steps=3, ema=0.0, r1=10.0)  # R1 at updates 0, 1, 2 with weight 5, or at 0 with weight 20
    a, _ = fit(C.from_dict({**base, "reg_every": 1}), tmp_path / "a", progress=False)
    b, _ = fit(C.from_dict({**base, "reg_every": 4}), tmp_path / "b", progress=False)
    assert any(not torch.equal(p, q) for p, q in zip(_params(a), _params(b)))


def test_the_penalties_are_logged(tmp_path):
    from gankit import rundir

    fit(C.from_dict({**TINY, "steps": 10, "r1": 1.0, "r2": 0.5, "reg_every": 3}), tmp_path / "r", progress=False)
    row = rundir.read_metrics(tmp_path / "r")[-1]
    assert row["r1"] > 0 and row["r2"] > 0


def test_weight_clipping_keeps_d_in_the_box(tmp_path):
    gan, _ = fit(C.from_dict({**TINY, "steps": 5, "objective": "wgan-clip", "clip": 0.02, "lr": 0.1}), tmp_path / "r",
                 progress=False)
    assert max(p.abs().max().item() for p in gan.D.parameters()) <= 0.02 + 1e-7


def test_augmentation_reaches_d(tmp_path):
    pytest.importorskip("PIL")
    from gankit.data import Data

    x = torch.rand(64, 64)
    data = Data("folder:x", (1, 8, 8), "image", (0.0, 1.0), x=x)
    kw = dict(dataset="folder:x", model="dcgan", hidden=4, z_dim=4, batch_size=16, steps=2, ema=0.0, log_every=1,
              sample_every=10**6, checkpoint_every=10**6)
    a, _ = fit(C.from_dict(kw), tmp_path / "a", progress=False, data=data)
    b, _ = fit(C.from_dict({**kw, "augment": "translation,cutout"}), tmp_path / "b", progress=False, data=data)
    assert not all(torch.equal(p, q) for p, q in zip(_params(a), _params(b)))
    fit(C.from_dict({**kw, "augment": "translation", "seeds": 2}), tmp_path / "e", progress=False, data=data)  # ensembles


@pytest.mark.parametrize("name", list(objectives.OBJECTIVES))
def test_every_objective_trains_and_resumes_bit_exactly(tmp_path, name):
    """Weights and logged rows alike: with reg_every 3 the resumed run's first updates (4 and 5) skip R1, so the
    logged r1 is the value held from update 3, which the checkpoint carries."""
    _resumes_bit_exactly(tmp_path, {**TINY, "objective": name, **NEEDS.get(name, {}), "r1": 0.5})


def test_a_swept_penalty_resumes_bit_exactly(tmp_path):
    _resumes_bit_exactly(tmp_path, {**TINY, "sweep": "r1=0.5,1"})  # the ensemble's own Penalties hold the values


def _resumes_bit_exactly(tmp_path, kw):
    from gankit import checkpoint, rundir

    kw = {**kw, "reg_every": 3, "k": 2, "log_every": 1}
    fit(C.from_dict({**kw, "steps": 4}), tmp_path / "full", progress=False)
    fit(C.from_dict({**kw, "steps": 2}), tmp_path / "split", progress=False)
    fit(C.from_dict({**kw, "steps": 4}), tmp_path / "split", resume=True, progress=False)
    a = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "split" / "checkpoints" / "last.pt")
    assert a["d_updates"] == b["d_updates"] == 8
    assert all(torch.equal(a[net][k], b[net][k]) for net in ("G", "D") for k in a[net])
    rows = [[{k: v for k, v in row.items() if k != "seconds"} for row in rundir.read_metrics(tmp_path / run)]
            for run in ("full", "split")]
    assert rows[0] == rows[1] and rows[0][2]["r1"] > 0


@pytest.mark.parametrize("bad,fragment", [(dict(pack=3), "'pack'"), (dict(augment="rotate"), "augment"),
                                          (dict(augment="color"), "for images"), (dict(r1=-1.0), "'r1'"),
                                          (dict(reg_every=0), "reg_every"),
                                          (dict(objective="hinge", loss="minimax"), "'loss'.*ignore"),
                                          (dict(gp_weight=5.0), "'gp_weight'.*ignore"),
                                          (dict(objective="wgan-gp", clip=0.1), "'clip'.*ignore"),
                                          (dict(r1=0.0, reg_every=4), "'reg_every'.*ignore"),
                                          (dict(r1=0.0, reg_every=4, sweep="lr=1e-3,2e-3"), "'reg_every'.*ignore")])
def test_combinations_that_make_no_sense_are_config_errors(bad, fragment):
    with pytest.raises(C.ConfigError, match=fragment):
        C.settle({"batch_size": 32, **bad})


@pytest.mark.parametrize("fine", [dict(loss="minimax"), dict(objective="wgan-gp", gp_weight=5.0),
                                  dict(objective="wgan-clip", clip=0.1), dict(r2=1.0, reg_every=4),
                                  dict(r1=0.0, reg_every=4, sweep="r1=0,1"), dict(objective="hinge", **C.PRESETS[
                                      "paper-mnist"])])
def test_each_option_is_accepted_where_its_game_uses_it(fine):
    C.settle({"batch_size": 32, **fine})


def test_a_saved_config_with_an_ignored_option_still_loads():
    """Only given values are checked: a run saved before the check (or a sweep member with r1 = 0 and the sweep's
    reg_every) loads as it ran, and resuming it without the option is no error."""
    saved = C.from_dict({"objective": "hinge", "loss": "minimax", "r1": 0.0, "reg_every": 4})
    assert C.settle({"steps": 7}, base=saved).loss == "minimax"
    with pytest.raises(C.ConfigError, match="'reg_every'"):
        C.settle({"reg_every": 2}, base=saved)


def test_the_minibatch_std_feature_is_its_definition_and_makes_d_batch_dependent():
    from gankit.models import has_batchnorm
    from gankit.models.layers import MinibatchStd

    class Echo(torch.nn.Module):
        def forward(self, x, c=None):
            return x

    x = torch.randn(16, 3)
    out = MinibatchStd(Echo())(x)
    assert torch.equal(out[:, :3], x)
    assert torch.allclose(out[:, 3], x.std(0, unbiased=False).mean().expand(16))
    img = MinibatchStd(Echo(), extra=4)(torch.randn(8, 8))  # one more 2 x 2 channel
    assert img.shape == (8, 12) and torch.all(img[:, 8:] == img[0, 8])
    assert has_batchnorm(MinibatchStd(Echo()))  # so real and generated batches go through D apart


@pytest.mark.parametrize("name", ["logistic", "hinge", "least-squares", "relativistic"])
def test_top_k_training_scores_g_on_the_samples_d_rates_most_real(name):
    """Sinha et al. (2020): G's loss is the plain one over the ceil(keep * m) fakes with the largest D outputs; D's
    loss still sees every fake; per member of an ensemble's [m, E] outputs."""
    g = game(name, topk=0.5)
    assert g.keep == 1.0  # epoch 0 keeps everything
    g.schedule(0.0)
    assert g.g_loss_from_logits(g._top(f), r)[0] == pytest.approx(g.g_loss_from_logits(f, r)[0])
    g.schedule(200.0)  # 0.99^200 = 0.13: down to nu = 0.5, 2 of 4
    assert g.keep == 0.5
    D = lambda x, c=None: x  # noqa: E731 - D's output is its input: the fakes are their own logits
    loss, _ = g.g_loss(D, f, x_real=r)
    assert loss == pytest.approx(g.g_loss_from_logits(torch.tensor([1.5, 0.25]), r)[0])
    d_loss, g_loss, _ = g.joint_losses(D, r, f)
    assert g_loss == pytest.approx(loss) and d_loss == pytest.approx(g.d_loss_from_logits(r, f)[0])
    stacked = torch.stack([f, -f], 1)  # two members: each keeps its own top 2
    assert torch.equal(g._top(stacked), torch.tensor([[1.5, 2.0], [0.25, 0.5]]))


def test_top_k_keeps_max_nu_decay_to_the_epoch():
    g = game("hinge", topk=0.25, topk_decay=0.5)
    for epoch, keep in [(0.0, 1.0), (0.99, 1.0), (1.0, 0.5), (2.5, 0.25), (9.0, 0.25)]:
        g.schedule(epoch)
        assert g.keep == keep, epoch


def test_top_k_changes_training_from_its_first_decayed_epoch(tmp_path):
    """The loop sets the kept share every step: with 2 steps per epoch and decay 0.5, the runs agree for epoch 0's
    steps and part from epoch 1 on."""
    base = dict(**TINY, subset=64, objective="hinge", ema=0.0)
    runs = {}
    for steps in (2, 4):
        for topk in (1.0, 0.5):
            gan, _ = fit(C.from_dict({**base, "steps": steps, "topk": topk, "topk_decay": 0.5}),
                         tmp_path / f"{steps}-{topk}", progress=False)
            runs[steps, topk] = [p.detach().clone() for p in gan.G.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(runs[2, 1.0], runs[2, 0.5]))
    assert not all(torch.equal(p, q) for p, q in zip(runs[4, 1.0], runs[4, 0.5]))


@pytest.mark.parametrize("bad,fragment", [(dict(topk=0.0), "'topk'"), (dict(topk=1.5), "'topk'"),
                                          (dict(topk_decay=0.0), "'topk_decay'"), (dict(topk=0.5, pack=2), "packed"),
                                          (dict(topk=0.5, encoder=True), "encoder")])
def test_top_k_settings_that_make_no_sense_are_config_errors(bad, fragment):
    with pytest.raises(C.ConfigError, match=fragment):
        C.from_dict({"batch_size": 32, **bad})


def test_top_k_resumes_bit_exactly_across_its_decay(tmp_path):
    """The kept share is a function of the epoch alone, so a run cut at the epoch where it first falls resumes
    exactly (2 steps per epoch: the cut is at step 2, where keep goes from 1 to 0.5)."""
    from gankit import checkpoint

    kw = {**TINY, "subset": 64, "objective": "hinge", "topk": 0.5, "topk_decay": 0.5, "k": 2}
    fit(C.from_dict({**kw, "steps": 5}), tmp_path / "full", progress=False)
    fit(C.from_dict({**kw, "steps": 2}), tmp_path / "split", progress=False)
    fit(C.from_dict({**kw, "steps": 5}), tmp_path / "split", resume=True, progress=False)
    a, b = (checkpoint.load(tmp_path / d / "checkpoints" / "last.pt") for d in ("full", "split"))
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])
