"""Semi-supervised learning with a K+1-class D (Salimans et al. 2016): the losses against their closed forms, the
labelled set and minibatches, the nets, the config's refusals, and small runs end to end with the ssl-error metric."""

import json

import pytest
import torch
import torch.nn.functional as F

from gankit import config as C
from gankit import objectives as O
from gankit.data.batches import Labelled
from gankit.errors import ConfigError, UsageError
from gankit.evaluate import run_metric
from gankit.gan import build, from_checkpoint
from gankit.models.semi import SemiDiscriminator, SemiGenerator
from gankit.train import fit

TOY = dict(dataset="ring8", model="semi-mlp", objective="semi-supervised", labels=16, batch_size=32, z_dim=4,
           log_every=10**6, sample_every=10**6, checkpoint_every=10**6)


def tiny(**kw):
    return C.from_dict({**TOY, **kw})


def _logits(n, k, seed):
    return (3 * torch.randn(n, k, generator=torch.Generator().manual_seed(seed))).requires_grad_(True)


def test_d_loss_is_a_k_plus_1_way_cross_entropy_with_a_zero_logit():
    """L_sup = K-way cross-entropy; -log D(x) = -log(1 - p(K+1 | x)) and -log(1 - D(G(z))) = -log p(K+1 | G(z)) with
    p the (K+1)-way softmax of [l_1..l_K, 0]: values and gradients."""
    K = 5
    lab, real, fake = _logits(6, K, 0), _logits(7, K, 1), _logits(8, K, 2)
    y = torch.tensor([0, 1, 2, 3, 4, 2])
    sup, unsup = O.semi_supervised_d_loss(lab, y, real, fake)

    def with_zero(l):
        return torch.cat([l, torch.zeros(len(l), 1)], 1)

    p_real = torch.softmax(with_zero(real.double()), 1)
    sup_ref = -torch.log_softmax(lab.double(), 1)[torch.arange(6), y].mean()
    unsup_ref = -torch.log(1 - p_real[:, K]).mean() + F.cross_entropy(with_zero(fake.double()),
                                                                       torch.full((8,), K))
    torch.testing.assert_close(sup.double(), sup_ref)
    torch.testing.assert_close(unsup.double(), unsup_ref)
    got = torch.autograd.grad(sup + unsup, [lab, real, fake])
    want = torch.autograd.grad(sup_ref + unsup_ref, [lab, real, fake])
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.double(), rtol=1e-5, atol=1e-7)
    # by hand at one point: l = 0 everywhere gives Z = K, D = K / (K + 1)
    z = torch.zeros(1, K)
    _, u = O.semi_supervised_d_loss(z, torch.tensor([0]), z, z)
    assert u.item() == pytest.approx(-torch.log(torch.tensor(K / (K + 1))).item() + torch.log(torch.tensor(K + 1.)).item())


def test_d_loss_is_stable_at_extreme_logits():
    big = torch.tensor([[500.0, -500.0, 0.0]], requires_grad=True)
    sup, unsup = O.semi_supervised_d_loss(big, torch.tensor([0]), big, -big)
    assert torch.isfinite(sup) and torch.isfinite(unsup)
    assert torch.isfinite(torch.autograd.grad(sup + unsup, big)[0]).all()


def test_feature_matching_is_its_definition():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(9, 4, generator=g), torch.randn(6, 4, generator=g, requires_grad=True)
    want = sum((real[:, j].mean() - fake[:, j].mean()) ** 2 for j in range(4)) / 4
    torch.testing.assert_close(O.feature_matching(real, fake), want)
    assert O.feature_matching(real, real[torch.randperm(9)]).item() == pytest.approx(0, abs=1e-12)


