"""A run's `viz/` figures, for the model's current weights, drawn through the model contract
(models/base.py): latent means, reconstructions, samples, the 2-D manifold, the loss curves and the
family's own diagnostics, on the validation images (the test images are left to scoring). With --tensorboard the latent space and the samples go there as images too."""

import io
from pathlib import Path

from utils.analysis.plots import (plot_diagnostic, plot_latent_space, plot_losses, plot_manifold,
                                  plot_reconstructions, plot_samples, save_figure)
from utils.runs import layout
from utils.training.callbacks import read_history

SAMPLE_SEED = 0  # the samples figure draws the same codes every time it is redrawn
DIAGNOSTIC_IMAGES = 1000  # validation images the family's own figures are computed on


def draw_figures(model, data, run_dir, tensorboard=None, step=0):
    """Write every figure of `viz/` on the validation images (the test images are left to scoring; and, with `tensorboard`, log the latent space and samples at `step`)."""
    held_out = "test" if data.x_val is data.x_test else "validation"  # runs made before the split: test
    codes = model.latent_means(data.x_val)
    figures = {"latent_space.png": plot_latent_space(codes, data.y_val, data.class_names, held_out),
               "reconstructions.png": plot_reconstructions(data.x_val[:10], model.decode(codes[:10]), data.x_train[:10],
                                                           model.reconstruct(data.x_train[:10]), held_out),
               "samples.png": plot_samples(model.sample(64, SAMPLE_SEED))}
    grid = model.latent_grid(20)
    if grid is not None:
        figures["manifold.png"] = plot_manifold(model.decode(grid), 20)
    for name, (kind, values) in model.diagnostics(data.x_val[:DIAGNOSTIC_IMAGES]).items():
        figures[name] = plot_diagnostic(kind, values)
    history = read_history(Path(run_dir) / layout.HISTORY)
    if len(history):
        figures["losses.png"] = plot_losses(history, title=Path(run_dir).name)
    if tensorboard:
        _log_images(tensorboard, {k: figures[k] for k in ("latent_space.png", "samples.png")}, step)
    for name, figure in figures.items():
        save_figure(figure, Path(run_dir) / layout.VIZ / name)


def _log_images(folder, figures, step):
    """Figures as TensorBoard images (rendered to PNG, then decoded); TensorBoard's files need TensorFlow."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(Path(folder) / "figures"))
    with writer.as_default():
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
            tf.summary.image(name.removesuffix(".png"), tf.image.decode_png(buffer.getvalue())[None], step=step)
    writer.close()
