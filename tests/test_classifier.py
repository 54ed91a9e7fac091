import math

import pytest
import torch

from gankit.errors import CheckpointError, DataError
from gankit.metrics import classifier as C

from conftest import FASHION_DIR, SHARED_MNIST


def test_class_coverage_closed_forms():
    ref = [100] * 10
    r = C.class_coverage(torch.arange(10).repeat(50), ref)
    assert r["classes_covered"] == 10 and r["kl_to_test"] == pytest.approx(0.0, abs=1e-12)
    collapsed = C.class_coverage(torch.zeros(500, dtype=torch.long), ref)
    assert collapsed["classes_covered"] == 1 and collapsed["kl_to_test"] == pytest.approx(math.log(10))
    # 6 classes evenly: KL = log(10/6); a class with 1% of samples (< 10% of its 10% share) is not covered
    six = C.class_coverage(torch.cat([torch.arange(6).repeat(165), torch.tensor([7] * 10)]), ref)
    assert six["classes_covered"] == 6


def _separable(n=1024, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 784, generator=g) * 0.2
    x[y == 1, :392] += 0.6  # class 1: bright top half
    return x, y


def test_classifier_learns_separable_images():
    x, y = _separable()
    model = C.train_classifier(x, y, epochs=2, batch=64, progress=False)
    assert (C.predict(model, x) == y).float().mean() > 0.95
    assert C.features(model, x[:5]).shape == (5, 128)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_shipped_weights_are_small_pinned_and_checked(dataset, tmp_path):
    s = C.SHIPPED[dataset]
    path = C.shipped_path(dataset)
    assert s.protocol == f"gankit-{dataset}-v1" and path.stat().st_size < 300_000
    model, meta = C.load_shipped(dataset)
    assert meta["protocol"] == s.protocol and meta["sha256"] == s.sha256 and meta["shipped"]
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert C.get_classifier(dataset)[1] == meta  # the default protocol is the shipped one
    bad = bytearray(path.read_bytes())
    bad[-100] ^= 1
    (tmp_path / "w.pt").write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="do not match their SHA-256"):
        C.load_shipped(dataset, tmp_path / "w.pt")


def test_loading_weights_runs_no_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with pytest.raises(CheckpointError, match="not gankit classifier weights"):
        C.model_from_bytes(pickle.dumps({"conv1.weight": Evil()}), "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_retraining_makes_a_differently_named_protocol(tmp_path, monkeypatch):
    import types

    import gankit.data

    x, y = _separable(2048)
    monkeypatch.setattr(gankit.data, "load_dataset", lambda *a, **k: types.SimpleNamespace(x=x, labels=y))
    meta = C.retrain("mnist", seed=3, epochs=2, progress=False, cache=tmp_path)
    assert meta["protocol"] == f"mnist-retrained-v{C.VERSION}-s3-e2-{meta['sha256'][:8]}" != C.SHIPPED["mnist"].protocol
    assert meta["test_accuracy"] > 0.95 and meta["n_classes"] == 2 and not meta["shipped"]
    model, loaded = C.get_classifier("mnist", protocol=meta["protocol"], cache=tmp_path)
    assert loaded["sha256"] == meta["sha256"] and (C.predict(model, x) == y).float().mean() > 0.95
    with pytest.raises(DataError, match="is for 'mnist'"):
        C.get_classifier("fashion-mnist", protocol=meta["protocol"], cache=tmp_path)
    with pytest.raises(DataError, match="gankit classifier train"):
        C.get_classifier("mnist", protocol="mnist-retrained-nothing", cache=tmp_path)
    path = tmp_path / f"{meta['protocol']}.pt"
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(CheckpointError, match="SHA-256"):
        C.get_classifier("mnist", protocol=meta["protocol"], cache=tmp_path)


@pytest.mark.parametrize("dataset,where", [("mnist", SHARED_MNIST), ("fashion-mnist", FASHION_DIR)])
def test_shipped_classifiers_score_their_recorded_test_accuracy(dataset, where):
    if not where.is_dir():
        pytest.skip(f"{where} not present")
    from gankit.data import load_dataset

    test = load_dataset(dataset, "test", where)
    model, meta = C.load_shipped(dataset)
    acc = float((C.predict(model, test.x) == test.labels).float().mean())
    assert acc == pytest.approx(meta["test_accuracy"], abs=2e-4)  # a prediction or two may flip across machines
    assert torch.bincount(test.labels, minlength=10).tolist() == meta["test_histogram"]


def test_classifier_train_command(tmp_path, monkeypatch, capsys):
    import json
    import types

    import gankit.data
    from gankit.cli import main

    x, y = _separable(2048, seed=1)
    monkeypatch.setattr(gankit.data, "load_dataset", lambda *a, **k: types.SimpleNamespace(x=x, labels=y))
    out = tmp_path / "c.pt"
    assert main(["classifier", "train", "--dataset", "fashion-mnist", "--seed", "3", "--epochs", "2", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["protocol"].startswith("fashion-mnist-retrained-v3-s3-e2-") and meta["protocol"] in text.out
    assert C.sha256_bytes(out.read_bytes()) == meta["sha256"] and str(out) in text.err
    assert main(["classifier", "train", "--dataset", "mnist", "--epochs", "0"]) == 2
    assert "--epochs must be in" in capsys.readouterr().err
