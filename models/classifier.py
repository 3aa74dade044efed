"""The feature network: a small CNN classifier trained on a dataset's own images (utils/analysis/features.py
trains and caches it). Its penultimate layer gives the features that the Fréchet distance of generated
images compares (the "Fréchet LeNet distance", TF-GAN's MNIST Fréchet distance), and its conv layers give
the DFC-VAE's feature-consistent loss (models/DFC.py), standing in for the paper's VGG layers.

    image -> conv 32 (3x3, ReLU) -> conv 32 -> max-pool 2 -> conv 64 -> max-pool 2 -> dense 128 (ReLU): the
    features -> dense n_classes (softmax)
"""

import keras
from keras import layers

CONV_LAYERS = ("feature_conv_1", "feature_conv_2", "feature_conv_3")  # their ReLU outputs
FEATURE_LAYER = "feature_dense"  # the penultimate layer


def build_classifier(input_shape, n_classes):
    """The classifier, uncompiled: image -> class probabilities; its layers are named as above."""
    images = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name=CONV_LAYERS[0])(images)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name=CONV_LAYERS[1])(x)
    x = layers.MaxPooling2D(2, name="feature_pool_1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name=CONV_LAYERS[2])(x)
    x = layers.MaxPooling2D(2, name="feature_pool_2")(x)
    x = layers.Flatten(name="feature_flatten")(x)
    x = layers.Dense(128, activation="relu", name=FEATURE_LAYER)(x)
    probabilities = layers.Dense(n_classes, activation="softmax", name="class")(x)
    return keras.Model(images, probabilities, name="classifier")


def layer_outputs(classifier, names):
    """A model: image -> the outputs of the classifier's layers `names` (sharing its weights)."""
    unknown = [n for n in names if n not in {layer.name for layer in classifier.layers}]
    if unknown:
        raise ValueError(f"the feature network has no layer {', '.join(unknown)}; its layers are "
                         f"{', '.join(layer.name for layer in classifier.layers[1:])}")
    return keras.Model(classifier.input, [classifier.get_layer(n).output for n in names], name="features")
