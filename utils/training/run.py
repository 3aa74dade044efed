"""Training a model into a run folder, and resuming one: the part every model family shares.

`start_run` makes a new run folder from a `ModelConfig` and `TrainSettings`; `resume_run` continues one
from its backup, on the backend it was made with. Both end with the best epoch's models exported, the
run's figures and `status: finished` in `params.json`. Nothing here knows which family it trains: the
model names its loss terms, draws its own samples and gives the data of its own figures.
"""

import dataclasses
import errno
import importlib.util
import sys
from pathlib import Path

import keras

from models import build_model as model_of_config
from models import family_class
from utils.analysis.evaluation import describe, evaluate_run
from utils.atomic import write_json
from utils.data.binarize import load_data, training_input
from utils.errors import UserError
from utils.runs import health, layout, provenance
from utils.runs.loading import model_config
from utils.runs.settings import recorded_settings, steps_per_epoch, with_step_budget
from utils.training import callbacks as cb
from utils.training import device, repair
from utils.training.device import precision_policy, resolve_settings
from utils.training.figures import draw_figures
from utils.training.resources import Resources

CODE_FIT_IMAGES = 10_000  # training images whose codes an AE's code Gaussian is fitted to
REPORT_IMAGES = 1_000  # validation images a family's end-of-training report looks at
RESUME_SETTINGS = ("epochs", "eval_samples")  # what a resume may change; every other setting is the run's own


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
        settings = resolve_settings(with_step_budget(settings, len(data.x_train)))
        config = config.for_images(data.image_shape).for_run(settings.epochs)
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        config = family_class(config.family).with_resources(config, Resources(settings))
    except ValueError as e:
        raise UserError(str(e)) from None
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
    """Continue an interrupted run from its newest sound state (or extend a finished one to `epochs`; score it
    at the end with `eval_samples` importance samples where given); returns the folder."""
    run_dir = Path(run_dir)
    params = layout.read_params(run_dir)
    made_on = provenance.recorded_backend(params)
    if made_on != device.backend():
        raise UserError(f"{run_dir} was trained on the {made_on} backend and this process runs "
                        f"{device.backend()}; resume it with KERAS_BACKEND={made_on}")
    settings = recorded_settings(params)
    changes = {k: v for k, v in (("epochs", epochs), ("eval_samples", eval_samples)) if v is not None}
    if epochs is not None and epochs != settings.epochs:
        changes["steps"] = None  # extended or shortened: its epochs no longer come from the step budget
    settings = dataclasses.replace(settings, **changes)
    layout.remove_stale_temporaries(run_dir)
    finished = params.get("result", {}).get("epochs", 0) if params["status"] == "finished" else 0
    if finished and finished >= settings.epochs:
        return _check_finished(run_dir, params, finished)
    check_tensorboard(settings)
    done, repaired, lost = repair.prepare_resume(run_dir, params)
    config = model_config(params)
    data = load_data(settings)
    model = build_model(config, settings)
    resume = {"time": provenance.now(), "from_epoch": done, "git_commit": provenance.git_commit(),
              "versions": provenance.versions(), **({"repaired": repaired} if repaired else {})}
    layout.update_params(run_dir, training=dataclasses.asdict(settings), status="running",
                         resumes=params.get("resumes", []) + [resume],
                         **({"best_lost_through": lost} if lost else {}))
    print(f"resuming {run_dir} after epoch {done} of {settings.epochs}" + (f" ({repaired})" if repaired else ""),
          flush=True)
    _train(run_dir, model, data, settings)
    return run_dir


def _check_finished(run_dir, params, epochs):
    """A finished run asked for no more epochs: re-export damaged encoder/decoder files from the best epoch's
    weights, or say there is nothing to do; a UserError if the best epoch's weights are damaged."""
    best = layout.model_file(run_dir, layout.WEIGHTS)
    damage = health.h5_damage(best, f"{layout.MODELS}/{best.name}")
    if damage:
        raise UserError(f"{run_dir}: {damage}, so the best epoch's model is lost; extend the run with --epochs "
                        f"{epochs + 1} or more (the best epoch is then chosen among the new epochs) or train it again")
    exports = [d for d in (health.h5_damage(layout.model_file(run_dir, n), f"{layout.MODELS}/{n}")
                           for n in (layout.ENCODER, layout.DECODER)) if d]
    if not exports:
        print(f"{run_dir} already finished {epochs} epochs; nothing to do (pass --epochs N to extend it)")
        return run_dir
    model = build_model(model_config(params), recorded_settings(params))
    model.load_weights(best)
    cb.export_models(model, run_dir, health.weights_epoch(best))
    print(f"{run_dir}: re-exported its encoder and decoder from the best epoch's weights "
          f"({'; '.join(map(str, exports))})", flush=True)
    return run_dir