def test_the_objective_feeds_d_the_labelled_minibatch_of_its_update():
    """d_loss takes the `index`-th labelled minibatch, and its stats are the closed forms' on D's logits."""
    torch.manual_seed(0)
    D = SemiDiscriminator(x_dim=3, n_classes=4, widths=(8, 8)).eval()
    xl, yl = torch.randn(10, 3), torch.arange(10) % 4
    game = O.SemiSupervised(labelled=Labelled(xl, yl, 5, seed=0))
    x, fake = torch.randn(6, 3), torch.randn(6, 3)
    for index in (0, 1, 2, 7):
        loss, stats = game.d_loss(D, x, fake, index=index)
        bx, by = game.labelled(index)
        sup, unsup = O.semi_supervised_d_loss(D.classify(bx)[0], by, D.classify(x)[0], D.classify(fake)[0])
        torch.testing.assert_close(loss, sup + unsup)
        torch.testing.assert_close(stats["loss_sup"], sup)
        torch.testing.assert_close(stats["train_acc"], (D.classify(bx)[0].argmax(1) == by).float().mean())
    g_loss, _ = game.g_loss(D, fake, x_real=x)
    torch.testing.assert_close(g_loss, O.feature_matching(D.classify(x)[1], D.classify(fake)[1]))


def test_labelled_minibatches_cycle_every_sample_once_per_pass():
    x, y = torch.arange(10.).unsqueeze(1), torch.arange(10)
    b = Labelled(x, y, 4, seed=1)
    stream = torch.cat([b(i)[1] for i in range(5)])  # 20 = two passes
    assert sorted(stream[:10].tolist()) == list(range(10)) and sorted(stream[10:].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:])  # a fresh order each pass
    assert torch.equal(b(3)[0].squeeze(1).long(), b(3)[1])  # x and y stay paired
    assert torch.equal(Labelled(x, y, 4, seed=1)(3)[1], b(3)[1])  # depends on (seed, i) alone
    assert len(Labelled(x, y, 32, seed=1)(0)[1]) == 10  # N < m: all N


@pytest.mark.parametrize("update, k", [("alternating", 2), ("simultaneous", 1)])
def test_every_d_update_takes_the_next_labelled_minibatch(tmp_path, monkeypatch, update, k):
    seen = []
    call = Labelled.__call__
    monkeypatch.setattr(Labelled, "__call__", lambda self, i: seen.append(i) or call(self, i))
    fit(tiny(steps=3, k=k, update=update), tmp_path / "r", progress=False)
    assert seen == list(range(3 * k))


def test_labels_picks_n_balanced_samples_from_the_seed():
    from gankit.semi import labelled_batches

    cfg = tiny(labels=24)
    data = build(cfg).data
    a = labelled_batches(cfg, data, "cpu")
    assert len(a.y) == 24 and torch.bincount(a.y, minlength=8).tolist() == [3] * 8
    assert all(any(torch.equal(r, s) for s in data.x[data.labels == c]) for r, c in zip(a.x[:5], a.y[:5]))
    assert torch.equal(a.x, labelled_batches(cfg, data, "cpu").x)
    other = labelled_batches(tiny(labels=24, seed=1), data, "cpu")
    assert not torch.equal(a.x, other.x)


def test_config_refusals(tmp_path):
    with pytest.raises(ConfigError, match="'labels'.*semi-supervised only"):
        C.from_dict(dict(labels=100))
    with pytest.raises(ConfigError, match="needs the number of labelled"):
        tiny(labels=None)
    with pytest.raises(ConfigError, match="classifying D"):
        tiny(model="mlp")
    with pytest.raises(ConfigError, match="single class"):
        tiny(dataset="gaussian1d")
    with pytest.raises(ConfigError, match="'conditional'"):
        tiny(conditional=True)
    with pytest.raises(ConfigError, match="'labels' must be >= 1"):
        tiny(labels=0)
    with pytest.raises(ConfigError, match="at least one labelled image per class"):  # N < K, before any file
        fit(tiny(labels=7), tmp_path / "few", progress=False)
    assert not (tmp_path / "few").exists()


def test_unlabelled_dataset_is_refused(tmp_path):
    from conftest import random_png_folder

    folder = random_png_folder(tmp_path / "flat", 12)
    cfg = C.settle(dict(dataset=f"folder:{folder}", image_size=8, model="semi-mlp", objective="semi-supervised",
                        labels=4, batch_size=4, steps=1))
    with pytest.raises(ConfigError, match="no class labels"):
        fit(cfg, tmp_path / "r", progress=False)


