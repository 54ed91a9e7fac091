import torch
import math

import pytest
from hypothesis import given, settings, strategies as st

from gankit import config as C
from gankit.config import Config, ConfigError


def test_defaults_are_valid_and_round_trip_through_toml(tmp_path):
    cfg = C.validate(Config())
    p = tmp_path / "c.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(p) == cfg


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_every_preset_settles_and_round_trips(tmp_path, name):
    cfg = C.settle(C.preset(name))
    p = tmp_path / "c.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(p) == cfg


def test_preset_round_trip(tmp_path):
    cfg = C.from_dict(C.preset("paper-fashion-mnist"))
    assert (cfg.model, cfg.batch_size, cfg.optimizer, cfg.lr, cfg.z_dim) == ("paper", 100, "sgd", 0.1, 100)
    p = tmp_path / "c.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(p) == cfg


@pytest.mark.parametrize("key,value,fragment", [
    ("dataset", "cifar100", "dataset"),
    ("loss", "hinge", "loss"),
    ("model", "resnet", "model"),
    ("k", 0, "'k'"),
    ("batch_size", 0, "batch_size"),
    ("batch_size", -3, "batch_size"),
    ("lr", -0.1, "'lr'"),
    ("lr", math.nan, "'lr'"),
    ("momentum", 1.5, "momentum"),
    ("k", 1.5, "'k'"),
    ("k", True, "'k'"),
    ("dataset", 3, "dataset"),
    ("steps", 0, "steps"),
    ("lr_decay", 0.5, "lr_decay"),
    ("frobnicate", 1, "frobnicate"),
    ("objective", "wgan", "objective"),
])
def test_bad_values_name_the_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        C.from_dict({key: value})


def test_combinations_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="'k'.*simultaneous"):
        C.from_dict({"update": "simultaneous", "k": 2})
    with pytest.raises(ConfigError, match="'model'.*image"):
        C.from_dict({"model": "paper", "dataset": "ring8"})


def test_toml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        C.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("k = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        C.load(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('datset = "ring8"\n')
    with pytest.raises(ConfigError, match="datset"):
        C.load(unknown)
    table = tmp_path / "table.toml"
    table.write_text('[model]\nhidden = 3\n')
    with pytest.raises(ConfigError, match="model"):
        C.load(table)


def test_preset_key_in_toml_expands(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('preset = "paper-mnist"\nbatch_size = 50\n')
    cfg = C.load(p)
    assert cfg.model == "paper" and cfg.batch_size == 50


def test_epochs_are_passes_of_d_over_the_data_under_every_update_and_k():
    from gankit.data import Batches

    x = torch.zeros(1000, 2)
    assert Batches(x, 100, 0, reals_per_step=2).steps_for(2.0) == 10  # alternating, k = 2
    assert Batches(x, 100, 0, reals_per_step=1).steps_for(2.0) == 20  # simultaneous: one minibatch per step
    assert Batches(x, 100, 0, reals_per_step=3).steps_for(1.0) == 4  # the last iteration finishes the pass
    b = Batches(x, 100, 0, reals_per_step=3)
    assert [s for s in range(1, 8) if b.epoch_ends_at(s)] == [4, 7]
    assert b.epoch_at(5) == 1.5
    with pytest.raises(C.ConfigError, match="steps"):
        C.from_dict({"steps": None, "epochs": None})


def test_diff_names_keys():
    assert C.diff(Config(), Config(lr=0.1, k=2)) == ["k", "lr"]
    assert C.diff(Config(), Config(lr=0.1, k=2), keys=("lr", "seed")) == ["lr"]
    assert "device" not in C.run_keys() and "steps" not in C.run_keys() and "lr" in C.run_keys()


_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(C.FIELD_TYPES) + ["bogus", "Dataset"]), _values, max_size=4))
def test_fuzz_loader_raises_only_config_errors(values):
    """Any dict of values either gives a valid Config or a ConfigError: nothing else escapes."""
    try:
        cfg = C.from_dict(values)
    except ConfigError as e:
        assert str(e)
    else:
        assert C.validate(cfg) is cfg


