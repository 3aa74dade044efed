"""Is a run folder sound? Each of its files read as its reader reads it, a damaged file (cut short, emptied,
garbled) told from a missing one by name and kind, and the newest sound state a run can resume from.

`check_run` gives a run's state (finished, resumable, damaged) for `evaluate.py --check` and the suite
runner; `resume_point` is what `train.py --resume` continues from. Nothing here imports Keras.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from utils.runs import layout

MISSING, EMPTY, TRUNCATED, GARBLED = "missing", "empty", "cut short", "garbled"
LATEST, PREVIOUS, METADATA = "latest.weights.h5", "previous.weights.h5", "training_metadata.json"
EPOCH_ATTR = "epoch"  # the epoch a weights file holds, written into it (utils/training/callbacks.py)


@dataclass(frozen=True)
class Damage:
    """A file of a run folder that cannot be used: its path in the folder, the kind, the reader's words."""

    file: str
    kind: str
    detail: str = ""

    def __str__(self):
        return f"{self.file} is {self.kind}" + (f" ({self.detail})" if self.detail else "")


def _relative(run_dir, path):
    return str(Path(path).relative_to(run_dir)) if Path(path).is_relative_to(run_dir) else str(path)


def _absent(path, name):
    if not Path(path).is_file():
        return Damage(name, MISSING)
    if Path(path).stat().st_size == 0:
        return Damage(name, EMPTY)
    return None


def json_damage(path, name=None):
    """None if `path` holds JSON, else its `Damage`."""
    name = name or Path(path).name
    absent = _absent(path, name)
    if absent:
        return absent
    try:
        json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        return Damage(name, GARBLED, f"not JSON: {' '.join(str(e).split())[:80]}")
    return None


def h5_damage(path, name=None):
    """None if `path` is an HDF5 file whose every array reads, else its `Damage` (cut short, garbled, ...)."""
    name = name or Path(path).name
    absent = _absent(path, name)
    if absent:
        return absent
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        text = " ".join(str(e).split())
        return Damage(name, TRUNCATED if "truncated" in text.lower() else GARBLED, text[:120])
    return None


def weights_epoch(path):
    """The epoch a weights file says it holds (None for files written before the epoch was recorded in them)."""
    with h5py.File(path, "r") as f:
        value = f.attrs.get(EPOCH_ATTR)
    return None if value is None else int(value)


def history_lines(path):
    """(header, {epoch: the row's line as written}) of `training.csv`, up to the first row that is not whole
    (a torn last line), or a `Damage` if the file cannot be read as the run's history."""
    name = Path(path).name
    absent = _absent(path, name)
    if absent:
        return absent
    try:
        header, *lines = Path(path).read_text().splitlines(keepends=True)
    except UnicodeDecodeError:
        return Damage(name, GARBLED, "not text")
    columns = header.strip().split(",")
    if columns[:1] != ["epoch"] or "val_loss" not in columns:
        return Damage(name, GARBLED, "no epoch and val_loss columns")
    rows = {}
    for expected, line in enumerate(lines, start=1):
        cells = line.strip().split(",")
        if len(cells) != len(columns) or not line.endswith("\n") or not _is_epoch(cells[0], expected):
            break
        rows[expected] = line
    return header, rows


def _is_epoch(text, expected):
    try:
        return float(text) == expected
    except ValueError:
        return False


# The files of a resume, in the order its state is looked for (the backup's counter first: without it Keras
# would start from epoch 0); a damaged file before the one used is why that one was used.
TRIED = (f"{layout.BACKUP}/{METADATA}", f"{layout.BACKUP}/{LATEST}", f"{layout.BACKUP}/{PREVIOUS}",
         f"{layout.MODELS}/{layout.WEIGHTS}")


@dataclass(frozen=True)
class ResumePoint:
    """A sound state to continue a run from: the weights file (model and optimizer), the epochs it holds,
    and why no newer state was used ("" when it is the latest backup)."""

    file: Path
    epoch: int
    why: str = ""


@dataclass
class RunHealth:
    """A run folder's state: finished, resumable, running (params.json says so; its backup is sound) or
    damaged, the damaged files, and the state it resumes from."""

    run_dir: Path
    state: str
    damage: list = field(default_factory=list)
    resume: ResumePoint | None = None
    epochs: int = 0

    @property
    def exports_only(self):
        """Whether only files a resume remakes from the best epoch's weights are damaged (encoder.h5,
        decoder.h5, eval.json): `train.py --resume` re-exports them."""
        remade = {f"{layout.MODELS}/{layout.ENCODER}", f"{layout.MODELS}/{layout.DECODER}", layout.EVAL}
        return bool(self.damage) and all(d.file in remade for d in self.damage)

    def describe(self):
        """One line: the state and, where there is one, what is damaged and what a resume continues from."""
        text = {"finished": f"finished ({self.epochs} epochs)", "damaged": "DAMAGED"}.get(self.state, self.state)
        if self.resume and self.state != "finished":
            text += f", resumes after epoch {self.resume.epoch}"
        if self.damage:
            text += ": " + "; ".join(map(str, self.damage))
        return text


def backup_candidates(run_dir):
    """[(weights file, epoch or None, damage)] of the backup's states, newest first: the latest backup (its
    epoch from the file, else from its training_metadata.json, as in folders made before files named their
    epoch), then the previous one."""
    backup = Path(run_dir) / layout.BACKUP
    found = []
    for name in (LATEST, PREVIOUS):
        path = backup / name
        damage = h5_damage(path, f"{layout.BACKUP}/{name}")
        epoch = None if damage else weights_epoch(path)
        if name == LATEST and not damage and epoch is None:
            damage = metadata_damage(run_dir)
            epoch = None if damage else json.loads((backup / METADATA).read_text())["epoch"]
        found.append((path, epoch, damage))
    return found


