import math

import numpy as np
import pytest
import torch

from gankit.metrics import parzen


def test_one_sample_one_point_closed_form():
    mu, x, s = np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 1.0, 0.0]]), 0.7
    expected = -5.0 / (2 * s**2) - 3 * math.log(s * math.sqrt(2 * math.pi))
    assert parzen.log_likelihood(mu, x, s)[0] == pytest.approx(expected, rel=1e-12)


def test_matches_scipy_gaussian_mixture_density():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    mu, x, s = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)), 0.9
    dens = np.mean([multivariate_normal(m, s**2 * np.eye(3)).pdf(x) for m in mu], axis=0)
    assert np.allclose(parzen.log_likelihood(mu, x, s), np.log(dens), rtol=1e-10)


def test_agrees_with_brute_force_across_chunks():
    rng = np.random.default_rng(1)
    mu, x = rng.random((300, 50)), rng.random((123, 50))
    for s in (0.1, 0.3, 1.0):
        ref = parzen.brute_force_log_likelihood(mu, x, s)
        got = parzen.log_likelihood(mu, x, s, max_bytes=8 * 2 * 300 * 10)  # chunks of 10 points
        assert np.allclose(got, ref, rtol=1e-9, atol=0)


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(2)
    mu, x = rng.random((40, 8)).astype(np.float32), rng.random((9, 8)).astype(np.float32)
    a = parzen.log_likelihood(mu, x, 0.2)
    b = parzen.log_likelihood(torch.from_numpy(mu), torch.from_numpy(x), 0.2)
    assert a.dtype == np.float64 and np.array_equal(a, b)


def test_select_sigma_picks_the_known_best():
    """Validation data drawn from N(0, s0^2 I) with one kernel at 0: the best width is s0 exactly
    (the mean log-likelihood -d log s - E||x||^2 / 2s^2 peaks at s^2 = E||x||^2 / d)."""
    rng = np.random.default_rng(3)
    d = 20
    x = rng.normal(size=(20_000, d)) * 0.3
    x *= 0.3 * math.sqrt(d) / np.sqrt((x**2).sum(1).mean())  # make E||x||^2 = d * 0.09 exactly
    sigmas = [0.1, 0.2, 0.3, 0.4, 0.5]
    best, scores = parzen.select_sigma(np.zeros((1, d)), x, sigmas)
    assert best == 0.3 and int(np.argmax(scores)) == 2


def test_protocol_result():
    rng = np.random.default_rng(4)
    mu, va, te = rng.random((50, 4)), rng.random((20, 4)), rng.random((30, 4))
    r = parzen.parzen_protocol(mu, va, te, sigmas=[0.1, 0.2, 0.5])
    ll = parzen.log_likelihood(mu, te, r["sigma"])
    assert r["mean"] == pytest.approx(ll.mean()) and r["stderr"] == pytest.approx(ll.std(ddof=0) / math.sqrt(30))
    assert (r["n_samples"], r["n_valid"], r["n_test"]) == (50, 20, 30)
    assert r["sigma"] in r["sigmas"] and len(r["valid_scores"]) == 3


@pytest.mark.parametrize("mu,x,sigma,fragment", [
    (np.zeros((5, 3)), np.zeros((2, 4)), 0.1, "dimension mismatch"),
    (np.zeros((5, 3)), np.zeros((2, 3)), 0.0, "sigma must be > 0"),
    (np.zeros((5, 3)), np.zeros((2, 3)), -1.0, "sigma must be > 0"),
    (np.zeros((0, 3)), np.zeros((2, 3)), 0.1, "samples is empty"),
    (np.zeros((5, 3)), np.zeros((0, 3)), 0.1, "x is empty"),
    (np.zeros((5, 3, 1)), np.zeros((2, 3)), 0.1, "2-D"),
    (np.full((5, 3), np.nan), np.zeros((2, 3)), 0.1, "NaN"),
])
def test_bad_inputs(mu, x, sigma, fragment):
    with pytest.raises(ValueError, match=fragment):
        parzen.log_likelihood(mu, x, sigma)


def test_sigma_grid_default_is_the_papers():
    assert np.allclose(parzen.DEFAULT_SIGMAS, np.logspace(-1, 0, 10))


def test_float32_product_with_exact_refinement_equals_brute_force():
    """Clustered data: few pairs carry each point's mass, so few pairs are recomputed in float64."""
    rng = np.random.default_rng(5)
    centres = rng.random((40, 64)) * 4
    mu = centres[rng.integers(0, 40, 4000)] + 0.05 * rng.normal(size=(4000, 64))
    x = centres[rng.integers(0, 40, 640)] + 0.05 * rng.normal(size=(640, 64))
    dist = parzen._Distances(torch.tensor(mu), parzen.MAX_BYTES)
    dist.log_sum_exp(torch.tensor(x), 0.1)
    # the float32 path, refined in part: rows are grouped by cluster, so a block needs a few clusters' samples
    assert 0 < dist.exact_pairs < 0.25 * dist.pairs
    for s in (0.05, 0.1, 0.2):
        ref = parzen.brute_force_log_likelihood(mu, x, s)
        assert np.allclose(parzen.log_likelihood(mu, x, s), ref, rtol=1e-10, atol=1e-9)
    # far from every sample: still exact (the nearest pairs are refined, the rest is below resolution)
    far = x + 3.0
    assert np.allclose(parzen.log_likelihood(mu, far, 0.1), parzen.brute_force_log_likelihood(mu, far, 0.1),
                       rtol=1e-10)


