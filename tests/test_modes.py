import math

import numpy as np
import torch
import pytest

from gankit.data.toy import toy_modes
from gankit.metrics.modes import mode_metrics


def test_perfect_samples_cover_all_modes():
    modes, std = toy_modes("grid25")
    samples = np.repeat(modes.numpy(), 100, axis=0)
    r = mode_metrics(samples, modes, std)
    assert r["modes_covered"] == 25 and r["high_quality_fraction"] == 1.0
    assert r["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_collapse_to_one_mode():
    modes, std = toy_modes("ring8")
    samples = np.tile(modes[:1].numpy(), (1000, 1)) + 0.5 * std
    r = mode_metrics(samples, modes, std)
    assert r["modes_covered"] == 1
    assert r["kl_to_uniform"] == pytest.approx(math.log(8))


def test_threshold_and_min_count():
    modes, std = toy_modes("ring8")
    good = np.repeat(modes.numpy()[:2], [19, 20], axis=0)  # 19 on mode 0 (not covered), 20 on mode 1
    far = np.zeros((61, 2))  # the origin is 2 away from every mode: low quality
    r = mode_metrics(np.concatenate([good, far]), modes, std)
    assert r["modes_covered"] == 1
    assert r["high_quality_fraction"] == pytest.approx(39 / 100)
    # just inside the 3-sigma radius counts; just beyond does not
    inside = modes.numpy()[:1] + np.array([[2.999 * std, 0.0]])
    assert mode_metrics(inside, modes, std)["high_quality_fraction"] == 1.0
    outside = modes.numpy()[:1] + np.array([[3.001 * std, 0.0]])
    assert mode_metrics(outside, modes, std)["high_quality_fraction"] == 0.0


def test_bad_shapes():
    modes, std = toy_modes("ring8")
    with pytest.raises(ValueError, match="samples"):
        mode_metrics(np.zeros((5, 3)), modes, std)
    with pytest.raises(ValueError):
        mode_metrics(np.zeros((0, 2)), modes, std)


def test_tracked_jsd_and_w1_against_closed_forms():
    """Equal-weight, well-separated modes: p_g on 4 of ring8's 8 modes has JSD 3/4 log(4/3) = 0.2158 nats;
    on one mode 0.4970; far away log 2. W1 to a far point mass is the distance."""
    import math

    from gankit.data.toy import sample_mixture, toy_modes
    from gankit.metrics.divergence import Divergences

    modes, std = toy_modes("ring8")
    track = Divergences(modes, std)
    g = torch.Generator().manual_seed(3)
    assert track(sample_mixture(modes, std, 500, g))["jsd"] < 0.02
    half = 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2)) + 0.5 * math.log(4 / 3)  # KL(p||m)/2 + KL(q||m)/2
    assert track(sample_mixture(modes[:4], std, 500, g))["jsd"] == pytest.approx(half, abs=0.02)
    one = 0.5 * ((1 / 8) * math.log(2 / 9) + (7 / 8) * math.log(2)) + 0.5 * math.log(16 / 9)
    assert track(sample_mixture(modes[:1], std, 500, g))["jsd"] == pytest.approx(one, abs=0.02)
    far = track(torch.zeros(500, 2) + torch.tensor([100.0, 0.0]))
    assert far["jsd"] == pytest.approx(math.log(2)) and far["w1"] == pytest.approx(100.0, rel=0.03)


def test_the_toys_log_their_divergences_at_every_row(tmp_path):
    import math

    from gankit import config as C, rundir
    from gankit.train import fit

    fit(C.from_dict({"hidden": 16, "layers": 2, "steps": 10, "log_every": 5, "sample_every": 10**6}), tmp_path / "r",
        progress=False)
    rows = rundir.read_metrics(tmp_path / "r")
    assert len(rows) == 2 and all(0 <= r["jsd"] <= math.log(2) and r["w1"] > 0 for r in rows)
