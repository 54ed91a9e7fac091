"""Seed ensembles (`--seeds N`): member e of a stacked run is the plain run with seed + e, step for step."""

import json

import pytest
import torch

from gankit import config as C, ensemble, objectives
from gankit.cli import main
from gankit.gan import build
from gankit.sampling import load_run
from gankit.train import fit

from conftest import assert_resume_is_bit_exact, tiny, weights



def test_members_are_initialised_exactly_as_plain_runs_with_seed_plus_e():
    cfg = tiny(seed=5, seeds=3, dataset="grid25")
    gan = ensemble.build(cfg)
    for e in range(3):
        plain = weights(build(tiny(seed=5 + e, dataset="grid25")))
        mine = weights(ensemble.member(gan, e))
        assert mine.keys() == plain.keys()
        assert all(torch.equal(mine[k], plain[k]) for k in plain), e
    assert not torch.equal(gan.G.state_dict()["0.weight"][0], gan.G.state_dict()["0.weight"][1])


CASES = {
    "adam": dict(),
    "sgd-momentum-decay": dict(optimizer="sgd", lr=0.05, lr_d=0.1, momentum=0.5, final_momentum=0.9,
                               momentum_saturate=0.2, lr_decay=1.01, ema=0.9),
    "k2-minimax-uniform": dict(k=2, loss="minimax", noise="uniform", z_dim=3, dataset="grid25"),
    "simultaneous": dict(update="simultaneous", optimizer="sgd", lr=0.05),
    "hinge-r1-r2-lazy": dict(objective="hinge", r1=1.0, r2=0.5, reg_every=2),
    # (SGD: D's output bias cancels from this game, so its gradient is rounding noise that Adam would blow up to lr)
    "relativistic-sgd": dict(objective="relativistic", optimizer="sgd", lr=0.05),
    "wgan-clip-sgd": dict(objective="wgan-clip", optimizer="sgd", lr=0.01, clip=0.05),
    "least-squares-gaussian1d": dict(objective="least-squares", dataset="gaussian1d", z_dim=1),
    "bf16": dict(precision="bf16"),  # passes on bf16 working copies of the stacked weights, fp32 masters
    # each member's own real labels (those of its own minibatch) in G and D, its own class embedding
    "conditional": dict(conditional=True, dataset="grid25"),
    "conditional-r1-simultaneous": dict(conditional=True, dataset="grid25", r1=1.0, update="simultaneous"),
    # sigma, u and v of each member's own weights (u, v are D's buffers: compared too). Hinge with SGD: hidden units
    # that no sample's margin reaches get a rounding-noise gradient, which Adam would scale up to steps of size lr
    "spectral-norm": dict(spectral_norm=True),
    "spectral-norm-hinge-sgd": dict(spectral_norm=True, objective="hinge", optimizer="sgd", lr=0.05),
    "spectral-norm-bf16": dict(spectral_norm=True, precision="bf16"),
    "minibatch-std": dict(minibatch_std=True),  # each member's statistic over its own minibatch
    "pack": dict(pack=2, r1=1.0),  # groups of each member's own consecutive samples
    "top-k": dict(topk=0.5, topk_decay=0.5, subset=64),  # from step 2 (epoch 1) on, each member's own top half
}
# W / sigma rounded to bf16: a sigma that differs in its last fp32 bit flips a few bf16 roundings, which the later
# steps carry along (the plain bf16 case above stays bitwise equal)
TOLERANCE = {"spectral-norm-bf16": dict(rtol=2e-2, atol=3e-3)}


@pytest.mark.parametrize("name", list(CASES))
def test_each_member_ends_where_the_plain_run_with_its_seed_ends(tmp_path, name):
    """Same initial weights, noise and minibatches as the plain runs with seeds 3, 4, 5, hence (up to floating-point
    rounding of batched products) the same parameters, optimiser state and weight average after 12 iterations; a
    loss left averaged over the members (each gradient 1/E of a plain run's) fails the SGD cases."""
    kw = dict(steps=12, seed=3, **CASES[name])
    gan, summary = fit(tiny(seeds=3, **kw), tmp_path / "ens", progress=False)
    for e in range(3):
        plain, _ = fit(tiny(**{**kw, "seed": 3 + e}), tmp_path / f"plain{e}", progress=False)
        mine, want = weights(ensemble.member(gan, e)), weights(plain)
        for k in want:
            torch.testing.assert_close(mine[k], want[k], **TOLERANCE.get(name, dict(rtol=1e-4, atol=1e-5)),
                                       msg=lambda m: f"member {e} {k}: {m}")
    assert [r["seed"] for r in summary["members"]] == [3, 4, 5]


