"""A run folder's model: its `ModelConfig` rebuilt from `params.json` (any layout), with the best epoch's
weights, as the rest of the project uses it (the model contract of models/base.py)."""

import json

from models import ModelConfig, build_model
from utils.errors import UserError
from utils.runs.health import h5_damage
from utils.runs.layout import CODE_GAUSSIAN, MODELS, WEIGHTS, model_file, read_params


def model_config(params):
    """The `ModelConfig` of a run's params (either layout), with a one-line error if unreadable."""
    try:
        return ModelConfig.from_dict(params["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"the run's params.json holds no model this code can build ({e})") from None


def load_model(run_dir):
    """The training model of a run folder, at its best epoch; a one-line error if it has no weights yet or
    they belong to another architecture."""
    params = read_params(run_dir)
    weights = model_file(run_dir, WEIGHTS)
    if not weights.is_file():
        raise UserError(f"{run_dir} has no saved weights yet (no epoch has finished); train or --resume it first")
    damage = h5_damage(weights, f"{MODELS}/{weights.name}")
    if damage:
        raise UserError(f"{run_dir}: {damage}, so the best epoch's model cannot be loaded; `python evaluate.py "
                        f"--check {run_dir}` says what else is sound, and `train.py --resume {run_dir} --epochs N` "
                        "with more epochs continues it from its backup")
    model = build_model(model_config(params))
    model.build_all()
    try:
        model.load_weights(weights)
    except (ValueError, KeyError, OSError) as e:
        raise UserError(f"cannot load {weights} into the model its params.json describes "
                        f"({' '.join(str(e).split())[:200]})") from None
    legacy = model_file(run_dir, CODE_GAUSSIAN)
    if legacy.is_file():
        model.restore_legacy_state({"code_gaussian": json.loads(legacy.read_text())})
    return model
