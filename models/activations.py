"""Activation layers by name: where `--act lrelu|gelu|relu|elu|silu` is decided.

GELU is the exact erf form. For training it runs as `FusedGELU`, whose forward and backward passes
are each compiled by XLA into one pass over memory; saved `.h5` models get Keras's stock
`Activation("gelu")` instead, so they load in plain Keras.
"""

import keras
import tensorflow as tf
from keras import layers

ACTIVATIONS = ("lrelu", "gelu", "relu", "elu", "silu")
LRELU_SLOPE = 0.3  # the LeakyReLU layer's default in Keras 2 and 3, named so nobody has to guess

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


# Why by hand: stock erf-GELU runs as ~10 separate elementwise kernels forward and backward, each a
# full pass over the activation tensor; on CPU that costs ~9x a LeakyReLU (issue 4). Compiling the
# two halves with XLA fuses each into one kernel, with the same erf formula.
@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_forward(x):
    return 0.5 * x * (1.0 + tf.math.erf(x * _SQRT_HALF))


@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_backward(x, dy):
    cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))
    pdf = _INV_SQRT_2PI * tf.exp(-0.5 * x * x)
    return dy * (cdf + x * pdf)


@tf.custom_gradient
def fused_gelu(x):
    """Exact GELU, x * Phi(x), with an XLA-fused forward pass and gradient."""

    def grad(dy):
        return _gelu_backward(x, dy)

    return _gelu_forward(x), grad


@keras.saving.register_keras_serializable(package="vae")
class FusedGELU(layers.Layer):
    """Exact (erf) GELU as one fused kernel; numerically `keras.activations.gelu(x, approximate=False)`."""

    def call(self, inputs):
        return fused_gelu(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


def activation_layer(act, name, for_export=False):
    """The layer for activation `act`; `for_export` avoids custom layers so files load in plain Keras."""
    if act not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {act!r}")
    if act == "lrelu":
        return layers.LeakyReLU(negative_slope=LRELU_SLOPE, name=name)
    if act == "gelu" and not for_export:
        return FusedGELU(name=name)
    return layers.Activation(act, name=name)  # "gelu" here is Keras's exact form (approximate=False)