@pytest.mark.parametrize("model,extra", [("bn-mlp", {}), ("bn-mlp", {"precision": "bf16"}),
                                         ("dcgan", {"hidden": 8, "precision": "bf16"}),
                                         ("dcgan", {"hidden": 8}),
                                         ("bn-mlp", {"conditional": True}), ("bn-mlp", {"pack": 2}),
                                         ("dcgan", {"hidden": 8, "conditional": True}),  # the projection D
                                         ("dcgan", {"hidden": 8, "spectral_norm": True, "minibatch_std": True}),
                                         ("paper", {"conditional": True, "spectral_norm": True}),
                                         ("paper-conv", {"batch_size": 16, "conditional": True})])
def test_image_members_end_where_their_plain_runs_end(tmp_path, monkeypatch, model, extra):
    """The tutorial MLP (BatchNorm in G: each member normalised over its own batch, its own running statistics). SGD:
    the biases feeding a BatchNorm have no true gradient (it removes the mean), and Adam would scale their rounding
    noise up to steps of size lr. The paper's nets with dropout off: its masks come from the shared RNG, so with
    dropout on the members are independent runs but not the plain runs' twins."""
    from conftest import FASHION_DIR

    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    if model.startswith("paper"):
        from gankit.models.layers import Dropout

        monkeypatch.setattr(Dropout, "forward", lambda self, x: x)
    kw = dict(dataset="fashion-mnist", data_dir=str(FASHION_DIR), subset=512, steps=6, log_every=3, seed=1,
              optimizer="sgd", lr=0.05, model=model, **extra,
              sample_every=10**6, checkpoint_every=10**6)
    gan, _ = fit(C.settle({**kw, "seeds": 2}), tmp_path / "ens", progress=False)
    # a grouped convolution rounds differently from the plain one (its outputs and gradients agree to ~1e-6, the
    # next test), and 6 SGD steps through BatchNorm carry that along: 3e-5 in fp32 (1.2e-4 seen with spectral
    # normalisation, whose 1/sigma scales every weight; 1.7e-5 in the tutorial MLP with a packed D at 2 threads), more
    # in bf16
    tol = dict(rtol=2e-2, atol=2e-3) if kw.get("precision") == "bf16" else dict(rtol=1e-3, atol=3e-4) \
        if kw.get("spectral_norm") and model == "dcgan" else dict(rtol=1e-3, atol=1e-4) \
        if model in ("dcgan", "paper-conv") or extra else dict(rtol=1e-4, atol=1e-5)
    for e in range(2):
        plain, _ = fit(C.settle({**kw, "seed": 1 + e}), tmp_path / f"p{e}", progress=False)
        mine, want = weights(ensemble.member(gan, e)), weights(plain)
        assert mine.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(mine[k].double(), want[k].double(), **tol, msg=lambda m: f"member {e} {k}: {m}")


