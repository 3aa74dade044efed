"""Run folders: where a run's folder name, `params.json` and every file name in it are decided.

    <run-root>/NNNN_<dataset>_<variant>/
        params.json      settings, seed, versions, git commit, status, resume points
        training.csv     one row per epoch
        eval.json        likelihood and pixel-error figures (evaluate.py)
        models/          model.weights.h5 (the whole model at the best val_loss so far, after any KL
                         warm-up; an AE's fitted code Gaussian with it), encoder.h5 and decoder.h5
                         (stock Keras, written from the best weights when training ends; older
                         folders: code_gaussian.json)
        backup/          Keras BackupAndRestore state for --resume (weights + optimizer, epoch)
        viz/             latent_space.png, reconstructions.png, samples.png, manifold.png, losses.png,
                         and a family's own figures (denoising.png, code_histogram.png)
        tensorboard/     TensorBoard logs, with --tensorboard
        damaged/<time>/  files found damaged, moved aside (never deleted) when the run was resumed or scored
"""

import fcntl
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from utils.atomic import write_json
from utils.errors import UserError

PARAMS = "params.json"
HISTORY = "training.csv"
EVAL = "eval.json"
MODELS = "models"
ENCODER = "encoder.h5"
DECODER = "decoder.h5"
WEIGHTS = "model.weights.h5"
LEGACY_WEIGHTS = "vae.weights.h5"  # the name run folders made before the AE families used
CODE_GAUSSIAN = "code_gaussian.json"  # an AE's fitted Gaussian, in folders made before it joined the weights
BACKUP = "backup"
VIZ = "viz"
TENSORBOARD = "tensorboard"
DAMAGED = "damaged"
_NUMBERED = re.compile(r"^(\d{4,})_")


def create_run_dir(run_root, label):
    """Make `<run_root>/NNNN_<label>` with NNNN one above the highest number there; a lock file
    makes two processes started together get two numbers."""
    run_root = Path(run_root)
    try:
        run_root.mkdir(parents=True, exist_ok=True)
        with open(run_root / ".numbering.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = [int(m.group(1)) for p in run_root.iterdir() if (m := _NUMBERED.match(p.name))]
            run_dir = run_root / f"{max(taken, default=0) + 1:04d}_{label}"
            run_dir.mkdir()
            for sub in (MODELS, VIZ):
                (run_dir / sub).mkdir()
    except OSError as e:
        raise UserError(f"cannot create a run folder in {run_root} ({e.strerror or e}); "
                        "pass a writable --run-root") from None
    return run_dir


def read_params(run_dir):
    """A run folder's `params.json`, or a one-line error if the folder is not a run."""
    path = Path(run_dir) / PARAMS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run folder (no {PARAMS}); give a folder made by train_vae.py") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} ({e})") from None


def remove_stale_temporaries(run_dir):
    """Delete `.tmp-*` files a killed process left behind (see utils/atomic.py)."""
    for path in Path(run_dir).rglob(".tmp-*"):
        path.unlink(missing_ok=True)


def update_params(run_dir, **changes):
    """Atomically rewrite `params.json` with `changes` applied on top."""
    params = read_params(run_dir)
    params.update(changes)
    write_json(Path(run_dir) / PARAMS, params)
    return params


def best_row(history, params):
    """The epoch of `history` (training.csv) with the lowest val_loss among those that count: from
    params.json's `best_from_epoch` on (after a KL warm-up); the last epoch while none does."""
    counted = history[history["epoch"] >= params.get("best_from_epoch", 1)]
    return counted.loc[counted["val_loss"].idxmin()] if len(counted) else history.iloc[-1]


def model_file(run_dir, name):
    """The path of `name` (ENCODER, DECODER, WEIGHTS, CODE_GAUSSIAN) in the run's `models/`."""
    folder = Path(run_dir) / MODELS
    if name == WEIGHTS and not (folder / WEIGHTS).is_file() and (folder / LEGACY_WEIGHTS).is_file():
        return folder / LEGACY_WEIGHTS
    return folder / name


def damage_stamp():
    """The name of the `damaged/` subfolder for files moved aside now: the UTC time."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")


def move_aside(run_dir, relative, stamp):
    """Move `run_dir/relative` into `run_dir/damaged/<stamp>/relative`, kept for whoever wants to look."""
    source = Path(run_dir) / relative
    if not source.exists():
        return
    target = Path(run_dir) / DAMAGED / stamp / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