# the run keys of the oldest saved runs gankit still loads; a run key added since must be in ADDED_LATER
OLDEST_RUN_KEYS = (
    "augment", "batch_size", "beta2", "clip", "dataset", "ema", "final_momentum", "gp_weight", "hidden", "image_size",
    "k", "layers", "loss", "lr", "lr_d", "lr_decay", "lr_min", "minibatch_std", "model", "momentum",
    "momentum_saturate", "noise", "objective", "optimizer", "pack", "pixel_range", "precision", "r1", "r2",
    "reg_every", "seed", "spectral_norm", "split", "subset", "update", "z_dim",
)


def test_a_run_saved_before_the_newer_keys_still_loads(tmp_path):
    """Every run key is one an old run saved or one listed in ADDED_LATER (whose default is the old behaviour), so a
    run directory from before a key existed still loads, as its own config."""
    assert set(C.run_keys()) - set(C.ADDED_LATER) == set(OLDEST_RUN_KEYS)
    cfg = C.settle({"dataset": "grid25", "r1": 0.0, "seed": 3})
    saved = OLDEST_RUN_KEYS + ("steps", "epochs")
    old = {k: v for k, v in cfg.to_dict().items() if k in saved and v is not None}
    path = tmp_path / "config.toml"
    import tomli_w

    path.write_text(tomli_w.dumps({**old, "unset": [k for k in saved if getattr(cfg, k) is None]}))
    assert C.load_complete(path) == cfg


def test_r1_is_the_default_only_on_the_2d_mixtures_in_the_logistic_game():
    """R1 0.1 under the 2-D mixtures' logistic runs (the evidence in README), nothing elsewhere; a given r1 wins."""
    for dataset in C.MIXTURES:
        assert C.settle({"dataset": dataset}).r1 == 0.1
        assert C.settle({"dataset": dataset, "r1": 0.0}).r1 == 0.0
        assert C.settle({"dataset": dataset, "objective": "hinge"}).r1 == 0.0
        assert C.settle({"dataset": dataset, "encoder": True}).r1 == 0.0
    assert C.settle({"dataset": "gaussian1d"}).r1 == 0.0 and C.settle({"dataset": "mnist"}).r1 == 0.0
    assert C.settle({}, base=C.settle({"dataset": "ring8", "r1": 0.0})).r1 == 0.0  # a resumed run keeps its own


def test_the_grids_train_longer_than_the_toy_length_by_default():
    """12,000 steps on grid25's logistic runs (README: every seed over 90 % high quality), 24,000 on grid100's (at
    6,000 it finds no modes); a given length wins."""
    assert C.settle({"dataset": "grid25"}).steps == 12_000
    assert C.settle({"dataset": "grid100"}).steps == 24_000
    assert C.settle({"dataset": "ring8"}).steps == C.settle({"dataset": "grid25", "objective": "hinge"}).steps == 6_000
    assert C.settle({"dataset": "grid25", "steps": 50}).steps == 50
    assert C.settle({"dataset": "grid25"}, {"epochs": 2.0}).steps is None
    assert C.settle({}, base=C.settle({"dataset": "grid25", "steps": 6_000})).steps == 6_000


def test_the_fashion_dcgan_preset_plays_the_hinge_game_at_lr_3e_4():
    """The evidence for it is on Fashion-MNIST (README); dcgan-mnist stays in the logistic game its figures used."""
    fashion, mnist = C.settle(C.preset("dcgan-fashion-mnist")), C.settle(C.preset("dcgan-mnist"))
    assert (fashion.objective, fashion.lr) == ("hinge", 3e-4) and (mnist.objective, mnist.lr) == ("logistic", 2e-4)
    assert C.settle(C.preset("dcgan-fashion-mnist"), {"lr": 1e-4}).lr == 1e-4  # a given lr wins


def test_the_fashion_presets_fit_eight_minutes_and_the_conditional_one_is_the_same_game_given_labels():
    plain, cond = C.settle(C.preset("dcgan-fashion-mnist")), C.settle(C.preset("cdcgan-fashion-mnist"))
    assert plain.epochs == cond.epochs == 11 and C.settle(C.preset("dcgan-mnist")).epochs == 8
    assert not plain.conditional and cond.conditional
    assert cond.to_dict() | {"conditional": False} == plain.to_dict()