def test_stacked_convolutions_compute_each_members_plain_dcgan():
    """Grouped convolutions (and BatchNorm2d over each member's channels): the stacked DCGAN's outputs and gradients
    are each plain member's, in training mode (batch statistics per member)."""
    from gankit.models.conv import DCGANDiscriminator, DCGANGenerator

    Gs, Ds = [], []
    for e in range(3):
        torch.manual_seed(e)
        Gs.append(DCGANGenerator(z_dim=5, shape=(1, 8, 8), width=4))
        Ds.append(DCGANDiscriminator(shape=(1, 8, 8), width=4))
    G, D = ensemble.stack(Gs), ensemble.stack(Ds)
    z = torch.randn(6, 3, 5)
    x = G(z)
    assert x.shape == (6, 3, 64)
    D(x).square().sum().backward()
    for e in range(3):
        xe = Gs[e](z[:, e])
        torch.testing.assert_close(x[:, e], xe, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(D(x)[:, e], Ds[e](xe), rtol=1e-5, atol=1e-6)
        Ds[e](xe).square().sum().backward()
        for name in ("net.0.weight", "net.2.weight"):
            torch.testing.assert_close(dict(D.named_parameters())[name].grad[e], dict(Ds[e].named_parameters())[name].grad,
                                       rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(dict(G.named_parameters())["net.0.weight"].grad[e],
                                   dict(Gs[e].named_parameters())["net.0.weight"].grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(G.net[1].running_mean[e], Gs[e].net[1].running_mean)


def test_the_papers_maxout_nets_stack_and_each_member_computes_its_plain_net(tmp_path):
    """Maxout and dropout act on the last dimension, so the paper's nets stack like the MLPs: with dropout off (eval)
    each member's outputs and gradients are its plain net's; in training each member draws its own masks."""
    from gankit.models.paper import PaperDiscriminator, PaperGenerator

    Gs, Ds = [], []
    for e in range(3):
        torch.manual_seed(e)
        Gs.append(PaperGenerator(z_dim=10, hidden=32))
        Ds.append(PaperDiscriminator(x_dim=20, units=8, pieces=3))
    G, D = ensemble.stack(Gs), ensemble.stack(Ds).eval()
    x, z = torch.rand(6, 3, 20), torch.rand(6, 3, 10)
    D(x).square().sum().backward()
    for e, plain in enumerate(Ds):
        plain.eval()
        torch.testing.assert_close(D(x)[:, e], plain(x[:, e]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(G(z)[:, e], Gs[e](z[:, e]), rtol=1e-5, atol=1e-6)
        plain(x[:, e]).square().sum().backward()
        torch.testing.assert_close(D.net[1].affine.weight.grad[e], plain.net[1].affine.weight.grad, rtol=1e-4, atol=1e-6)
    D.train()
    same = torch.rand(6, 1, 20).expand(6, 3, 20)  # one input for every member: training outputs differ by the masks
    out = D(same)
    assert not torch.equal(out[:, 0], out[:, 1])
    from conftest import FASHION_DIR

    if FASHION_DIR.is_dir():  # and the paper preset trains as an ensemble
        cfg = C.settle(C.preset("paper-fashion-mnist"), {"data_dir": str(FASHION_DIR), "subset": 256, "steps": 3,
                        "epochs": None, "seeds": 2, "sample_every": 10**6, "checkpoint_every": 10**6, "precision": "bf16"})
        gan, summary = fit(cfg, tmp_path / "r", progress=False)
        assert len(summary["members"]) == 2 and type(ensemble.member(gan, 1).D).__name__ == "PaperDiscriminator"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stacked_spectral_norm_is_each_members_own(precision):
    """Per member: W_e / sigma_e with sigma_e from its own u_e, v_e, one power iteration per training forward, as
    torch's spectral_norm of the plain layer (a ConvTranspose2d normalised over its dim 1, as torch does); in bf16
    the iteration runs in fp32 on the working weight, as `precision._FP32SpectralNorm` does for a plain run."""
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    from gankit.precision import DTYPES, Working

    makers = [lambda: nn.Linear(6, 5), lambda: nn.Conv2d(2, 3, 3), lambda: nn.ConvTranspose2d(3, 2, 3)]
    for make in makers:
        torch.manual_seed(0)
        plain = [nn.Sequential(spectral_norm(make())) for _ in range(3)]
        stacked = ensemble._stack_layers(plain)
        dtype = DTYPES[precision]
        plain_w, stacked_w = [Working(m, dtype).module for m in plain], Working(stacked, dtype).module
        for _ in range(3):  # three power iterations
            got = stacked_w[0].weight
            for e in range(3):
                want = plain_w[e][0].weight
                assert got.dtype == want.dtype == dtype
                torch.testing.assert_close(got[e].float(), want.float(), rtol=1e-5 if precision == "fp32" else 1e-2,
                                           atol=1e-6)
        sn = stacked[0].parametrizations.weight[0]
        for e in range(3):
            torch.testing.assert_close(sn._u[e], plain[e][0].parametrizations.weight[0]._u, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(sn._v[e], plain[e][0].parametrizations.weight[0]._v, rtol=1e-5, atol=1e-6)
        stacked.eval()  # eval: sigma from the current u, v, which stay
        u = sn._u.clone()
        _ = stacked[0].weight
        assert torch.equal(sn._u, u)


def test_paper_conv_nets_stack_with_dropout_masks_per_member():
    """The paper's CIFAR-10 nets: maxout convolutions as grouped convolutions, the projection D; in eval each member
    computes its plain net, in training each member draws its own dropout masks."""
    from gankit.models.paper import PaperConvDiscriminator, PaperConvGenerator

    Gs, Ds = [], []
    for e in range(3):
        torch.manual_seed(e)
        Gs.append(PaperConvGenerator(z_dim=6, shape=(1, 8, 8), n_classes=3, c_dim=2))
        Ds.append(PaperConvDiscriminator(shape=(1, 8, 8), n_classes=3))
    G, D = ensemble.stack(Gs).eval(), ensemble.stack(Ds).eval()
    z, c = torch.randn(4, 3, 6), torch.randint(0, 3, (4, 3))
    x = G(z, c)
    assert x.shape == (4, 3, 64) and D(x, c).shape == (4, 3)
    for e in range(3):
        torch.testing.assert_close(x[:, e], Gs[e].eval()(z[:, e], c[:, e]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(D(x, c)[:, e], Ds[e].eval()(x[:, e], c[:, e]), rtol=1e-5, atol=1e-6)
    D.train()
    same = x[:, :1].expand(4, 3, 64)
    out = D(same, c[:, :1].expand(4, 3))
    assert not torch.equal(out[:, 0], out[:, 1])


def test_a_conditional_ensemble_reports_each_members_classes(tmp_path):
    """Each member's summary row holds its class-on-mode score (a plain conditional run's), and its pictures are
    drawn per class."""
    gan, summary = fit(tiny(seeds=2, steps=4, conditional=True, dataset="grid25", sample_every=4), tmp_path / "r",
                       progress=False)
    assert gan.n_classes == 25
    for row in summary["members"]:
        assert 0 <= row["class_on_mode"]["accuracy"] <= 1 and row["modes"]["n_modes"] == 25
    assert (tmp_path / "r" / "samples" / "step-00000004.png").is_file()


def test_one_optimiser_over_stacked_parameters_holds_each_members_plain_state(tmp_path):
    """Adam's moments of member e are those of the plain run's optimiser (elementwise updates never mix members)."""
    run = tmp_path / "ens"
    fit(tiny(seeds=2, steps=6, seed=1), run, progress=False)
    stacked = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["opt_D"]["state"]
    for e in range(2):
        fit(tiny(steps=6, seed=1 + e), tmp_path / f"p{e}", progress=False)
        plain = torch.load(tmp_path / f"p{e}" / "checkpoints" / "last.pt", weights_only=True)["opt_D"]["state"]
        for i in plain:
            torch.testing.assert_close(stacked[i]["exp_avg"][e], plain[i]["exp_avg"], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(stacked[i]["exp_avg_sq"][e], plain[i]["exp_avg_sq"], rtol=1e-4, atol=1e-9)
            assert float(stacked[i]["step"]) == float(plain[i]["step"]) == 6


def _stacked_d(E=3, hidden=8):
    torch.manual_seed(0)
    plain = [build(tiny(seed=s, hidden=hidden, dataset="grid25")).D for s in range(E)]
    return plain, ensemble.stack(plain)


def test_gradient_penalties_are_per_member():
    """R1/R2 and WGAN-GP of the stacked D (samples indexed by (sample, member)) are the mean of each member's own
    penalty on its own samples, with the interpolation weights drawn per (sample, member)."""
    plain, D = _stacked_d()
    m, E = 16, 3
    x, f = torch.randn(m, E, 2), torch.randn(m, E, 2)
    r1 = objectives.gradient_square(D, x, lead=2)
    per = [objectives.gradient_square(plain[e], x[:, e]) for e in range(E)]
    torch.testing.assert_close(r1, torch.stack(per).mean())
    torch.manual_seed(7)
    gp = objectives.gradient_penalty(D, x, f, lead=2)
    torch.manual_seed(7)
    eps = torch.rand(m, E, 1)
    want = []
    for e in range(E):
        x_hat = (eps[:, e] * x[:, e] + (1 - eps[:, e]) * f[:, e]).requires_grad_(True)
        (g,) = torch.autograd.grad(plain[e](x_hat).sum(), x_hat)
        want.append(((g.norm(dim=1) - 1) ** 2).mean())
    torch.testing.assert_close(gp, torch.stack(want).mean())


def test_plain_penalties_are_bitwise_what_they_were():
    """lead = 1 (every plain run) draws and reduces exactly as before seed ensembles existed."""
    plain, _ = _stacked_d(E=1)
    D, x, f = plain[0], torch.randn(32, 2), torch.randn(32, 2)
    torch.manual_seed(3)
    got = objectives.gradient_penalty(D, x, f)
    torch.manual_seed(3)
    eps = torch.rand(len(x), 1)
    x_hat = (eps * x + (1 - eps) * f).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    assert torch.equal(got, ((g.float().flatten(1).norm(dim=1) - 1) ** 2).mean())
    xr = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(D(xr).sum(), xr, create_graph=True)
    assert torch.equal(objectives.gradient_square(D, x), g.float().flatten(1).pow(2).sum(1).mean())


def test_wgan_gp_ensemble_trains_and_logs_its_penalty(tmp_path):
    gan, summary = fit(tiny(seeds=2, steps=4, objective="wgan-gp"), tmp_path / "r", progress=False)
    assert summary["gp"] > 0 and len(summary["members"]) == 2


def test_resume_is_bit_exact(tmp_path):
    cfg = dict(seeds=3, seed=2, checkpoint_every=3, dataset="grid25")
    assert_resume_is_bit_exact(tmp_path, cfg)
    sa = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(x, y) for x, y in zip(sa["noise_rng"], sb["noise_rng"]))
    for key in ("opt_G", "opt_D"):
        for i, st in sa[key]["state"].items():
            assert all(torch.equal(v, sb[key]["state"][i][n]) for n, v in st.items())


def test_resume_is_bit_exact_with_labels_spectral_norm_and_minibatch_std(tmp_path):
    assert_resume_is_bit_exact(tmp_path, dict(seeds=2, seed=1, checkpoint_every=3, dataset="grid25", conditional=True,
                                              spectral_norm=True, minibatch_std=True, r1=0.5))


def test_the_run_directory_holds_every_member(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "--seeds", "3", "--steps", "6", "--hidden", "16", "--layers", "2", "--batch-size", "32",
                 "--sample-every", "3", "--out", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert [r["seed"] for r in summary["members"]] == [0, 1, 2]
    covered = [r["modes"]["modes_covered"] for r in summary["members"]]
    assert summary["ensemble"]["modes"]["modes_covered"] == pytest.approx(
        {"mean": sum(covered) / 3, "std": torch.tensor(covered, dtype=torch.float64).std(unbiased=False).item(),
         "min": min(covered), "max": max(covered)})
    from PIL import Image

    picture = Image.open(run / "samples" / "step-00000006.png")
    assert picture.width >= 3 * picture.height  # three members side by side
    gan = load_run(run, member=2)
    assert gan.cfg.seed == 2 and gan.cfg.seeds == 1 and gan.sample(5).shape == (5, 2)
    assert main(["sample", str(run), "--member", "1", "--n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", str(run), "--out", str(tmp_path / "t.npy")]) == 2  # which member? said in one line
    assert main(["sample", str(run), "--member", "3", "--out", str(tmp_path / "t.npy")]) == 2


def test_a_member_is_a_plain_gan_every_tool_takes(tmp_path):
    """Member e's plain networks compute what the stacked ones compute for member e."""
    gan = ensemble.build(tiny(seeds=3, dataset="grid25"))
    z = torch.randn(10, 3, 2)
    x = gan.G(z)
    assert x.shape == (10, 3, 2) and gan.D(x).shape == (10, 3)
    for e in range(3):
        one = ensemble.member(gan, e)
        torch.testing.assert_close(one.G(z[:, e]), x[:, e])
        torch.testing.assert_close(one.D(x[:, e]), gan.D(x)[:, e])


@pytest.mark.parametrize("values, words", [
    (dict(dataset="mnist", model="semi-mlp", objective="semi-supervised", labels=100),
     "supports model mlp, bn-mlp, paper, dcgan, paper-conv"),
    (dict(seeds=0), "must be in [1, 1000]"),
])
def test_unsupported_combinations_are_one_line_config_errors(values, words):
    with pytest.raises(C.ConfigError, match=words.replace("[", r"\[")):
        C.from_dict({"seeds": 2, **values})


def test_a_plain_checkpoint_refuses_a_member_other_than_zero(tmp_path):
    fit(tiny(steps=2), tmp_path / "p", progress=False)
    assert load_run(tmp_path / "p", member=0).cfg.seed == 0
    with pytest.raises(Exception, match="holds one GAN"):
        load_run(tmp_path / "p", member=1)


def test_eval_reports_every_member_and_the_ensemble(tmp_path, capsys):
    run = tmp_path / "r"
    fit(tiny(seeds=2, steps=3), run, progress=False)
    assert main(["eval", str(run), "--metric", "modes", "--n-samples", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    each = [r["modes_covered"] for r in result["members"]]
    assert len(each) == 2 and result["ensemble"]["modes_covered"]["max"] == max(each)
    assert "n_samples" not in result["ensemble"] and "n_modes" not in result["ensemble"]  # bookkeeping, not results
    assert main(["eval", str(run), "--metric", "modes", "--member", "1", "--n-samples", "300", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result["members"][1]  # the same sample seed, the same member
    assert set(json.loads((run / "eval.json").read_text())) == {"modes", "modes:member1"}
