"""Training a model into a run folder, and resuming one: the part every model family shares.

`start_run` makes a new run folder from a `ModelConfig` and `TrainSettings`; `resume_run` continues
one from its backup. Both end with the run's figures and `status: finished` in `params.json`.
Nothing here knows which family it trains: the model names its loss terms and its own figures.
"""

import dataclasses
import io
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models.families import build_model as model_of_config
from utils import callbacks as cb
from utils import runs
from utils.analysis import decode, fit_code_gaussian, latent_means, sample_latents
from utils.atomic import write_json
from utils.errors import UserError
from utils.loaders import load_dataset
from utils.plots import (manifold_points, plot_latent_space, plot_losses, plot_manifold,
                         plot_reconstructions, plot_samples, save_figure)

BINARIZE = ("none", "static", "dynamic")


@dataclass
class TrainSettings:
    """How to train (not what): data, epochs, optimizer, seed and speed switches."""

    dataset: str = "mnist"
    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.0005
    seed: int | None = None  # None: a random seed, recorded in params.json
    limit: int | None = None
    plot_every: int | None = None
    jit: bool | None = None  # None: XLA for the whole step on GPU only (it is slower on CPU)
    mixed_precision: bool = False
    steps_per_execution: int | None = None  # None: 16 (docs/benchmarks.md: +3-9 % on CPU)
    image_size: str | None = None  # image folders: "28" or "28x32" (default: the images' own size)
    color: str | None = None  # image folders: "gray" or "rgb" (default: gray when every image is)
    test_share: float | None = None  # image folders and .npy files: held-out share (default 0.1)
    binarize: str = "none"  # static: pixels > 0.5; dynamic: Bernoulli-sampled each time seen
    tensorboard: bool = False  # Keras's TensorBoard logs (and the figures) in <run>/tensorboard


def on_gpu():
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def resolve_settings(settings):
    """`settings` with every automatic choice (seed, XLA, steps per execution) made explicit."""
    gpu = on_gpu()
    return dataclasses.replace(
        settings,
        seed=settings.seed if settings.seed is not None else secrets.randbelow(2**31),
        jit=settings.jit if settings.jit is not None else gpu,
        steps_per_execution=settings.steps_per_execution or 16)


def precision_policy(mixed):
    """The Keras dtype policy for `--mixed-precision`: float16 on GPU, bfloat16 on CPU."""
    if not mixed:
        return "float32"
    return "mixed_float16" if on_gpu() else "mixed_bfloat16"


def gelu_kernel(config, settings):
    """What runs the model's GELU, for params.json: none, xla (inside an XLA-compiled step or in bfloat16) or
    what models/gelu_op.py picks for float32 (the compiled op, or xla). A GELU model loads (or builds) the op
    here in every case, since building the model runs it once in float32; its errors end here, in one line."""
    kernel = runs.gelu_kernel("gelu" in (config.architecture.encoder_act, config.architecture.decoder_act))
    return "xla" if kernel != "none" and (settings.jit or settings.mixed_precision) else kernel


def run_versions(config, settings):
    """params.json's `versions`: runs.versions() and what runs the GELU (before the model and its folder,
    since the op may fail to build)."""
    return {**runs.versions(), "gelu_kernel": gelu_kernel(config, settings)}


def build_model(config, settings):
    """Seed everything, set the precision policy and build the model, with config errors as one line."""
    keras.utils.set_random_seed(settings.seed)
    keras.config.set_dtype_policy(precision_policy(settings.mixed_precision))
    try:
        model = model_of_config(config)
    except ValueError as e:
        raise UserError(str(e)) from None
    model.build_all()
    return model


def load_data(settings):
    """The dataset `settings` name, binarized statically or (the test images, once) dynamically."""
    if settings.binarize not in BINARIZE:
        raise UserError(f"--binarize must be one of {', '.join(BINARIZE)}; got {settings.binarize!r}")
    data = load_dataset(settings.dataset, settings.limit, image_size=settings.image_size, color=settings.color,
                        test_share=settings.test_share)
    if settings.binarize == "static":
        data.x_train, data.x_test = ((x > 0.5).astype("float32") for x in (data.x_train, data.x_test))
    elif settings.binarize == "dynamic":  # a fixed sample of the test set, so validation is comparable
        rng = np.random.default_rng(0)
        data.x_test = (rng.random(data.x_test.shape, dtype="float32") < data.x_test).astype("float32")
    return data


