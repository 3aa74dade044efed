"""Activation layers by name: where `--act lrelu|gelu|relu|elu|silu|tanh|sigmoid` is decided.

GELU is the exact erf form. For training it runs as `FusedGELU`, whose forward pass is one
XLA-compiled program that also writes the derivative, so its backward pass is a single multiply;
saved `.h5` models get Keras's stock `Activation("gelu")` instead (`models.layers.stock_clone`), so
they load in plain Keras.
"""

import keras
import tensorflow as tf
from keras import layers

ACTIVATIONS = ("lrelu", "gelu", "relu", "elu", "silu", "tanh", "sigmoid")
LRELU_SLOPE = 0.3  # the LeakyReLU layer's default in Keras 2 and 3, named so nobody has to guess

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_TINY = 1e-30  # below this |x|, y / x loses Phi(x) = 0.5 to underflow

try:  # keeps XLA from fusing across it; without it XLA evaluates erfc in a kernel of its own
    from tensorflow.compiler.tf2xla.python.xla import optimization_barrier as _barrier
except ImportError:  # pragma: no cover - an older or trimmed TensorFlow: same numbers, a little slower
    def _barrier(*tensors):
        return tensors


# Why by hand: stock erf-GELU runs as ~10 separate elementwise kernels forward and backward, each a
# full pass over the activation tensor; on CPU that costs ~9x a LeakyReLU (issue 4). Here one XLA
# program in the forward pass writes y and dy/dx (Phi read back as y / x, so erfc is evaluated once)
# and the backward pass is one multiply that TensorFlow runs on all cores. Per training step of
# gelu_full on the 2-core CPU of docs/benchmarks.md, that layout was 7-9 % faster than separate XLA
# forward and backward programs with the same math. tf.nn.gelu's erfc form is kept because
# 1 + erf(x / sqrt 2), 3-7 % faster, is off by up to 9.5e-7 near |x| = 4 (float32 erf is good to
# only 4e-7 near +-1) and, with XLA's erf, by 6e-8 * |x| for large negative x (1e-6 at x = -12).
@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_and_slope(x):
    xf = tf.cast(x, tf.float32)
    y = 0.5 * xf * tf.math.erfc(-xf * _SQRT_HALF)  # tf.nn.gelu's formula for approximate=False
    y_kept, x_kept = _barrier(y, xf)
    cdf = tf.where(tf.abs(x_kept) > _TINY, y_kept / x_kept, 0.5)
    slope = cdf + x_kept * (_INV_SQRT_2PI * tf.exp(-0.5 * x_kept * x_kept))  # Phi(x) + x * phi(x)
    return tf.cast(y, x.dtype), tf.cast(slope, x.dtype)


@tf.custom_gradient
def fused_gelu(x):
    """Exact GELU, x * Phi(x): y and dy/dx in one XLA-compiled pass; the gradient is one multiply."""
    y, slope = _gelu_and_slope(tf.stop_gradient(x))  # the tape needs only `grad` below

    def grad(dy):
        return dy * slope

    return y, grad


@keras.saving.register_keras_serializable(package="vae")
class FusedGELU(layers.Layer):
    """Exact (erf) GELU by `fused_gelu`; numerically `keras.activations.gelu(x, approximate=False)`."""

    def call(self, inputs):
        return fused_gelu(inputs)

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
