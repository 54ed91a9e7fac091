import pickle

import numpy as np
import pytest
from PIL import Image
from conftest import random_png_folder

from gankit.cli import main
from gankit.data import load_dataset
from gankit.data.cifar import read_batch
from gankit.data.idx import IDXError
from gankit.data.mnist import DatasetNotFound


def _write_cifar(d, n=20):
    root = d / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"batch_label": name.encode()}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return root


def test_cifar_batches_load_with_splits(tmp_path, isolated_cache, monkeypatch):
    import gankit.data.cifar as cifar

    monkeypatch.setattr(cifar, "SPLITS", {"train": (0, 90), "valid": (90, 100), "trainval": (0, 100), "test": None})
    _write_cifar(tmp_path / "c")
    tr = load_dataset("cifar10", "train", data_dir=tmp_path / "c")
    te = load_dataset("cifar10", "test", data_dir=tmp_path / "c")
    assert (tr.n, te.n, tr.shape, tr.dim) == (90, 20, (3, 32, 32), 3072)
    assert 0 <= tr.x.min() and tr.x.max() <= 1 and len(tr.classes) == 10


def test_a_tampered_pickle_runs_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(IDXError, match="refusing to load"):
        read_batch(tmp_path / "data_batch_1")
    assert not (tmp_path / "pwned").exists()


def test_cifar_missing_offline(tmp_path, isolated_cache):
    with pytest.raises(DatasetNotFound, match="cifar-10-batches-py not found"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "none")


def test_folder_dataset_resizes_and_crops(tmp_path, capsys):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    Image.new("RGB", (64, 32), (255, 0, 0)).save(d / "a.png")
    Image.new("L", (40, 80), 128).save(d / "sub" / "b.jpg")
    (d / "notes.txt").write_text("not an image")
    data = load_dataset(f"folder:{d}", image_size=16)
    assert data.n == 2 and data.shape == (3, 16, 16)
    red = data.x[0].view(3, 16, 16)
    assert red[0].min() > 0.99 and red[1].max() < 0.01
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{d}", "--image-size", "16", "--batch-size", "2", "--steps", "2",
                 "--out", str(run), "--no-progress"]) == 0
    (d / "bad.png").write_bytes(b"not a png")
    with pytest.raises(IDXError, match="bad.png"):
        load_dataset(f"folder:{d}")
    with pytest.raises(DatasetNotFound, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


def test_paper_cifar10_preset_trains(tmp_path, isolated_cache, monkeypatch):
    import gankit.data.cifar as cifar

    monkeypatch.setattr(cifar, "SPLITS", {"train": (0, 90), "valid": (90, 100), "trainval": (0, 100), "test": None})
    _write_cifar(tmp_path / "c")
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper-cifar10", "--data-dir", str(tmp_path / "c"), "--steps", "2",
                 "--batch-size", "10", "--out", str(run), "--no-progress"]) == 0
    assert main(["sample", str(run), "--nearest", "--n", "4", "--out", str(tmp_path / "fig2.png")]) == 0
    assert Image.open(tmp_path / "fig2.png").mode == "RGB"


def test_folder_classes_are_sub_directories(tmp_path):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), colour).save(tmp_path / "f" / cls / f"{i}.png")
    data = load_dataset(f"folder:{tmp_path / 'f'}", image_size=8)
    assert data.classes == ("cats", "dogs") and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.x[0].view(3, 8, 8)[0].mean() > 0.9 and data.x[3].view(3, 8, 8)[2].mean() > 0.9
    Image.new("RGB", (20, 20)).save(tmp_path / "f" / "loose.png")
    assert load_dataset(f"folder:{tmp_path / 'f'}", image_size=8).labels is None


def test_sampling_needs_no_training_data(tmp_path, capsys):
    """Checkpoints are self-contained: sample, figures and D rebuild from last.pt after the data is gone."""
    import shutil

    folder = random_png_folder(tmp_path / "imgs", 40)
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{folder}", "--image-size", "8", "--model", "paper", "--steps", "3",
                 "--batch-size", "16", "--out", str(run), "--no-progress"]) == 0
    shutil.rmtree(folder)
    assert main(["sample", str(run), "--n", "6", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (6, 192)
    assert main(["sample", str(run), "--n", "4", "--interpolate", "--out", str(tmp_path / "i.png")]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "5", "--nearest", "--out", str(tmp_path / "n.png")]) == 2  # needs the data
    assert "not a directory" in capsys.readouterr().err