def test_nets_shapes_and_d_logit_is_log_z():
    torch.manual_seed(0)
    D, G = SemiDiscriminator(n_classes=10).eval(), SemiGenerator()
    x = torch.rand(5, 784)
    logits, feats = D.classify(x)
    assert logits.shape == (5, 10) and feats.shape == (5, 250)
    torch.testing.assert_close(D(x), torch.logsumexp(logits, 1))
    out = G(torch.rand(5, 100))
    assert out.shape == (5, 784) and 0 <= out.min() and out.max() <= 1
    D.train()  # Gaussian noise in training only
    assert not torch.equal(D(x), D(x))


def test_data_dependent_init_gives_standardised_pre_activations():
    """Without noise, after init_from_data(x) every unit's pre-activation on x has mean 0 and std 1, layer by layer;
    and build() applies it (the seeded draw of the batch makes it deterministic)."""
    torch.manual_seed(0)
    D = SemiDiscriminator(x_dim=6, n_classes=3, widths=(7, 5), input_noise=0.0, hidden_noise=0.0)
    x = torch.rand(200, 6) * torch.arange(1, 7)
    D.init_from_data(x)
    h = x
    for layer in [*D.hidden, D.head]:
        t = layer(h)
        torch.testing.assert_close(t.mean(0), torch.zeros(t.shape[1]), atol=1e-5, rtol=0)
        torch.testing.assert_close(t.std(0), torch.ones(t.shape[1]), atol=1e-4, rtol=0)
        h = torch.relu(t)
    a, b = build(tiny()).D, build(tiny()).D
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert D.head.parametrizations.weight.original0.abs().max() > 0


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_toy_run_end_to_end_with_the_metric(tmp_path, update):
    """ring8, its 8 modes the classes, 16 labels: the summary and `eval --metric ssl-error` agree, the stats are
    logged, and the checkpoint rebuilds D without the data."""
    run = tmp_path / update
    fit(tiny(steps=60, update=update, log_every=20), run, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ssl_error"]["error"] < 0.25 and summary["ssl_error"]["labels"] == 16
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_sup", "loss_unsup", "train_acc", "g_loss", "d_real"} <= set(rows[-1])
    assert rows[-1]["loss_sup"] < rows[0]["loss_sup"]
    assert run_metric(run, "ssl-error", device="cpu")["error"] == summary["ssl_error"]["error"]
    assert from_checkpoint(run / "checkpoints" / "last.pt", "cpu").D.k == 8


def test_semi_run_resumes_bit_exactly(tmp_path):
    from gankit import checkpoint

    fit(tiny(steps=6), tmp_path / "full", progress=False)
    fit(tiny(steps=3), tmp_path / "split", progress=False)
    fit(tiny(steps=6), tmp_path / "split", resume=True, progress=False)
    a = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")
    b = checkpoint.load(tmp_path / "split" / "checkpoints" / "last.pt")
    assert all(torch.equal(a[n][k], b[n][k]) for n in ("G", "D") for k in a[n])


def test_metric_refuses_a_plain_run(tmp_path):
    fit(C.from_dict(dict(hidden=8, layers=1, steps=2, batch_size=16, sample_every=10**6)), tmp_path / "p",
        progress=False)
    with pytest.raises(UsageError, match="needs a semi-supervised run"):
        run_metric(tmp_path / "p", "ssl-error", device="cpu")


def test_cli_train_and_eval(tmp_path, capsys):
    from gankit.cli import main

    run = tmp_path / "cli"
    assert main(["train", "--dataset", "grid25", "--model", "semi-mlp", "--objective", "semi-supervised",
                 "--labels", "50", "--steps", "3", "--batch-size", "16", "--out", str(run), "--no-progress"]) == 0
    assert C.load_complete(run / "config.toml").labels == 50
    assert main(["eval", str(run), "--metric", "ssl-error"]) == 0
    assert "test error" in capsys.readouterr().out
    assert main(["train", "--labels", "10", "--steps", "1", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
