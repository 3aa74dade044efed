"""Keras callbacks for a run folder: epoch timing, the loss CSV, the best weights, the per-epoch schedule
(e.g. a KL warm-up), backups for --resume, the non-finite-loss stop and periodic figures. None of them
knows the model's family: loss columns come from the model's own loss terms."""

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import absl.logging
import h5py
import keras
import pandas as pd

from utils.atomic import atomic_path, weights_size, write_json, write_text
from utils.runs import health, layout



def history_columns(term_names):
    """The columns of `training.csv` for a model with these loss terms, e.g. ("r_loss", "kl_loss")."""
    names = ["loss", *term_names]
    return ["epoch", *names, *(f"val_{n}" for n in names), "lr", "train_seconds"]


class NonFiniteLoss(Exception):
    """Training produced a NaN or infinite loss; `epoch` and `batch` count from 1."""

    def __init__(self, epoch, batch):
        super().__init__(f"non-finite loss at epoch {epoch} batch {batch}")
        self.epoch, self.batch = epoch, batch


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise `NonFiniteLoss` at the first NaN/inf batch loss.

    Keras's TerminateOnNaN only sets `stop_training`, after which the epoch still ends normally and
    the backup callback would save the poisoned weights; raising ends `fit` before any epoch-end
    callback runs, so the last backup and the saved models stay the last good ones. The batch comes
    from the images the model counted before its first non-finite batch (models/base.py), so it is
    exact with many steps per execution.
    """

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        seen = int(keras.ops.convert_to_numpy(self.model.first_nonfinite_step))
        raise NonFiniteLoss(self.epoch, seen // self.batch_size + 1 if seen >= 0 else batch + 1)


class EpochExtras(keras.callbacks.Callback):
    """Add `lr` and `train_seconds` (the epoch's training steps only, no validation) to the logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if getattr(self, "_start", None) is not None and self._train_seconds is None:
            float(self.model.metrics[0].result())  # wait for queued device work before reading the clock
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._start
        logs["lr"] = float(f"{float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)):.7g}")
        logs["train_seconds"] = round(self._train_seconds, 3)


class HistoryCSV(keras.callbacks.Callback):
    """`training.csv`, one row per epoch (epochs from 1), rewritten atomically after every epoch; the rows of
    epochs before this process began are kept as written, byte for byte.

    Why not CSVLogger: it appends in place (a kill can leave half a row) and, after a resume, cannot
    drop the rows of epochs that are about to be trained again.
    """

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)
        self.kept = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.kept is None:  # first epoch of this process: keep the rows the backup has covered
            found = health.history_lines(self.path)
            header, lines = ("", {}) if isinstance(found, health.Damage) else found
            self.header, self.rows = header, []
            self.kept = "".join(line for e, line in lines.items() if e <= epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        frame = pd.DataFrame(self.rows)
        if self.header:
            columns = self.header.strip().split(",")
        else:
            order = history_columns(self.model.term_names())
            columns = [c for c in order if c in frame] + [c for c in frame if c not in order]
            self.header = ",".join(columns) + "\n"
        write_text(self.path, self.header + self.kept + frame.reindex(columns=columns).to_csv(index=False, header=False))


def read_history(path):
    """A run's `training.csv` as a DataFrame (empty if there is none yet)."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["epoch", "loss", "val_loss"])
    return pd.read_csv(path)


class BestWeights(keras.callbacks.Callback):
    """Keep `models/model.weights.h5` at the epoch of lowest val_loss from epoch `first` (from 1) on, and at
    the latest epoch before it, while a warm-up changes the loss (one file, written atomically).

    The exported `encoder.h5` and `decoder.h5` are written from these weights once, when training ends
    (`export_models`): exporting them at every improving epoch cost more than the epoch's training steps
    on small data (docs/benchmarks.md, "Where a suite's time goes"). The best value so far comes from
    `training.csv`, so it survives a resume.
    """

    def __init__(self, run_dir, first=1):
        super().__init__()
        self.run_dir, self.first = Path(run_dir), first

    def on_train_begin(self, logs=None):
        history = read_history(self.run_dir / layout.HISTORY)
        counted = history[history["epoch"] >= self.first]["val_loss"]
        self.best = float(counted.min()) if len(counted) else math.inf

    def on_epoch_end(self, epoch, logs=None):
        val_loss = float(logs.get("val_loss", math.nan))
        if epoch + 1 < self.first or val_loss < self.best:
            self.best = val_loss if epoch + 1 >= self.first else math.inf  # the first counted epoch is kept
            with atomic_path(layout.model_file(self.run_dir, layout.WEIGHTS), weights_size(self.model.weights)) as tmp:
                self.model.save_weights(tmp)
                stamp_epoch(tmp, epoch + 1)


def stamp_epoch(path, epoch):
    """Record in a weights file the epoch whose state it holds, so the file says it even when the files
    beside it are lost (utils/runs/health.py reads it)."""
    with h5py.File(path, "r+") as f:
        f.attrs[health.EPOCH_ATTR] = int(epoch)


def export_models(model, run_dir, epoch=None):
    """Write the weights (stamped with `epoch`, the one they hold) and the encoder and decoder `.h5` files
    (stock layers) of `model` as it is: all to temporary files first, then renamed into place, so a failed
    save leaves the previous set untouched."""
    encoder, decoder = model.export_models()
    size = weights_size(model.weights)
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_path(Path(run_dir) / layout.MODELS / name, size))
               for name in (layout.WEIGHTS, layout.DECODER, layout.ENCODER)}
        with _quiet_absl():  # Keras warns that .h5 is a legacy format; .h5 is what this project promises
            encoder.save(tmp[layout.ENCODER])
            decoder.save(tmp[layout.DECODER])
        model.save_weights(tmp[layout.WEIGHTS])
        if epoch is not None:
            stamp_epoch(tmp[layout.WEIGHTS], epoch)


@contextlib.contextmanager
def _quiet_absl():
    verbosity = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.ERROR)
    try:
        yield
    finally:
        absl.logging.set_verbosity(verbosity)


class EpochSchedule(keras.callbacks.Callback):
    """Tell each listener which epoch (from 0) of how many is about to start, e.g. `model.on_epoch_start` for
    a KL warm-up. Derived from the epoch alone, so a resumed run continues where it was."""

    def __init__(self, *listeners):
        super().__init__()
        self.listeners = listeners

    def on_epoch_begin(self, epoch, logs=None):
        for listener in self.listeners:
            listener(epoch, self.params["epochs"])


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore with each backup file written to a temporary name and renamed, the epoch
    written into the weights file, and the backup before it kept as `previous.weights.h5`.

    Keras writes `latest.weights.h5` in place, so a kill mid-write leaves a file that cannot be
    loaded. The weights are renamed into place before the epoch counter, so a kill between the two
    at worst trains the interrupted epoch once more. The previous backup is a hard link, so keeping it
    costs no copy; a resume whose latest backup was damaged afterwards continues from it (health.py).
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        latest = Path(self._weights_path)
        size = weights_size(self.model.weights) + weights_size(self.model.optimizer.variables)
        with atomic_path(latest, size) as tmp:
            self.model.save_weights(tmp)
            stamp_epoch(tmp, self._current_epoch)
            if latest.is_file():
                keep_previous(latest, latest.with_name(health.PREVIOUS))
        write_json(self._training_metadata_path,
                   {"epoch": self._current_epoch, "batch": self._last_batch_seen})


def keep_previous(latest, previous):
    """Make `previous` another name of `latest`'s file (a hard link, renamed into place; a copy where the file
    system has no links), so renaming a new file over `latest` leaves the old one as `previous`."""
    tmp = previous.with_name(f".tmp-{os.getpid()}-{previous.name}")
    try:
        os.link(latest, tmp)
    except OSError:
        shutil.copyfile(latest, tmp)
    os.replace(tmp, previous)


def backup_epoch(run_dir):
    """The number of epochs the run's backup holds (0 if none)."""
    path = Path(run_dir) / layout.BACKUP / health.METADATA
    return json.loads(path.read_text())["epoch"] if path.is_file() else 0


class PeriodicFigures(keras.callbacks.Callback):
    """Redraw the run's figures every `every` epochs."""

    def __init__(self, every, draw):
        super().__init__()
        self.every, self.draw = every, draw

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.draw(epoch + 1)
