"""Sweeps (`--seeds N --sweep KEY=V1,V2,...`): member e of the stacked run is the plain run member_config(cfg, e),
with value e // N of KEY and seed seed + e % N, step for step."""

import json

import pytest
import torch

from gankit import config as C, ensemble, objectives
from gankit.cli import main
from gankit.sampling import load_run
from gankit.train import fit

from conftest import assert_resume_is_bit_exact, tiny, weights

STEPS = 12


def gap(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_member_config_maps_value_index_and_seed():
    cfg = tiny(seed=7, seeds=3, sweep="lr=1e-3,2e-3")
    assert C.n_members(cfg) == 6
    got = [(c.lr, c.seed, c.seeds, c.sweep) for c in (C.member_config(cfg, e) for e in range(6))]
    assert got == [(1e-3, 7, 1, ""), (1e-3, 8, 1, ""), (1e-3, 9, 1, ""),
                   (2e-3, 7, 1, ""), (2e-3, 8, 1, ""), (2e-3, 9, 1, "")]
    plain = tiny(seed=7, seeds=3)  # no sweep: member e is seed + e, as before
    assert [C.member_config(plain, e).seed for e in range(3)] == [7, 8, 9]
    assert C.member_config(tiny(sweep="lr-d=0.1,0.2"), 1).lr_d == 0.2  # the flag's spelling works too
    with pytest.raises(IndexError):
        C.member_config(cfg, 6)


# Sweeps checked member by member against their plain runs. Tolerance: rtol 1e-4, atol 1e-5, that of
# test_ensemble.py: the batched products round differently from the plain ones (~1e-7 relative per step) and
# Adam's normalisation can amplify a tiny gradient's rounding; the observed gaps are ~1e-7. Plain runs of two
# swept values differ by far more (asserted below), so a member trained with another member's value fails.
CASES = {
    "lr-adam": dict(sweep="lr=1e-3,3e-3"),
    "lr_d-adam": dict(sweep="lr_d=5e-4,3e-3"),
    "beta2-adam": dict(sweep="beta2=0.9,0.999", lr=3e-3),
    "momentum-adam": dict(sweep="momentum=0.0,0.5", lr=3e-3),
    # SGD: per-member lr and momentum under the schedule (lr / 1.05^t; momentum rising to 0.9 within the run)
    "lr-sgd-decay": dict(sweep="lr=0.02,0.08", optimizer="sgd", lr_decay=1.05, momentum_saturate=0.05,
                         final_momentum=0.9),
    "momentum-sgd": dict(sweep="momentum=0.1,0.8", optimizer="sgd", lr=0.05, momentum_saturate=0.05,
                         final_momentum=0.9),
    "lr-sgd-pylearn2": dict(sweep="lr=0.02,0.08", optimizer="sgd", sgd_form="pylearn2", lr_decay=1.05, lr_min=0.03),
    "ema": dict(sweep="ema=0.1,0.9"),  # the ramp min(ema, (1 + t) / (10 + t)) is 0.1 at t = 0, above it after
    "r1": dict(sweep="r1=0,5", objective="hinge", reg_every=2, optimizer="sgd", lr=0.05),
    "r2": dict(sweep="r2=1,20", optimizer="sgd", lr=0.05),
}


@pytest.fixture
def no_plots(monkeypatch):
    """Blank pictures instead of matplotlib's (most of a 12-step run's time; these tests compare weights)."""
    from PIL import Image

    from gankit import plots

    def blank(*args, **kwargs):
        Image.new("RGB", (2, 2)).save([a for a in args if hasattr(a, "suffix")][0])

    monkeypatch.setattr(plots, "plot_samples", blank)
    monkeypatch.setattr(plots, "plot_losses", blank)


@pytest.mark.parametrize("name", list(CASES))
def test_each_member_ends_where_its_plain_run_ends(tmp_path, name, no_plots):
    cfg = tiny(steps=STEPS, seed=3, seeds=2, **CASES[name])
    gan, summary = fit(cfg, tmp_path / "sweep", progress=False)
    key, values = C.parse_sweep(cfg.sweep)
    plain = []
    for e in range(4):
        want = C.member_config(cfg, e)
        assert getattr(ensemble.member(gan, e).cfg, key) == getattr(want, key) == values[e // 2]
        run, _ = fit(want, tmp_path / f"plain{e}", progress=False)
        plain.append(weights(run))
        mine = weights(ensemble.member(gan, e))
        assert mine.keys() == plain[e].keys()
        for k in plain[e]:
            torch.testing.assert_close(mine[k], plain[e][k], rtol=1e-4, atol=1e-5, msg=lambda m: f"member {e} {k}: {m}")
    names = [k for k in plain[0] if k.startswith("G_ema.")] if key == "ema" else list(plain[0])
    assert gap({k: plain[0][k] for k in names}, plain[2]) > 1e-3  # same seed, other value: the test can fail
    assert [(r["seed"], r[key]) for r in summary["members"]] == [(3, values[0]), (4, values[0]), (3, values[1]),
                                                                 (4, values[1])]


def test_gp_weight_weighs_each_members_penalty_by_its_own_value():
    """WGAN-GP's interpolation weights come from the run's one RNG, so an ensemble cannot replay plain runs; instead:
    the stacked D's penalty, times E (as `ensemble.Game` scales it), gives member e gp_e x the gradient of its own
    penalty on its own samples (the output bias has no gradient: the penalty only sees grad_x D)."""
    gan = ensemble.build(tiny(seeds=2, dataset="grid25"))
    m, E = 16, 2
    x, f = torch.randn(m, E, 2), torch.randn(m, E, 2)
    gp = torch.tensor([1.0, 10.0], dtype=torch.float64)
    swept = objectives.Penalties(gp=10.0, lead=2, members={"gp": gp})
    torch.manual_seed(5)
    loss, stats = swept(gan.D, x, f, None, 0)
    (E * loss).backward()
    got = {k: p.grad for k, p in gan.D.named_parameters() if p.grad is not None}
    assert len(got) >= 4
    torch.manual_seed(5)
    eps = torch.rand(m, E, 1)
    for e in range(E):
        one = ensemble.member(gan, e).D
        x_hat = (eps[:, e] * x[:, e] + (1 - eps[:, e]) * f[:, e]).requires_grad_(True)
        (g,) = torch.autograd.grad(one(x_hat).sum(), x_hat, create_graph=True)
        (float(gp[e]) * ((g.norm(dim=1) - 1) ** 2).mean()).backward()
        for k, p in one.named_parameters():
            if k in got:
                torch.testing.assert_close(got[k][e], p.grad, rtol=1e-5, atol=1e-6, msg=lambda msg: f"{e} {k}: {msg}")
    torch.manual_seed(5)
    unweighted = objectives.gradient_penalty(gan.D, x, f, lead=2)
    torch.testing.assert_close(stats["gp"], unweighted.detach())  # logged: the penalty itself, not weighted


def test_gp_weight_sweep_trains(tmp_path):
    gan, summary = fit(tiny(seeds=1, steps=3, objective="wgan-gp", sweep="gp_weight=1,10"), tmp_path / "r",
                       progress=False)
    assert summary["gp"] > 0 and [r["gp_weight"] for r in summary["members"]] == [1.0, 10.0]


def test_plain_ensembles_keep_torchs_optimiser():
    """Without a sweep of an optimiser key the stacked run uses torch's own optimiser (bit-identical to before)."""
    from gankit.state import player

    for sweep, member_opt in (("", False), ("ema=0.9,0.99", False), ("r1=1,2", False), ("lr=1e-3,2e-3", True)):
        cfg = tiny(seeds=2, sweep=sweep)
        gan = ensemble.build(cfg)
        s = ensemble.State(player(gan.G, cfg, cfg.lr), player(gan.D, cfg, cfg.lr), None, gan.device, gan.G_ema,
                           cfg.ema, cfg=cfg)
        assert isinstance(s.G.opt, torch.optim.Adam)
        assert isinstance(s.G.opt, ensemble.optim.MemberAdam) == member_opt, sweep


@pytest.mark.parametrize("sweep, extra, words", [
    ("foo=1,2", {}, "cannot sweep 'foo'"),
    ("hidden=16,32", {}, "cannot sweep 'hidden'"),
    ("lr", {}, "must be KEY=V1,V2"),
    ("lr=1e-3", {}, "at least 2 values"),
    ("lr=1e-3,abc", {}, "'abc' is not a float"),
    ("lr=1e-3,0.001", {}, "given twice"),
    ("lr=1e-3,-1", {}, "lr = -1.0: config key 'lr' must be > 0"),
    ("momentum=0.5,1.5", {}, "momentum = 1.5: config key 'momentum' must be in"),
    ("ema=0.9,0", {}, "ema values must be > 0"),
    ("ema=0.9,1", {}, "config key 'ema' must be in"),
    ("r1=1,-2", {}, "config key 'r1' must be >= 0"),
    ("gp_weight=1,10", {}, "objective 'logistic' ignores it"),
    ("beta2=0.9,0.99", dict(optimizer="sgd"), "optimizer 'sgd' ignores it"),
    ("lr=1e-3,2e-3", dict(dataset="mnist", model="semi-mlp", objective="semi-supervised", labels=100),
     "--sweep supports model mlp"),
    ("lr=" + ",".join(str(i / 1e4) for i in range(1, 102)), dict(seeds=10), "more than 1000 members"),
])
def test_bad_sweeps_are_one_line_config_errors(sweep, extra, words):
    with pytest.raises(C.ConfigError, match=words.replace("[", r"\[")) as err:
        C.from_dict({"sweep": sweep, **extra})
    assert "\n" not in str(err.value) and "config key 'sweep'" in str(err.value)


def test_a_sweep_flag_in_train_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--sweep SWEEP" in out and "one key per run" in " ".join(out.split())


def test_member_loads_with_its_swept_value_and_the_summary_ranks_values(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    assert main(["train", "--sweep", "lr=1e-4,3e-3", "--seeds", "2", "--steps", "60", "--hidden", "16", "--layers",
                 "2", "--batch-size", "32", "--sample-every", "60", "--out", str(run), "--no-progress"]) == 0
    line = capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    ranked = summary["sweep"]["ranked"]
    assert summary["sweep"]["key"] == "lr" and [r["rank"] for r in ranked] == [1, 2]
    assert sorted(r["value"] for r in ranked) == [1e-4, 3e-3] and all(r["seeds"] == [0, 1] for r in ranked)
    for r in ranked:  # mean ± std over the value's seeds, from the member rows
        covered = [m["modes"]["modes_covered"] for m in summary["members"] if m["lr"] == r["value"]]
        assert r["modes_covered"] == pytest.approx(ensemble.spread(covered))
    assert [(r["modes_covered"]["mean"], r["high_quality_fraction"]["mean"]) for r in ranked] == sorted(
        [(r["modes_covered"]["mean"], r["high_quality_fraction"]["mean"]) for r in ranked], reverse=True)
    assert "lr over 2 seeds, best first: " + f"{ranked[0]['value']:g}:" in line
    for e, (lr, seed) in enumerate([(1e-4, 0), (1e-4, 1), (3e-3, 0), (3e-3, 1)]):
        gan = load_run(run, member=e)
        assert (gan.cfg.lr, gan.cfg.seed, gan.cfg.seeds, gan.cfg.sweep) == (lr, seed, 1, "")
    assert main(["sample", str(run), "--member", "3", "--n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", str(run), "--out", str(tmp_path / "t.npy")]) == 2
    assert "sweep lr=1e-4,3e-3 x seeds 0..1" in capsys.readouterr().err
    from PIL import Image

    picture = Image.open(run / "samples" / "step-00000060.png")
    assert 2 * picture.height <= picture.width < 3 * picture.height  # one member per value: two side by side


def test_ranking_orders_by_modes_then_high_quality():
    rows = [{"member": e, "seed": e % 2, "r1": v, "modes": {"modes_covered": mc, "high_quality_fraction": hq,
                                                            "kl_to_uniform": 0.1}}
            for e, (v, mc, hq) in enumerate([(0.0, 5, 0.4), (0.0, 7, 0.5), (1.0, 6, 0.5), (1.0, 6, 0.6),
                                              (2.0, 8, 0.1), (2.0, 4, 0.2)])]
    ranked = ensemble.ranking(rows, "r1")
    assert [r["value"] for r in ranked] == [1.0, 0.0, 2.0]  # 6 = 6 = 6 modes; then 0.55 > 0.45 > 0.15
    assert ranked[0]["modes_covered"] == {"mean": 6.0, "std": 0.0, "min": 6.0, "max": 6.0}


def test_resume_of_a_member_optimiser_sweep_is_bit_exact(tmp_path):
    cfg = dict(seeds=2, seed=2, checkpoint_every=3, sweep="lr=1e-3,3e-3")
    assert_resume_is_bit_exact(tmp_path, cfg)
    with pytest.raises(Exception, match="config differs in sweep"):
        fit(tiny(steps=9, **{**cfg, "sweep": "lr=1e-3,2e-3"}), tmp_path / "b", resume=True, progress=False)


def test_eval_covers_every_member_of_a_sweep(tmp_path, capsys):
    run = tmp_path / "r"
    fit(tiny(seeds=1, steps=3, sweep="ema=0.5,0.9"), run, progress=False)
    assert main(["eval", str(run), "--metric", "modes", "--n-samples", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["members"]) == 2 and [v["value"] for v in result["sweep"]["values"]] == [0.5, 0.9]
    for v, row in zip(result["sweep"]["values"], result["members"]):  # one seed per value: its member's numbers
        assert v["metrics"]["modes_covered"]["mean"] == row["modes_covered"]
    assert main(["eval", str(run), "--metric", "modes", "--n-samples", "300"]) == 0
    assert "ema 0.9: modes_covered" in capsys.readouterr().out
