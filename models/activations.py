"""Activation layers by name: where `--act lrelu|gelu|relu|elu|silu|tanh|sigmoid` is decided.

GELU is the exact erf form. For training it runs as `FusedGELU`: on TensorFlow by two XLA programs whose
forward pass writes y and dy/dx, so its backward pass is one multiply (models/gelu_tf.py); on JAX and
PyTorch by the backend's own exact GELU (`keras.ops.gelu(x, approximate=False)`, which XLA fuses on JAX).
Saved `.h5` models get Keras's stock `Activation("gelu")` instead (`models.layers.stock_clone`), so they
load in plain Keras on any backend. The commands ask XLA's CPU compiler for 512-bit vectors (utils/startup.py).
"""

import keras
from keras import layers, ops

ACTIVATIONS = ("lrelu", "gelu", "relu", "elu", "silu", "tanh", "sigmoid")
DEFAULT_ACTIVATION = "lrelu"  # the study's base model, on both sides
LRELU_SLOPE = 0.3  # the LeakyReLU layer's default in Keras 2 and 3, named so nobody has to guess


@keras.saving.register_keras_serializable(package="vae")
class FusedGELU(layers.Layer):
    """Exact (erf) GELU; numerically `keras.activations.gelu(x, approximate=False)` on every backend."""

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            from models.gelu_tf import fused_gelu  # TensorFlow is imported only where it is the backend

            return fused_gelu(inputs)
        return ops.gelu(inputs, approximate=False)

    def compute_output_shape(self, input_shape):
        return input_shape


def activation_layer(act, name):
    """The layer for activation `act` (LeakyReLU with the study's slope, the fused exact GELU, or Keras's)."""
    if act not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {act!r}")
    if act == "lrelu":
        return layers.LeakyReLU(negative_slope=LRELU_SLOPE, name=name)
    if act == "gelu":
        return FusedGELU(name=name)
    return layers.Activation(act, name=name)