def sparse_inputs(n, rng):
    """784-d vectors in [0, 1], each entry nonzero with probability 0.3, nonzero values u^3: many samples lie
    at nearly the same distance from a point, so many pairs matter (the hard case for the refinement)."""
    return (rng.random((n, 784)) < 0.3) * rng.random((n, 784)) ** 3


def test_sparse_data_equals_brute_force_with_partial_refinement():
    rng = np.random.default_rng(6)
    mu, x = sparse_inputs(3000, rng).astype(np.float32), sparse_inputs(130, rng).astype(np.float32)
    for s, most in ((0.2, 0.2), (0.278, 0.6), (0.5, 1.0)):  # small sigma: few pairs refined; large: nearly all
        dist = parzen._Distances(torch.tensor(mu), parzen.MAX_BYTES)
        got = dist.log_sum_exp(torch.tensor(x, dtype=torch.float64), s)
        assert dist.exact_pairs <= most * dist.pairs
        got = got.numpy() - math.log(len(mu)) - 784 * math.log(s * math.sqrt(2 * math.pi))
        ref = parzen.brute_force_log_likelihood(mu, x, s)
        assert np.allclose(got, ref, rtol=1e-10, atol=1e-9)
        assert np.allclose(parzen.log_likelihood(mu, x, s, max_bytes=8 * 2 * 3000 * 50), ref, rtol=1e-10, atol=1e-9)
    # the sigma search (float64 products, every sigma from one block) agrees with the one-sigma path
    scores = parzen.log_likelihoods(mu, x, [0.2, 0.278, 0.5])
    for row, s in zip(scores, (0.2, 0.278, 0.5)):
        assert np.allclose(row, parzen.brute_force_log_likelihood(mu, x, s), rtol=1e-10, atol=1e-9)


def test_all_samples_refined_counts_no_float32_weight_twice_and_leaves_samples_alone():
    """Few samples, most near the point: the block refines every sample in float64, so the float32 weights it
    had set aside (here ~e^-17 each, far above the 1e-10 tolerance) must not be added again; and the caller's
    float64 samples (shared with torch, not copied) come back unchanged."""
    rng = np.random.default_rng(8)
    d, s = 2, 1.0
    x = np.zeros((1, d))
    for k in (17.0, 20.0):  # the far samples' distance, in nats below the top
        dirs = rng.normal(size=(4, d))
        mu = np.concatenate([0.01 * rng.normal(size=(6, d)), dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
                             * math.sqrt(2 * k) * s])
        before = mu.copy()
        dist = parzen._Distances(torch.as_tensor(mu), parzen.MAX_BYTES)
        got = dist.log_sum_exp(torch.tensor(x), s).numpy() - math.log(len(mu)) - d * math.log(s * math.sqrt(2 * math.pi))
        assert dist.exact_pairs == dist.pairs  # every pair refined
        ref = parzen.brute_force_log_likelihood(mu, x, s)
        assert np.allclose(got, ref, rtol=1e-12, atol=0)
        assert np.allclose(parzen.log_likelihood(mu, x, s), ref, rtol=1e-12, atol=0)
        assert np.array_equal(mu, before)


def test_float32_samples_far_from_the_origin_equal_brute_force():
    """Centring (on the samples' float32 mean) keeps the float32 screening tight and the float64 refinement
    exact when the data sit far from 0."""
    rng = np.random.default_rng(9)
    centres = 100.0 + rng.random((20, 32))
    mu = (centres[rng.integers(0, 20, 2000)] + 0.05 * rng.normal(size=(2000, 32))).astype(np.float32)
    x = (centres[rng.integers(0, 20, 150)] + 0.05 * rng.normal(size=(150, 32))).astype(np.float32)
    for s in (0.05, 0.2):
        ref = parzen.brute_force_log_likelihood(mu, x, s)
        assert np.allclose(parzen.log_likelihood(mu, x, s), ref, rtol=1e-10, atol=1e-9)
        # bfloat16 samples (a bf16 generator's output) are widened exactly, where needed
        mu16 = torch.from_numpy(mu).bfloat16()
        assert np.allclose(parzen.log_likelihood(mu16, x, s),
                           parzen.brute_force_log_likelihood(mu16.double().numpy(), x, s), rtol=1e-10, atol=1e-9)


def test_cut_moves_to_the_safe_one_where_the_tail_at_the_attempted_cut_is_too_large():
    """One sample at the point and a shell of others, each k nats below it. 2000 at k = 18-20 leave too large a
    float32 tail at the attempted cut (TRY_NATS above the safe one): the row falls back to the safe cut and the
    whole shell is refined; 3 of them leave a small enough tail, and 2000 at k = 30 lie below the safe cut,
    so only the top is. Either way log p is within EXACTNESS_NATS of the float64 sum (kept float32 shell at
    k = 18: 2.6e-11 off)."""
    d, s = 64, 0.5
    rng = np.random.default_rng(10)
    for n_shell, k, refined in ((2000, 20.0, 2001), (2000, 18.0, 2001), (3, 20.0, 1), (2000, 30.0, 1)):
        dirs = rng.normal(size=(n_shell, d))
        shell = dirs / np.linalg.norm(dirs, axis=1, keepdims=True) * s * math.sqrt(2 * k)
        mu, x = np.concatenate([np.zeros((1, d)), shell]).astype(np.float32), np.zeros((1, d))
        dist = parzen._Distances(torch.tensor(mu), parzen.MAX_BYTES)
        got = dist.log_sum_exp(torch.tensor(x), s).numpy() - math.log(len(mu)) - d * math.log(s * math.sqrt(2 * math.pi))
        assert dist.exact_pairs == refined, (n_shell, k)
        assert abs(got[0] - parzen.brute_force_log_likelihood(mu, x, s)[0]) <= parzen.EXACTNESS_NATS
