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


def test_each_kind_of_diagnostic_figure_is_drawn_from_plain_data():
    from utils.analysis.plots import DIAGNOSTIC_PLOTS, plot_diagnostic

    images = np.random.default_rng(1).random((4, 28, 28, 1)).astype("float32")
    rows = plot_diagnostic("image_rows", {"rows": [images, images[::-1]], "title": "in and out"})
    assert rows.axes[0].get_title() == "in and out" and rows.axes[0].images[0].get_array().shape[:2] == (56, 112)
    bars = plot_diagnostic("bars", {"title": "units", "panels": [{"title": "layer 1", "values": [1.0, 0.0, 2.0],
                                                                   "highlight": [True, False, True]},
                                                                  {"title": "layer 2", "values": [0.5]}]})
    assert [a.get_title() for a in bars.axes] == ["layer 1", "layer 2"] and len(bars.axes[0].patches) == 3
    activations = plot_diagnostic("activations", np.random.default_rng(2).random((50, 6)))
    assert len(activations.axes) == 2 and set(DIAGNOSTIC_PLOTS) == {"image_rows", "activations", "bars"}
