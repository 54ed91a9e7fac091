import json

import pytest
import torch

from gankit import checkpoint, config as C, rundir
from gankit.data import Batches
from gankit.errors import NonFiniteError
from gankit.train import train

TINY = dict(hidden=16, layers=2, batch_size=32, log_every=5, sample_every=10**6, checkpoint_every=10**6)


def tiny(**kw):
    return C.from_dict({**TINY, **kw})


def params(run_dir):
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    return {**{f"G.{k}": v for k, v in state["G"].items()}, **{f"D.{k}": v for k, v in state["D"].items()}}


def metrics(run_dir):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rundir.read_metrics(run_dir)]


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_same_seed_same_results(tmp_path, update):
    k = 2 if update == "alternating" else 1
    cfg = tiny(steps=20, update=update, k=k)
    train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    pa, pb = params(tmp_path / "a"), params(tmp_path / "b")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    train(tiny(steps=20, update=update, k=k, seed=1), tmp_path / "c", progress=False)
    assert not all(torch.equal(pa[k], v) for k, v in params(tmp_path / "c").items())


def test_run_directory_contents(tmp_path):
    summary = train(tiny(steps=10), tmp_path / "r", progress=False)
    r = tmp_path / "r"
    for name in ("config.toml", "metrics.jsonl", "losses.png", "summary.json", "checkpoints/last.pt"):
        assert (r / name).is_file(), name
    assert list((r / "samples").glob("*.png"))
    rows = rundir.read_metrics(r)
    assert [row["step"] for row in rows] == [5, 10]
    assert set(rows[0]) >= {"step", "d_loss", "g_loss", "d_real", "d_fake", "value", "seconds"}
    assert rows[0]["value"] == pytest.approx(-rows[0]["d_loss"])
    assert json.loads((r / "summary.json").read_text())["step"] == 10 == summary["step"]
    assert C.load(r / "config.toml") == tiny(steps=10)
    assert summary["modes"]["n_modes"] == 8


def test_k_discriminator_steps_per_iteration(tmp_path):
    """With k = 3, each iteration makes 3 D updates and 1 G update (Adam's step counters say so)."""
    train(tiny(steps=4, k=3), tmp_path / "r", progress=False)
    state = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    d_steps = {int(s["step"]) for s in state["opt_D"]["state"].values()}
    g_steps = {int(s["step"]) for s in state["opt_G"]["state"].values()}
    assert d_steps == {12} and g_steps == {4}


def test_minimax_and_sgd_paper_schedule_run(tmp_path):
    s = train(tiny(steps=10, loss="minimax", optimizer="sgd", lr=0.05, lr_decay=1.000004), tmp_path / "r",
              progress=False)
    assert s["step"] == 10
    state = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    group = state["opt_G"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.05 / 1.000004**9)
    assert 0.5 <= group["momentum"] < 0.7


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_is_bit_identical(tmp_path, ema):
    train(tiny(steps=4, log_every=1, ema=ema), tmp_path / "full", progress=False)
    train(tiny(steps=2, log_every=1, ema=ema), tmp_path / "split", progress=False)
    train(tiny(steps=4, log_every=1, ema=ema), tmp_path / "split", resume=True, progress=False)
    pa, pb = params(tmp_path / "full"), params(tmp_path / "split")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    if ema:
        ea = checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")["G_ema"]
        eb = checkpoint.load(tmp_path / "split" / "checkpoints" / "last.pt")["G_ema"]
        assert all(torch.equal(ea[k], eb[k]) for k in ea)
    assert metrics(tmp_path / "full") == metrics(tmp_path / "split")


def test_resume_refuses_a_different_config(tmp_path):
    train(tiny(steps=2), tmp_path / "r", progress=False)
    with pytest.raises(rundir.RunDirError, match="lr"):
        train(tiny(steps=4, lr=0.1), tmp_path / "r", resume=True, progress=False)
    train(tiny(steps=4, lr=0.1), tmp_path / "r", resume=True, force=True, progress=False)


