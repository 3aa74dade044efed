"""The classifiers of a dataset (models/classifier.py), each trained once on the dataset's training images
(the same name, --limit and split as the runs use), cached under `run/feature_nets/` (or `$VAE_FEATURE_NETS`)
with its test accuracy and the distances' scale, and reused by every run on those data:

- the feature network (seed 0, `<dataset>[_limitN]/`): what the DFC-VAE trains against;
- the judge (another architecture, seed 1, `judge_<dataset>[_limitN]/`): what scores every model's samples
  and reconstructions, so no model is scored by a network it was trained against.

The cache holds a hash of the training images and labels, and the architecture and seed: other data (or
another network) under the same name rebuild it, and say so.

    <cache>/[judge_]<dataset>[_limitN]/
        classifier.weights.h5      the trained classifier
        info.json                  data hash, sizes, epochs, architecture, seed, test accuracy, the distances'
                                   scale, versions
"""

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from models.classifier import ARCHITECTURES, FEATURE_NETWORK, JUDGE, build_classifier, layer_outputs
from models.base import batches, to_numpy
from utils.analysis.frechet import blurred, class_spread, distance_between, noisy
from utils.analysis.kid import MIN_IMAGES, kernel_distance
from utils.atomic import atomic_path, write_json
from utils.errors import UserError
from utils.runs import health, provenance

WEIGHTS, INFO = "classifier.weights.h5", "info.json"
IMAGE_PRESENTATIONS = 100_000  # epochs = this / training images, between 5 and 30


@dataclass(frozen=True)
class Role:
    """Which classifier of a dataset: its job (in messages), architecture, seed and folder prefix."""

    job: str
    architecture: str
    seed: int
    prefix: str


FEATURES = Role("feature network", FEATURE_NETWORK.name, 0, "")
JUDGING = Role("judge", JUDGE.name, 1, "judge_")


def cache_root():
    """Where feature networks are kept: $VAE_FEATURE_NETS, else run/feature_nets."""
    return Path(os.environ.get("VAE_FEATURE_NETS", Path("run") / "feature_nets"))


def data_hash(data):
    """A hash of the training images and labels the classifier learns from."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def outputs_of(model, images, batch_size=500):
    """`model`'s outputs for `images`, in batches, as NumPy."""
    return np.concatenate([to_numpy(model(b, training=False)) for b in batches(images, batch_size)])


class FeatureNetwork:
    """A trained classifier of one dataset: its features, classes and the distances' scale on that dataset."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.info = json.loads((self.folder / INFO).read_text())
        self.architecture = ARCHITECTURES[self.info.get("architecture", FEATURE_NETWORK.name)]
        self.classifier = build_classifier(self.info["image_shape"], self.info["n_classes"], self.architecture)
        self.classifier.load_weights(self.folder / WEIGHTS)
        self.features_model = layer_outputs(self.classifier, [self.architecture.feature_layer])

    @property
    def weights_path(self):
        return self.folder / WEIGHTS

    def describe(self):
        """Which network this is, in one line (eval.json's `judge`)."""
        return (f"{self.architecture.name}, seed {self.info['seed']}, test accuracy {self.info['test_accuracy']:.4f}, "
                f"{self.folder}")

    def features(self, images):
        """Penultimate features of `images`."""
        return outputs_of(self.features_model, images)

    def classes(self, images):
        """The predicted class of each image."""
        return outputs_of(self.classifier, images).argmax(axis=1)

    def distances(self, real, generated):
        """The Fréchet distance and (with enough images) the KID between two sets of its features. The KID's
        cubic kernel is not scale-free, and the scale of a ReLU layer's features is arbitrary (the next layer
        can undo any factor), so it sees them over their RMS on the training images (`feature_rms`)."""
        found = {"frechet_distance": distance_between(real, generated)}
        if min(len(real), len(generated)) >= MIN_IMAGES and "feature_rms" in self.info:  # older caches: none
            found.update(kernel_distance(real / self.info["feature_rms"], generated / self.info["feature_rms"]))
        return found

    def sample_scores(self, test_images, test_labels, samples, reconstructions):
        """The scores of a model's `samples` and `reconstructions` of `test_images`: Fréchet distance and KID
        to the test images, accuracy of the classes of reconstructions, spread of the classes of samples,
        and which network gave them (`judge`)."""
        return {"judge": self.describe(), **self.distances(self.features(test_images), self.features(samples)),
                "reconstruction_accuracy": float(np.mean(self.classes(reconstructions) == test_labels)),
                **class_spread(self.classes(samples), self.info["n_classes"])}


def feature_network(data, limit=None, log=print, role=FEATURES):
    """The classifier of `data` (a loaded dataset with labels) in `role` (the feature network the DFC-VAE
    trains against, or the judge), trained and cached the first time; a UserError for data without labels."""
    if data.y_train is None or data.y_test is None:
        raise UserError(f"{data.name} has no labels, so no classifier can be trained to score its samples")
    folder = cache_root() / (role.prefix + data.name + (f"_limit{limit}" if limit else ""))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot keep feature networks in {folder.parent} ({e.strerror or e}); set "
                        "VAE_FEATURE_NETS to a writable folder") from None
    wanted = {"data_hash": data_hash(data), "architecture": role.architecture, "seed": role.seed}
    with open(folder / ".lock", "w") as lock:  # two runs starting together train it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        damage = cache_damage(folder)
        if damage:
            log(f"the cached {role.job} in {folder} cannot be used ({damage}): training it again")
        info = None if damage or not (folder / INFO).is_file() else json.loads((folder / INFO).read_text())
        found = info and {"data_hash": info.get("data_hash"), "seed": info.get("seed"),
                          "architecture": info.get("architecture", FEATURE_NETWORK.name)}  # older caches: no name
        if found != wanted:
            if found:
                changed = "; ".join(f"{k} {found[k]}, wanted {wanted[k]}" for k in wanted if found[k] != wanted[k])
                log(f"the {role.job} in {folder} was "
                    + ("trained on other data" if found["data_hash"] != wanted["data_hash"] else "another network")
                    + f" ({changed}): training it again")
            train_feature_network(data, folder, wanted["data_hash"], log, role)
    return FeatureNetwork(folder)


