"""Looking inside one trained model, for the run's figures, generate.py and the notebooks: finding a
run, encoding (means for a VAE, codes for an AE), decoding, the Gaussian an AE's codes are sampled
from, KL per latent dimension, and latent paths to decode. Works on training models and on the
exported `encoder.h5`/`decoder.h5` alike."""

import io
import json
from pathlib import Path

import keras

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


def _encoded(encoder, images, batch_size):
    """The encoder's outputs for `images` in eager batches (no predict-function tracing), as a list of
    NumPy arrays: [mu, log_var, z] for a VAE, [code] for an AE."""
    parts = []
    for i in range(0, len(images), batch_size):
        outputs = encoder(np.asarray(images[i:i + batch_size], dtype="float32"), training=False)
        parts.append([np.asarray(o, dtype="float32") for o in (outputs if isinstance(outputs, (list, tuple))
                                                              else [outputs])])
    return [np.concatenate(column) for column in zip(*parts)]


def latent_means(encoder, images, batch_size=1000):
    """Where `images` sit in latent space: a VAE's posterior means, an AE's codes."""
    return _encoded(encoder, images, batch_size)[0]


def latent_moments(encoder, images, batch_size=1000):
    """A VAE encoder's (mu, log_var) for `images`, as NumPy arrays."""
    outputs = _encoded(encoder, images, batch_size)
    if len(outputs) < 2:
        raise UserError("this encoder gives codes, not Gaussian posteriors: an autoencoder has no log-variance")
    return outputs[0], outputs[1]


def decode(decoder, z):
    """Images (the means, for a decoder that also outputs a variance) decoded from latent points."""
    outputs = decoder(np.asarray(z, dtype="float32"), training=False)
    mean = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return keras.ops.convert_to_numpy(mean).astype("float32")


def fit_code_gaussian(codes):
    """{"mean", "cov"}: the Gaussian fitted to an autoencoder's codes, since an AE has no prior."""
    codes = np.asarray(codes, dtype="float64")
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    return {"mean": codes.mean(axis=0).tolist(), "cov": cov.tolist()}


def sample_latents(n, z_dim, rng, gaussian=None):
    """`n` latent points from N(0, I) (a VAE's prior) or from a fitted `gaussian` (an AE's codes)."""
    if gaussian is None:
        return rng.standard_normal((n, z_dim)).astype("float32")
    return rng.multivariate_normal(gaussian["mean"], gaussian["cov"], size=n, method="eigh").astype("float32")


def active_units(mu, threshold=0.01):
    """Latent dimensions whose posterior mean varies across images (variance > `threshold`)."""
    return int(np.sum(np.var(mu, axis=0) > threshold))


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
