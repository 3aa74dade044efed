"""The fused exact GELU's TensorFlow kernel: y = x * Phi(x) and dy/dx from two XLA-compiled loops.

Why by hand: stock erf-GELU runs as ~10 separate elementwise kernels forward and backward, each a full
pass over the activation tensor; on CPU that costs ~9x a LeakyReLU (issue 4). Here the forward pass writes
y and dy/dx and the backward pass is one multiply. Phi comes from a fitted tail form with one exp, not
XLA's erfc, which evaluates both of its branches (issue 11). In one XLA program the shared exp and
division are written to memory as passes of their own, so y and the slope are two programs that each
redo them; computing the slope in the backward pass instead was slower in training (docs/gelu.md and
docs/gelu_xla.md have the races, and the compiled C++ op this replaced).
"""

import tensorflow as tf

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
    """(y, dy/dx) of the exact GELU, each by its XLA program."""
    return _gelu(x), _gelu_slope(x)


@tf.custom_gradient
def fused_gelu(x):
    """Exact GELU, x * Phi(x): y and dy/dx in the forward pass (`gelu_and_slope`); the gradient is one multiply."""
    x = tf.stop_gradient(x)  # the tape needs only `grad` below
    y, slope = gelu_and_slope(x)

    def grad(dy):
        return dy * slope

    return y, grad
