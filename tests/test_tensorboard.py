"""--tensorboard: the event files hold every logged value (as metrics.jsonl has it), each sample picture and
histograms of D's outputs; off by default; a missing package is one clear line before anything is written."""

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gankit import rundir
from gankit.cli import main

TINY = ["--dataset", "ring8", "--steps", "40", "--hidden", "16", "--layers", "1", "--batch-size", "32",
        "--log-every", "10", "--sample-every", "20", "--checkpoint-every", "1000", "--no-progress"]


def events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install gankit[tensorboard])")
    run = tmp_path_factory.mktemp("tb") / "run"
    assert main(["train", "--out", str(run), "--tensorboard", *TINY]) == 0
    return run


def test_scalars_are_the_logged_rows(tb_run):
    acc, rows = events(tb_run), rundir.read_metrics(tb_run)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    tags = acc.Tags()["scalars"]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "value", "jsd", "w1"):  # losses, D outputs, V, metrics
        got = acc.Scalars(f"train/{key}")
        assert [e.step for e in got] == [r["step"] for r in rows], key
        np.testing.assert_allclose([e.value for e in got], [r[key] for r in rows], rtol=1e-6, err_msg=key)
    assert "train/seconds" not in tags and "train/step" not in tags
    summary = json.loads((tb_run / "summary.json").read_text())
    (covered,) = acc.Scalars("summary/modes.modes_covered")
    assert (covered.step, covered.value) == (40, summary["modes"]["modes_covered"])


def test_each_picture_is_an_image_with_d_histograms(tb_run):
    acc = events(tb_run)
    assert acc.Tags()["images"] == ["samples"]
    imgs = acc.Images("samples")
    assert [e.step for e in imgs] == [20, 40]  # every --sample-every steps and at the end
    with Image.open(tb_run / "samples" / "step-00000040.png") as png:
        assert (imgs[-1].width, imgs[-1].height) == png.size
    for name in ("D/real", "D/generated"):
        hists = acc.Histograms(name)
        assert [h.step for h in hists] == [20, 40]
        h = hists[-1].histogram_value
        assert h.num == 1000 and 0 <= h.min <= h.max <= 1  # the logistic game: D as a probability
    assert_real_histogram_is_d_of_the_data(tb_run, acc, torch.sigmoid)


def assert_real_histogram_is_d_of_the_data(run, acc, squash):
    """The last D/real histogram summarises squash(D(x)) of the fixed real subset, by the final checkpoint's D."""
    from gankit.gan import eval_mode
    from gankit.sampling import load_run
    from gankit.tensorboard import real_subset

    gan = load_run(run, "cpu")
    with torch.no_grad(), eval_mode(gan.D):
        want = squash(gan.D(real_subset(gan.data.x, gan.cfg.seed)).reshape(-1)).double()
    h = acc.Histograms("D/real")[-1].histogram_value
    assert h.num == len(want) == 1000
    np.testing.assert_allclose([h.min, h.max, h.sum], [want.min(), want.max(), want.sum()], rtol=1e-5)


def test_off_by_default_writes_no_events(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    assert not (run / "tensorboard").exists()
    assert rundir.read_config(run).tensorboard is False


def test_missing_package_is_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--tensorboard", *TINY]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("gankit: run directory")]
    assert len(err) == 1 and "pip install 'gankit[tensorboard]'" in err[0] and err[0].startswith("gankit: error:")
    assert not run.exists()


def test_critic_histograms_are_raw_outputs(tmp_path):
    """Other games log D's raw outputs (not squashed into [0, 1]), as metrics.jsonl's critic_real does."""
    pytest.importorskip("tensorboard", reason="tensorboard not installed")
    run = tmp_path / "run"
    torch.manual_seed(0)
    assert main(["train", "--out", str(run), "--tensorboard", "--objective", "wgan-clip", "--clip", "1",
                 *TINY]) == 0
    acc = events(run)
    assert "train/critic_real" in acc.Tags()["scalars"] and "train/d_real" not in acc.Tags()["scalars"]
    assert_real_histogram_is_d_of_the_data(run, acc, lambda t: t)


def test_a_run_saved_before_the_flag_existed_still_loads(tmp_path):
    """config.toml without `tensorboard` (an exec key): it takes its default; a key defining the run may not be
    missing."""
    from gankit import config as C

    path = tmp_path / "config.toml"
    text = C.dumps(C.from_dict({"lr": 3e-4}))
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("tensorboard")))
    cfg = C.load_complete(path)
    assert cfg.tensorboard is False and cfg.lr == 3e-4
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("lr =")))
    with pytest.raises(C.ConfigError, match="missing config keys lr"):
        C.load_complete(path)


def test_a_conditional_run_histograms_d_of_x_and_its_class(tmp_path):
    """A conditional D is judged on (x, c): the real samples with their labels, G's samples of those classes."""
    pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install gankit[tensorboard])")
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--tensorboard", "--conditional", *TINY]) == 0
    acc = events(run)
    assert {"D/real", "D/generated"} <= set(acc.Tags()["histograms"])
    assert [e.step for e in acc.Histograms("D/real")] == [20, 40]
