"""The truncation trick: G's z drawn from p_z restricted to [-t, t] per coordinate, for sampling and evaluation."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from gankit import rundir
from gankit.cli import main
from gankit.noise import sample_noise

TINY = ["--steps", "10", "--hidden", "16", "--layers", "2", "--batch-size", "32", "--log-every", "5",
        "--no-progress"]


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_truncated_normal_is_the_normal_conditioned_on_the_interval():
    t = 1.0
    z = sample_noise(50_000, 4, "normal", generator=_g(), truncation=t)
    assert z.dtype == torch.float32 and z.shape == (50_000, 4)
    z = z.double()
    assert z.abs().max() <= t and z.abs().max() > 0.999  # reaches the edges
    # Var[z | |z| <= t] = 1 - 2 t phi(t) / (2 Phi(t) - 1): 0.291 at t = 1 (clipping N(0, 1) instead would give 0.60)
    phi, mass = math.exp(-t * t / 2) / math.sqrt(2 * math.pi), math.erf(t / math.sqrt(2))
    assert z.var().item() == pytest.approx(1 - 2 * t * phi / mass, abs=0.005)
    assert stats.kstest(z.flatten()[:20_000].numpy(), stats.truncnorm(-t, t).cdf).pvalue > 1e-3


def test_truncated_uniform_and_a_truncation_wider_than_the_prior():
    z = sample_noise(20_000, 3, "uniform", generator=_g(1), truncation=1.0)
    assert z.abs().max() <= 1.0 and z.abs().max() > 0.999
    assert stats.kstest(z.flatten()[:20_000].numpy(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    wide = sample_noise(20_000, 3, "uniform", generator=_g(1), truncation=5.0)  # U(-sqrt 3, sqrt 3) itself
    assert math.sqrt(3) - 1e-3 < wide.abs().max() <= math.sqrt(3)
    far = sample_noise(50_000, 2, "normal", generator=_g(2), truncation=50.0)  # N(0, 1) itself, never infinite
    assert torch.isfinite(far).all() and far.var().item() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_truncation_must_be_a_positive_number(t):
    with pytest.raises(ValueError, match="truncation must be a positive number"):
        sample_noise(3, 2, "normal", truncation=t)


def test_sample_and_eval_draw_from_the_truncated_prior(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    assert main(["sample", str(run), "--n", "400", "--out", str(tmp_path / "a.npy")]) == 0
    assert main(["sample", str(run), "--n", "400", "--truncation", "0.01", "--out", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert b.std(0).max() < 0.05 * a.std(0).min()  # z within 0.01 of 0: every sample is nearly G(0)

    capsys.readouterr()
    for flags in ([], ["--truncation", "0.01"]):
        assert main(["eval", str(run), "--metric", "parzen", "--n-samples", "500", "--json", *flags]) == 0
    out = capsys.readouterr().out
    plain, cut = (json.loads(s) for s in out.replace("}\n{", "}\n\n{").split("\n\n"))
    assert cut["truncation"] == 0.01 and "truncation" not in plain
    assert cut["protocol"] == plain["protocol"] + "_trunc0.01" and cut["mean"] != plain["mean"]
    record = rundir.read_json(run, "eval.json")
    assert record["parzen"] == plain and record["parzen@truncation=0.01"] == cut  # kept apart

    capsys.readouterr()
    assert main(["sample", str(run), "--truncation", "0", "--out", str(tmp_path / "c.npy")]) == 2
    assert "truncation must be a positive number" in capsys.readouterr().err
    assert main(["eval", str(run), "--metric", "ssl-error", "--truncation", "1"]) == 2
    assert "draws no samples to truncate" in capsys.readouterr().err
