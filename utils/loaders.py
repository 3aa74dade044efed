"""Datasets by name or path, always as float32 images in [0, 1] shaped N x H x W x C.

`mnist` and `cifar10` come from Keras's cache (`~/.keras/datasets`, or `$KERAS_HOME/datasets`),
downloaded once where there is internet; `fashion_mnist` from Debian's `dataset-fashion-mnist`
package when installed; anything ending in `.npz` from that file.
"""

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import UserError

DATASETS = ("mnist", "fashion_mnist", "cifar10")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
              "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}


@dataclass
class Dataset:
    """Training and test images (float32, N x H x W x C, in [0, 1]) and their labels, or None."""

    name: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])


def keras_datasets_dir():
    """Where Keras caches downloaded datasets."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def dataset_name(name_or_path):
    """The short name a run folder uses: the dataset's name, or an `.npz` file's stem."""
    return Path(name_or_path).stem if str(name_or_path).endswith(".npz") else str(name_or_path)


def load_dataset(name_or_path, limit=None):
    """Load a dataset by name or `.npz` path; `limit` keeps the first N training images, N/6 test ones."""
    if str(name_or_path).endswith(".npz"):
        arrays = _load_npz(Path(name_or_path))
    elif name_or_path == "mnist":
        arrays = _load_mnist()
    elif name_or_path == "fashion_mnist":
        arrays = _load_fashion_mnist()
    elif name_or_path == "cifar10":
        arrays = _load_cifar10()
    else:
        raise UserError(f"unknown dataset {name_or_path!r}: use one of {', '.join(DATASETS)} "
                        "or a path to an .npz file holding x_train and x_test")
    data = Dataset(dataset_name(name_or_path),
                   *(_as_images(arrays[k], k) for k in ("x_train", "x_test")),
                   *(_as_labels(arrays.get(k)) for k in ("y_train", "y_test")))
    return _limited(data, limit) if limit else data


def _limited(data, limit):
    n_test = max(100, limit // 6)
    cut = lambda a, n: None if a is None else a[:n]
    return Dataset(data.name, data.x_train[:limit], data.x_test[:n_test],
                   cut(data.y_train, limit), cut(data.y_test, n_test))


def _as_images(array, key):
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or 0 in array.shape:
        raise UserError(f"{key} has shape {array.shape}; images must be N x H x W or N x H x W x C")
    if np.issubdtype(array.dtype, np.integer):
        return array.astype("float32") / 255.0
    array = array.astype("float32")
    if array.min() < 0 or array.max() > 1:
        raise UserError(f"{key} holds floats outside [0, 1]; give uint8 0-255 or floats in [0, 1]")
    return array


def _as_labels(array):
    return None if array is None else np.asarray(array).reshape(-1)


def _load_npz(path):
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist; give the path to an .npz holding x_train and x_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # zip, pickle or format errors all mean the same to the user
        raise UserError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    missing = [k for k in ("x_train", "x_test") if k not in arrays]
    if missing:
        raise UserError(f"{path} has no {' or '.join(missing)}; it holds {', '.join(arrays) or 'nothing'}")
    return arrays


def _load_mnist():
    cached = keras_datasets_dir() / "mnist.npz"
    return _load_npz(_cached_or_downloaded(lambda: cached if cached.is_file() else None, "mnist", cached))


def read_idx(path):
    """An array from an IDX file (the MNIST family's format), gzipped or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise UserError(f"{path} is truncated: header says {shape}, file has {data.size} values")
    return data.reshape(shape)


def _load_fashion_mnist():
    def find():
        for folder in (DEBIAN_FASHION_MNIST, keras_datasets_dir() / "fashion-mnist"):
            if all((folder / f).is_file() for f in _IDX_FILES.values()):
                return folder
        return None

    folder = _cached_or_downloaded(find, "fashion_mnist", DEBIAN_FASHION_MNIST)
    return {k: read_idx(folder / f) for k, f in _IDX_FILES.items()}


def _load_cifar10():
    def find():
        for folder in (keras_datasets_dir() / "cifar-10-batches-py",
                       keras_datasets_dir() / "cifar-10-batches-py_extracted" / "cifar-10-batches-py"):
            if (folder / "test_batch").is_file():
                return folder
        return None

    return _read_cifar_folder(_cached_or_downloaded(find, "cifar10", keras_datasets_dir() / "cifar-10-batches-py"))


def _read_cifar_folder(folder):
    def batch(name):
        with open(folder / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        images = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, np.asarray(d[b"labels"])

    train = [batch(f"data_batch_{i}") for i in range(1, 6) if (folder / f"data_batch_{i}").is_file()]
    if not train:
        raise UserError(f"{folder} has no data_batch_* files; re-download CIFAR-10 there")
    x_test, y_test = batch("test_batch")
    return {"x_train": np.concatenate([x for x, _ in train]), "y_train": np.concatenate([y for _, y in train]),
            "x_test": x_test, "y_test": y_test}


def _cached_or_downloaded(find, name, where):
    """`find()`'s location of a dataset, after letting Keras download it if it is not there yet."""
    found = find()
    if found is None:
        _download_with_keras(name, where)
        found = find()
    if found is None:
        raise UserError(f"Keras fetched {name} but it is not where this loader looks: put it at {where}")
    return found


def _download_with_keras(name, where):
    """Let Keras download `name` into its cache; offline, fail with one line saying what to put where."""
    import keras  # imported here so loading .npz files does not pay for Keras

    try:
        getattr(keras.datasets, name).load_data()
    except Exception:
        raise UserError(
            f"{name} is not on this machine and cannot be downloaded (offline?): put it at {where} "
            "(Keras's download of it, from a machine with internet), or use --dataset fashion_mnist "
            "(apt-get install dataset-fashion-mnist) or a path to an .npz file") from None
