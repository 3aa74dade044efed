"""Scoring a run: the figures of its model (its best epoch) on its dataset's test images, added to its
`eval.json`, one entry per setting. `evaluate.py` is the command; a training run scores itself at its end
when its settings ask (`--eval-samples`), with the model and data it already holds."""

import json
import time
from pathlib import Path

from utils.analysis import metrics
from utils.analysis.features import feature_network
from utils.atomic import write_json
from utils.data.binarize import load_data, load_raw
from utils.runs import layout, provenance
from utils.runs.loading import load_model
from utils.training.settings import TrainSettings


SAMPLE_SEED = 0  # the samples scored are the same for every evaluation of a run


def eval_key(samples, binarize, n_test):
    """The `eval.json` entry of one setting."""
    return f"k{samples}{'_binarized' if binarize else ''}_n{n_test}"


def evaluate_run(run_dir, samples=100, binarize=False, limit=None, model=None, data=None):
    """Score a run (its saved best model, or `model` where the caller holds it) on its test images (or
    `data`'s); updates `eval.json`. Returns (key, figures). Where the data have labels, also the scores of
    its samples on the data's feature network (utils/analysis/features.py): Fréchet distance, accuracy of
    reconstructions, spread of classes, against the data as they are (not binarized)."""
    start = time.perf_counter()
    model = model or load_model(run_dir)
    settings = TrainSettings(**layout.read_params(run_dir)["training"])
    data = data or load_data(settings)
    x_test = data.x_test[:limit] if limit else data.x_test
    if binarize:
        x_test = (x_test > 0.5).astype("float32")
    figures = {"family": model.config.family, "pixel_mse": metrics.reconstruction_mse(model, x_test)}
    if model.has_likelihood:
        figures.update(likelihood=model.likelihood_name, **metrics.likelihood_figures(model, x_test, samples=samples))
        figures.update(model.latent_summary(x_test))
    if data.y_test is not None:
        raw = data if settings.binarize == "none" else load_raw(settings)
        test, labels = raw.x_test[:len(x_test)], raw.y_test[:len(x_test)]
        network = feature_network(raw, settings.limit)
        figures.update(network.sample_scores(test, labels, model.sample(len(test), SAMPLE_SEED),
                                             model.reconstruct(test)))
    figures.update(samples=samples, binarize=binarize, n_test=len(x_test), seconds=time.perf_counter() - start,
                   time=provenance.now())
    key = eval_key(samples, binarize, len(x_test))
    path = Path(run_dir) / layout.EVAL
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = figures
    write_json(path, results)
    return key, figures


def describe(key, figures):
    """One line of figures."""
    text = f"{key}: pixel MSE {figures['pixel_mse']:.5f}"
    if "nll" in figures:
        text += (f", ELBO {figures['elbo']:.2f} nats, NLL {figures['nll']:.2f} nats ({figures['likelihood']}, "
                 f"importance-sampled, {figures['samples']} samples)")
    if "active_units" in figures:
        text += f", {figures['active_units']} active units"
    if "frechet_distance" in figures:
        text += (f", Fréchet distance {figures['frechet_distance']:.2f}, reconstructions classified right "
                 f"{figures['reconstruction_accuracy']:.1%}, class entropy of samples {figures['class_entropy']:.3f}")
    return text
