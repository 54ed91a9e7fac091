import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.data.idx import write_idx
from gankit.images import make_grid
from gankit.sampling import interpolate_z, nearest_neighbours

pytestmark = pytest.mark.filterwarnings("ignore:.*no known checksum matches")


@pytest.fixture
def image_dir(tmp_path, isolated_cache):
    """A small KMNIST-shaped dataset: 60,000 train and 500 test images of blurry blobs."""
    d = tmp_path / "kmnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]

    def blobs(n):
        cy, cx = rng.integers(6, 22, (2, n, 1, 1))
        return (255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)).astype(np.uint8)

    write_idx(d / "train-images-idx3-ubyte.gz", blobs(60_000))
    write_idx(d / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 60_000, dtype=np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte.gz", blobs(500))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 500, dtype=np.uint8))
    return d


def test_make_grid_layout():
    imgs = torch.zeros(5, 1, 4, 3)
    imgs[1] = 1.0
    g = make_grid(imgs, nrow=3, padding=1)
    assert g.shape == (2 * 5 + 1, 3 * 4 + 1, 1) and g.dtype == np.uint8
    assert (g[1:5, 5:8] == 255).all() and (g[1:5, 1:4] == 0).all()  # image 1 is white, image 0 black
    with pytest.raises(ValueError, match="N, C, H, W"):
        make_grid(torch.zeros(2, 2, 2, 2, 2))


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    s, t = torch.tensor(rng.random((13, 30))), torch.tensor(rng.random((500, 30)))
    ref = ((s[:, None] - t[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(nearest_neighbours(s, t, chunk=64), ref)


def test_interpolation_endpoints():
    z0, z1 = torch.zeros(4), torch.ones(4)
    z = interpolate_z(z0, z1, 5)
    assert torch.equal(z[0], z0) and torch.equal(z[-1], z1) and torch.allclose(z[2], torch.full((4,), 0.5))


def test_paper_preset_on_images_end_to_end(tmp_path, image_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper-kmnist", "--data-dir", str(image_dir), "--subset", "400",
                 "--steps", "45", "--batch-size", "20", "--log-every", "3",
                 "--out", str(run), "--no-progress"]) == 0
    grids = sorted((run / "samples").glob("*.png"))  # one per epoch of 20 steps, and the last step
    assert [p.name for p in grids] == ["step-00000020.png", "step-00000040.png", "step-00000045.png"]
    assert Image.open(grids[0]).size == (2 * (10 * 30 + 2),) * 2  # 10 x 10 grid of 28 px + 2 px padding, x2
    assert main(["sample", str(run), "--nearest", "--n", "10", "--out", str(tmp_path / "fig2.png")]) == 0
    w, h = Image.open(tmp_path / "fig2.png").size
    assert (w, h) == (3 * (6 * 30 + 2), 3 * (2 * 30 + 2))  # 2 rows of 5 samples + their nearest image
    assert main(["sample", str(run), "--interpolate", "--n", "3", "--out", str(tmp_path / "fig3.png")]) == 0
    assert Image.open(tmp_path / "fig3.png").size == (3 * (10 * 30 + 2), 3 * (3 * 30 + 2))
    assert main(["sample", str(run), "--n", "7", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (7, 784) and s.min() >= 0 and s.max() <= 1
    capsys.readouterr()
    assert main(["eval", str(run), "--metric", "parzen", "--n-samples", "300", "--valid-size", "50",
                 "--sigmas", "0.1,0.2", "--json"]) == 0
    import json
    r = json.loads(capsys.readouterr().out)
    assert r["n_samples"] == 300 and r["n_valid"] == 50 and r["n_test"] == 500 and r["sigma"] in (0.1, 0.2)


def test_nearest_on_toy_run_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--steps", "2", "--hidden", "8", "--out", str(run), "--no-progress"]) == 0
    assert main(["sample", str(run), "--nearest", "--out", str(tmp_path / "f.png")]) == 2
    assert "not an image dataset" in capsys.readouterr().err


def test_reproduce_table1_on_a_small_run(tmp_path, image_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper-kmnist", "--data-dir", str(image_dir), "--steps", "3",
                 "--batch-size", "20", "--out", str(run), "--no-progress"]) == 0
    assert main(["reproduce", "table1", "--dataset", "kmnist", "--run", str(run), "--n-samples", "200",
                 "--kmeans-k", "50", "--no-progress"]) == 0
    table = (run / "table1.md").read_text()
    assert "| gankit GAN (this run) |" in table and "k-means centroids (k = 50)" in table
    assert "200 real training images" in table


def test_kmeans_finds_separated_clusters():
    from gankit.reproduce import kmeans

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = centres.repeat_interleave(200, 0) + 0.1 * torch.randn(600, 2, generator=g)
    found = kmeans(x, 3, iters=20, seed=1, progress=False)
    assert torch.cdist(centres, found).min(1).values.max() < 0.05


from conftest import FASHION_DIR, SHARED_MNIST  # noqa: E402


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist not present")
def test_train_on_the_mnist_test_images_as_a_stand_in(tmp_path, isolated_cache):
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper-mnist", "--data-dir", str(SHARED_MNIST), "--split", "test",
                 "--steps", "3", "--out", str(run), "--no-progress"]) == 0
    assert (run / "samples" / "step-00000003.png").is_file()


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_train_on_full_fashion_mnist(tmp_path, isolated_cache):
    run = tmp_path / "run"
    assert main(["train", "--preset", "paper-fashion-mnist", "--split", "trainval", "--steps", "3",
                 "--out", str(run), "--no-progress"]) == 0
    assert main(["sample", str(run), "--nearest", "--n", "5", "--out", str(tmp_path / "fig2.png")]) == 0


def test_feature_metrics_from_the_cli(tmp_path, image_dir, isolated_cache, capsys):
    """fd / kid / pr / dc / classes through a retrained classifier (a small one, trained here on the fixture and
    stored as `gankit classifier train` stores one); gankit ships none for KMNIST."""
    import json

    from gankit.checkpoint import atomic_write_bytes
    from gankit.data import load_dataset
    from gankit.metrics import classifier as C

    data = load_dataset("kmnist", "train", data_dir=image_dir, subset=512)
    weights = C.weights_bytes(C.train_classifier(data.x, data.labels, epochs=1, batch=64, progress=False))
    protocol = "kmnist-retrained-test"
    cache = isolated_cache / "gankit" / "classifiers"
    cache.mkdir(parents=True)
    atomic_write_bytes(cache / f"{protocol}.pt", weights)
    meta = {"protocol": protocol, "dataset": "kmnist", "version": C.VERSION, "n_classes": 10, "test_accuracy": 0.1,
            "sha256": C.sha256_bytes(weights), "test_histogram": [50] * 10, "shipped": False}
    atomic_write_bytes(cache / f"{protocol}.json", json.dumps(meta).encode())

    run = tmp_path / "run"
    assert main(["train", "--dataset", "kmnist", "--data-dir", str(image_dir), "--steps", "3", "--out", str(run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    for metric, key in (("fd", "value"), ("kid", "mean"), ("pr", "precision"), ("dc", "coverage"),
                        ("classes", "classes_covered")):
        assert main(["eval", str(run), "--metric", metric, "--n-samples", "300", "--classifier", protocol,
                     "--bootstrap", "10", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert key in r and r["protocol"].startswith(metric if metric == "classes" else f"{protocol}-{metric}300")
    assert r["n_samples"] == 300 and r["classifier"] == protocol
    assert main(["eval", str(run), "--metric", "fd", "--n-samples", "300"]) == 2
    assert "gankit classifier train --dataset kmnist" in capsys.readouterr().err


def test_dcgan_trains_on_images(tmp_path, image_dir):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "kmnist", "--model", "dcgan", "--hidden", "8", "--data-dir", str(image_dir),
                 "--steps", "3", "--batch-size", "16", "--out", str(run), "--no-progress"]) == 0
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 784)
