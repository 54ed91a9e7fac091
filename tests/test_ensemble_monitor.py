"""Seed ensembles with the validation monitor and TensorBoard: every member's monitored value (the plain monitor's on
that member's networks) and their mean in metrics.jsonl, checkpoints/best.pt at the best mean, each member's own
best in summary.json; TensorBoard tags naming the member."""

import json
import math

import numpy as np
import pytest
import torch

from gankit import checkpoint, ensemble, monitor, rundir
from gankit.cli import main
from gankit.sampling import load_run
from gankit.train import fit

from conftest import StubState, tiny

# lr 5e-3 on ring8: within 60 steps the members' mode scores differ, and each peaks at its own step
MONITORED = dict(seeds=3, steps=60, lr=5e-3, hidden=32, monitor="modes", monitor_every=10)
KEYS = [f"valid_modes:member{e}" for e in range(3)]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    run = tmp_path_factory.mktemp("ens") / "run"
    gan, summary = fit(tiny(**MONITORED), run, progress=False)
    return run, gan, summary


def test_an_ensemble_takes_the_monitor_and_tensorboard():
    from gankit import config as C

    cfg = C.from_dict({"seeds": 2, "monitor": "modes", "tensorboard": True})
    assert ensemble.unsupported(cfg) is None and cfg.monitor == "modes"


def _best(rows, key):
    """The first row with the highest value of key."""
    at = [r for r in rows if key in r]
    return max(at, key=lambda r: (r[key], -r["step"]))


def test_each_member_and_the_mean_are_logged(monitored):
    run, gan, _ = monitored
    rows = [r for r in rundir.read_metrics(run) if "valid_modes" in r]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    for r in rows:
        assert r["valid_modes"] == pytest.approx(sum(r[k] for k in KEYS) / 3, abs=1e-4)
    assert any(len({r[k] for k in KEYS}) > 1 for r in rows)  # the members are not one member repeated
    # member e's last value is the plain monitor's on member e's networks (a plain GAN)
    for e, key in enumerate(KEYS):
        assert rows[-1][key] == pytest.approx(monitor.build("modes", ensemble.member(gan, e)).value(), abs=1e-4)


def test_best_checkpoint_is_at_the_best_mean_and_each_members_best_is_in_the_summary(monitored):
    run, _, summary = monitored
    rows = rundir.read_metrics(run)
    best = _best(rows, "valid_modes")
    assert summary["best"]["step"] == best["step"] and summary["best"]["metric"] == "valid_modes"
    assert math.isclose(summary["best"]["value"], best["valid_modes"], abs_tol=1e-4)
    saved = checkpoint.load(run / "checkpoints" / "best.pt")
    assert saved["step"] == best["step"] and saved["monitor"] == summary["best"]
    # the stacked best.pt holds every member at that step: each scores what the row logged
    for e, key in enumerate(KEYS):
        one = load_run(run, "cpu", checkpoint="best", member=e)
        assert one.step == best["step"]
        assert monitor.build("modes", one).value() == pytest.approx(best[key], abs=1e-4)
    mine = [_best(rows, key) for key in KEYS]
    assert len({m["step"] for m in mine}) > 1  # (the members peak at different steps here)
    for e, (row, m) in enumerate(zip(summary["members"], mine)):
        assert row["best"] == {"metric": "valid_modes", "value": m[KEYS[e]], "step": m["step"], "epoch": m["epoch"]}
    assert json.loads((run / "summary.json").read_text())["members"][2]["best"] == summary["members"][2]["best"]


def test_a_resumed_ensemble_keeps_each_members_best_so_far(monitored, tmp_path):
    """30 steps, then a resume to 60: the same rows, best.pt and members' bests as straight through (the members'
    bests so far come back from metrics.jsonl)."""
    from gankit import config as C

    straight, _, want = monitored
    run = tmp_path / "run"
    fit(tiny(**{**MONITORED, "steps": 30}), run, progress=False)
    _, summary = fit(C.settle({"steps": 60}, base=C.load(run / "config.toml")), run, resume=True, progress=False)
    assert rundir.read_metrics(run)[-1]["valid_modes"] == rundir.read_metrics(straight)[-1]["valid_modes"]
    assert summary["best"] == want["best"]
    assert [r["best"] for r in summary["members"]] == [r["best"] for r in want["members"]]
    assert any(r["best"]["step"] <= 30 for r in summary["members"])  # a best from before the resume


def test_the_loss_plot_draws_the_members_on_their_means_axis(monitored, monkeypatch):
    import matplotlib.pyplot as plt

    from gankit.plots import plot_losses

    run, _, _ = monitored
    shapes, subplots = [], plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: shapes.append(a) or subplots(*a, **k))
    plot_losses(rundir.read_metrics(run), run / "again.png")
    assert shapes == [(1, 3)]  # losses, D's outputs, valid_modes (with its members): not one axis per member


