"""The validation monitor: its values in metrics.jsonl at its cadence, checkpoints/best.pt kept for the best one,
resume continuing the best so far, and clear errors where the data cannot serve it."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit import checkpoint, config as C, monitor, rundir
from gankit.errors import ConfigError
from gankit.rundir import RunDirError
from gankit.hooks import Validation
from gankit.sampling import load_run
from gankit.train import fit, train
from conftest import StubState

TINY = dict(hidden=16, layers=2, batch_size=64, log_every=7, sample_every=10**6, checkpoint_every=10**6)


def test_monitor_values_at_each_epoch_end_and_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    # 640 training points at m = 64: an epoch is 10 steps; the log writes every 7
    gan, summary = fit(C.from_dict({**TINY, "subset": 640, "steps": 45, "monitor": "modes"}), run, progress=False)
    rows = rundir.read_metrics(run)
    at = [r["step"] for r in rows if "valid_modes" in r]
    assert at == [10, 20, 30, 40, 45]  # epoch ends, and the end
    assert [r["step"] for r in rows if "valid_modes" not in r] == [7, 14, 21, 28, 35, 42]
    values = {r["step"]: r["valid_modes"] for r in rows if "valid_modes" in r}
    best_step = max(values, key=lambda s: (values[s], -s))
    assert summary["best"]["step"] == best_step and math.isclose(summary["best"]["value"], values[best_step], abs_tol=1e-4)
    saved = checkpoint.load(run / "checkpoints" / "best.pt")
    assert saved["step"] == best_step and saved["monitor"]["metric"] == "valid_modes"
    best = load_run(run, checkpoint="best")
    assert best.step == best_step
    # the saved value is the monitor's value of the saved weights
    assert math.isclose(monitor.build("modes", best).value(), saved["monitor"]["value"], rel_tol=1e-6)


def test_monitor_every_n_steps_and_off(tmp_path):
    train(C.from_dict({**TINY, "steps": 30, "monitor": "parzen", "monitor_every": 10}), tmp_path / "a", progress=False)
    assert [r["step"] for r in rundir.read_metrics(tmp_path / "a") if "valid_parzen" in r] == [10, 20, 30]
    train(C.from_dict({**TINY, "steps": 30}), tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / "checkpoints" / "best.pt").exists()
    assert not any(k.startswith("valid_") for r in rundir.read_metrics(tmp_path / "b") for k in r)
    with pytest.raises(RunDirError, match="no best checkpoint"):
        load_run(tmp_path / "b", checkpoint="best")


class _Seq:
    """A monitor whose values are given in advance."""

    def __init__(self, values, higher=True):
        self.values, self.m = iter(values), None
        self.m = monitor.Monitor("valid_x", lambda: next(self.values), higher)


@pytest.mark.parametrize("higher,values,best", [(True, [1.0, 3.0, 2.0, float("nan")], (3.0, 2)),
                                                (False, [1.0, 3.0, 0.5, 0.7], (0.5, 3))])
def test_best_checkpoint_follows_the_better_direction(tmp_path, higher, values, best):
    v = Validation(tmp_path, _Seq(values, higher).m, 1, None, {"format": 2})
    for step in range(1, len(values) + 1):
        v(StubState(step))
        assert checkpoint.load(tmp_path / "checkpoints" / "best.pt")["step"] == v.best["step"]
    assert (v.best["value"], v.best["step"]) == best
    again = Validation(tmp_path, _Seq([], higher).m, 1, None, {})  # a resumed run starts from the saved best
    assert again.best == v.best


def test_resume_keeps_the_best_so_far(tmp_path):
    run = tmp_path / "run"
    train(C.from_dict({**TINY, "steps": 40, "monitor": "modes", "monitor_every": 20}), run, progress=False)
    first = checkpoint.load(run / "checkpoints" / "best.pt")["monitor"]
    cfg = C.settle({"steps": 60}, base=C.load(run / "config.toml"))
    _, summary = fit(cfg, run, resume=True, progress=False)
    values = {r["step"]: r["valid_modes"] for r in rundir.read_metrics(run) if "valid_modes" in r}
    assert list(values) == [20, 40, 60]
    assert math.isclose(values[first["step"]], first["value"], abs_tol=1e-4)  # the first part's best, kept
    best_step = max(values, key=lambda s: (values[s], -s))
    assert summary["best"]["step"] == best_step
    assert checkpoint.load(run / "checkpoints" / "best.pt")["step"] == best_step


def test_parzen_monitor_is_the_protocols_sigma_selection_score(tmp_path):
    from gankit.metrics.parzen import brute_force_log_likelihood

    gan, _ = fit(C.from_dict({**TINY, "steps": 5}), tmp_path / "run", progress=False)
    m = monitor.parzen(gan, n_samples=300)
    z = monitor._fixed_z(gan, 300)
    samples, valid = gan.sample(300, z).cpu(), monitor._held_out(gan)
    expected = max(brute_force_log_likelihood(samples, valid, s).mean() for s in np.logspace(-2, 0, 10))
    assert math.isclose(m.value(), expected, rel_tol=1e-9)
    assert m.value() == m.value()  # the same fixed z each time


def test_parzen_monitor_on_a_toy_recovers_the_true_log_likelihood_from_true_samples(tmp_path, monkeypatch):
    """The toy sigma grid reaches down to the modes' width: samples of p_data itself score close to the held-out
    points' true mean log-density (a grid like the images', sigma >= 0.1, would miss it by about 2 nats on ring8)."""
    from gankit.data.toy import mixture_log_density, sample_mixture

    gan, _ = fit(C.from_dict({**TINY, "steps": 2}), tmp_path / "run", progress=False)
    modes, std = gan.spec.modes, gan.spec.mode_std
    monkeypatch.setattr(gan, "sample", lambda n, z=None: sample_mixture(modes, std, n, torch.Generator().manual_seed(1)))
    truth = mixture_log_density(monitor._held_out(gan), modes, std).mean().item()
    assert monitor.parzen(gan, n_samples=10_000).value() == pytest.approx(truth, abs=0.25)


@pytest.mark.parametrize("values,match", [({"monitor": "fd"}, "'fd' is for image"),
                                          ({"monitor": "parzen", "monitor_every": -1}, "monitor_every"),
                                          ({"monitor": "loss"}, "unknown value 'loss'")])
def test_monitor_config_errors(values, match):
    with pytest.raises(ConfigError, match=match):
        C.from_dict(values)


def test_monitor_refuses_training_on_the_validation_split(tmp_path):
    cfg = C.settle({"dataset": "mnist", "split": "trainval", "monitor": "parzen", "steps": 1})
    gan = type("G", (), {"cfg": cfg, "spec": type("S", (), {"kind": "image"})()})()
    with pytest.raises(ConfigError, match="split 'train'"):
        monitor._held_out(gan)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not installed")
def test_fd_monitor_on_fashion_mnist(tmp_path):
    cfg = C.settle({"dataset": "fashion-mnist", "data_dir": "/usr/share/datasets/fashion-mnist", "steps": 4,
                    "batch_size": 16, "monitor": "fd", "monitor_every": 2, "log_every": 2, "hidden": 32,
                    "checkpoint_every": 10**6})
    gan, summary = fit(cfg, tmp_path / "run", progress=False)
    values = [r["valid_fd"] for r in rundir.read_metrics(tmp_path / "run") if "valid_fd" in r]
    assert len(values) == 2 and all(v > 0 for v in values)
    assert summary["best"]["value"] == pytest.approx(min(values), abs=1e-4)
