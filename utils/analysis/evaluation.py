"""Scoring a run: the figures of its model (its best epoch) on its dataset's test images, added to its
`eval.json`, one entry per setting. `evaluate.py` is the command; a training run scores itself at its end
when its settings ask (`--eval-samples`), with the model and data it already holds. The test images are
touched here only: training, the best epoch and the figures use the validation images."""

import dataclasses
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from models.likelihoods import LEVELS, is_binary, on_levels
from utils.analysis import metrics
from utils.analysis.features import judge
from utils.atomic import write_json
from utils.data.binarize import load_data, load_raw
from utils.runs import health, layout, provenance
from utils.runs.loading import load_model
from utils.runs.settings import recorded_settings


SAMPLE_SEED = 0  # the samples scored are the same for every evaluation of a run


def eval_key(samples, binarize, n_test):
    """The `eval.json` entry of one setting."""
    return f"k{samples}{'_binarized' if binarize else ''}_n{n_test}"


def evaluate_run(run_dir, samples=100, binarize=False, limit=None, model=None, data=None):
    """Score a run (its saved best model, or `model` where the caller holds it) on its test images (or
    `data`'s); updates `eval.json`. Returns (key, figures). Where the data have labels, also the scores of
    its samples on the data's judge network (utils/analysis/features.py), which no model trains against:
    Fréchet distance, KID, accuracy of reconstructions, spread of classes, against the data as they are."""
    start = time.perf_counter()
    earlier_scores(run_dir)
    model = model or load_model(run_dir)
    params = layout.read_params(run_dir)
    settings = recorded_settings(params)
    data = data or load_data(settings)
    x_test, x_val = (data.x_test[:limit] if limit else data.x_test), data.x_val
    if binarize:
        x_test, x_val = ((x > 0.5).astype("float32") for x in (x_test, x_val))
    validated_on = (params.get("validation") or {}).get("source", "test images")
    figures = {"family": model.config.family, "validated_on": validated_on,
               "pixel_mse": metrics.reconstruction_mse(model, x_test), **objective_figures(model, x_test)}
    if model.has_likelihood:
        figures.update(likelihood_scores(model, x_test, x_val, samples, data.x_val is data.x_test))
        figures.update(model.latent_summary(x_test))
    if data.y_test is not None:
        raw = load_raw(settings)  # the images as they are, with every training image the judge saw
        test, labels = raw.x_test[:len(x_test)], raw.y_test[:len(x_test)]
        network = judge(raw, settings.limit)  # not the DFC-VAE's feature network: no model trains against it
        figures.update(network.sample_scores(test, labels, model.sample(len(test), SAMPLE_SEED),
                                             model.reconstruct(test)))
    figures.update(samples=samples, binarize=binarize, n_test=len(x_test), seconds=time.perf_counter() - start,
                   time=provenance.now())
    key = eval_key(samples, binarize, len(x_test))
    path = Path(run_dir) / layout.EVAL
    results = json.loads(path.read_text()) if path.is_file() else {}  # damaged: moved aside by earlier_scores
    results[key] = figures
    write_json(path, results)
    return key, figures


def earlier_scores(run_dir):
    """Check the run's `eval.json` before scoring: a damaged one is moved aside into damaged/ (said in one
    line), so the new figures go into a fresh file and nothing is lost."""
    damage = health.json_damage(Path(run_dir) / layout.EVAL)
    if damage and damage.kind != health.MISSING:
        stamp = layout.damage_stamp()
        layout.move_aside(run_dir, layout.EVAL, stamp)
        print(f"warning: {run_dir}: {damage}; moved to {layout.DAMAGED}/{stamp}/ and scoring into a new "
              f"{layout.EVAL}", file=sys.stderr, flush=True)


def objective_figures(model, images, batch_size=500):
    """The model's own training objective (`loss`, and each term) on `images`, mean per image, at the weights
    scored: the study's loss on the test images, from the same checkpoint as every other figure (one draw of
    the codes per image, seeded)."""
    keras.utils.set_random_seed(SAMPLE_SEED)
    totals, terms = [], {}
    for start in range(0, len(images), batch_size):
        total, parts = model.per_sample_losses(np.asarray(images[start:start + batch_size], dtype="float32"))
        totals.append(keras.ops.convert_to_numpy(total))
        for name, value in parts.items():
            terms.setdefault(name, []).append(keras.ops.convert_to_numpy(value))
    return {"loss": float(np.concatenate(totals).mean()),
            **{f"loss_{name}": float(np.concatenate(values).mean()) for name, values in terms.items()}}


def likelihood_scores(model, x_test, x_val, samples, validated_on_test=False):
    """ELBO, NLL (nats per image) and bits per dimension of a likelihood of the data as they are, and the
    check of K (models/likelihoods.py: which likelihood, and why). Grey pixels off the 256 levels (resized
    image folders, float arrays) are rounded to them first, and the likelihood's name says so."""
    binary = is_binary(x_test)
    rounded = not binary and not on_levels(x_test)
    if rounded:
        x_test, x_val = (np.rint(np.asarray(x) * (LEVELS - 1)) / (LEVELS - 1) for x in (x_test, x_val))
    likelihood = model.scoring_likelihood(binary, x_val)
    if validated_on_test and likelihood.sigma_source.startswith("fitted"):  # a run made before the split
        likelihood = dataclasses.replace(likelihood, sigma_source=likelihood.sigma_source.replace(
            "validation images", "test images, as the run was validated on them"))
    if rounded:
        likelihood = dataclasses.replace(likelihood, sigma_source=likelihood.sigma_source + "; pixels rounded to 256 levels")
    return {"likelihood": likelihood.name, "likelihood_kind": likelihood.kind,
            **metrics.likelihood_figures(model, x_test, samples, likelihood),
            **metrics.k_check(model, x_test, samples, likelihood)}


def describe(key, figures):
    """One line of figures."""
    text = f"{key}: pixel MSE {figures['pixel_mse']:.5f}, loss {figures['loss']:.4g}" if "loss" in figures \
        else f"{key}: pixel MSE {figures['pixel_mse']:.5f}"
    if "bpd" in figures:
        change = figures["k_check_change"]
        text += (f", {figures['bpd']:.4f} bits/dim (NLL {figures['nll']:.2f} nats, ELBO {figures['elbo']:.2f} nats; "
                 f"{figures['likelihood']}; K = {figures['samples']} importance samples, "
                 f"{metrics.K_CHECK_FACTOR}K moves it {change:+.3f} nats on {figures['k_check_images']} images"
                 + (": raise --samples" if abs(change) > metrics.K_CHECK_TOLERANCE else "") + ")")
    elif "nll" not in figures:
        text += f", no likelihood (a {figures['family']} has none)"
    if "active_units" in figures:
        text += f", {figures['active_units']} active units"
    if "frechet_distance" in figures:
        kid = (f"KID {figures['kid']:.4f} [{figures['kid_low']:.4f}, {figures['kid_high']:.4f}], " if "kid" in figures
               else "")
        text += (f", on the judge {figures.get('judge', '')}: Fréchet distance {figures['frechet_distance']:.2f}, "
                 f"{kid}reconstructions classified right {figures['reconstruction_accuracy']:.1%}, class entropy of "
                 f"samples {figures['class_entropy']:.3f}")
    if figures.get("validated_on") == "test images":
        text += " [validated on the test images: made before the validation split]"
    return text
