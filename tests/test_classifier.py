import math

import pytest
import torch

from gankit.errors import CheckpointError
from gankit.metrics import classifier as C


def test_class_coverage_closed_forms():
    ref = [100] * 10
    r = C.class_coverage(torch.arange(10).repeat(50), ref)
    assert r["classes_covered"] == 10 and r["kl_to_test"] == pytest.approx(0.0, abs=1e-12)
    collapsed = C.class_coverage(torch.zeros(500, dtype=torch.long), ref)
    assert collapsed["classes_covered"] == 1 and collapsed["kl_to_test"] == pytest.approx(math.log(10))
    # 6 classes evenly: KL = log(10/6); a class with 1% of samples (< 10% of its 10% share) is not covered
    six = C.class_coverage(torch.cat([torch.arange(6).repeat(165), torch.tensor([7] * 10)]), ref)
    assert six["classes_covered"] == 6


def test_classifier_learns_separable_images_and_cache_checks_its_weights(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (1024,), generator=g)
    x = torch.rand(1024, 784, generator=g) * 0.2
    x[y == 1, :392] += 0.6  # class 1: bright top half
    model = C.train_classifier(x, y, epochs=2, batch=64, progress=False)
    assert (C.predict(model, x) == y).float().mean() > 0.95
    assert C.features(model, x[:5]).shape == (5, 128)
    # a cached classifier whose weights were altered is refused
    path = tmp_path / "mnist-v2.pt"
    torch.save(model.state_dict(), path)
    (tmp_path / "mnist-v2.json").write_text('{"sha256": "0", "n_classes": 2}')
    with pytest.raises(CheckpointError, match="checksum"):
        C.get_classifier("mnist", cache=tmp_path)
