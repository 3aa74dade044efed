"""Ways to run the exact GELU on CPU, raced against LeakyReLU: the measurements behind models/activations.py.

    python -m benchmarks.gelu_variants                       # forward + gradient on gelu_full's 7 activation shapes
    python -m benchmarks.gelu_variants --train --batch-size 32 128   # gelu_full training steps vs base_lrelu

Variants (value and gradient all within 1e-6 of Keras's exact GELU):
  fused       models.gelu_tf.fused_gelu: y and dy/dx in the forward pass, the gradient is one multiply;
              Phi by the tail form fitted by scripts/fit_gelu_tail.py (one exp, one division). On CPU
              it runs the two XLA programs (the compiled C++ op it once ran where it built is in git history)
  xla         the fused layout by its two XLA programs, one for y and one for dy/dx (the fallback)
  erfc        the xla layout with XLA's erfc for Phi (read back as y / x) and a second exp for the slope:
              models.activations before issue 11
  backward    y by xla's forward program; the slope computed in the backward pass, one XLA program with dy
  ordered     xla with the slope's program made to wait for y's
  tf_ops      the same math as separate TensorFlow ops (Eigen kernels, each spread over the intra-op threads),
              Phi saved in the forward pass, the slope computed in the backward pass
  shard<K>    the erfc program on K slices of the batch, run side by side, then concatenated
  keras       keras.activations.gelu(approximate=False) with TensorFlow's automatic gradient
Every figure is the median over rounds of contenders taken in turn (A B C, then C B A), with the
machine's steal and load during the race, since these machines are shared. XLA's vector width is
process-wide: to race 256- against 512-bit code, run the script twice, once with
XLA_FLAGS=--xla_cpu_prefer_vector_width=256 (models/activations.py asks for 512 otherwise).
"""

import argparse
import os
import sys
import time

from utils import startup  # noqa: E402

startup.start()  # as the commands start: the XLA vector width, a quiet start

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.compiler.tf2xla.python.xla import optimization_barrier  # noqa: E402

import models.gelu_tf as acts  # noqa: E402
from benchmarks.machine import CpuMeter, machine_info, machine_line  # noqa: E402

SQRT_HALF, INV_SQRT_2PI = 0.7071067811865476, 0.3989422804014327
TINY = 1e-30  # below this |x|, y / x loses Phi(x) = 0.5 to underflow
# gelu_full's activations per image: encoder 28x28x32, 14x14x64, 7x7x64, 7x7x64; decoder 7x7x64, 14x14x64, 28x28x32
SHAPES = [(28, 28, 32), (14, 14, 64), (7, 7, 64), (7, 7, 64), (7, 7, 64), (14, 14, 64), (28, 28, 32)]


@tf.custom_gradient
def tf_ops_gelu(x):
    """Exact GELU as plain TensorFlow ops; Phi kept for the gradient Phi + x * phi."""
    cdf = 0.5 * tf.math.erfc(x * -SQRT_HALF)

    def grad(dy):
        return dy * (cdf + x * (INV_SQRT_2PI * tf.exp(-0.5 * tf.square(x))))

    return x * cdf, grad


@tf.function(jit_compile=True, reduce_retracing=True)
def _erfc_gelu_and_slope(x):
    y = 0.5 * x * tf.math.erfc(-x * SQRT_HALF)  # tf.nn.gelu's formula for approximate=False
    y_kept, x_kept = optimization_barrier(y, x)  # keeps XLA from evaluating erfc a second time for Phi
    cdf = tf.where(tf.abs(x_kept) > TINY, y_kept / x_kept, 0.5)
    return y, cdf + x_kept * (INV_SQRT_2PI * tf.exp(-0.5 * x_kept * x_kept))


@tf.custom_gradient
def erfc_gelu(x):
    """The fused layout of before issue 11: XLA's erfc for Phi, a second exp for the slope."""
    y, slope = _erfc_gelu_and_slope(tf.stop_gradient(x))
    return y, lambda dy: dy * slope


@tf.custom_gradient
def xla_gelu(x):
    """The fused layout by its two XLA programs: what runs where the compiled op does not."""
    x = tf.stop_gradient(x)
    slope = acts._gelu_slope(x)
    return acts._gelu(x), lambda dy: dy * slope


@tf.function(jit_compile=True, reduce_retracing=True)
def _slope_times(x, dy):
    return dy * acts._gelu_slope(x)  # the slope's program, inlined into this one


@tf.custom_gradient
def backward_gelu(x):
    """y by the fused forward program; the slope computed in the backward pass, one XLA program with dy."""
    x = tf.stop_gradient(x)
    return acts._gelu(x), lambda dy: _slope_times(x, dy)


@tf.custom_gradient
def ordered_gelu(x):
    """The fused programs with the slope's program made to wait for y's, so the next layer need not."""
    x = tf.stop_gradient(x)
    y = acts._gelu(x)
    with tf.control_dependencies([y]):
        slope = acts._gelu_slope(x)
    return y, lambda dy: dy * slope


