"""Activation layers by name: where `--act lrelu|gelu|relu|elu|silu|tanh|sigmoid` is decided.

GELU is the exact erf form. For training it runs as `FusedGELU`, whose forward pass writes y and
dy/dx, so its backward pass is a single multiply: in float32 on CPU by one compiled op
(`models/gelu_op.py`), elsewhere by two XLA-compiled loops over the tensor (`gelu_and_slope`);
saved `.h5` models get Keras's stock `Activation("gelu")` instead (`models.layers.stock_clone`), so
they load in plain Keras. Importing this module asks XLA's CPU compiler for 512-bit vectors (below).
"""

import os

import keras
import tensorflow as tf
from keras import layers
from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext

from models import gelu_op

ACTIVATIONS = ("lrelu", "gelu", "relu", "elu", "silu", "tanh", "sigmoid")
LRELU_SLOPE = 0.3  # the LeakyReLU layer's default in Keras 2 and 3, named so nobody has to guess

# Why an XLA flag is set here: XLA's CPU compiler emits 256-bit vector code by default (LLVM's choice
# for Intel parts that slow their clock on 512-bit code), while the oneDNN convolutions around the GELU
# already run 512-bit ones. On AVX-512 CPUs the GELU's loops run 10-30 % faster with 512-bit vectors
# and give the same bits; without AVX-512 the flag changes nothing (docs/gelu_xla.md). XLA reads
# XLA_FLAGS once, at its first compile in the process, so this runs at import; a width the user chose
# is kept.
XLA_VECTOR_FLAG = "--xla_cpu_prefer_vector_width=512"


def prefer_wide_xla_vectors(environ=os.environ):
    """Add `XLA_VECTOR_FLAG` to XLA_FLAGS unless a vector width is named there already."""
    flags = environ.get("XLA_FLAGS", "")
    if "xla_cpu_prefer_vector_width" not in flags:
        environ["XLA_FLAGS"] = f"{flags} {XLA_VECTOR_FLAG}".strip()


prefer_wide_xla_vectors()

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
# 0.5 * erfc(z) = 0.5 * t * exp(-z^2) * P(t), t = 1 / (1 + p z), z >= 0; P's coefficients, lowest power
# first, from `python scripts/fit_gelu_tail.py` (worst relative error 2.0e-8 for z <= 10.5, where
# exp(-z^2) underflows float32; float32 itself resolves 6e-8).
_TAIL_P = 0.3
_TAIL_COEFFICIENTS = (0.16918745620862874, 0.1707231975310674, 0.14829000653798236, 0.21509454881046575,
                      -0.09500213894002683, 0.5481774648859744, -0.5126415706772075, 0.4857246532319438,
                      -0.12955363717760487)


def _gaussian_cdf(x):
    """(Phi(x), exp(-x^2 / 2)) in float32, from the fitted tail form above: one exp, one division."""
    t = 1.0 / (1.0 + (_TAIL_P * _SQRT_HALF) * tf.abs(x))
    gauss = tf.exp(-0.5 * x * x)  # exp(-z^2) with z = |x| / sqrt 2
    poly = _TAIL_COEFFICIENTS[-1]
    for coefficient in _TAIL_COEFFICIENTS[-2::-1]:  # Horner
        poly = poly * t + coefficient
    tail = 0.5 * t * gauss * poly  # Phi(-|x|)
    return tf.where(x < 0.0, tail, 1.0 - tail), gauss


# Why by hand: stock erf-GELU runs as ~10 separate elementwise kernels forward and backward, each a
# full pass over the activation tensor; on CPU that costs ~9x a LeakyReLU (issue 4). Here the forward
# pass writes y and dy/dx and the backward pass is one multiply. Phi comes from the tail form above, not
# XLA's erfc, which evaluates both of its branches (issue 11). The compiled op writes both from one loop;
# XLA cannot (in one program it writes the shared exp and division to memory as passes of their own), so
# its fallback is two programs that each redo them. Computing the slope in the backward pass instead was
# slower in training with either (docs/gelu.md and docs/gelu_xla.md have the races).
@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu(x):
    xf = tf.cast(x, tf.float32)
    cdf, _ = _gaussian_cdf(xf)
    return tf.cast(xf * cdf, x.dtype)


@tf.function(jit_compile=True, reduce_retracing=True)
def _gelu_slope(x):
    xf = tf.cast(x, tf.float32)
    cdf, gauss = _gaussian_cdf(xf)
    return tf.cast(cdf + xf * (_INV_SQRT_2PI * gauss), x.dtype)  # Phi(x) + x * phi(x)


def gelu_and_slope(x):
    """(y, dy/dx) of the exact GELU: by the compiled op for float32 outside XLA where it loads, else by XLA."""
    # XLA cannot compile the op: inside a jit-compiled function (TensorFlow's own test for it, not public API)
    # the programs run, inlined into the step
    in_xla = not tf.executing_eagerly() and GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    op = gelu_op.load() if x.dtype == tf.float32 and not in_xla else None
    if op is None:
        return _gelu(x), _gelu_slope(x)
    return op.vae_gelu_with_slope(x, tail_coefficients=_TAIL_COEFFICIENTS, tail_scale=_TAIL_P * _SQRT_HALF)


@tf.custom_gradient
def fused_gelu(x):
    """Exact GELU, x * Phi(x): y and dy/dx in the forward pass (`gelu_and_slope`); the gradient is one multiply."""
    x = tf.stop_gradient(x)  # the tape needs only `grad` below
    y, slope = gelu_and_slope(x)

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
