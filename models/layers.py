"""Layers shared by the model families: the VAE's `Sampling` layer, and the swap of the fast training
layers (fused GELU, fused batch norm) for stock Keras layers when a model is exported to `.h5`."""

import keras
from keras import layers, ops

from models.activations import FusedGELU
from models.normalization import FusedBatchNormalization


@keras.saving.register_keras_serializable(package="vae")  # the package name old encoder.h5 files use
class Sampling(layers.Layer):
    """Draws z = mu + exp(log_var / 2) * eps with eps ~ N(0, I): the reparameterization trick."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mu, log_var = inputs
        eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype, seed=self.seed_generator)
        return mu + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def stock_clone(layer):
    """A float32 copy of `layer` made of stock Keras layers (for `keras.models.clone_model`), so an
    exported file loads in plain Keras; `Sampling` is kept (it is registered by `import models`)."""
    config = {**layer.get_config(), "dtype": "float32"}
    if isinstance(layer, FusedGELU):
        return layers.Activation("gelu", name=layer.name, dtype="float32")  # Keras's exact erf form
    if isinstance(layer, FusedBatchNormalization):
        return layers.BatchNormalization.from_config(config)
    return layer.__class__.from_config(config)


def export_model(model):
    """`model` rebuilt with `stock_clone` layers and its weights: what goes into an `.h5` file."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # saved files hold plain float32 models
    try:
        clone = keras.models.clone_model(model, clone_function=stock_clone, recursive=True)
    finally:
        keras.config.set_dtype_policy(policy)
    clone.set_weights(model.get_weights())
    return clone