class _Values:
    """An ensemble monitor of 2 members whose values are given in advance (lower is better, as FD)."""

    name, members = "valid_x", 2

    def __init__(self, values):
        it = iter(values)
        self.values, self.better = lambda: next(it), monitor.Monitor("valid_x", None, higher=False).better


def test_lower_is_better_for_the_mean_and_for_each_member(tmp_path):
    values = [[3.0, 1.0], [2.0, 4.0], [0.5, 5.0], [1.0, float("nan")]]  # means 2, 3, 2.75, nan
    v = ensemble.Validation(tmp_path, _Values(values), 1, None, {"format": 2}, epoch_at=lambda step: step / 10)
    rows = [v(StubState(step)) for step in range(1, 5)]
    assert rows[1] == {"valid_x": 3.0, "valid_x:member0": 2.0, "valid_x:member1": 4.0}
    assert (v.best["value"], v.best["step"]) == (2.0, 1)
    assert checkpoint.load(tmp_path / "checkpoints" / "best.pt")["step"] == 1
    assert [(b["value"], b["step"], b["epoch"]) for b in v.members_best] == [(0.5, 3, 0.3), (1.0, 1, 0.1)]


def events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_tensorboard_tags_name_each_member(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install gankit[tensorboard])")
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--tensorboard", "--seeds", "3", "--seed", "4", "--steps", "20",
                 "--hidden", "16", "--layers", "2", "--batch-size", "32", "--log-every", "5", "--sample-every", "10",
                 "--monitor", "parzen", "--monitor-every", "10", "--checkpoint-every", "1000", "--no-progress"]) == 0
    acc, rows = events(run), rundir.read_metrics(run)
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "valid_parzen", *[f"valid_parzen:member{e}" for e in range(3)]):
        got = acc.Scalars(f"train/{key.replace(':', '/')}")  # a member's: train/valid_parzen/member1
        at = [r for r in rows if key in r]
        assert [e.step for e in got] == [r["step"] for r in at] and len(at) >= 2, key
        np.testing.assert_allclose([e.value for e in got], [r[key] for r in at], rtol=1e-6, err_msg=key)
    assert len({acc.Scalars(f"train/valid_parzen/member{e}")[-1].value for e in range(3)}) == 3
    summary = json.loads((run / "summary.json").read_text())
    for e, row in enumerate(summary["members"]):
        assert acc.Scalars(f"summary/modes.modes_covered/member{e}")[-1].value == row["modes"]["modes_covered"]
        assert acc.Scalars(f"summary/best.value/member{e}")[-1].value == pytest.approx(row["best"]["value"])
        assert acc.Scalars(f"summary/seed/member{e}")[-1].value == 4 + e
    assert acc.Scalars("summary/ensemble.modes.modes_covered.mean")[-1].value == pytest.approx(
        summary["ensemble"]["modes"]["modes_covered"]["mean"])
    # the picture of the members side by side; D's histograms per member, on the real samples of its plain run
    assert [e.step for e in acc.Images("samples")] == [10, 20]
    assert {f"D/{n}/member{e}" for n in ("real", "generated") for e in range(3)} == set(acc.Tags()["histograms"])
    from gankit.gan import eval_mode
    from gankit.tensorboard import real_subset

    for e in range(3):
        one = load_run(run, "cpu", member=e)
        with torch.no_grad(), eval_mode(one.D):
            want = torch.sigmoid(one.D(real_subset(one.data.x, 4 + e)).reshape(-1)).double()
        h = acc.Histograms(f"D/real/member{e}")[-1].histogram_value
        np.testing.assert_allclose([h.num, h.min, h.max, h.sum], [len(want), want.min(), want.max(), want.sum()],
                                   rtol=1e-5)


def test_a_sweep_monitors_every_value_s_member(tmp_path):
    """--sweep with --monitor: one value per member (here the two learning rates), their mean, best.pt written."""
    run = tmp_path / "run"
    gan, summary = fit(tiny(**{**MONITORED, "seeds": 1, "sweep": "lr=5e-3,2e-2"}), run, progress=False)
    rows = [r for r in rundir.read_metrics(run) if "valid_modes" in r]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert any(r["valid_modes:member0"] != r["valid_modes:member1"] for r in rows)  # two values, two trainings
    last = rows[-1]
    assert last["valid_modes"] == pytest.approx((last["valid_modes:member0"] + last["valid_modes:member1"]) / 2,
                                                abs=1e-4)
    for e in range(2):
        assert last[f"valid_modes:member{e}"] == pytest.approx(
            monitor.build("modes", ensemble.member(gan, e)).value(), abs=1e-4)
    assert (run / "checkpoints" / "best.pt").exists() and summary["best"]["metric"] == "valid_modes"
