import numpy as np
import pytest
import scipy.linalg
import torch

from gankit.metrics.frechet import frechet_distance
from gankit.metrics.kid import kernel_distance
from gankit.metrics.precision_recall import knn_radii, precision_recall


def test_fd_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)


def test_fd_matches_a_direct_scipy_reference():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_fd_closed_form_for_shifted_gaussians():
    """Same covariance, means apart by delta: FD -> ||delta||^2 (exactly, with the sample stats)."""
    a = np.random.default_rng(2).normal(size=(1000, 4))
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0, 0.0])) == pytest.approx(5.0, abs=1e-9)


def test_fd_refuses_fewer_samples_than_dimensions():
    with pytest.raises(ValueError, match="more samples than dimensions"):
        frechet_distance(np.zeros((5, 10)), np.zeros((50, 10)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros((50, 3)), np.zeros((50, 4)))


def test_kid_is_unbiased_on_equal_distributions():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4000, 16)), rng.normal(size=(4000, 16))
    r = kernel_distance(a, b, n_subsets=50, subset_size=500, seed=0)
    assert abs(r["mean"]) < 3 * r["std"] / np.sqrt(50) + 1e-4  # centred on zero, not biased upwards
    far = kernel_distance(a, b + 1.0, n_subsets=10, subset_size=500)
    assert far["mean"] > 10 * r["std"]


def test_knn_radii_on_a_line():
    f = torch.tensor([[0.0], [1.0], [3.0], [6.0]], dtype=torch.float64)
    assert knn_radii(f, 1).tolist() == [1.0, 1.0, 2.0, 3.0]
    assert knn_radii(f, 2).tolist() == [3.0, 2.0, 3.0, 5.0]


def test_precision_recall_constructed_cases():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(600, 2))
    same = precision_recall(real, rng.normal(size=(600, 2)))
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    collapsed = precision_recall(real, rng.normal(size=(600, 2)) * 0.05)  # inside the manifold, little spread
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.3
    off = precision_recall(real, rng.normal(size=(600, 2)) + 20)
    assert off["precision"] == 0.0 and off["recall"] == 0.0


# --- density and coverage (Naeem et al. 2020) ---

from gankit.metrics.frechet import (_weighted_stats, extrapolate, frechet_bootstrap, frechet_infinity,  # noqa: E402
                                    gaussian_stats)
from gankit.metrics.precision_recall import density_coverage  # noqa: E402


def test_density_coverage_by_hand_on_a_line():
    """Real {0, 1, 3, 6}, k = 1: radii 1, 1, 2, 3. Fake 0.5 lies in the balls of 0 and 1; fake 5 in those of
    3 and 6: density (2 + 2) / (1 * 2) = 2, coverage 4/4. Fake 0.5 alone: density 2/1, coverage 2/4."""
    real = torch.tensor([[0.0], [1.0], [3.0], [6.0]], dtype=torch.float64)
    r = density_coverage(real, [[0.5], [5.0]], k=1)
    assert (r["density"], r["coverage"], r["k"]) == (2.0, 1.0, 1)
    r = density_coverage(real, [[0.5]], k=1)
    assert (r["density"], r["coverage"]) == (2.0, 0.5)


def test_density_coverage_of_identical_and_of_far_apart_sets():
    real = np.random.default_rng(5).normal(size=(400, 3))
    same = density_coverage(real, real)
    assert same["coverage"] == 1.0  # every ball holds its own centre
    # each fake point X_j lies in its own ball and in those of the X_i it is among the 5 nearest of (and a few more)
    assert 0.9 < same["density"] < 1.5
    far = density_coverage(real, real + 100.0)
    assert (far["density"], far["coverage"]) == (0.0, 0.0)
    fresh = density_coverage(real, np.random.default_rng(6).normal(size=(400, 3)))
    assert 0.8 < fresh["density"] < 1.2 and fresh["coverage"] > 0.9
    with pytest.raises(ValueError, match="more than 5 real"):
        density_coverage(real[:5], real)


# --- FD: bootstrap interval and the extrapolation to N -> infinity ---

def test_weighted_stats_are_the_stats_of_the_repeated_rows():
    f = torch.as_tensor(np.random.default_rng(7).normal(size=(30, 3)))
    w = torch.tensor([2.0, 0.0, 1.0] * 10, dtype=torch.float64)
    rows = torch.cat([f[i].repeat(int(w[i]), 1) for i in range(len(f))])
    for a, b in zip(_weighted_stats(f, w), gaussian_stats(rows)):
        assert torch.allclose(a, b)


def test_fd_bootstrap_interval_is_seeded_and_holds_the_true_value():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(2000, 4))
    b = rng.normal(size=(2000, 4)) + np.array([2.0, 0.0, 0.0, 0.0])  # true FD = 4
    r = frechet_bootstrap(a, b, n_boot=200, seed=1)
    assert r == frechet_bootstrap(a, b, n_boot=200, seed=1)
    assert r != frechet_bootstrap(a, b, n_boot=200, seed=2)
    assert r["ci_low"] < 4.0 < r["ci_high"] and r["ci_low"] < frechet_distance(a, b) < r["ci_high"]
    # the spread of FD's estimate ~ 2 |delta| sqrt(2 / N) (mean term) for this pair
    assert 0.85 * 0.126 < r["std"] < 1.2 * 0.126  # resampling one set only would give 0.089
    big = frechet_bootstrap(np.tile(a, (4, 1)), np.tile(b, (4, 1)), n_boot=100, seed=1)
    assert big["std"] < 0.7 * r["std"]  # about half with 4 x the samples


def test_extrapolation_recovers_an_exact_line_in_one_over_n():
    ns = np.array([500, 1000, 2000, 5000])
    a, b = extrapolate(ns, 3.25 + 1700.0 / ns)
    assert a == pytest.approx(3.25, abs=1e-10) and b == pytest.approx(1700.0, rel=1e-10)


def test_fd_infinity_removes_most_of_the_bias_on_equal_distributions():
    """Same distribution, so the true FD is 0: FD at N is biased upwards by ~b / N, FD_inf much less."""
    rng = np.random.default_rng(9)
    gen, ref = rng.normal(size=(3000, 8)), rng.normal(size=(20000, 8))
    r = frechet_infinity(gen, ref, n_points=6, seed=0)
    assert r["ns"][0] == 600 and r["ns"][-1] == 3000 and len(r["values"]) == 6
    assert r["values"][-1] == pytest.approx(frechet_distance(gen, ref), rel=1e-12)  # the last N is all of them
    assert r["slope"] > 0 and abs(r["fd_inf"]) < 0.5 * frechet_distance(gen, ref)
    with pytest.raises(ValueError, match="FD_infinity needs"):
        frechet_infinity(gen[:10], ref)
