"""What the Keras backend offers on this machine: whether there is a GPU, how much of its memory a run held,
and whether the whole step is XLA-compiled by default. The only backend-specific code of the training path,
each backend imported only where it is the backend."""

import dataclasses
import secrets

import keras


def backend():
    """The Keras backend of this process."""
    return keras.backend.backend()


def on_gpu():
    """Whether the backend sees a GPU."""
    if backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend() == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def gpu_names():
    """The GPUs the backend sees, by name (empty on CPU)."""
    if not on_gpu():
        return []
    if backend() == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend() == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def default_jit():
    """XLA for the whole step: on JAX always (its steps are XLA programs), on TensorFlow only on a GPU (on CPU
    it is slower than TensorFlow's own kernels, docs/benchmarks.md), never on PyTorch (torch.compile is not
    what Keras's jit means there, and its compile time outweighs these small models)."""
    return {"jax": True, "torch": False}.get(backend(), on_gpu())


def default_steps_per_execution():
    """Training steps per compiled call: 16 (+3-9 % on CPU, docs/benchmarks.md), but 1 on PyTorch, whose Keras
    trainer runs one step per call."""
    return 1 if backend() == "torch" else 16


def check_steps_per_execution(steps):
    """A ValueError where the backend cannot run `steps` training steps per call."""
    if backend() == "torch" and steps > 1:
        raise ValueError(f"--steps-per-execution must be 1 on the PyTorch backend (Keras runs one step per call "
                         f"there); got {steps}")


def gpu_peak_memory():
    """`{"gpu_peak_memory_mb": …}`, the most GPU memory the backend held at once in this process (the last
    one, for a resumed run), which decides how many trainings share a GPU; `{}` on CPU."""
    if not on_gpu():
        return {}
    if backend() == "tensorflow":
        import tensorflow as tf

        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    elif backend() == "jax":
        import jax

        peak = jax.devices()[0].memory_stats().get("peak_bytes_in_use", 0)
    else:
        import torch

        peak = torch.cuda.max_memory_allocated()
    return {"gpu_peak_memory_mb": round(peak / 2**20, 1)}


def resolve_settings(settings):
    """`settings` with every automatic choice (seed, XLA, steps per execution) made explicit for this backend;
    a ValueError for a choice the backend cannot run."""
    steps = settings.steps_per_execution or default_steps_per_execution()
    check_steps_per_execution(steps)
    return dataclasses.replace(
        settings,
        seed=settings.seed if settings.seed is not None else secrets.randbelow(2**31),
        jit=settings.jit if settings.jit is not None else default_jit(),
        steps_per_execution=steps)


def precision_policy(mixed):
    """The Keras dtype policy for `--mixed-precision`: float16 on GPU, bfloat16 on CPU."""
    if not mixed:
        return "float32"
    return "mixed_float16" if on_gpu() else "mixed_bfloat16"
