"""Making a damaged run folder resumable from its newest sound state (utils/runs/health.py finds it) without
losing anything: damaged files are moved aside into `damaged/<time>/`, never deleted; rows of `training.csv`
after the resumed epoch are moved to `training.superseded.csv`; the rows before it stay byte for byte."""

import json
import shutil
from pathlib import Path

from utils.atomic import atomic_path, write_json, write_text
from utils.errors import UserError
from utils.runs import health, layout

SUPERSEDED = "training.superseded.csv"


def supersede_rows(run_dir, epoch):
    """Keep `training.csv`'s rows up to `epoch` as written and append the later ones to training.superseded.csv;
    returns the epochs moved."""
    path = Path(run_dir) / layout.HISTORY
    header, rows = health.history_lines(path)
    text = path.read_text()
    later = [e for e in rows if e > epoch]
    torn = text[len(header) + sum(len(line) for line in rows.values()):]  # a torn last line: kept with them
    if not later and not torn:
        return []
    superseded = Path(run_dir) / SUPERSEDED
    before = superseded.read_text() if superseded.is_file() else header
    write_text(superseded, before + "".join(rows[e] for e in later) + torn)
    write_text(path, header + "".join(line for e, line in rows.items() if e <= epoch))
    return later


def restore_backup(run_dir, point, stamp):
    """Make the backup hold `point` (a `ResumePoint`) as Keras's BackupAndRestore reads it: its weights as
    `latest.weights.h5`, its epoch in the metadata; newer or damaged backup files moved aside."""
    backup = Path(run_dir) / layout.BACKUP
    latest, metadata = backup / health.LATEST, backup / health.METADATA
    if point.file != latest:
        for name in (health.LATEST, health.METADATA, health.PREVIOUS):
            if (backup / name) != point.file:
                layout.move_aside(run_dir, f"{layout.BACKUP}/{name}", stamp)
        backup.mkdir(exist_ok=True)
        with atomic_path(latest) as tmp:
            shutil.copyfile(point.file, tmp)
    try:
        recorded = json.loads(metadata.read_text()).get("epoch")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != point.epoch:
        if metadata.exists():
            layout.move_aside(run_dir, f"{layout.BACKUP}/{health.METADATA}", stamp)
        write_json(metadata, {"epoch": point.epoch, "batch": 0})


def prepare_resume(run_dir, params):
    """Check the run folder and make it resumable from its newest sound state; returns (the epochs done, a
    line saying what was repaired or "", the epoch through which the best-epoch record was lost or 0).
    A UserError naming the damaged files where nothing sound is left to continue from."""
    run_dir = Path(run_dir)
    for sub in (layout.MODELS, layout.VIZ):  # removed by hand (to save space, say): made again
        (run_dir / sub).mkdir(exist_ok=True)
    point, damage = health.resume_point(run_dir, params)
    if point is None:
        if damage:
            raise UserError(f"cannot resume {run_dir}: {'; '.join(map(str, damage))}; nothing sound is left to "
                            "continue from without rewriting its history: restore the file, or train a new run "
                            "with the settings in its params.json")
        return 0, "", 0
    stamp = layout.damage_stamp()
    restore_backup(run_dir, point, stamp)
    moved = supersede_rows(run_dir, point.epoch)
    notes = [f"from {point.file.relative_to(run_dir)}: {point.why}"] if point.why else []
    if moved:
        notes.append(f"training.csv's rows of epochs {moved[0]}–{moved[-1]} moved to {SUPERSEDED}")
    best = str(layout.model_file(run_dir, layout.WEIGHTS).relative_to(run_dir))
    best_damage = next((d for d in damage if d.file == best), None)
    lost = 0
    if best_damage:
        layout.move_aside(run_dir, best, stamp)
        lost = point.epoch
        notes.append(f"{best_damage}, so the best epoch is chosen among the epochs after {lost}")
    return point.epoch, "; ".join(notes), lost
