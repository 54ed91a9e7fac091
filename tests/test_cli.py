import json
import math

import numpy as np
import pytest

from gankit import rundir
from gankit.cli import main, settle_config

TINY = ["--steps", "10", "--hidden", "16", "--layers", "2", "--batch-size", "32", "--log-every", "5",
        "--no-progress"]


def test_train_sample_eval_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    err = capsys.readouterr().err
    assert f"run directory {run}" in err
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "losses.png").is_file()

    assert main(["sample", str(run), "--n", "50", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (50, 2) and np.isfinite(s).all()
    assert main(["sample", str(run), "--n", "50", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0

    capsys.readouterr()
    assert main(["eval", str(run), "--metric", "modes", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_modes"] == 8 and result["n_samples"] == 2500
    assert rundir.read_json(run, "eval.json")["modes"] == result


def test_config_file_and_flag_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('dataset = "grid25"\nk = 3\nlr = 0.01\n')
    cfg = settle_config({"config": str(f), "k": 2})
    assert (cfg.dataset, cfg.k, cfg.lr) == ("grid25", 2, 0.01)
    cfg = settle_config({"preset": "paper-mnist", "steps": 5})
    assert cfg.steps == 5 and cfg.epochs is None and cfg.model == "paper"


@pytest.mark.parametrize("flags,fragment", [
    (["--dataset", "imagenet"], "dataset"),
    (["--loss", "hinge"], "loss"),
    (["--model", "vit"], "model"),
    (["--k", "0"], "'k'"),
    (["--batch-size", "0"], "batch_size"),
    (["--lr", "-1"], "'lr'"),
    (["--steps", "5", "--epochs", "1"], "not both"),
    (["--preset", "nope"], "preset"),
    (["--config", "/nonexistent.toml"], "not found"),
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, flags, fragment):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gankit: error:") and fragment in err[0]
    assert not run.exists()


def test_sample_errors(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a gankit run directory" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png or .npy" in capsys.readouterr().err


def test_resume_from_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    assert main(["train", "--resume", str(run), "--steps", "15", "--no-progress"]) == 0
    assert rundir.read_metrics(run)[-1]["step"] == 15
    assert main(["train", "--out", str(run), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_missing_data_writes_no_run_directory(tmp_path, capsys, isolated_cache, monkeypatch):
    import dataclasses

    from gankit.data import mnist

    monkeypatch.setitem(mnist.IMAGE_SETS, "mnist", dataclasses.replace(mnist.IMAGE_SETS["mnist"], system_dirs=()))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"), "--out", str(run),
                 "--no-progress"]) == 2
    assert "not found" in capsys.readouterr().err
    assert not run.exists()


def test_resume_extends_a_run_to_the_requested_length(tmp_path):
    from gankit import checkpoint, config as C

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY[:1], "4", *TINY[2:]]) == 0  # --steps 4
    assert main(["train", "--resume", str(run), "--epochs", "0.01", "--no-progress"]) == 0
    per_epoch = 100_000 // 32
    assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == math.ceil(0.01 * per_epoch) == 32
    saved = C.load(run / "config.toml")
    assert saved.epochs == 0.01 and saved.steps is None  # the saved config never holds both


def test_resume_compares_what_defines_the_run_and_not_how_it_executes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    ok = ["--log-every", "3", "--keep-checkpoints", "2", "--checkpoint-every", "7", "--data-dir", str(tmp_path)]
    assert main(["train", "--resume", str(run), "--steps", "12", "--no-progress", *ok]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "14", "--lr", "0.5", "--no-progress"]) == 2
    assert "config differs in lr" in capsys.readouterr().err
    # a preset is a layer like any other: applied, then compared
    assert main(["train", "--resume", str(run), "--preset", "dcgan-mnist", "--steps", "14", "--no-progress"]) == 2
    assert "config differs in" in capsys.readouterr().err


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "is finished: it is at step 10 of 10" in capsys.readouterr().err


def test_only_gankits_own_errors_become_exit_2(tmp_path, monkeypatch, capsys):
    import gankit.cli as cli

    def bug(args):
        raise ValueError("an internal bug")

    monkeypatch.setattr(cli, "cmd_sample", bug)
    with pytest.raises(ValueError, match="internal bug"):  # a bug keeps its traceback
        main(["sample", str(tmp_path), "--out", str(tmp_path / "x.png")])


def test_help_lists_every_registered_choice(capsys, monkeypatch):
    from gankit.data.registry import DATASETS
    from gankit.evaluate import METRICS
    from gankit.models import MODELS
    from gankit.objectives import OBJECTIVES

    monkeypatch.setenv("COLUMNS", "2000")  # no wrapping inside names
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in [*MODELS, *DATASETS, *OBJECTIVES]:
        assert f"{name}:" in text, name
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"{name}:" in text for name in METRICS)


@pytest.mark.parametrize("world", ["1", "2"])
def test_a_torchrun_rank_leaves_without_interpreter_teardown(monkeypatch, world):
    """Under torchrun (WORLD_SIZE > 1) the process exits through os._exit with main's code, so gloo's threads cannot
    abort a finished rank at interpreter teardown; a plain process exits normally (SystemExit)."""
    import gankit.cli as cli

    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setattr(cli, "main", lambda: 3)

    def fake_exit(code):
        raise RuntimeError(f"os._exit({code})")

    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    with pytest.raises(RuntimeError if world == "2" else SystemExit) as caught:
        cli.entry()
    assert str(caught.value) == ("os._exit(3)" if world == "2" else "3")
