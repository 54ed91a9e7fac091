import math

import numpy as np
import pytest
import torch

from gankit import theory
from gankit.theory import GaussianMixture as GM


def test_densities_integrate_to_one():
    for _, p, q in theory.standard_pairs():
        assert theory.jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-12)
        pts, _, axes = theory._grid(p, q, theory._grid_size(p.dim))
        assert theory._integrate(np.exp(p.log_density(pts)), axes) == pytest.approx(1.0, abs=1e-6)


def test_criterion_is_minus_log4_exactly_when_pg_equals_pdata():
    p = GM.make([-1.0, 1.0], [0.4, 0.7], [0.3, 0.7])
    assert theory.virtual_criterion(p, p) == pytest.approx(-math.log(4), abs=1e-9)
    assert np.allclose(theory.optimal_discriminator(p, p, np.linspace(-3, 3, 7)), 0.5)


@pytest.mark.parametrize("name,p,q", theory.standard_pairs())
def test_theorem1_identity(name, p, q):
    c, jsd = theory.virtual_criterion(p, q), theory.jensen_shannon(p, q)
    assert c == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-6)
    assert 0 <= jsd <= math.log(2) + 1e-9 and c >= -math.log(4) - 1e-9


def test_criterion_by_monte_carlo_agrees_with_integration():
    """An independent estimate: E_pdata[log D*] + E_pg[log(1 - D*)] from 200k samples each."""
    p, q = GM.make([0.0], [1.0]), GM.make([1.5], [0.7])
    g = torch.Generator().manual_seed(0)
    xd, xg = p.sample(200_000, g).double().numpy(), q.sample(200_000, g).double().numpy()
    mc = np.log(theory.optimal_discriminator(p, q, xd)).mean() + np.log(1 - theory.optimal_discriminator(p, q, xg)).mean()
    assert mc == pytest.approx(theory.virtual_criterion(p, q), abs=5e-3)


def test_jsd_of_disjoint_densities_is_log2():
    p, q = GM.make([0.0], [0.1]), GM.make([20.0], [0.1])
    assert theory.jensen_shannon(p, q) == pytest.approx(math.log(2), abs=1e-6)


def test_trained_discriminator_approaches_the_optimum_1d():
    p, q = GM.make([0.0], [1.0]), GM.make([1.5], [1.0])
    D = theory.train_discriminator(p, q, steps=1500, batch=256)
    err = theory.discriminator_error(D, p, q)
    assert err["grid_mean"] < 0.03 and err["samples_mean"] < 0.03
    x = torch.tensor([[0.75]])  # where p_data = p_g the ratio is 1
    assert theory.density_ratio(D, x).item() == pytest.approx(1.0, abs=0.1)
    assert err["log_ratio_mae"] < 0.1  # log ratio for shifted unit Gaussians is linear: easy for an MLP


def test_bad_mixtures():
    with pytest.raises(ValueError, match="standard deviations"):
        GM.make([0.0], [0.0])
    with pytest.raises(ValueError, match="weights"):
        GM.make([0.0, 1.0], [1.0, 1.0], [0.2, 0.2])


def test_theory_check_cli_json(capsys):
    import json

    from gankit.cli import main

    assert main(["theory", "check", "--no-train", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(theory.standard_pairs()) and max(r["identity_error"] for r in rows) < 1e-6


@pytest.mark.slow
def test_figure1_reaches_equilibrium(tmp_path):
    panels = theory.figure1(tmp_path / "fig1.png", tmp_path / "run")
    assert (tmp_path / "fig1.png").stat().st_size > 10_000
    last = panels[-1]
    assert last["mean_abs_D_minus_half"] < 0.05  # D is nearly 1/2 everywhere at the end
    assert abs(last["g_mean"] - 2.0) < 0.15 and abs(last["g_std"] - 0.5) < 0.15


def test_each_objectives_criterion_at_its_optimum_is_its_divergence():
    """Least squares: Pearson chi^2 (Mao et al. Theorem 1); hinge: 2 TV - 2; Wasserstein: W1 — to 1e-6, and
    against closed forms where there are some (Gaussians: W1 of a shift is the shift, of two widths
    |s1 - s2| sqrt(2/pi); TV of a shift d at unit variance is 2 Phi(d/2) - 1)."""
    import math

    from scipy.stats import norm

    from gankit.theory import objective_identities, standard_pairs

    pairs = {name: (p, q) for name, p, q in standard_pairs()}
    for name, (p, q) in pairs.items():
        for row in objective_identities(p, q):
            assert row["identity_error"] < 1e-6, (name, row["objective"])
    shifted = {r["objective"]: r for r in objective_identities(*pairs["shifted 1-D"])}
    assert shifted["wasserstein"]["divergence"] == pytest.approx(1.5, abs=1e-6)
    assert shifted["hinge"]["divergence"] == pytest.approx(2 * (2 * norm.cdf(0.75) - 1) - 2, abs=1e-6)
    widths = {r["objective"]: r for r in objective_identities(*pairs["different widths 1-D"])}
    assert widths["wasserstein"]["divergence"] == pytest.approx(1.5 * math.sqrt(2 / math.pi), abs=1e-6)
    same = {r["objective"]: r for r in objective_identities(*pairs["identical 1-D"])}
    assert same["least-squares"]["divergence"] == pytest.approx(0, abs=1e-12)
    assert same["hinge"]["divergence"] == pytest.approx(-2, abs=1e-9)


@pytest.mark.parametrize("game,tol", [("least-squares", 0.05), ("hinge", 0.1)])
def test_trained_discriminator_approaches_each_games_optimum(game, tol):
    """D trained with G frozen approaches (b p_d + a p_g)/(p_d + p_g) for least squares, sign(p_d - p_g) for hinge."""
    p, q = GM.make([0.0], [1.0]), GM.make([1.5], [1.0])
    D = theory.train_discriminator(p, q, steps=1500, batch=256, game=game)
    err = theory.discriminator_error(D, p, q, game=game)
    assert err["samples_mean"] < tol
    # and not the logistic optimum: the check tells the games apart
    wrong = theory.optimal_output("logistic", p, q, np.array([[0.0]]))  # 0.755; LS 0.510, hinge 1
    assert abs(float(theory.GAMES[game][1](D(torch.tensor([[0.0]]))).item()) - wrong[0]) > 0.2


def test_closed_form_optima_agree_with_the_density_formulas():
    p, q = GM.make([0.0], [1.0]), GM.make([1.5], [0.7])
    x = np.linspace(-3, 4, 50)[:, None]
    pd, pg = np.exp(p.log_density(x)), np.exp(q.log_density(x))
    assert np.allclose(theory.optimal_output("logistic", p, q, x), pd / (pd + pg))
    assert np.allclose(theory.optimal_output("least-squares", p, q, x), (pd - pg) / (pd + pg))
    assert np.array_equal(theory.optimal_output("hinge", p, q, x), np.sign(pd - pg))
