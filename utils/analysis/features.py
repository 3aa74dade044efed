"""The feature network of a dataset: the classifier of models/classifier.py, trained once on the dataset's
training images (the same name, --limit and split as the runs use, seed 0), cached under
`run/feature_nets/<dataset>[_limitN]/` (or `$VAE_FEATURE_NETS`) with its test accuracy and the Fréchet
distance's scale, and reused by every run on those data. The cache holds a hash of the training images and
labels: other data under the same name rebuild it, and say so.

    <cache>/<dataset>[_limitN]/
        classifier.weights.h5      the trained classifier
        info.json                  data hash, sizes, epochs, seed, test accuracy, the distance's scale, versions
"""

import fcntl
import hashlib
import json
import os
from pathlib import Path

import keras
import numpy as np

from models.classifier import FEATURE_LAYER, build_classifier, layer_outputs
from models.base import batches, to_numpy
from utils.analysis.frechet import blurred, class_spread, distance_between, noisy
from utils.atomic import atomic_path, write_json
from utils.errors import UserError
from utils.runs import provenance

WEIGHTS, INFO = "classifier.weights.h5", "info.json"
SEED = 0
IMAGE_PRESENTATIONS = 100_000  # epochs = this / training images, between 5 and 30


def cache_root():
    """Where feature networks are kept: $VAE_FEATURE_NETS, else run/feature_nets."""
    return Path(os.environ.get("VAE_FEATURE_NETS", Path("run") / "feature_nets"))


def data_hash(data):
    """A hash of the training images and labels the classifier learns from."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


class FeatureNetwork:
    """A trained classifier of one dataset: its features, classes and the distance's scale on that dataset."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.info = json.loads((self.folder / INFO).read_text())
        self.classifier = build_classifier(self.info["image_shape"], self.info["n_classes"])
        self.classifier.load_weights(self.folder / WEIGHTS)
        self.features_model = layer_outputs(self.classifier, [FEATURE_LAYER])

    @property
    def weights_path(self):
        return self.folder / WEIGHTS

    def features(self, images, batch_size=500):
        """Penultimate features of `images`, float64."""
        return np.concatenate([to_numpy(self.features_model(b, training=False)) for b in batches(images, batch_size)])

    def classes(self, images, batch_size=500):
        """The predicted class of each image."""
        return np.concatenate([to_numpy(self.classifier(b, training=False)).argmax(axis=1)
                               for b in batches(images, batch_size)])

    def sample_scores(self, test_images, test_labels, samples, reconstructions):
        """The scores of a model's `samples` and `reconstructions` of `test_images`: Fréchet distance to the
        test images, accuracy of the classes of reconstructions, spread of the classes of samples."""
        return {"frechet_distance": distance_between(self.features(test_images), self.features(samples)),
                "reconstruction_accuracy": float(np.mean(self.classes(reconstructions) == test_labels)),
                **class_spread(self.classes(samples), self.info["n_classes"])}


def feature_network(data, limit=None, log=print):
    """The feature network of `data` (a loaded dataset with labels), trained and cached the first time; a
    UserError for data without labels."""
    if data.y_train is None or data.y_test is None:
        raise UserError(f"{data.name} has no labels, so no classifier can be trained to score its samples")
    folder = cache_root() / (data.name + (f"_limit{limit}" if limit else ""))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot keep feature networks in {folder.parent} ({e.strerror or e}); set "
                        "VAE_FEATURE_NETS to a writable folder") from None
    digest = data_hash(data)
    with open(folder / ".lock", "w") as lock:  # two runs starting together train it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = json.loads((folder / INFO).read_text()) if (folder / INFO).is_file() else None
        if info is None or info["data_hash"] != digest:
            if info is not None:
                log(f"the feature network in {folder} was trained on other data (hash {info['data_hash']}, "
                    f"these are {digest}): training it again")
            train_feature_network(data, folder, digest, log)
    return FeatureNetwork(folder)


def train_feature_network(data, folder, digest, log=print):
    """Train the classifier on `data` with seed 0, measure its test accuracy and the distance's scale, and
    write both into `folder`."""
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    epochs = int(np.clip(IMAGE_PRESENTATIONS // len(data.x_train), 5, 30))
    keras.utils.set_random_seed(SEED)
    classifier = build_classifier(data.image_shape, n_classes)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    classifier.fit(data.x_train, data.y_train, batch_size=128, epochs=epochs, verbose=0)
    accuracy = float(classifier.evaluate(data.x_test, data.y_test, batch_size=500, verbose=0, return_dict=True)[
        "accuracy"])
    with atomic_path(folder / WEIGHTS) as tmp:
        classifier.save_weights(tmp)
    info = {"dataset": data.name, "image_shape": list(data.image_shape), "n_classes": n_classes,
            "n_train": len(data.x_train), "n_test": len(data.x_test), "data_hash": digest, "epochs": epochs,
            "seed": SEED, "test_accuracy": accuracy, "versions": provenance.versions(), "created": provenance.now()}
    write_json(folder / INFO, info)
    info["scale"] = distance_scale(FeatureNetwork(folder), data)
    write_json(folder / INFO, info)
    log(f"feature network for {data.name}: {n_classes} classes, {epochs} epochs on {len(data.x_train)} images, "
        f"test accuracy {accuracy:.4f}; Fréchet distance to the test images of " + ", ".join(
            f"{k} {v:.2f}" for k, v in info["scale"].items()) + f" ({folder})")


def distance_scale(network, data):
    """The Fréchet distance to the test images of other real images and of spoilt copies of the test images:
    the scale a model's figure is read against."""
    test = data.x_test
    real = data.x_train[:len(test)]
    base = network.features(test)
    spoilt = {"training images (held-out real)": real, "test images blurred (σ = 1 px)": blurred(test, 1.0),
              "test images blurred (σ = 2 px)": blurred(test, 2.0), "test images with noise (σ = 0.1)": noisy(test, 0.1),
              "test images with noise (σ = 0.3)": noisy(test, 0.3)}
    return {name: distance_between(base, network.features(images)) for name, images in spoilt.items()}
