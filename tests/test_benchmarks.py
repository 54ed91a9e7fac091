"""The speed benchmark's FLOP accounting against closed forms (the benchmark itself is not timed here)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
speed = pytest.importorskip("speed")

from gankit.models.conv import DCGANDiscriminator  # noqa: E402
from gankit.models.paper import PaperDiscriminator, PaperGenerator  # noqa: E402


def test_forward_flops_of_the_paper_nets_match_their_layer_sizes():
    G, D = PaperGenerator(), PaperDiscriminator()
    g, g1 = speed.forward_flops(G, torch.zeros(3, 100))
    assert g == 2 * (100 * 1200 + 1200 * 1200 + 1200 * 784) and g1 == 2 * 100 * 1200
    d, d1 = speed.forward_flops(D, torch.zeros(3, 784))
    assert d == 2 * (784 * 1200 + 240 * 1200 + 240 * 1) and d1 == 2 * 784 * 1200
    assert D.training  # restored after counting
    # one iteration: D step = G fwd + D (fwd, weight grads, input grads but the first layer's) on 2m rows;
    # G step = G fwd + D fwd + D input grads + G weight and input grads (no input grad for z)
    m = 100
    expected = m * (g + 2 * (d + d + d - d1) + g + d + d + g + (g - g1))
    assert speed.step_flops(G, D, m, reuse_fake=False) == pytest.approx(expected)
    assert speed.step_flops(G, D, m, reuse_fake=True) == pytest.approx(expected - m * g)


def test_forward_flops_count_convolutions():
    D = DCGANDiscriminator((1, 28, 28), 8)
    d, d1 = speed.forward_flops(D, torch.zeros(2, 784))
    conv1 = 2 * 8 * 14 * 14 * (1 * 4 * 4)
    conv2 = 2 * 16 * 7 * 7 * (8 * 4 * 4)
    assert d1 == conv1 and d == conv1 + conv2 + 2 * 16 * 7 * 7


def test_every_configuration_of_the_remedy_grid_is_a_valid_run():
    """benchmarks/objectives.py: each toy configuration on the mixtures, each image one over the image defaults and
    over the DCGAN preset, settles as the CLI would (a misspelt key or a forbidden combination fails here)."""
    grid = pytest.importorskip("objectives")
    from gankit import config as C

    for over in grid.CONFIGS.values():
        assert C.settle({**over, "dataset": "grid25", "steps": 10}).dataset == "grid25"
    for over in grid.IMAGE_CONFIGS.values():
        for base in ({}, C.PRESETS["dcgan-fashion-mnist"]):
            cfg = C.settle(base, {**over, "dataset": "fashion-mnist", "epochs": 1.0})
            assert all(getattr(cfg, k) == v for k, v in over.items())


def test_a_configuration_that_does_not_settle_is_a_row_not_the_end_of_the_grid(monkeypatch, capsys):
    grid = pytest.importorskip("objectives")
    import torch

    monkeypatch.setitem(grid.CONFIGS, "three in a pack", {"pack": 3})  # 3 does not divide the batch
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what one() sets for its worker process
    threads = torch.get_num_threads()
    try:
        row = grid.one(("three in a pack", "ring8", 0, {"steps": 10}, None))
    finally:
        torch.set_num_threads(threads)
    assert "'pack'" in row["error"] and row["config"] == "three in a pack" and row["steps"] == 10
    grid.table([row], ["ring8"], ["three in a pack"], grid.TOY_HEADER, "modes", grid.toy_cells)
    assert "| ring8 | three in a pack | config error |" in capsys.readouterr().out


def test_benchmark_results_merge_by_key_and_keep_other_runs(tmp_path, monkeypatch):
    """benchmarks/_save.merge_results: a run that ends replaces the stored run with the same key, and every other
    stored run stays (a grid run in parts, or stopped midway, loses nothing)."""
    import json

    import _save

    monkeypatch.setattr(_save, "__file__", str(tmp_path / "_save.py"))
    key = ("config", "seed")
    _save.merge_results("grid", [{"config": "a", "seed": 0, "fd": 1.0}, {"config": "a", "seed": 1, "fd": 2.0}], key)
    path = _save.merge_results("grid", [{"config": "a", "seed": 1, "fd": 3.0}, {"config": "b", "seed": 1, "fd": 4.0}],
                               key)
    rows = sorted(json.loads(path.read_text()), key=lambda r: (r["config"], r["seed"]))
    assert path == tmp_path / "results" / "grid.json"
    assert [(r["config"], r["seed"], r["fd"]) for r in rows] == [("a", 0, 1.0), ("a", 1, 3.0), ("b", 1, 4.0)]


def test_the_remedy_table_prints_the_stored_runs_without_training(tmp_path, monkeypatch, capsys):
    """`objectives.py --table`: rows from benchmarks/results/objectives-DATASET.json at this length only."""
    import json

    grid = pytest.importorskip("objectives")
    monkeypatch.setattr(grid, "__file__", str(tmp_path / "objectives.py"))
    monkeypatch.setattr(grid, "one", lambda job: pytest.fail("--table trained"))
    (tmp_path / "results").mkdir()
    row = {"config": "hinge", "dataset": "ring8", "n_modes": 8, "hq": 0.9, "jsd": 0.1, "w1": 0.2}
    rows = [{**row, "seed": 0, "steps": 6000, "modes": 8}, {**row, "seed": 1, "steps": 6000, "modes": 7},
            {**row, "seed": 0, "steps": 50, "modes": 1}]
    (tmp_path / "results" / "objectives-ring8.json").write_text(json.dumps(rows))
    assert grid.main(["--table", "--datasets", "ring8", "--seeds", "10", "--configs", "hinge"]) == 0
    assert "| ring8 | hinge | 8 7 | 7.5 / 8 |" in capsys.readouterr().out


def test_the_remedy_grid_continues_from_a_first_seed(tmp_path, monkeypatch, capsys):
    """`objectives.py --first-seed 2 --seeds 3`: trains seed 2 only and tables it beside the stored seeds 0 and 1."""
    import json

    import _save

    grid = pytest.importorskip("objectives")

    class InProcess:  # the pool, without pickling the stand-in for a run
        def __init__(self, jobs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, jobs):
            return map(fn, jobs)

    trained = []
    row = {"config": "hinge", "dataset": "ring8", "n_modes": 8, "hq": 0.9, "jsd": 0.1, "w1": 0.2, "steps": 6000,
           "epochs": 3.0, "preset": None, "seconds": 1.0}

    def one(job):
        trained.append(job[2])
        return {**row, "seed": job[2], "modes": 6}

    for module in (grid, _save):
        monkeypatch.setattr(module, "__file__", str(tmp_path / "x.py"))
    monkeypatch.setattr(grid, "ProcessPoolExecutor", InProcess)
    monkeypatch.setattr(grid, "one", one)
    (tmp_path / "results").mkdir()
    stored = [{**row, "seed": 1, "modes": 7}, {**row, "seed": 0, "modes": 8}]
    (tmp_path / "results" / "objectives-ring8.json").write_text(json.dumps(stored))
    assert grid.main(["--datasets", "ring8", "--seeds", "3", "--first-seed", "2", "--configs", "hinge"]) == 0
    assert trained == [2]
    assert "| ring8 | hinge | 8 7 6 | 7.0 / 8 |" in capsys.readouterr().out
    assert sorted(r["seed"] for r in json.loads((tmp_path / "results" / "objectives-ring8.json").read_text())) == [0, 1, 2]
