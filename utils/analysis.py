"""Looking inside one trained run, for the analysis and generation notebooks: finding a run, the
encoder's means and variances, KL per latent dimension, and latent paths to decode."""

import io
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from utils import runs
from utils.errors import UserError
from utils.plots import normal_quantiles


def newest_finished_run(root):
    """The run folder under `root` (searched recursively) that finished last, by its params.json."""
    finished = []
    for path in Path(root).rglob(runs.PARAMS):
        try:
            params = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # half-written or foreign files are not runs to analyse
        if params.get("status") == "finished":
            finished.append((params.get("finished", ""), path.stat().st_mtime, path.parent))
    if not finished:
        raise UserError(f"no finished run under {root}; train one with train_vae.py or set RUN_DIR")
    return max(finished)[2]


def latent_moments(encoder, images, batch_size=1000):
    """The encoder's (mu, log_var) for `images`, in eager batches, as NumPy arrays."""
    mus, log_vars = [], []
    for i in range(0, len(images), batch_size):
        mu, log_var = encoder(images[i:i + batch_size], training=False)[:2]
        mus.append(np.asarray(mu))
        log_vars.append(np.asarray(log_var))
    return np.concatenate(mus), np.concatenate(log_vars)


def kl_per_dimension(mu, log_var):
    """Mean over images of each latent dimension's KL(N(mu, var) || N(0, 1)); they sum to the KL loss."""
    return np.mean(0.5 * (mu**2 + np.exp(log_var) - 1.0 - log_var), axis=0)


def plot_kl_per_dimension(kl):
    """A bar per latent dimension: which dimensions carry information (near-zero ones are unused)."""
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(kl) + 2), 3.5))
    ax.bar(np.arange(len(kl)), kl)
    ax.set(xlabel="latent dimension", ylabel="mean KL (nats)", xticks=np.arange(len(kl)),
           title=f"KL per latent dimension (sum {kl.sum():.3g})")
    return fig


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

    utils.plots selects the Agg backend, under which a kernel shows a bare Figure as text only.
    """
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buffer.getvalue()))
