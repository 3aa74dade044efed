"""What every command does first, before anything imports Keras: the process settings it runs with, and a
quiet start. Called by the entry points (train.py, evaluate.py, ...), so that importing a module never edits
the process's environment.

Why the filter: TensorFlow 2.21's C++ code logs through absl before absl is set up, so TF_CPP_MIN_LOG_LEVEL
does not reach its start-up lines (the oneDNN notice, "could not find cuda drivers", the CPU-feature notice
and, on a machine without a GPU, `E0000 ... failed call to cuInit`). While Keras loads its backend and the
backend looks for devices, stderr is written to a file; afterwards every line but those known start-up
notices is written back, so real errors and warnings are still seen.
"""

import contextlib
import os
import re
import sys
import tempfile

# XLA's CPU compiler emits 256-bit vector code by default (LLVM's choice for Intel parts that slow their clock on
# 512-bit code), while the oneDNN convolutions around the GELU already run 512-bit ones: on AVX-512 CPUs the GELU's
# loops run 10-30 % faster with 512-bit vectors and give the same bits; without AVX-512 the flag changes nothing
# (docs/gelu_xla.md). XLA reads XLA_FLAGS once, at its first compile, so it is set before Keras loads.
XLA_VECTOR_FLAG = "--xla_cpu_prefer_vector_width=512"

# TensorFlow's start-up notices on stderr: absl's line about its logging, C++ info and warning lines (I/W and a
# date), the second line of the CPU-feature notice, and the cuInit error of a machine that has no GPU.
STARTUP_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called"
                           r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
                           r"|To enable the following instructions: .* rebuild TensorFlow"
                           r"|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit")


def prefer_wide_xla_vectors(environ=os.environ):
    """Add `XLA_VECTOR_FLAG` to XLA_FLAGS unless a vector width is named there already."""
    flags = environ.get("XLA_FLAGS", "")
    if "xla_cpu_prefer_vector_width" not in flags:
        environ["XLA_FLAGS"] = f"{flags} {XLA_VECTOR_FLAG}".strip()


def start(environ=os.environ):
    """Set the process up for a command: TensorFlow's C++ logging to warnings and above, the XLA vector width,
    then load Keras (and look for devices) with its start-up notices filtered out of stderr."""
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    prefer_wide_xla_vectors(environ)
    if "keras" in sys.modules:
        return  # loaded already (a test, a notebook): its start-up has been printed
    with quiet_stderr(STARTUP_NOISE):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.list_physical_devices()  # the device search, where cuInit is tried


@contextlib.contextmanager
def quiet_stderr(noise):
    """Send file descriptor 2 to a temporary file for the block, then write back every line that `noise`
    does not match (also when the block raises)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not noise.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