def training_input(x, settings):
    """(input, fit's batching arguments): the images, shuffled in batches by `fit`; or, for dynamic
    binarization, a tf.data pipeline that draws each pixel from Bernoulli(intensity) every time an
    image is seen."""
    if settings.binarize != "dynamic":
        return x, {"batch_size": settings.batch_size, "shuffle": True}
    pipeline = (tf.data.Dataset.from_tensor_slices(x)
                .shuffle(len(x), seed=settings.seed, reshuffle_each_iteration=True)
                .batch(settings.batch_size)
                .map(lambda b: tf.cast(tf.random.uniform(tf.shape(b)) < b, tf.float32))
                .prefetch(2))
    return pipeline, {}


def start_run(config, settings, run_root, label):
    """Train a new model into a new run folder under `run_root`; returns the folder."""
    data = load_data(settings)
    settings = resolve_settings(settings)
    try:
        config = config.for_images(data.image_shape)
    except ValueError as e:
        raise UserError(str(e)) from None
    versions = run_versions(config, settings)
    model = build_model(config, settings)
    run_dir = runs.create_run_dir(run_root, f"{data.name}_{label}")
    write_json(run_dir / runs.PARAMS, {
        "variant": label, "model": config.to_dict(), "loss_formula": config.objective.describe(),
        "training": dataclasses.asdict(settings), "dataset_name": data.name,
        "n_train": len(data.x_train), "n_test": len(data.x_test),
        "versions": versions, "git_commit": runs.git_commit(),
        "created": runs.now(), "status": "running", "resumes": []})
    print(f"run folder: {run_dir}", flush=True)
    _train(run_dir, model, data, settings)
    return run_dir


def resume_run(run_dir, epochs=None):
    """Continue an interrupted run (or extend a finished one to `epochs`); returns the folder."""
    run_dir = Path(run_dir)
    params = runs.read_params(run_dir)
    settings = TrainSettings(**params["training"])
    if epochs is not None:
        settings = dataclasses.replace(settings, epochs=epochs)
    done = cb.backup_epoch(run_dir)
    if params["status"] == "finished" and done >= settings.epochs:
        print(f"{run_dir} already finished {done} epochs; nothing to do (pass --epochs N to extend it)")
        return run_dir
    runs.remove_stale_temporaries(run_dir)
    config = runs.model_config(params)
    data = load_data(settings)
    versions = run_versions(config, settings)
    model = build_model(config, settings)
    runs.update_params(run_dir, training=dataclasses.asdict(settings), status="running",
                       resumes=params.get("resumes", []) + [{"time": runs.now(), "from_epoch": done,
                                                             "git_commit": runs.git_commit(),
                                                             "versions": versions}])
    print(f"resuming {run_dir} after epoch {done} of {settings.epochs}", flush=True)
    _train(run_dir, model, data, settings)
    return run_dir


def compile_model(model, settings):
    """Compile for training: Adam at a constant `lr`, XLA and steps per execution as `settings` say."""
    model.compile(optimizer=keras.optimizers.Adam(settings.lr), jit_compile=settings.jit,
                  steps_per_execution=settings.steps_per_execution)


def _train(run_dir, model, data, settings):
    compile_model(model, settings)
    callbacks = [cb.StopOnNonFiniteLoss(), cb.EpochExtras(), cb.EpochSchedule(),
                 cb.HistoryCSV(run_dir / runs.HISTORY), cb.BestModels(run_dir)]
    tensorboard = run_dir / runs.TENSORBOARD if settings.tensorboard else None
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(tensorboard, histogram_freq=0, write_graph=False))
    if settings.plot_every:
        callbacks.append(cb.PeriodicFigures(settings.plot_every,
                                            lambda epoch: draw_figures(model, data, run_dir, tensorboard, epoch)))
    # Last, so every other epoch-end file is written before the backup says the epoch is done.
    callbacks.append(cb.AtomicBackupAndRestore(run_dir / runs.BACKUP, delete_checkpoint=False))
    try:
        x_train, batching = training_input(data.x_train, settings)
        model.fit(x_train, **batching, epochs=settings.epochs,
                  validation_data=(data.x_test,), validation_batch_size=max(256, settings.batch_size),
                  callbacks=callbacks,
                  verbose="auto" if sys.stdout.isatty() else 2)  # one line per epoch in log files
        best_weights = runs.model_file(run_dir, runs.WEIGHTS)
        if best_weights.is_file():
            model.load_weights(best_weights)
        gaussian = None
        if not model.has_prior:  # an AE's codes are sampled from a Gaussian fitted to its training codes
            gaussian = fit_code_gaussian(latent_means(model.encoder, data.x_train[:10_000]))
            write_json(runs.model_file(run_dir, runs.CODE_GAUSSIAN), gaussian)
        draw_figures(model, data, run_dir, tensorboard, settings.epochs, gaussian)
    except cb.NonFiniteLoss as e:
        _mark_failed(run_dir, str(e))
        kept = "the last good models and backup are kept" if (run_dir / runs.BACKUP).is_dir() \
            else "no epoch had finished, so no model was saved"
        raise UserError(f"training stopped: {e}; {kept} in {run_dir} (try a lower --lr)") from None
    except KeyboardInterrupt:
        _mark_failed(run_dir, "interrupted")
        raise
    except OSError as e:
        why = describe_os_error(e)
        _mark_failed(run_dir, f"cannot write: {why}")
        raise UserError(f"cannot write to {run_dir} ({why}); the last complete files are "
                        f"kept: free space, then continue with --resume {run_dir}") from None
    except Exception as e:
        _mark_failed(run_dir, f"{type(e).__name__}: {e}")
        raise
    runs.update_params(run_dir, status="finished", finished=runs.now(), result=run_result(run_dir))
    print(run_dir, flush=True)


