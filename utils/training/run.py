"""Training a model into a run folder, and resuming one: the part every model family shares.

`start_run` makes a new run folder from a `ModelConfig` and `TrainSettings`; `resume_run` continues one
from its backup, on the backend it was made with. Both end with the best epoch's models exported, the
run's figures and `status: finished` in `params.json`. Nothing here knows which family it trains: the
model names its loss terms, draws its own samples and gives the data of its own figures.
"""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import keras

from models import build_model as model_of_config
from utils.analysis.evaluation import describe, evaluate_run
from utils.atomic import write_json
from utils.analysis.features import feature_network
from utils.data.binarize import load_data, load_raw, training_input
from utils.errors import UserError
from utils.runs import layout, provenance
from utils.runs.loading import model_config
from utils.training import callbacks as cb
from utils.training import device
from utils.training.figures import draw_figures
from utils.training.settings import precision_policy, recorded_settings, resolve_settings

CODE_FIT_IMAGES = 10_000  # training images whose codes an AE's code Gaussian is fitted to


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


def check_tensorboard(settings):
    """A one-line error for --tensorboard where TensorFlow, which writes TensorBoard's files, is missing."""
    if settings.tensorboard and importlib.util.find_spec("tensorflow") is None:
        raise UserError("--tensorboard writes its logs through TensorFlow, which is not installed here; "
                        "drop --tensorboard (training.csv and viz/ hold the same figures)")


def start_run(config, settings, run_root, label):
    """Train a new model into a new run folder under `run_root`; returns the folder."""
    check_tensorboard(settings)
    data = load_data(settings)
    try:
        settings = resolve_settings(settings)
        config = config.for_images(data.image_shape).for_run(settings.epochs)
    except ValueError as e:
        raise UserError(str(e)) from None
    config = with_feature_network(config, settings)
    model = build_model(config, settings)
    run_dir = layout.create_run_dir(run_root, f"{data.name}_{label}")
    write_json(run_dir / layout.PARAMS, {
        "variant": label, "model": config.to_dict(), "loss_formula": config.objective.describe(),
        "training": dataclasses.asdict(settings), "dataset_name": data.name,
        "n_train": len(data.x_train), "n_val": len(data.x_val), "n_test": len(data.x_test),
        "validation": data.validation,
        "versions": provenance.versions(), "git_commit": provenance.git_commit(),
        "created": provenance.now(), "status": "running", "resumes": []})
    print(f"run folder: {run_dir}", flush=True)
    _train(run_dir, model, data, settings)
    return run_dir


def resume_run(run_dir, epochs=None, eval_samples=None):
    """Continue an interrupted run (or extend a finished one to `epochs`; score it at the end with
    `eval_samples` importance samples where given); returns the folder."""
    run_dir = Path(run_dir)
    params = layout.read_params(run_dir)
    made_on = provenance.recorded_backend(params)
    if made_on != device.backend():
        raise UserError(f"{run_dir} was trained on the {made_on} backend and this process runs "
                        f"{device.backend()}; resume it with KERAS_BACKEND={made_on}")
    settings = recorded_settings(params)
    changes = {k: v for k, v in (("epochs", epochs), ("eval_samples", eval_samples)) if v is not None}
    settings = dataclasses.replace(settings, **changes)
    done = cb.backup_epoch(run_dir)
    if params["status"] == "finished" and done >= settings.epochs:
        print(f"{run_dir} already finished {done} epochs; nothing to do (pass --epochs N to extend it)")
        return run_dir
    check_tensorboard(settings)
    layout.remove_stale_temporaries(run_dir)
    config = model_config(params)
    data = load_data(settings)
    model = build_model(config, settings)
    layout.update_params(run_dir, training=dataclasses.asdict(settings), status="running",
                         resumes=params.get("resumes", []) + [{"time": provenance.now(), "from_epoch": done,
                                                               "git_commit": provenance.git_commit(),
                                                               "versions": provenance.versions()}])
    print(f"resuming {run_dir} after epoch {done} of {settings.epochs}", flush=True)
    _train(run_dir, model, data, settings)
    return run_dir


def compile_model(model, settings):
    """Compile for training: Adam at `lr` (constant, or decaying as Keras 2's `decay` did), XLA and steps per
    execution as `settings` say."""
    lr = (keras.optimizers.schedules.InverseTimeDecay(settings.lr, decay_steps=1, decay_rate=settings.lr_decay)
          if settings.lr_decay else settings.lr)  # lr / (1 + decay * step)
    model.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=settings.jit,
                  steps_per_execution=settings.steps_per_execution)


