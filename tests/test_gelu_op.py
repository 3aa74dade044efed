"""The compiled CPU GELU op (models/gelu_op.py): it gives the XLA programs' bits, is what a traced step runs,
builds into an empty cache, rebuilds a broken library, and falls back to XLA (or fails in one line when
forced) without a compiler."""

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


def op_outputs(op, x):
    """y and the slope straight from the op, with the attributes models/activations.py passes."""
    return [t.numpy() for t in op.vae_gelu_with_slope(x, tail_coefficients=acts._TAIL_COEFFICIENTS,
                                                       tail_scale=acts._TAIL_P * acts._SQRT_HALF)]


def assert_same_bits(a, b):
    """Equal bit for bit, NaN for NaN."""
    nan = np.isnan(a) & np.isnan(b)
    np.testing.assert_array_equal(np.where(nan, 0, a).view(np.int32), np.where(nan, 0, b).view(np.int32))


def test_op_gives_the_xla_programs_bits(op):
    """Same operations, same order, same fused multiply-adds, XLA's exp: y and the slope bit for bit, over
    the test's range plus a dense grid to +-40, non-finite inputs and the largest floats."""
    extremes = np.array([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 13.1, -13.1], np.float32)
    x = tf.constant(np.concatenate([wide_range(), np.arange(-40, 40, 3e-4, dtype=np.float32), extremes]))
    y, slope = op_outputs(op, x)
    assert_same_bits(y, acts._gelu(x).numpy())
    assert_same_bits(slope, acts._gelu_slope(x).numpy())


def op_types(fn, spec):
    """The op types in the graph `fn` traces to, nested functions included."""
    graph = tf.function(fn).get_concrete_function(spec).graph
    found = {o.type for o in graph.get_operations()}
    for function in graph._functions.values():
        found |= {node.op for node in function.definition.node_def}
    return found


def test_a_traced_step_runs_the_op_and_an_xla_compiled_one_does_not(op):
    """What Keras's fit traces (a tf.function) holds the op; float32 only, and never inside XLA."""
    spec = tf.TensorSpec([None, 7, 7, 8], tf.float32)
    assert "VaeGeluWithSlope" in op_types(lambda x: acts.fused_gelu(x * 2.0), spec)
    assert "VaeGeluWithSlope" not in op_types(lambda x: acts.fused_gelu(tf.cast(x, tf.bfloat16)), spec)
    x = tf.random.stateless_normal((4, 7, 7, 8), seed=(5, 6)) * 3
    compiled = tf.function(lambda x: acts.gelu_and_slope(x), jit_compile=True)
    for got, want in zip(compiled(x), (acts._gelu(x), acts._gelu_slope(x))):
        np.testing.assert_array_equal(got, want)


def test_every_element_gets_the_same_arithmetic_wherever_it_lies(op):
    """The ragged end of a tensor goes through a padded vector, so an element's result does not depend on
    its position; y may take over x's buffer in a traced step; empty and one-element tensors work."""
    x = tf.random.stateless_normal((1000,), seed=(3, 4)) * 4
    y, slope = op_outputs(op, x)
    for start in range(0, 18):
        y_part, slope_part = op_outputs(op, x[start:])
        np.testing.assert_array_equal(y_part, y[start:])
        np.testing.assert_array_equal(slope_part, slope[start:])
    in_place = tf.function(lambda x: acts.gelu_and_slope(x * 1.0))(x)  # x * 1.0 is held by nothing else
    np.testing.assert_array_equal(in_place[0], y)
    np.testing.assert_array_equal(in_place[1], slope)
    for shape in [(0,), (5, 0, 2), (1,), (3, 7)]:
        y, slope = op_outputs(op, tf.ones(shape))
        assert y.shape == shape and slope.shape == shape


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
    libraries = list((tmp_path / "cache").glob("*.so"))
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
    library = tmp_path / "out" / "gelu_op.so"
    with pytest.raises(gelu_op.GeluOpUnavailable) as caught:
        gelu_op.build_once(library, ["g++"])
    message = str(caught.value)
    assert message.startswith("g++ could not build gelu_op.cc: gelu_op.cc: error:") and "\n" not in message
    assert sorted(p.name for p in library.parent.iterdir()) == ["gelu_op.so.failed", "gelu_op.so.lock"]
    with pytest.raises(gelu_op.GeluOpUnavailable, match="could not build .* delete it to retry"):
        gelu_op.build_once(library, ["g++"])  # the next process reports the failure without compiling


def test_an_unwritable_cache_is_reported_in_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VAE_OP_CACHE", str(blocker / "cache"))
    with pytest.raises(gelu_op.GeluOpUnavailable, match="cannot write in .*name a writable folder in VAE_OP_CACHE"):
        gelu_op.build(gelu_op.cache_dir() / "gelu_op.so", ["g++"])


FAKE_COMPILER = """#!/bin/sh
# stands in for g++: {behaviour}
case "$1" in --version) echo "fake-c++ 1.0"; exit 0;; esac
{body}
"""


def fake_compiler(tmp_path, behaviour, body):
    """A compiler command that does `body` (sh) instead of compiling."""
    script = tmp_path / "fake-c++"
    script.write_text(FAKE_COMPILER.format(behaviour=behaviour, body=body))
    script.chmod(0o755)
    return str(script)


def test_a_killed_compiler_is_not_recorded_but_a_library_that_never_loads_is(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_OP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", fake_compiler(tmp_path, "killed, as by the out-of-memory killer", "kill -9 $$"))
    with pytest.raises(gelu_op.GeluOpUnavailable) as killed:
        gelu_op.load_or_build()
    assert not isinstance(killed.value, gelu_op.LastingFailure)
    assert not list((tmp_path / "cache").glob("*.failed"))  # the next process tries again
    garbage = 'while [ "$1" != -o ]; do shift; done; echo garbage > "$2"'
    monkeypatch.setenv("CXX", fake_compiler(tmp_path, "writes garbage", garbage))
    with pytest.raises(gelu_op.LastingFailure, match="cannot load"):
        gelu_op.load_or_build()  # built, failed to load, rebuilt, failed again
    [record] = (tmp_path / "cache").glob("*.failed")
    with pytest.raises(gelu_op.GeluOpUnavailable, match="delete it to retry"):
        gelu_op.load_or_build()  # a library that fails to load is rebuilt once, then recorded
    assert "cannot load" in record.read_text()