def sharded_gelu(k):
    """The erfc program on k slices of the batch (uneven last slice allowed), concatenated."""
    @tf.custom_gradient
    def gelu(x):
        n = tf.shape(x)[0]
        sizes = tf.stack([n // k] * (k - 1) + [n - (k - 1) * (n // k)])
        outs = [_erfc_gelu_and_slope(part) for part in tf.split(tf.stop_gradient(x), sizes, num=k)]
        slope = tf.concat([s for _, s in outs], 0)
        return tf.concat([y for y, _ in outs], 0), lambda dy: dy * slope

    return gelu


def variants(names):
    """{name: function} for the names given (fused, xla, erfc, backward, ordered, tf_ops, shard<K>, keras, lrelu)."""
    known = {"fused": acts.fused_gelu, "xla": xla_gelu, "erfc": erfc_gelu, "backward": backward_gelu,
             "ordered": ordered_gelu, "tf_ops": tf_ops_gelu,
             "lrelu": lambda x: tf.nn.leaky_relu(x, 0.3),
             "keras": lambda x: keras.activations.gelu(x, approximate=False)}
    chosen = {}
    for name in names:
        if name.startswith("shard") and name[5:].isdigit() and int(name[5:]) > 0:
            chosen[name] = sharded_gelu(int(name[5:]))
        elif name in known:
            chosen[name] = known[name]
        else:
            raise SystemExit(f"error: unknown variant {name!r}: use fused, xla, erfc, backward, ordered, tf_ops, "
                             "shard<K>, keras or lrelu")
    return chosen


def kernel_step(fn, batch_size):
    """A compiled forward + gradient of `fn` over gelu_full's activation shapes at `batch_size`."""
    xs = [tf.random.stateless_normal((batch_size, *s), seed=(i, 0)) * 2 for i, s in enumerate(SHAPES)]
    upstream = [tf.random.stateless_normal((batch_size, *s), seed=(i, 1)) for i, s in enumerate(SHAPES)]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(xs)
            ys = [fn(x) for x in xs]
        grads = tape.gradient(ys, xs, output_gradients=upstream)
        return tf.add_n([g[0, 0, 0, 0] for g in grads])

    def run(repeats=10):
        start = time.perf_counter()
        for _ in range(repeats):
            out = step()
        out.numpy()
        return repeats * batch_size / (time.perf_counter() - start)  # images per second

    run(2)
    return run


def train_step(fn, batch_size, x):
    """A gelu_full model (base_lrelu for `lrelu`) whose FusedGELU layers run `fn`, timed like throughput.py."""
    from benchmarks.throughput import build, feed, parse_contender, time_fit

    original, acts.fused_gelu = acts.fused_gelu, fn  # FusedGELU.call looks the name up when traced
    try:
        model = build(parse_contender("base_lrelu" if fn is None else "gelu_full"), batch_size, x.shape[1:])
        data = feed("numpy", x, batch_size)
        spe = model.steps_per_execution or 1
        time_fit(model, data, 3 * spe, batch_size)  # traced here, with `fn` in place
    finally:
        acts.fused_gelu = original
    return lambda: time_fit(model, data, 3 * spe, batch_size)[0]


def race(runners, rounds):
    """{name: [images/s per round]}, contenders in turn, the order reversed every other round."""
    rates = {name: [] for name in runners}
    for r in range(rounds):
        for name in (list(runners) if r % 2 == 0 else list(runners)[::-1]):
            rates[name].append(runners[name]())
    return rates


def main(argv=None):
    """Race the variants against LeakyReLU (kernels) or base_lrelu (--train) and print the ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=["fused", "xla", "erfc", "tf_ops", "keras"])
    p.add_argument("--batch-size", type=int, nargs="+", default=[32])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--train", action="store_true", help="time gelu_full training steps instead of the kernels")
    args = p.parse_args(argv)
    fns = variants(["lrelu"] + [v for v in args.variants if v != "lrelu"])
    print(f"{machine_line(machine_info())}; intra-op threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads()} (0: one per core); "
          "fused GELU: the two XLA programs of models/gelu_tf.py")
    x = None
    if args.train:
        from utils.data.loaders import load_dataset
        x = load_dataset("fashion_mnist").x_train
    for batch_size in args.batch_size:
        runners = {name: train_step(None if name == "lrelu" else fn, batch_size, x) if args.train
                   else kernel_step(fn, batch_size) for name, fn in fns.items()}
        with CpuMeter() as meter:
            rates = race(runners, args.rounds)
        what = "training steps, vs base_lrelu" if args.train else "forward + gradient of 7 activations, vs LeakyReLU"
        print(f"\nbatch {batch_size}, {what}; median of {args.rounds} rounds; {meter.summary()}")
        for name, r in rates.items():
            ratio = np.divide(r, rates["lrelu"])
            print(f"  {name:8s} {np.median(r):8.0f} images/s  {np.median(ratio):5.2f}x  "
                  f"(rounds {min(ratio):.2f}-{max(ratio):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
