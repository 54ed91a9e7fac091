import numpy as np
import pytest
import scipy.linalg
import torch

from gankit.metrics.frechet import frechet_distance
from gankit.metrics.kid import kernel_distance, mmd2_unbiased
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
