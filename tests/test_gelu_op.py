"""The compiled CPU GELU op (models/gelu_op.py): it agrees with the XLA programs, builds into an empty cache,
rebuilds a broken library, and falls back to XLA (or fails in one line when forced) without a compiler."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import models.activations as acts
from conftest import REPO
from models import gelu_op
from test_activations import wide_range


@pytest.fixture
def op():
    module = gelu_op.load()
    assert module is not None, "the CPU GELU op did not build; see the warning above"
    return module


def ulps_apart(a, b):
    """Elementwise distance in float32 steps between two arrays of the same sign pattern."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def test_op_and_xla_programs_agree_to_rounding(op):
    """Same formula, another exp: y within 4 float32 steps of the XLA programs' y, the slope (which
    crosses 0, so steps say little there) within one step at 1; most elements (~90 %) agree bit for bit."""
    x = tf.constant(wide_range())
    y, slope = (t.numpy() for t in acts.gelu_and_slope(x))
    y_xla, slope_xla = acts._gelu(x).numpy(), acts._gelu_slope(x).numpy()
    assert ulps_apart(y, y_xla).max() <= 4
    assert np.abs(slope - slope_xla).max() <= np.spacing(np.float32(1))
    assert np.mean(y != y_xla) < 0.25 and np.mean(slope != slope_xla) < 0.25


def test_every_element_gets_the_same_arithmetic_wherever_it_lies(op):
    """The ragged end of a tensor goes through a padded vector, so an element's result does not depend on
    its position; empty and one-element tensors work."""
    x = tf.random.stateless_normal((1000,), seed=(3, 4)) * 4
    y, slope = acts.gelu_and_slope(x)
    for start in range(0, 18):
        y_part, slope_part = acts.gelu_and_slope(x[start:])
        np.testing.assert_array_equal(y_part, y[start:])
        np.testing.assert_array_equal(slope_part, slope[start:])
    for shape in [(0,), (5, 0, 2), (1,), (3, 7)]:
        y, slope = acts.gelu_and_slope(tf.ones(shape))
        assert y.shape == shape and slope.shape == shape


def test_inside_an_xla_compiled_step_the_xla_programs_run(op):
    """An op XLA cannot compile must not reach a jit-compiled step (train.py --jit): there the programs run."""
    x = tf.random.stateless_normal((4, 7, 7, 8), seed=(5, 6)) * 3
    compiled = tf.function(lambda x: acts.gelu_and_slope(x), jit_compile=True)
    for got, want in zip(compiled(x), (acts._gelu(x), acts._gelu_slope(x))):
        np.testing.assert_array_equal(got, want)


LOAD_IN_A_FRESH_PROCESS = """
import sys
import numpy as np, tensorflow as tf
import models.activations as acts
from models import gelu_op
y, slope = acts.gelu_and_slope(tf.constant(np.linspace(-9, 9, 4001, dtype=np.float32)))
np.save(sys.argv[1], np.stack([y.numpy(), slope.numpy()]))
print(gelu_op.kernel_name())
"""


def test_builds_into_an_empty_cache_loads_again_and_rebuilds_a_broken_library(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "VAE_OP_CACHE": str(tmp_path / "cache"), "VAE_GELU_KERNEL": "op"}

    def fresh_process(name):
        done = subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(tmp_path / name)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip(), "building the CPU GELU op" in done.stderr, np.load(tmp_path / name)

    kernel, built, first = fresh_process("first.npy")
    libraries = list((tmp_path / "cache").iterdir())
    assert built and kernel.startswith("op gelu_op-") and [p.name for p in libraries] == [kernel[3:]]
    kernel_again, built_again, again = fresh_process("again.npy")
    assert (kernel_again, built_again) == (kernel, False)
    np.testing.assert_array_equal(again, first)
    libraries[0].write_bytes(b"not a shared library")
    kernel_rebuilt, rebuilt, after = fresh_process("rebuilt.npy")
    assert (kernel_rebuilt, rebuilt) == (kernel, True)
    np.testing.assert_array_equal(after, first)


def test_without_a_compiler_auto_falls_back_to_xla_and_op_fails(monkeypatch, capsys):
    monkeypatch.setenv("CXX", "no-such-c++")
    monkeypatch.setenv("VAE_GELU_KERNEL", "auto")
    assert gelu_op._loaded.__wrapped__() == (None, None)
    warning = capsys.readouterr().err.strip()
    assert warning.startswith("warning: no C++ compiler 'no-such-c++' on PATH") and "\n" not in warning
    monkeypatch.setenv("VAE_GELU_KERNEL", "op")
    with pytest.raises(gelu_op.GeluOpUnavailable, match="no C\\+\\+ compiler"):
        gelu_op._loaded.__wrapped__()
    monkeypatch.setenv("VAE_GELU_KERNEL", "xla")
    assert gelu_op._loaded.__wrapped__() == (None, None)


def test_a_compile_error_is_reported_in_one_line(tmp_path, monkeypatch):
    broken = tmp_path / "gelu_op.cc"
    broken.write_text("int broken = ;\n")
    monkeypatch.setattr(gelu_op, "SOURCE", broken)
    with pytest.raises(gelu_op.GeluOpUnavailable) as caught:
        gelu_op.build(tmp_path / "out" / "gelu_op.so", "g++")
    message = str(caught.value)
    assert message.startswith("g++ could not build gelu_op.cc: gelu_op.cc: error:") and "\n" not in message
    assert list((tmp_path / "out").iterdir()) == []  # no half-built library left behind


def test_an_unwritable_cache_is_reported_in_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VAE_OP_CACHE", str(blocker / "cache"))
    with pytest.raises(gelu_op.GeluOpUnavailable, match="cannot write in .*name a writable folder in VAE_OP_CACHE"):
        gelu_op.build(gelu_op.cache_dir() / "gelu_op.so", "g++")
