"""The fused GELU is the exact (erf) GELU in value and gradient, by the compiled op and by the XLA programs,
and the activation names map to the right layers."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from models import gelu_op
from models.activations import (LRELU_SLOPE, XLA_VECTOR_FLAG, FusedGELU, activation_layer, fused_gelu,
                                prefer_wide_xla_vectors)

TOLERANCE = 1e-6  # max abs difference to Keras's exact GELU, in value and in gradient (issue 4)


def wide_range():
    """float32 inputs from 0 and denormals through the erf transition to +-1e38."""
    dense = np.linspace(-12.0, 12.0, 240_001)
    magnitudes = np.concatenate([[0.0, 1e-45, 1e-40, 1e-38, 1e-30, 1e-20, 1e-7], np.logspace(-6, 38, 400)])
    return np.concatenate([dense, magnitudes, -magnitudes]).astype(np.float32)


def value_and_gradient(fn, x):
    """fn(x) and d sum(fn(x)) / dx, traced as in a training step."""
    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, x)

    return [t.numpy() for t in run(tf.constant(x))]


def stock_gelu(x):
    return keras.activations.gelu(x, approximate=False)


@pytest.fixture(params=["op", "xla"])
def gelu_kernel(request, monkeypatch):
    """Run the float32 GELU by the compiled op (which must build here) or by the XLA programs."""
    if request.param == "op":
        assert gelu_op.load() is not None, "the CPU GELU op did not build; see the warning above"
    else:
        monkeypatch.setattr(gelu_op, "load", lambda: None)
    return request.param


def test_value_and_gradient_match_keras_exact_gelu(gelu_kernel):
    x = wide_range()
    y, dy = value_and_gradient(fused_gelu, x)
    y_ref, dy_ref = value_and_gradient(stock_gelu, x)
    assert np.isfinite(y).all() and np.isfinite(dy).all()
    assert np.max(np.abs(y - y_ref)) <= TOLERANCE
    assert np.max(np.abs(dy - dy_ref)) <= TOLERANCE


def test_is_the_erf_form_not_the_tanh_approximation(gelu_kernel):
    x = np.array([-3.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0], dtype=np.float32)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)])
    slope = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
                      for v in x.astype(float)])
    y, dy = value_and_gradient(fused_gelu, x)
    np.testing.assert_allclose(y, exact, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(dy, slope, atol=TOLERANCE, rtol=0)
    tanh_form = keras.activations.gelu(x, approximate=True).numpy()
    assert np.max(np.abs(tanh_form - exact)) > 100 * TOLERANCE  # so the check above can tell them apart


def test_upstream_gradient_is_multiplied_through(gelu_kernel):
    x = np.linspace(-4, 4, 101, dtype=np.float32)
    upstream = np.linspace(-2, 3, 101, dtype=np.float32)
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        loss = tf.reduce_sum(fused_gelu(xt) * upstream)
    with tf.GradientTape() as tape_ref:
        xr = tf.constant(x)
        tape_ref.watch(xr)
        loss_ref = tf.reduce_sum(stock_gelu(xr) * upstream)
    np.testing.assert_allclose(tape.gradient(loss, xt), tape_ref.gradient(loss_ref, xr), atol=3 * TOLERANCE, rtol=0)


def test_layer_keeps_shape_and_low_precision_dtype():
    x = tf.random.stateless_normal((2, 7, 7, 3), seed=(1, 2)) * 3
    layer = FusedGELU()
    np.testing.assert_allclose(layer(x), stock_gelu(x), atol=TOLERANCE, rtol=0)
    y16 = fused_gelu(tf.cast(x, tf.bfloat16))
    assert y16.dtype == tf.bfloat16 and y16.shape == x.shape
    np.testing.assert_allclose(tf.cast(y16, tf.float32), stock_gelu(x), atol=0.05, rtol=0.02)


def test_activation_layers_by_name():
    assert isinstance(activation_layer("gelu", "a"), FusedGELU)
    from models.layers import stock_clone

    exported = stock_clone(activation_layer("gelu", "a"))
    assert type(exported) is keras.layers.Activation and exported.get_config()["activation"] == "gelu"
    lrelu = activation_layer("lrelu", "a")
    assert isinstance(lrelu, keras.layers.LeakyReLU) and lrelu.negative_slope == pytest.approx(LRELU_SLOPE)
    with pytest.raises(ValueError, match="activation must be one of"):
        activation_layer("swish", "a")
    assert activation_layer("tanh", "a").get_config()["activation"] == "tanh"


def test_fitted_tail_constants_match_erfc_in_float64():
    """The tail form's constants (scripts/fit_gelu_tail.py) give erfc to float32 resolution over its range."""
    from models.activations import _TAIL_COEFFICIENTS, _TAIL_P

    z = np.linspace(0.0, 10.5, 4001)
    t = 1.0 / (1.0 + _TAIL_P * z)
    fitted = t * np.exp(-z * z) * np.polynomial.polynomial.polyval(t, _TAIL_COEFFICIENTS)
    exact = np.array([math.erfc(v) for v in z])
    assert np.max(np.abs(fitted / exact - 1.0)) < 3e-8


