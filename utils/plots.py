"""The run's figures: latent scatter, reconstructions, samples, 2-D manifold, loss curves.

Each `plot_*` returns a matplotlib Figure; `save_figure` writes one atomically and closes it.
"""

from statistics import NormalDist

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (set before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.atomic import atomic_path  # noqa: E402

TRAIN_STYLE = {"linewidth": 2.2}
VAL_STYLE = {"linewidth": 0.9, "alpha": 0.45}


def save_figure(fig, path, dpi=150):
    """Write `fig` to `path` atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def image_grid(images, cols):
    """Tile N x H x W x C images into one (rows*H) x (cols*W) x C array, blank cells at the end."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=images.dtype)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return grid


def show_images(ax, images, cols):
    """Draw images as a tiled grid on `ax`, grayscale or RGB."""
    grid = image_grid(np.clip(images, 0, 1), cols)
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(grid)
    ax.set_axis_off()


def principal_components(points, k=2):
    """Project points on their first `k` principal components."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:k].T


def plot_latent_space(mu, labels=None):
    """Scatter of the encoder means (not sampled z, so the picture is the same every call)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    if mu.shape[1] == 1:
        y = labels if labels is not None else np.zeros(len(mu))
        xy, names = np.c_[mu[:, 0], y + np.random.default_rng(0).uniform(-0.3, 0.3, len(mu))], ("z[0]", "label")
    elif mu.shape[1] == 2:
        xy, names = mu, ("z[0]", "z[1]")
    else:
        xy, names = principal_components(mu), ("principal component 1", "principal component 2")
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10" if labels is not None else None,
                         s=3, alpha=0.7)
    if labels is not None:
        fig.colorbar(scatter, ax=ax, label="label")
    ax.set(xlabel=names[0], ylabel=names[1], title=f"Latent means of {len(mu)} test images")
    return fig


def plot_reconstructions(originals, reconstructions):
    """Originals (top row) over their reconstructions (bottom row)."""
    n = len(originals)
    fig, ax = plt.subplots(figsize=(1.1 * n, 2.4))
    show_images(ax, np.concatenate([originals, reconstructions]), cols=n)
    ax.set_title("test images (top) and reconstructions (bottom)")
    return fig


def plot_samples(images, cols=8):
    """A grid of images decoded from z ~ N(0, I)."""
    fig, ax = plt.subplots(figsize=(cols, -(-len(images) // cols)))
    show_images(ax, images, cols)
    return fig


def normal_quantiles(n):
    """Standard-normal quantiles of the probabilities (i + 0.5) / n: never 0 or 1, so never inf."""
    return np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)], dtype="float32")


def manifold_points(n=20):
    """n x n latent points on the grid of `normal_quantiles(n)`."""
    q = normal_quantiles(n)
    zx, zy = np.meshgrid(q, q[::-1])  # top row = high z[1], as on a plot
    return np.c_[zx.ravel(), zy.ravel()]


def plot_manifold(images, n=20):
    """The decoded 2-D latent grid of `manifold_points(n)`."""
    fig, ax = plt.subplots(figsize=(8, 8))
    show_images(ax, images, cols=n)
    ax.set_title(f"decoded {n}x{n} grid at N(0, 1) quantiles")
    return fig


def plot_losses(history, title=None):
    """The study's figure: log reconstruction loss (left), log KL loss (right); train thick, val thin."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "r_loss", "reconstruction loss"), (axes[1], "kl_loss", "KL loss")):
        line, = ax.plot(history["epoch"], history[key], label="train", **TRAIN_STYLE)
        if f"val_{key}" in history:
            ax.plot(history["epoch"], history[f"val_{key}"], color=line.get_color(), label="validation",
                    **VAL_STYLE)
        ax.set(yscale="log", xlabel="epoch", ylabel=f"{label} (log scale)")
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig
