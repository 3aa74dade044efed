"""Small CNN classifiers trained on a dataset's own images (utils/analysis/features.py trains and caches
them), in two architectures with two jobs:

- the feature network, whose conv layers give the DFC-VAE's feature-consistent loss (models/DFC.py),
  standing in for the paper's VGG layers:

    image -> conv 32 (3x3, ReLU) -> conv 32 -> max-pool 2 -> conv 64 -> max-pool 2 -> dense 128 (ReLU): the
    features -> dense n_classes (softmax)

- the judge, which scores generated images and which no model trains against: its penultimate features give
  the Fréchet distance (the "Fréchet LeNet distance", TF-GAN's MNIST Fréchet distance) and the KID, its
  classes the accuracy of reconstructions and the spread of samples. Another depth, widths, kernels and
  features' width, so that a model fitted to the feature network's activations is not scored on them:

    image -> conv 16 (5x5, ReLU) -> max-pool 2 -> conv 32 (5x5, ReLU) -> max-pool 2 -> dense 256 (ReLU): the
    features -> dense n_classes (softmax)
"""

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class ClassifierArchitecture:
    """A classifier as plain values: its conv layers as (filters, kernel, max-pool by 2 after it), the width
    of its features (the penultimate dense layer), and the prefix of its layers' names."""

    name: str
    prefix: str
    convs: tuple[tuple[int, int, bool], ...]
    features: int

    @property
    def conv_layers(self):
        """The names of its conv layers (their ReLU outputs), first to last."""
        return tuple(f"{self.prefix}_conv_{i}" for i in range(1, len(self.convs) + 1))

    @property
    def feature_layer(self):
        """The name of its penultimate layer."""
        return f"{self.prefix}_dense"


FEATURE_NETWORK = ClassifierArchitecture("feature_cnn", "feature", ((32, 3, False), (32, 3, True), (64, 3, True)), 128)
JUDGE = ClassifierArchitecture("judge_cnn", "judge", ((16, 5, True), (32, 5, True)), 256)
ARCHITECTURES = {a.name: a for a in (FEATURE_NETWORK, JUDGE)}
CONV_LAYERS = FEATURE_NETWORK.conv_layers
FEATURE_LAYER = FEATURE_NETWORK.feature_layer


def build_classifier(input_shape, n_classes, architecture=FEATURE_NETWORK):
    """The classifier, uncompiled: image -> class probabilities; its layers are named as above (the feature
    network's layers in the order its saved weights files expect)."""
    a = architecture
    images = keras.Input(shape=tuple(input_shape), name="image")
    x, pools = images, 0
    for name, (filters, kernel, pool) in zip(a.conv_layers, a.convs):
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu", name=name)(x)
        if pool:
            pools += 1
            x = layers.MaxPooling2D(2, name=f"{a.prefix}_pool_{pools}")(x)
    x = layers.Flatten(name=f"{a.prefix}_flatten")(x)
    x = layers.Dense(a.features, activation="relu", name=a.feature_layer)(x)
    probabilities = layers.Dense(n_classes, activation="softmax", name="class")(x)
    return keras.Model(images, probabilities, name=a.name)


def layer_outputs(classifier, names):
    """A model: image -> the outputs of the classifier's layers `names` (sharing its weights)."""
    unknown = [n for n in names if n not in {layer.name for layer in classifier.layers}]
    if unknown:
        raise ValueError(f"the feature network has no layer {', '.join(unknown)}; its layers are "
                         f"{', '.join(layer.name for layer in classifier.layers[1:])}")
    return keras.Model(classifier.input, [classifier.get_layer(n).output for n in names], name="features")
