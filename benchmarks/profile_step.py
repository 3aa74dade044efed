"""Where a training step's time goes: per-op time from the TensorFlow profiler, and the convolutions alone.

    python -m benchmarks.profile_step base_lrelu gelu_full --batch-size 32
    python -m benchmarks.profile_step gelu_full_bn_before --batch-size 128 --steps 10

For each contender (as in benchmarks/throughput.py) it traces --steps real training steps
(`model.fit`, compiled as a run compiles it) and sums the profiler's op events on TensorFlow's compute
threads into groups (convolutions, activation, batch norm, bias, XLA launches, other); then it times
the model's Conv2D/Conv2DTranspose layers alone, forward and backward at the same shapes, to show how
close the convolutions by themselves come to the machine's matmul peak. Op times are summed over
threads, so they can exceed the step's wall time; "threads in use" is a group's summed time over the
wall time its events cover (1.0: one thread at a time; an Eigen op's worker threads are not traced, so
for TensorFlow's own ops it shows overlap between ops, not within one).
"""

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path


from benchmarks.throughput import (build, feed, forward_flops, leaf_layers, matmul_peak_gflops,  # noqa: E402
                                   parse_contender, time_fit)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from utils.data.loaders import load_dataset  # noqa: E402

# Op-name fragments, checked in order, and the group each one counts towards.
GROUPS = [("Conv2D", "convolutions"), ("BiasAdd", "bias add"), ("LeakyRelu", "LeakyReLU"),
          ("fusion", None), ("ExecuteAsyncOnStream", None), ("BlockUntilReady", None),  # inside the next
          ("ProcessAsync::Start", "XLA programs (fused GELU: launch + kernels)"), ("Mul", "multiply"),
          ("MatMul", "dense")]
XLA_KERNEL, XLA_GROUP = "_fusion", "XLA kernels, every thread (inside the XLA programs)"
SKIP = ("ExecutorState::Process", "ExecutorState::ProcessAsync::Done", "ExecutorDoneCallback",
        "ThreadpoolListener", "Memory", "end:")


def _union_ps(intervals):
    """Length of the union of (start, end) intervals: the wall time during which any of them ran."""
    total, end = 0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total, end = total + (b - a), b
        elif b > end:
            total, end = total + (b - end), b
    return total


def op_times(model, data_args, steps):
    """Per op group: milliseconds per step summed over TensorFlow's compute threads, and the threads in
    use while the group ran (summed time / wall time covered by its events), from a profiler trace.

    XLA's fused kernels also run on the Eigen pool's threads (XLA splits a kernel into parallel
    partitions); they are counted under "XLA kernels, every thread" so their thread use shows.
    """
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(**data_args, epochs=1, steps_per_epoch=steps, verbose=0)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
    groups, spans = collections.Counter(), collections.defaultdict(list)
    for plane in space.planes:
        for line in plane.lines:
            compute, eigen = line.name.startswith("tf_Compute"), "Eigen" in line.name
            for event in line.events if compute or eigen else ():
                name = plane.event_metadata[event.metadata_id].name
                start = line.timestamp_ns * 1000 + event.offset_ps
                if XLA_KERNEL in name:
                    groups[XLA_GROUP] += event.duration_ps / 1e9 / steps
                    spans[XLA_GROUP].append((start, start + event.duration_ps))
                if not compute or (name.startswith(SKIP) and "ProcessAsync::Start" not in name):
                    continue
                group = next((g for fragment, g in GROUPS if fragment in name), "other")
                if group:
                    groups[group] += event.duration_ps / 1e9 / steps
                    spans[group].append((start, start + event.duration_ps))
    threads = {g: sum(b - a for a, b in spans[g]) / max(_union_ps(spans[g]), 1) for g in groups}
    return groups, threads


def conv_only_ms(model, batch_size, repeats=20):
    """Milliseconds per step for the model's conv layers alone (bias included), forward and backward."""
    convs = [layer for layer in leaf_layers(model) if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose))]
    inputs = [tf.random.normal((batch_size,) + tuple(layer.input.shape[1:])) for layer in convs]
    upstream = [tf.random.normal((batch_size,) + tuple(layer.output.shape[1:])) for layer in convs]
    weights = [w for layer in convs for w in layer.trainable_weights]

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs[1:])  # the first layer's input gradient is not needed in training
            outputs = [layer(x) for layer, x in zip(convs, inputs)]
        return tape.gradient(outputs, weights + inputs[1:], output_gradients=upstream)

    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        [g.numpy() for g in step() if g is not None]
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv=None):
    """Profile each contender's training step and its convolutions alone; print one block per contender."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("contenders", type=parse_contender, nargs="+")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args(argv)
    x = load_dataset("fashion_mnist").x_train
    peak = matmul_peak_gflops()
    print(f"matmul peak {peak:.0f} GFLOP/s; batch {args.batch_size}; op times in ms per step, summed over threads")
    for c in args.contenders:
        model, data_args = build(c, args.batch_size, x.shape[1:]), feed(c.feed, x, args.batch_size)
        spe = getattr(model, "steps_per_execution", 1) or 1  # time_fit needs at least two executions
        steps = max(args.steps // spe, 3) * spe
        time_fit(model, data_args, 3 * spe, args.batch_size)  # trace and warm up
        step_ms = 1000 * args.batch_size / time_fit(model, data_args, steps, args.batch_size)[0]
        groups, threads = op_times(model, data_args, steps)
        flops = 3 * forward_flops(model) * args.batch_size
        conv_ms = conv_only_ms(model, args.batch_size)
        print(f"\n{c.name}: {step_ms:.1f} ms per step, unprofiled ({args.batch_size * 1000 / step_ms:.0f} images/s, "
              f"{flops / step_ms / 1e6 / peak:.0%} of peak)")
        print(f"  {'op group':52s} {'ms':>7s} {'threads in use':>15s}")
        for group, ms in groups.most_common():
            print(f"  {group:52s} {ms:7.2f} {threads[group]:15.2f}")
        print(f"  convolutions alone, timed apart: {conv_ms:.2f} ms = {flops / conv_ms / 1e6:.0f} GFLOP/s = "
              f"{flops / conv_ms / 1e6 / peak:.0%} of peak ({conv_ms / step_ms:.0%} of the step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
