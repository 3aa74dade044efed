"""Call the GELU's kernels many times and check every result is bit for bit the first one.

    python -m scripts.soak_gelu                          # 28,000 calls, ~1 min on 2 cores
    TF_NUM_INTRAOP_THREADS=8 python -m scripts.soak_gelu --calls 40000

The kernels: the fused GELU's two XLA programs (models/gelu_tf.py), each taking an equal share of the
calls. Why: other projects have reported XLA:CPU programs that now and then return non-finite or
differing values when their loops are split over threads. Run this on a new CPU, or after changing
XLA_FLAGS (the vector width that models/activations.py asks for), before trusting long runs to it. The shapes include odd batches, so the
threads' partitions do not fall on even boundaries. Exits 1 if any call differs.
"""

import argparse
import os
import sys
import time

from utils import startup  # noqa: E402

startup.start()  # as the commands start: the XLA vector width, a quiet start

# gelu_full's activation shapes at batch 32, plus odd and large batches
SHAPES = [(32, 28, 28, 32), (32, 14, 14, 64), (32, 7, 7, 64), (33, 28, 28, 32), (7, 14, 14, 64), (1, 7, 7, 64),
          (300, 7, 7, 64)]


def kernels():
    """{name: x -> list of numpy outputs}: the two XLA programs."""
    import models.gelu_tf as acts

    return {"xla_y": lambda x: [acts._gelu(x).numpy()], "xla_slope": lambda x: [acts._gelu_slope(x).numpy()]}


def soak(calls, shapes=SHAPES):
    """(kernel calls made, repeats whose outputs differed from the first call's or were not finite, kernel names)."""
    import numpy as np
    import tensorflow as tf

    runs = kernels()
    made = differing = 0
    for i, shape in enumerate(shapes):
        x = tf.random.stateless_normal(shape, seed=(i, 7)) * 4.0
        for run in runs.values():
            first = run(x)
            differing += not all(np.isfinite(a).all() for a in first)
            for _ in range(max(calls // (len(runs) * len(shapes)), 1)):
                made += 1
                differing += not all(np.array_equal(a, b) for a, b in zip(first, run(x)))
    return made, differing, list(runs)


def main(argv=None):
    """Run the soak and print one line: calls, kernels, differing calls, seconds, XLA_FLAGS and threads."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=28_000, help="kernel calls in all (default 28000)")
    args = p.parse_args(argv)
    if args.calls < 1:
        p.error(f"--calls must be at least 1; got {args.calls}")
    start = time.perf_counter()
    made, differing, names = soak(args.calls)
    print(f"{made} calls of {', '.join(names)}, {differing} differing, {time.perf_counter() - start:.0f} s; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"TF_NUM_INTRAOP_THREADS={os.environ.get('TF_NUM_INTRAOP_THREADS', 'default')}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
