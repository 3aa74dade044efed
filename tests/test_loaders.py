"""The loaders, on small files the tests write in each dataset's real format."""

import gzip
import pickle

import numpy as np
import pytest

from utils import loaders
from utils.errors import UserError

RNG = np.random.default_rng(0)


def _images(n, shape=(28, 28)):
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    return tmp_path / "keras" / "datasets"


def _check(data, n_train, n_test, shape):
    assert data.x_train.shape == (n_train, *shape) and data.x_test.shape == (n_test, *shape)
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1


def test_mnist_from_the_keras_cache(keras_home):
    x_train, x_test = _images(60), _images(12)
    np.savez(keras_home / "mnist.npz", x_train=x_train, y_train=np.arange(60) % 10,
             x_test=x_test, y_test=np.arange(12) % 10)
    data = loaders.load_dataset("mnist")
    _check(data, 60, 12, (28, 28, 1))
    np.testing.assert_allclose(data.x_train[..., 0] * 255, x_train, atol=1e-4)
    assert data.name == "mnist" and list(data.y_test[:3]) == [0, 1, 2]


def test_mnist_offline_and_not_cached_says_where_to_put_it(keras_home, monkeypatch):
    import keras

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(UserError, match=r"mnist is not on this machine.*mnist\.npz.*fashion_mnist"):
        loaders.load_dataset("mnist")


def test_fashion_mnist_from_idx_files(keras_home, monkeypatch):
    folder = keras_home / "fashion-mnist"
    folder.mkdir()
    x_train, y_train = _images(30), np.arange(30, dtype=np.uint8) % 10
    _write_idx(folder / "train-images-idx3-ubyte.gz", x_train)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", _images(10))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))
    monkeypatch.setattr(loaders, "DEBIAN_FASHION_MNIST", keras_home / "absent")
    data = loaders.load_dataset("fashion_mnist")
    _check(data, 30, 10, (28, 28, 1))
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_allclose(data.x_train[..., 0] * 255, x_train, atol=1e-4)


def test_truncated_idx_file_is_reported(tmp_path):
    _write_idx(tmp_path / "x.gz", _images(5))
    raw = gzip.open(tmp_path / "x.gz").read()
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(UserError, match="truncated"):
        loaders.read_idx(tmp_path / "x.gz")


def test_cifar10_from_pickled_batches(keras_home):
    folder = keras_home / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "test_batch"]:
        images = _images(8, (32, 32, 3))
        batches[name] = images
        flat = images.transpose(0, 3, 1, 2).reshape(8, -1)  # CIFAR stores channel planes, row-major
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": flat, b"labels": list(range(8))}, f)
    data = loaders.load_dataset("cifar10")
    _check(data, 16, 8, (32, 32, 3))
    np.testing.assert_allclose(data.x_test * 255, batches["test_batch"], atol=1e-3)


@pytest.mark.parametrize("x_train,shape", [
    (_images(40), (28, 28, 1)),  # uint8, N x H x W
    (RNG.random((40, 16, 16, 3)).astype("float32"), (16, 16, 3)),  # float in [0, 1], N x H x W x C
])
def test_user_npz_and_limit(tmp_path, x_train, shape):
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x_train, x_test=x_train[:20])
    data = loaders.load_dataset(str(path))
    _check(data, 40, 20, shape)
    assert data.name == "mine" and data.y_train is None
    limited = loaders.load_dataset(str(path), limit=12)
    assert len(limited.x_train) == 12 and len(limited.x_test) == 20  # N/6 is 2, but at least 100 (or all)


def test_limit_keeps_a_sixth_of_the_test_set():
    data = loaders.load_dataset("fashion_mnist", limit=1200)
    assert len(data.x_train) == 1200 and len(data.x_test) == 200 and len(data.y_test) == 200


@pytest.mark.parametrize("arrays,message", [
    ({"x_test": _images(3)}, "no x_train"),
    ({"x_train": RNG.random(50), "x_test": RNG.random(50)}, "images must be"),
    ({"x_train": RNG.random((4, 8, 8)) * 3, "x_test": RNG.random((4, 8, 8))}, "outside"),
])
def test_bad_npz_files(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message):
        loaders.load_dataset(str(tmp_path / "bad.npz"))


def test_corrupt_npz_and_unknown_name(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        loaders.load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(UserError, match="unknown dataset"):
        loaders.load_dataset("imagenet")