def with_feature_network(config, settings):
    """`config` with the data's cached feature network where its objective asks for one (`feature_network`:
    "auto", e.g. the DFC-VAE's); a UserError for a file that is not there."""
    wanted = getattr(config.objective, "feature_network", None)
    if wanted is None:
        return config
    if wanted != "auto":
        if not Path(wanted).is_file():
            raise UserError(f"feature network {wanted} does not exist; pass auto (the data's own, trained once) or "
                            "a classifier.weights.h5 made by utils/analysis/features.py")
        return config
    network = feature_network(load_raw(settings), settings.limit)
    objective = dataclasses.replace(config.objective, feature_network=str(network.weights_path.resolve()),
                                    feature_classes=network.info["n_classes"])
    return dataclasses.replace(config, objective=objective)


def finish(model, data, run_dir, tensorboard=None, step=0):
    """Fit what the model samples codes from (an AE's Gaussian), export its models, draw its figures."""
    model.fit_code_distribution(data.x_train[:CODE_FIT_IMAGES])
    cb.export_models(model, run_dir)
    draw_figures(model, data, run_dir, tensorboard, step)


def _callbacks(run_dir, model, data, settings, data_listeners):
    callbacks = [cb.StopOnNonFiniteLoss(settings.batch_size), cb.EpochExtras(),
                 cb.EpochSchedule(model.on_epoch_start, *data_listeners),
                 cb.HistoryCSV(run_dir / layout.HISTORY),
                 cb.BestWeights(run_dir, model.first_comparable_epoch(settings.epochs))]
    tensorboard = run_dir / layout.TENSORBOARD if settings.tensorboard else None
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(tensorboard, histogram_freq=0, write_graph=False))
    if settings.plot_every:
        def redraw(epoch):
            model.fit_code_distribution(data.x_train[:CODE_FIT_IMAGES])
            draw_figures(model, data, run_dir, tensorboard, epoch)

        callbacks.append(cb.PeriodicFigures(settings.plot_every, redraw))
    # Last, so every other epoch-end file is written before the backup says the epoch is done.
    callbacks.append(cb.AtomicBackupAndRestore(run_dir / layout.BACKUP, delete_checkpoint=False))
    return callbacks, tensorboard


def _train(run_dir, model, data, settings):
    compile_model(model, settings)
    layout.update_params(run_dir, best_from_epoch=model.first_comparable_epoch(settings.epochs))
    x_train, batching, data_listeners = training_input(data.x_train, settings)
    callbacks, tensorboard = _callbacks(run_dir, model, data, settings, data_listeners)
    try:
        model.fit(x_train, **batching, epochs=settings.epochs,
                  validation_data=(data.x_val,), validation_batch_size=max(256, settings.batch_size),
                  callbacks=callbacks,
                  verbose="auto" if sys.stdout.isatty() else 2)  # one line per epoch in log files
        best_weights = layout.model_file(run_dir, layout.WEIGHTS)
        if best_weights.is_file():
            model.load_weights(best_weights)
        finish(model, data, run_dir, tensorboard, settings.epochs)
    except cb.NonFiniteLoss as e:
        _mark_failed(run_dir, str(e))
        kept = "the last good weights and backup are kept" if (run_dir / layout.BACKUP).is_dir() \
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
    layout.update_params(run_dir, status="finished", finished=provenance.now(), result=run_result(run_dir))
    if settings.eval_samples:
        score(run_dir, model, data, settings.eval_samples)
    print(run_dir, flush=True)


def score(run_dir, model, data, samples):
    """Score the finished run with the model and data in hand (the figures evaluate.py gives), so a suite's
    runs are scored in parallel, each in its own slot, without a process of its own. A failure leaves the
    run finished and says so in one line: evaluate.py (or the suite, which scores what is not) can retry."""
    try:
        print(describe(*evaluate_run(run_dir, samples, model=model, data=data)), flush=True)
    except Exception as e:  # noqa: BLE001 (any failure of this optional step must not fail a finished run)
        print(f"warning: scoring {run_dir} failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
              f"run evaluate.py {run_dir} to retry", file=sys.stderr, flush=True)


def describe_os_error(error):
    """A one-line reason for an OSError (h5py's messages span several lines)."""
    text = error.strerror or " ".join(str(error).split())
    return "No space left on device" if "No space left on device" in text else text[:300]


def _mark_failed(run_dir, why):
    try:
        layout.update_params(run_dir, status=f"failed: {why}")
    except (OSError, UserError):  # the disk may be why we failed; the one-line error still goes out
        pass


def run_result(run_dir):
    """Final and best figures of a run, from its `training.csv`."""
    history = cb.read_history(Path(run_dir) / layout.HISTORY)
    last, best = history.iloc[-1], layout.best_row(history, layout.read_params(run_dir))
    return {"epochs": int(last["epoch"]), "final_val_loss": float(last["val_loss"]),
            "best_val_loss": float(best["val_loss"]), "best_epoch": int(best["epoch"]),
            "train_seconds": float(history["train_seconds"].sum()), **device.gpu_peak_memory()}