def test_wide_vector_flag_is_added_once_and_a_users_width_kept():
    """XLA_VECTOR_FLAG joins other XLA flags, and a width the user named is left as it is."""
    for before, after in [({}, XLA_VECTOR_FLAG),
                          ({"XLA_FLAGS": "--xla_dump_to=/d"}, f"--xla_dump_to=/d {XLA_VECTOR_FLAG}"),
                          ({"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}, "--xla_cpu_prefer_vector_width=256")]:
        environ = dict(before)
        prefer_wide_xla_vectors(environ)
        prefer_wide_xla_vectors(environ)
        assert environ["XLA_FLAGS"] == after


def test_gelu_kernels_give_the_same_bits_call_after_call():
    """No call of the threaded XLA programs or op differs from the first (scripts/soak_gelu.py, a short soak)."""
    from scripts.soak_gelu import soak

    made, differing, names = soak(2100)
    assert names == ["xla_y", "xla_slope", "op"]
    assert made == 2100 and differing == 0


GELU_IN_A_FRESH_PROCESS = """
import os, sys
import numpy as np, tensorflow as tf
import models.activations
x = tf.constant(np.linspace(-12.0, 12.0, 240_001, dtype=np.float32))
with tf.GradientTape() as tape:
    tape.watch(x)
    y = models.activations.fused_gelu(x)
np.save(sys.argv[1], np.stack([y.numpy(), tape.gradient(y, x).numpy()]))
print(os.environ["XLA_FLAGS"])
"""


def test_gelu_bits_do_not_depend_on_xla_vector_width(tmp_path):
    """A fresh process compiles 512-bit XLA code, a user's 256 is kept, and both give the XLA GELU bit for bit."""
    def gelu_in_fresh_process(name, xla_flags):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env.update({"PYTHONPATH": str(REPO), "XLA_FLAGS": xla_flags, "VAE_GELU_KERNEL": "xla"})
        done = subprocess.run([sys.executable, "-c", GELU_IN_A_FRESH_PROCESS, str(tmp_path / name)], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip(), np.load(tmp_path / name)

    dump = tmp_path / "dump"  # XLA writes the options each program was compiled with here
    default_flags, wide = gelu_in_fresh_process("default.npy", f"--xla_dump_to={dump}")
    user_flags, narrow = gelu_in_fresh_process("narrow.npy", "--xla_cpu_prefer_vector_width=256")
    assert (default_flags, user_flags) == (f"--xla_dump_to={dump} {XLA_VECTOR_FLAG}",
                                           "--xla_cpu_prefer_vector_width=256")
    compiled_with = [f.read_text() for f in dump.glob("*debug_options")]
    assert compiled_with and all("xla_cpu_prefer_vector_width: 512" in text for text in compiled_with)
    np.testing.assert_array_equal(wide, narrow)
