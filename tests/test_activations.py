"""The fused GELU is the exact (erf) GELU in value and gradient, and the activation names map to the right
layers. The TensorFlow kernel's own tests (its XLA programs, their constants and bits) run where TensorFlow
is the backend."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import REPO
from models.activations import LRELU_SLOPE, FusedGELU, activation_layer
from utils.startup import STARTUP_NOISE, XLA_VECTOR_FLAG, prefer_wide_xla_vectors

on_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's own GELU kernel")

TOLERANCE = 1e-6  # max abs difference to Keras's exact GELU, in value and in gradient (issue 4)


def wide_range():
    """float32 inputs from 0 and denormals through the erf transition to +-1e38."""
    dense = np.linspace(-12.0, 12.0, 240_001)
    magnitudes = np.concatenate([[0.0, 1e-45, 1e-40, 1e-38, 1e-30, 1e-20, 1e-7], np.logspace(-6, 38, 400)])
    return np.concatenate([dense, magnitudes, -magnitudes]).astype(np.float32)


def value_and_gradient(fn, x, upstream=None):
    """fn(x) and the gradient of sum(fn(x) * upstream) with respect to x, by the backend's own autodiff."""
    backend = keras.backend.backend()
    upstream = np.ones_like(x) if upstream is None else upstream
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
                loss = tf.reduce_sum(y * upstream)
            return y, tape.gradient(loss, x)

        return [t.numpy() for t in run(tf.constant(x))]
    if backend == "jax":
        import jax

        y, pullback = jax.vjp(fn, jax.numpy.asarray(x))
        return [np.asarray(y), np.asarray(pullback(jax.numpy.asarray(upstream))[0])]
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = fn(xt)
    (y * torch.tensor(upstream)).sum().backward()
    return [y.detach().numpy(), xt.grad.numpy()]


def stock_gelu(x):
    return keras.activations.gelu(x, approximate=False)


def fused_gelu(x):
    return FusedGELU()(x)


def test_value_and_gradient_match_keras_exact_gelu():
    x = wide_range()
    y, dy = value_and_gradient(fused_gelu, x)
    y_ref, dy_ref = value_and_gradient(stock_gelu, x)
    assert np.isfinite(y).all() and np.isfinite(dy).all()
    assert np.max(np.abs(y - y_ref)) <= TOLERANCE
    assert np.max(np.abs(dy - dy_ref)) <= TOLERANCE


def test_is_the_erf_form_not_the_tanh_approximation():
    x = np.array([-3.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0], dtype=np.float32)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)])
    slope = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
                      for v in x.astype(float)])
    y, dy = value_and_gradient(fused_gelu, x)
    np.testing.assert_allclose(y, exact, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(dy, slope, atol=TOLERANCE, rtol=0)
    tanh_form = keras.ops.convert_to_numpy(keras.activations.gelu(x, approximate=True))
    assert np.max(np.abs(tanh_form - exact)) > 100 * TOLERANCE  # so the check above can tell them apart


def test_upstream_gradient_is_multiplied_through():
    x = np.linspace(-4, 4, 101, dtype=np.float32)
    upstream = np.linspace(-2, 3, 101, dtype=np.float32)
    _, grad = value_and_gradient(fused_gelu, x, upstream)
    _, grad_ref = value_and_gradient(stock_gelu, x, upstream)
    np.testing.assert_allclose(grad, grad_ref, atol=3 * TOLERANCE, rtol=0)


def test_layer_keeps_shape_and_low_precision_dtype():
    x = 3 * np.random.default_rng(1).standard_normal((2, 7, 7, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(FusedGELU()(x)), keras.ops.convert_to_numpy(stock_gelu(x)),
                               atol=TOLERANCE, rtol=0)
    y16 = FusedGELU(dtype="mixed_bfloat16")(x)
    assert keras.backend.standardize_dtype(y16.dtype) == "bfloat16" and tuple(y16.shape) == x.shape
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(y16, "float32")),
                               keras.ops.convert_to_numpy(stock_gelu(x)), atol=0.05, rtol=0.02)


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


@on_tensorflow
def test_fitted_tail_constants_match_erfc_in_float64():
    """The tail form's constants (scripts/fit_gelu_tail.py) give erfc to float32 resolution over its range."""
    from models.gelu_tf import _TAIL_COEFFICIENTS, _TAIL_P

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


def test_importing_the_project_leaves_the_environment_as_it_was():
    done = subprocess.run([sys.executable, "-c", "import os; before = dict(os.environ); import models, utils.training.run, "
                           "utils.experiments.runner, utils.analysis.evaluation; print(dict(os.environ) == before)"],
                          cwd=REPO, env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def test_the_startup_filter_drops_tensorflows_notices_and_keeps_real_errors():
    notices = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
               "I0000 00:00:1796692278.201700    3885 port.cc:153] oneDNN custom operations are on.",
               "W0000 00:00:1796692278.2017 3885 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
               "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with "
               "the appropriate compiler flags.",
               "E0000 00:00:1796694602.437000   17485 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error"]
    kept = ["E0000 00:00:1796694602.437000   17485 op_kernel.cc:1857] OP_REQUIRES failed: out of memory",
            "UserWarning: a warning of ours", "train.py: error: --epochs: must be a positive integer"]
    assert all(STARTUP_NOISE.search(line) for line in notices) and not any(STARTUP_NOISE.search(k) for k in kept)


@on_tensorflow
def test_gelu_kernels_give_the_same_bits_call_after_call():
    """No call of the threaded XLA programs differs from the first (scripts/soak_gelu.py, a short soak)."""
    from scripts.soak_gelu import soak

    made, differing, names = soak(1400)
    assert names == ["xla_y", "xla_slope"]
    assert made == 1400 and differing == 0


GELU_IN_A_FRESH_PROCESS = """
import os, sys
from utils import startup
startup.start()
import numpy as np, tensorflow as tf
from models.gelu_tf import fused_gelu
x = tf.constant(np.linspace(-12.0, 12.0, 240_001, dtype=np.float32))
with tf.GradientTape() as tape:
    tape.watch(x)
    y = fused_gelu(x)
np.save(sys.argv[1], np.stack([y.numpy(), tape.gradient(y, x).numpy()]))
print(os.environ["XLA_FLAGS"])
"""


@on_tensorflow
@pytest.mark.slow
def test_gelu_bits_do_not_depend_on_xla_vector_width(tmp_path):
    """A fresh process compiles 512-bit XLA code, a user's 256 is kept, and both give the XLA GELU bit for bit."""
    def gelu_in_fresh_process(name, xla_flags):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env.update({"PYTHONPATH": str(REPO), "XLA_FLAGS": xla_flags})
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