def metadata_damage(run_dir):
    """None if the backup's training_metadata.json holds an epoch count, else its `Damage`."""
    path = Path(run_dir) / layout.BACKUP / METADATA
    name = f"{layout.BACKUP}/{METADATA}"
    damage = json_damage(path, name)
    if damage:
        return damage
    epoch = json.loads(path.read_text())
    return None if isinstance(epoch, dict) and isinstance(epoch.get("epoch"), int) else Damage(name, GARBLED, "no epoch")


def best_candidate(run_dir, params, rows):
    """(the best epoch's weights, its epoch, damage): the epoch from the file, else from training.csv."""
    path = layout.model_file(run_dir, layout.WEIGHTS)
    damage = h5_damage(path, _relative(run_dir, path))
    if damage:
        return path, None, damage
    epoch = weights_epoch(path)
    if epoch is None and rows:
        import pandas as pd  # only for older folders, whose weights do not name their epoch

        history = pd.read_csv(Path(run_dir) / layout.HISTORY, nrows=len(rows))
        epoch = int(layout.best_row(history, params)["epoch"])
    return path, epoch, None


def resume_point(run_dir, params):
    """(`ResumePoint` or None, [Damage]): the newest sound state whose epochs `training.csv` records whole (the
    latest backup, the previous one, the best epoch's weights), and what was found damaged on the way. None
    where no epoch has finished (nothing to resume) or nothing sound is left."""
    run_dir = Path(run_dir)
    lines = history_lines(run_dir / layout.HISTORY)
    if isinstance(lines, Damage):
        backups = [c for c in backup_candidates(run_dir) if c[2] is None]
        return None, ([] if lines.kind == MISSING and not backups else [lines])
    rows = lines[1]
    damage, skipped = [], []
    latest = Path(run_dir) / layout.BACKUP / LATEST
    if rows and latest.is_file() and not h5_damage(latest) and weights_epoch(latest) is not None:
        damage += [d for d in [metadata_damage(run_dir)] if d]  # not in the way: the counter is remade
    candidates = [*backup_candidates(run_dir), best_candidate(run_dir, params, rows)]
    for path, _, problem in candidates:
        if problem and (problem.kind != MISSING or (rows and path.name != PREVIOUS)):  # older runs: no previous
            damage.append(problem)
    for path, epoch, problem in candidates:
        if problem:
            continue
        if epoch is None or epoch < 1 or epoch > len(rows):
            skipped.append(f"{_relative(run_dir, path)} holds epoch {epoch}, and training.csv records "
                           f"{len(rows)} whole epochs")
            continue
        name = _relative(run_dir, path)
        tried_before = TRIED[:TRIED.index(name)] if name in TRIED else TRIED
        why = [str(d) for d in damage if d.file in tried_before] + skipped
        return ResumePoint(path, epoch, "; ".join(why)), damage
    if skipped:  # weights of epochs that training.csv no longer records whole: resuming would rewrite history
        damage.append(Damage(layout.HISTORY, TRUNCATED, f"{len(rows)} whole epochs, and " + "; ".join(skipped)))
    return None, damage


def check_run(run_dir):
    """The `RunHealth` of a run folder, from its files alone (nothing is loaded into a model)."""
    run_dir = Path(run_dir)
    damage = json_damage(run_dir / layout.PARAMS)
    if damage:
        return RunHealth(run_dir, "damaged", [damage])
    params = json.loads((run_dir / layout.PARAMS).read_text())
    point, damage = resume_point(run_dir, params)
    lines = history_lines(run_dir / layout.HISTORY)
    epochs = 0 if isinstance(lines, Damage) else len(lines[1])
    if params.get("status") == "finished":
        recorded = params.get("result", {}).get("epochs", epochs)
        if not any(d.file == layout.HISTORY for d in damage) and epochs < recorded:
            damage.append(Damage(layout.HISTORY, TRUNCATED, f"{epochs} of its {recorded} epochs are whole"))
        exported = [h5_damage(layout.model_file(run_dir, n), f"{layout.MODELS}/{n}")
                    for n in (layout.WEIGHTS, layout.ENCODER, layout.DECODER)]
        damage += [d for d in exported if d and d not in damage]
        eval_damage = (run_dir / layout.EVAL).exists() and json_damage(run_dir / layout.EVAL)
        damage += [eval_damage] if eval_damage else []
        sound = not any(d.file.startswith(layout.MODELS) or d.file == layout.HISTORY for d in damage)
        return RunHealth(run_dir, "finished" if sound else "damaged", damage, point, epochs)
    if point is None and damage:
        return RunHealth(run_dir, "damaged", damage, None, epochs)
    state = "running" if params.get("status") == "running" else "resumable"
    return RunHealth(run_dir, state, damage, point, epochs)


def run_folders(paths):
    """Run folders among `paths`: each one that has a params.json (damaged or not), and the numbered folders
    of each pool or suite folder given."""
    found = []
    for path in map(Path, paths):
        if (path / layout.PARAMS).exists():
            found.append(path)
        elif path.is_dir():
            found += [d for d in sorted(path.glob("*/")) if (d / layout.PARAMS).exists() or (d / layout.HISTORY).exists()]
    return found
