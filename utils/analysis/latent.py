"""Looking inside one trained model, for the notebooks and generate.py: finding a run, latent paths to
decode (a straight line between two codes, a walk along one axis) and showing a figure in a notebook.
Encoding, decoding and sampling are the model's own (models/base.py)."""

import io
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from models.gaussian import normal_quantiles
from utils.errors import UserError
from utils.runs import layout


def newest_finished_run(root):
    """The run folder under `root` (searched recursively) that finished last, by its params.json."""
    finished = []
    for path in Path(root).rglob(layout.PARAMS):
        try:
            params = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # half-written or foreign files are not runs to analyse
        if params.get("status") == "finished":
            finished.append((params.get("finished", ""), path.stat().st_mtime, path.parent))
    if not finished:
        raise UserError(f"no finished run under {root}; train one with train_vae.py or set RUN_DIR")
    return max(finished)[2]


def interpolate(a, b, steps):
    """`steps` points on the straight line from latent point `a` to `b`, both ends included."""
    t = np.linspace(0.0, 1.0, steps, dtype="float32")[:, None]
    return (1 - t) * np.asarray(a, "float32") + t * np.asarray(b, "float32")


def axis_walk(z_dim, axis, steps, origin=None):
    """`steps` latent points that move along one `axis` through standard-normal quantiles (never ±inf),
    all other coordinates held at `origin` (default 0)."""
    if not 0 <= axis < z_dim:
        raise UserError(f"AXIS must be between 0 and {z_dim - 1}; got {axis}")
    points = np.tile(np.zeros(z_dim, "float32") if origin is None else np.asarray(origin, "float32"), (steps, 1))
    points[:, axis] = normal_quantiles(steps)
    return points


def show_figure(fig):
    """Display a figure in a notebook as a PNG and free it.

    utils/analysis/plots.py selects the Agg backend, under which a kernel shows a bare Figure as text only.
    """
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))