def compile_model(model, settings):
    """Compile for training: Adam at `lr` (constant, or decaying as Keras 2's `decay` did), XLA and steps per
    execution as `settings` say."""
    lr = (keras.optimizers.schedules.InverseTimeDecay(settings.lr, decay_steps=1, decay_rate=settings.lr_decay)
          if settings.lr_decay else settings.lr)  # lr / (1 + decay * step)
    model.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=settings.jit,
                  steps_per_execution=settings.steps_per_execution)


def finish(model, data, run_dir, tensorboard=None, step=0, best_epoch=None):
    """Fit what the model samples codes from (an AE's Gaussian), export its models (the weights stamped with
    `best_epoch`, the epoch they hold), draw its figures."""
    model.fit_code_distribution(data.x_train[:CODE_FIT_IMAGES])
    for line in model.training_report(data.x_val[:REPORT_IMAGES]):
        print(f"warning: {run_dir}: {line}", file=sys.stderr, flush=True)
    cb.export_models(model, run_dir, best_epoch)
    draw_figures(model, data, run_dir, tensorboard, step)


def first_counted_epoch(run_dir, model, settings):
    """The first epoch the best epoch is chosen from: the model's (after a warm-up), or later where a resume
    found the best epoch's weights damaged (`best_lost_through` in params.json)."""
    lost = layout.read_params(run_dir).get("best_lost_through", 0)
    return max(model.first_comparable_epoch(settings.epochs), lost + 1)


def _callbacks(run_dir, model, data, settings, data_listeners):
    callbacks = [cb.StopOnNonFiniteLoss(settings.batch_size), cb.EpochExtras(),
                 cb.EpochSchedule(model.on_epoch_start, *data_listeners),
                 cb.HistoryCSV(run_dir / layout.HISTORY),
                 cb.BestWeights(run_dir, first_counted_epoch(run_dir, model, settings))]
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
    layout.update_params(run_dir, best_from_epoch=first_counted_epoch(run_dir, model, settings))
    x_train, batching, data_listeners = training_input(data.x_train, settings)
    callbacks, tensorboard = _callbacks(run_dir, model, data, settings, data_listeners)
    try:
        model.fit(x_train, **batching, epochs=settings.epochs,
                  validation_data=(data.x_val,), validation_batch_size=max(256, settings.batch_size),
                  callbacks=callbacks,
                  verbose="auto" if sys.stdout.isatty() else 2)  # one line per epoch in log files
        best_weights, best_epoch = layout.model_file(run_dir, layout.WEIGHTS), None
        if best_weights.is_file():
            model.load_weights(best_weights)
            best_epoch = health.weights_epoch(best_weights)
        finish(model, data, run_dir, tensorboard, settings.epochs, best_epoch)
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
        if not is_write_error(e):  # a file that cannot be read: the run is as it was, nothing to mark
            raise UserError(f"cannot read a file of {run_dir} ({why}); `python evaluate.py --check {run_dir}` "
                            "names the damaged files") from None
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


WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


WRITE_ERROR_WORDS = ("No space left on device", "Permission denied", "Read-only file system", "Disk quota exceeded")


def is_write_error(error):
    """Whether an OSError is a failure to write (no space, no permission), not a file that cannot be read
    (h5py's errors carry the reason in their text, not in `errno`)."""
    return error.errno in WRITE_ERRORS or any(words in str(error) for words in WRITE_ERROR_WORDS)


def _mark_failed(run_dir, why):
    try:
        layout.update_params(run_dir, status=f"failed: {why}")
    except (OSError, UserError):  # the disk may be why we failed; the one-line error still goes out
        pass


def run_result(run_dir):
    """Final and best figures of a run, from its `training.csv`."""
    history = cb.read_history(Path(run_dir) / layout.HISTORY)
    params = layout.read_params(run_dir)
    last, best = history.iloc[-1], layout.best_row(history, params)
    training = params["training"]
    return {"epochs": int(last["epoch"]),
            "optimizer_steps": int(last["epoch"]) * steps_per_epoch(params["n_train"], training["batch_size"]),
            "final_val_loss": float(last["val_loss"]),
            "best_val_loss": float(best["val_loss"]), "best_epoch": int(best["epoch"]),
            "train_seconds": float(history["train_seconds"].sum()), **device.gpu_peak_memory()}