def describe_os_error(error):
    """A one-line reason for an OSError (h5py's messages span several lines)."""
    text = error.strerror or " ".join(str(error).split())
    return "No space left on device" if "No space left on device" in text else text[:300]


def _mark_failed(run_dir, why):
    try:
        runs.update_params(run_dir, status=f"failed: {why}")
    except (OSError, UserError):  # the disk may be why we failed; the one-line error still goes out
        pass


def run_result(run_dir):
    """Final and best figures of a run, from its `training.csv`."""
    history = cb.read_history(Path(run_dir) / runs.HISTORY)
    last, best = history.iloc[-1], history.loc[history["val_loss"].idxmin()]
    return {"epochs": int(last["epoch"]), "final_val_loss": float(last["val_loss"]),
            "best_val_loss": float(best["val_loss"]), "best_epoch": int(best["epoch"]),
            "train_seconds": float(history["train_seconds"].sum()), **gpu_memory()}


def gpu_memory():
    """`{"gpu_peak_memory_mb": …}`, the most GPU memory TensorFlow held at once in this process (the
    last one, for a resumed run), which decides how many trainings share a GPU; `{}` on CPU."""
    if not on_gpu():
        return {}
    return {"gpu_peak_memory_mb": round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)}


def draw_figures(model, data, run_dir, tensorboard=None, step=0, gaussian=None):
    """Write every figure of `viz/` for the model's current weights (and, with `tensorboard`, log the
    latent space and the samples there as images at `step`); an AE's samples come from `gaussian`,
    fitted to its training codes here when not given."""
    viz = Path(run_dir) / runs.VIZ
    z_dim = model.config.z_dim
    mu = latent_means(model.encoder, data.x_test)
    if gaussian is None and not model.has_prior:
        gaussian = fit_code_gaussian(latent_means(model.encoder, data.x_train[:10_000]))
    figures = {"latent_space.png": plot_latent_space(mu, data.y_test, getattr(data, "class_names", None)),
               "reconstructions.png": plot_reconstructions(data.x_test[:10], decode(model.decoder, mu[:10]))}
    samples = decode(model.decoder, sample_latents(64, z_dim, np.random.default_rng(0), gaussian))
    figures["samples.png"] = plot_samples(samples)
    if z_dim == 2:
        center, scale = ((0, 0), (1, 1)) if gaussian is None else (
            gaussian["mean"], np.sqrt(np.diag(gaussian["cov"])))
        figures["manifold.png"] = plot_manifold(decode(model.decoder, manifold_points(20, center, scale)), 20)
    figures.update(model.figures(data.x_test[:1000]))
    history = cb.read_history(Path(run_dir) / runs.HISTORY)
    if len(history):
        figures["losses.png"] = plot_losses(history, title=Path(run_dir).name)
    if tensorboard:
        _log_images(tensorboard, {k: figures[k] for k in ("latent_space.png", "samples.png")}, step)
    for name, figure in figures.items():
        save_figure(figure, viz / name)


def _log_images(folder, figures, step):
    """Figures as TensorBoard images (rendered to PNG, then decoded)."""
    writer = tf.summary.create_file_writer(str(Path(folder) / "figures"))
    with writer.as_default():
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
            tf.summary.image(name.removesuffix(".png"), tf.image.decode_png(buffer.getvalue())[None], step=step)
    writer.close()