def test_existing_run_is_not_overwritten(tmp_path):
    train(tiny(steps=2), tmp_path / "r", progress=False)
    with pytest.raises(rundir.RunDirError, match="already holds a run"):
        train(tiny(steps=2), tmp_path / "r", progress=False)


def test_divergence_stops_with_clear_error_and_keeps_last_checkpoint(tmp_path):
    cfg = tiny(steps=40, optimizer="sgd", lr=1e30, momentum=0.9, checkpoint_every=1, log_every=1)
    with pytest.raises(NonFiniteError, match=r"step \d+: .* (is (nan|inf)|not finite)") as err:
        train(cfg, tmp_path / "r", progress=False)
    bad_step = int(str(err.value).split()[1].rstrip(":"))
    state = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert state["step"] < bad_step
    assert all(torch.isfinite(v).all() for v in [*state["G"].values(), *state["D"].values()])


def test_real_batches_cover_each_epoch_once_and_shard_disjointly():
    x = torch.arange(40.0)[:, None]
    y = torch.arange(40) + 100
    single = Batches(x, 8, seed=3, labels=y)
    epoch0 = torch.cat([single(b)[0] for b in range(5)]).ravel()
    assert sorted(epoch0.tolist()) == list(range(40))
    assert all(torch.equal(single(b)[1], single(b)[0].ravel().long() + 100) for b in range(7))  # labels follow
    assert not torch.equal(torch.cat([single(b)[0] for b in range(5, 10)]).ravel(), epoch0)  # reshuffled
    r0, r1 = Batches(x, 4, seed=3, rank=0, world=2), Batches(x, 4, seed=3, rank=1, world=2)
    for b in range(5):
        both = torch.cat([r0(b)[0], r1(b)[0]])
        assert torch.equal(both, single(b)[0])  # the two shards together are the single-process batch
        assert r0(b)[1] is None


def test_ema_average_follows_its_definition():
    from gankit.train import update_ema

    G, G_ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = [p.clone() for p in G_ema.parameters()]
    update_ema(G_ema, G, 0.75)
    for pe, p0, p in zip(G_ema.parameters(), before, G.parameters()):
        assert torch.allclose(pe, 0.75 * p0 + 0.25 * p)


def test_sampling_uses_the_averaged_generator(tmp_path):
    from gankit.train import fit

    gan, _ = fit(tiny(steps=5, ema=0.5), tmp_path / "r", progress=False)
    z = torch.randn(4, 2)
    assert torch.equal(gan.sample(4, z), gan.G_ema(z))
    assert not torch.equal(gan.sample(4, z), gan.G(z))


def test_sample_and_discriminate_restore_the_previous_mode(tmp_path):
    from gankit.train import fit

    gan, _ = fit(tiny(steps=2, ema=0.0), tmp_path / "r", progress=False)
    for mode in (True, False):
        gan.G.train(mode), gan.D.train(mode)
        gan.sample(3), gan.discriminate(torch.zeros(3, 2))
        assert gan.G.training is mode and gan.D.training is mode


def test_a_checkpoint_from_before_self_contained_checkpoints_is_a_clear_error(tmp_path, capsys):
    from gankit.cli import main

    train(tiny(steps=2), tmp_path / "r", progress=False)
    p = tmp_path / "r" / "checkpoints" / "last.pt"
    old = {k: v for k, v in checkpoint.load(p).items() if k not in ("format", "arch", "data")}
    checkpoint.save(old, p)
    assert main(["sample", str(tmp_path / "r"), "--out", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "format 1" in err[0] and "format 2" in err[0]


def test_the_checkpoint_rebuilds_the_networks_alone(tmp_path):
    from gankit.gan import from_checkpoint
    from gankit.train import fit

    gan, _ = fit(tiny(steps=3, ema=0.5), tmp_path / "r", progress=False)
    again = from_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt", "cpu")
    z = torch.randn(5, 2)
    assert torch.equal(again.sample(5, z), gan.sample(5, z))
    assert again.spec.modes.shape == (8, 2) and again._data is None
