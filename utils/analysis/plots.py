"""The figures: latent scatter, reconstructions, samples, 2-D manifold, loss curves, and the families'
own diagnostics (`plot_diagnostic`: a model names a generic kind of figure, rows of images, activations or
bars, and gives its data).

Each `plot_*` returns a matplotlib Figure; `save_figure` writes one atomically and closes it.
"""

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


def plot_latent_space(mu, labels=None, class_names=None, images="test"):
    """Scatter of the encoder means (not sampled z, so the picture is the same every call) of `images`
    ("test", "validation"), coloured by label, with a legend of `class_names` when the dataset has them."""
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
    if labels is not None and class_names is not None and len(class_names) <= 20:
        handles, _ = scatter.legend_elements(num=list(np.unique(labels)))
        legend = [class_names[int(i)] if int(i) < len(class_names) else str(i) for i in np.unique(labels)]
        ax.legend(handles, legend, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    elif labels is not None:
        fig.colorbar(scatter, ax=ax, label="label")
    ax.set(xlabel=names[0], ylabel=names[1], title=f"Latent means of {len(mu)} {images} images")
    return fig


def plot_reconstructions(originals, reconstructions, train_originals=None, train_reconstructions=None,
                         images="test"):
    """Held-out images (`images`: "test", "validation") over their reconstructions; with training images,
    those (and theirs) above."""
    pairs = [(images, originals, reconstructions)]
    if train_originals is not None:
        pairs.insert(0, ("training", train_originals, train_reconstructions))
    n = len(originals)
    fig, axes = plt.subplots(len(pairs), 1, figsize=(1.1 * n, 2.4 * len(pairs)), squeeze=False)
    for ax, (name, images, rebuilt) in zip(axes[:, 0], pairs):
        show_images(ax, np.concatenate([images, rebuilt]), cols=n)
        ax.set_title(f"{name} images (top) and reconstructions (bottom)")
    return fig


def plot_samples(images, cols=8):
    """A grid of images decoded from z ~ N(0, I)."""
    fig, ax = plt.subplots(figsize=(cols, -(-len(images) // cols)))
    show_images(ax, images, cols)
    return fig


def plot_manifold(images, n=20):
    """The decoded n x n grid of a 2-D latent space (the model's `latent_grid(n)`)."""
    fig, ax = plt.subplots(figsize=(8, 8))
    show_images(ax, images, cols=n)
    ax.set_title(f"decoded {n}x{n} grid at normal quantiles")
    return fig


def loss_terms(history):
    """The loss terms a `training.csv` logs (r_loss, kl_loss, sparsity_loss, ...), in its order."""
    return [c for c in history.columns
            if c not in ("epoch", "loss", "lr", "train_seconds") and not c.startswith("val_")]


def plot_losses(history, title=None):
    """One panel per loss term (the study's figure for a VAE: log reconstruction loss left, log KL
    loss right); training thick, validation thin. Log scale where the values are positive."""
    terms = loss_terms(history) or ["loss"]
    fig, axes = plt.subplots(1, len(terms), figsize=(5.5 * len(terms), 4), squeeze=False)
    for ax, key in zip(axes[0], terms):
        line, = ax.plot(history["epoch"], history[key], label="train", **TRAIN_STYLE)
        if f"val_{key}" in history:
            ax.plot(history["epoch"], history[f"val_{key}"], color=line.get_color(), label="validation",
                    **VAL_STYLE)
        positive = bool((history[key] > 0).all())
        ax.set(yscale="log" if positive else "linear", xlabel="epoch",
               ylabel=f"{TERM_LABELS.get(key, key)}{' (log scale)' if positive else ''}")
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


TERM_LABELS = {"r_loss": "reconstruction loss", "kl_loss": "KL loss", "sparsity_loss": "sparsity penalty",
               "l2_loss": "decoder L2 penalty", "loss": "loss"}


def plot_kl_per_dimension(kl):
    """A bar per latent dimension: which dimensions carry information (near-zero ones are unused)."""
    kl = np.asarray(kl)
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(kl) + 2), 3.5))
    ax.bar(np.arange(len(kl)), kl)
    ax.set(xlabel="latent dimension", ylabel="mean KL (nats)", xticks=np.arange(len(kl)),
           title=f"KL per latent dimension (sum {kl.sum():.3g})")
    return fig


def plot_image_rows(rows, title):
    """Rows of images, one above the other (e.g. a denoising AE's noisy inputs, outputs and clean images)."""
    n = len(rows[0])
    fig, ax = plt.subplots(figsize=(1.1 * n, 1.2 * len(rows)))
    show_images(ax, np.concatenate(rows), cols=n)
    ax.set_title(title)
    return fig


def plot_bars(panels, title=None):
    """One bar chart per panel ({"title", "values", "ylabel", optional "highlight": a bool per bar}), side by side."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.5, 3.2 * len(panels)), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        values = np.asarray(panel["values"], dtype=float)
        highlight = np.asarray(panel.get("highlight", [True] * len(values)))
        ax.bar(np.arange(len(values)), values, color=np.where(highlight, "tab:blue", "lightgrey"), width=0.85)
        ax.set(title=panel["title"], xlabel=panel.get("xlabel", "unit"), ylabel=panel.get("ylabel", ""))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_code_histogram(codes):
    """Sparse codes: a histogram of all activations (left) and each unit's mean activation (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.hist(codes.ravel(), bins=50, log=True)
    left.set(xlabel="activation", ylabel="count (log scale)",
             title=f"{codes.shape[1]} code units over {len(codes)} images")
    means = np.sort(codes.mean(axis=0))[::-1]
    right.bar(np.arange(len(means)), means, width=1.0)
    right.set(xlabel="unit (sorted)", ylabel="mean activation",
              title=f"mean activation {codes.mean():.3g}; units > 0.1 on average: {(means > 0.1).sum()}")
    return fig


# The kinds of figure a family's `diagnostics` may ask for (models/base.py), each drawn from plain data, so a new
# family draws its own figures without a change here.
DIAGNOSTIC_PLOTS = {
    "image_rows": lambda data: plot_image_rows(data["rows"], data["title"]),
    "activations": plot_code_histogram,
    "bars": lambda data: plot_bars(data["panels"], data.get("title")),
}


def plot_diagnostic(kind, data):
    """The figure of a family's diagnostic data (models/base.py `diagnostics`), by its kind."""
    if kind not in DIAGNOSTIC_PLOTS:
        raise ValueError(f"no figure for diagnostics of kind {kind!r}; add one to DIAGNOSTIC_PLOTS")
    return DIAGNOSTIC_PLOTS[kind](data)