def cache_damage(folder):
    """None if a cached network's info.json and weights are sound or not there yet (nothing cached), else the
    first `Damage` found (utils/runs/health.py)."""
    if not (folder / INFO).exists() and not (folder / WEIGHTS).exists():
        return None
    return health.json_damage(folder / INFO) or health.h5_damage(folder / WEIGHTS)


def judge(data, limit=None, log=print):
    """The judge of `data`: the classifier that scores samples, apart from anything a model trains against."""
    return feature_network(data, limit, log, JUDGING)


def train_feature_network(data, folder, digest, log=print, role=FEATURES):
    """Train the classifier of `role` on `data` with its seed, measure its test accuracy and the distances'
    scale, and write both into `folder`."""
    n_classes = int(max(data.y_train.max(), data.y_test.max())) + 1
    epochs = int(np.clip(IMAGE_PRESENTATIONS // len(data.x_train), 5, 30))
    keras.utils.set_random_seed(role.seed)
    classifier = build_classifier(data.image_shape, n_classes, ARCHITECTURES[role.architecture])
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
    classifier.fit(data.x_train, data.y_train, batch_size=128, epochs=epochs, verbose=0)
    accuracy = float(classifier.evaluate(data.x_test, data.y_test, batch_size=500, verbose=0, return_dict=True)[
        "accuracy"])
    features = outputs_of(layer_outputs(classifier, [ARCHITECTURES[role.architecture].feature_layer]), data.x_train)
    rms = float(np.sqrt(np.mean(features.astype("float64") ** 2)))
    with atomic_path(folder / WEIGHTS) as tmp:
        classifier.save_weights(tmp)
    info = {"dataset": data.name, "role": role.job, "architecture": role.architecture,
            "image_shape": list(data.image_shape), "n_classes": n_classes, "n_train": len(data.x_train),
            "n_test": len(data.x_test), "data_hash": digest, "epochs": epochs, "seed": role.seed,
            "test_accuracy": accuracy, "feature_rms": rms, "versions": provenance.versions(),
            "created": provenance.now()}
    write_json(folder / INFO, info)
    info["scale"], info["kid_scale"] = distance_scale(FeatureNetwork(folder), data)
    write_json(folder / INFO, info)
    log(f"{role.job} ({role.architecture}) for {data.name}: {n_classes} classes, {epochs} epochs on "
        f"{len(data.x_train)} images, test accuracy {accuracy:.4f}; Fréchet distance (KID) to the test images of "
        + ", ".join(f"{k} {v:.2f}" + (f" ({info['kid_scale'][k]:.3f})" if k in info["kid_scale"] else "")
                    for k, v in info["scale"].items()) + f" ({folder})")


def distance_scale(network, data):
    """The Fréchet distance and the KID to the test images of other real images and of spoilt copies of the
    test images: the scale a model's figures are read against. Two dicts, {what: distance}, {what: KID}."""
    test = data.x_test
    real = data.x_train[:len(test)]
    base = network.features(test)
    spoilt = {"training images (held-out real)": real, "test images blurred (σ = 1 px)": blurred(test, 1.0),
              "test images blurred (σ = 2 px)": blurred(test, 2.0), "test images with noise (σ = 0.1)": noisy(test, 0.1),
              "test images with noise (σ = 0.3)": noisy(test, 0.3)}
    found = {name: network.distances(base, network.features(images)) for name, images in spoilt.items()}
    return ({name: d["frechet_distance"] for name, d in found.items()},
            {name: d["kid"] for name, d in found.items() if "kid" in d})
