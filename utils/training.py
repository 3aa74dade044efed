"""Training a model into a run folder, and resuming one: the part every model family shares.

`start_run` makes a new run folder from a model config and `TrainSettings`; `resume_run` continues
one from its backup. Both end with the run's figures and `status: finished` in `params.json`.
"""

import dataclasses
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models.VAE import VAEConfig, VariationalAutoencoder
from utils import callbacks as cb
from utils import runs
from utils.atomic import write_json
from utils.analysis import latent_moments
from utils.errors import UserError
from utils.loaders import load_dataset
from utils.plots import (manifold_points, plot_latent_space, plot_losses, plot_manifold,
                         plot_reconstructions, plot_samples, save_figure)

MODEL_FAMILIES = {"vae": (VAEConfig, VariationalAutoencoder)}


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


def build_model(family, config, settings):
    """Seed everything, set the precision policy and build the model, with config errors as one line."""
    keras.utils.set_random_seed(settings.seed)
    keras.config.set_dtype_policy(precision_policy(settings.mixed_precision))
    _, model_class = MODEL_FAMILIES[family]
    try:
        model = model_class(config)
    except ValueError as e:
        raise UserError(str(e)) from None
    model.build_all()
    return model


def start_run(config, settings, run_root, label, family="vae"):
    """Train a new model into a new run folder under `run_root`; returns the folder."""
    data = load_dataset(settings.dataset, settings.limit)
    settings = resolve_settings(settings)
    try:
        config = config.for_images(data.image_shape)
    except ValueError as e:
        raise UserError(str(e)) from None
    model = build_model(family, config, settings)
    run_dir = runs.create_run_dir(run_root, f"{data.name}_{label}")
    write_json(run_dir / runs.PARAMS, {
        "model_family": family, "variant": label, "model": config.to_dict(),
        "training": dataclasses.asdict(settings), "dataset_name": data.name,
        "n_train": len(data.x_train), "n_test": len(data.x_test),
        "versions": runs.versions(), "git_commit": runs.git_commit(),
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
    family = params.get("model_family", "vae")
    config = MODEL_FAMILIES[family][0].from_dict(params["model"])
    data = load_dataset(settings.dataset, settings.limit)
    model = build_model(family, config, settings)
    runs.update_params(run_dir, training=dataclasses.asdict(settings), status="running",
                       resumes=params.get("resumes", []) + [{"time": runs.now(), "from_epoch": done}])
    print(f"resuming {run_dir} after epoch {done} of {settings.epochs}", flush=True)
    _train(run_dir, model, data, settings)
    return run_dir


def compile_model(model, settings):
    """Compile for training: Adam at a constant `lr`, XLA and steps per execution as `settings` say."""
    model.compile(optimizer=keras.optimizers.Adam(settings.lr), jit_compile=settings.jit,
                  steps_per_execution=settings.steps_per_execution)


def _train(run_dir, model, data, settings):
    compile_model(model, settings)
    callbacks = [cb.StopOnNonFiniteLoss(), cb.EpochExtras()]
    if model.config.warmup_epochs:
        callbacks.append(cb.BetaWarmup(model.config.beta, model.config.warmup_epochs))
    callbacks += [cb.HistoryCSV(run_dir / runs.HISTORY), cb.BestModels(run_dir)]
    if settings.plot_every:
        callbacks.append(cb.PeriodicFigures(settings.plot_every, lambda: draw_figures(model, data, run_dir)))
    # Last, so every other epoch-end file is written before the backup says the epoch is done.
    callbacks.append(cb.AtomicBackupAndRestore(run_dir / runs.BACKUP, delete_checkpoint=False))
    try:
        model.fit(data.x_train, epochs=settings.epochs, batch_size=settings.batch_size, shuffle=True,
                  validation_data=(data.x_test,), validation_batch_size=max(256, settings.batch_size),
                  callbacks=callbacks,
                  verbose="auto" if sys.stdout.isatty() else 2)  # one line per epoch in log files
        best_weights = run_dir / runs.MODELS / "vae.weights.h5"
        if best_weights.is_file():
            model.load_weights(best_weights)
        draw_figures(model, data, run_dir)
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


def encode_means(encoder, images, batch_size=1000):
    """Latent means of `images`, in eager batches (no predict-function tracing at the end of a run)."""
    return latent_moments(encoder, images, batch_size)[0]


def decode(decoder, z):
    """Images decoded from latent points, as float32 NumPy."""
    return keras.ops.convert_to_numpy(decoder(np.asarray(z, dtype="float32"), training=False)).astype("float32")


def draw_figures(model, data, run_dir):
    """Write every figure of `viz/` for the model's current weights."""
    viz = Path(run_dir) / runs.VIZ
    mu = encode_means(model.encoder, data.x_test)
    save_figure(plot_latent_space(mu, data.y_test), viz / "latent_space.png")
    save_figure(plot_reconstructions(data.x_test[:10], decode(model.decoder, mu[:10])),
                viz / "reconstructions.png")
    z = np.random.default_rng(0).standard_normal((64, model.config.z_dim))
    save_figure(plot_samples(decode(model.decoder, z)), viz / "samples.png")
    if model.config.z_dim == 2:
        save_figure(plot_manifold(decode(model.decoder, manifold_points(20)), 20), viz / "manifold.png")
    history = cb.read_history(Path(run_dir) / runs.HISTORY)
    if len(history):
        save_figure(plot_losses(history, title=Path(run_dir).name), viz / "losses.png")
