"""Figures: the latent scatter's legend uses class names, its axes stay the latent axes; loss panels per term."""

import numpy as np
import pandas as pd

from utils.analysis.plots import plot_latent_space, plot_losses


def test_latent_legend_names_the_classes_and_axes_name_the_latents():
    mu = np.random.default_rng(0).standard_normal((30, 2))
    labels = np.arange(30) % 3
    fig = plot_latent_space(mu, labels, ("T-shirt/top", "Trouser", "Pullover"))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T-shirt/top", "Trouser", "Pullover"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z[0]", "z[1]")
    assert len(plot_latent_space(mu, labels).axes) == 2  # no names: a colour bar instead


def test_one_loss_panel_per_term():
    history = pd.DataFrame({"epoch": [1, 2], "loss": [3.0, 2.0], "r_loss": [2.0, 1.5], "sparsity_loss": [1.0, 0.5],
                            "val_loss": [3.1, 2.1], "val_r_loss": [2.1, 1.6], "val_sparsity_loss": [1.0, 0.5],
                            "lr": [1e-3, 1e-3], "train_seconds": [1.0, 1.0]})
    axes = plot_losses(history).axes
    assert [a.get_ylabel() for a in axes] == ["reconstruction loss (log scale)", "sparsity penalty (log scale)"]
