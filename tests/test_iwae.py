"""The importance-weighted autoencoder: its loss against a hand computation for a tiny network, k = 1 as the
VAE's ELBO, the bound tightening with k, and the paper's presets training, resuming, scoring and sampling
through the commands."""

import json
import math

import keras
import numpy as np
import pytest
from scipy.special import logsumexp

import evaluate
import generate
from conftest import TINY, numpy_of, run_main, train
from models import build_model, model_config
from test_elbo import BINARY, assert_loss_is_the_elbo

TINY_NET = {"encoder_widths": [6], "decoder_widths": [6], "z_dim": 2, "encoder_act": "tanh", "decoder_act": "tanh"}


def iwae(k, bound="iwae", seed=0):
    keras.utils.set_random_seed(seed)
    return build_model(model_config("iwae", "dense", k=k, bound=bound, **TINY_NET))


def by_hand(model, images, outputs):
    """(-log (1/k) Σ w_i, -(1/k) Σ log w_i) per image from the forward pass's draws, in NumPy: Bernoulli pixels
    (probabilities clipped as Keras clips them), the standard-normal prior, the Gaussian posterior."""
    k = model.config.objective.k
    z, mean, log_var = (numpy_of(outputs[name]).astype("float64") for name in ("z", "mean", "log_var"))
    p = np.clip(numpy_of(outputs["all_outputs"]).astype("float64"), 1e-7, 1 - 1e-7).reshape(k, len(images), -1)
    x = images.reshape(1, len(images), -1)
    log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    log_pz = np.sum(-0.5 * math.log(2 * math.pi) - 0.5 * z**2, axis=-1)
    log_qz = np.sum(-0.5 * (math.log(2 * math.pi) + log_var + (z - mean) ** 2 / np.exp(log_var)), axis=-1)
    log_w = log_px + log_pz - log_qz
    return -(logsumexp(log_w, axis=0) - math.log(k)), -log_w.mean(axis=0)


@pytest.mark.parametrize("bound", ["iwae", "elbo"])
def test_the_loss_is_the_bound_computed_by_hand(bound):
    model, images = iwae(4, bound), BINARY[:5]
    outputs = model.forward(images)
    (name, (value, weight)), = model.loss_terms(images, outputs).items()
    assert name == f"{bound}_loss" and weight is None and model.term_names() == (name,)
    expected = by_hand(model, images, outputs)[0 if bound == "iwae" else 1]
    np.testing.assert_allclose(numpy_of(value), expected, rtol=2e-5)


def test_k_1_is_the_vaes_elbo_with_its_kl_taken_at_the_draw():
    model = iwae(1)
    outputs = model.forward(BINARY[:6])
    iwae_loss, elbo_loss = by_hand(model, BINARY[:6], outputs)
    np.testing.assert_allclose(iwae_loss, elbo_loss, rtol=1e-9)  # one draw: nothing to pool
    assert_loss_is_the_elbo(model, BINARY)  # in expectation the VAE's: -log p(x | z) + KL in closed form


def test_the_k_sample_elbo_is_an_elbo_and_the_iwae_bound_is_tighter():
    assert_loss_is_the_elbo(iwae(5, "elbo"), BINARY)
    tight, loose = iwae(50, "iwae", seed=3), iwae(50, "elbo", seed=3)  # the same weights
    images = np.concatenate([BINARY] * 20)
    assert float(np.mean(numpy_of(tight.per_sample_losses(images)[0]))) < float(
        np.mean(numpy_of(loose.per_sample_losses(images)[0])))


def test_a_kl_weight_is_refused():
    with pytest.raises(ValueError, match="no KL weight to change"):
        model_config("iwae", "dense", beta=2.0, **TINY_NET)


@pytest.mark.slow
def test_the_papers_presets_train_resume_score_and_sample(tmp_path):
    for preset in ("iwae_mnist", "vae_k_mnist"):
        run_dir = train("--preset", preset, "--epochs", 1, "--seed", 0, "--batch-size", 50, "--run-root", tmp_path,
                        *TINY)
        assert train("--resume", run_dir, "--epochs", 2) == run_dir
        params = json.loads((run_dir / "params.json").read_text())
        assert params["training"]["binarize"] == "dynamic" and params["model"]["architecture"]["z_dim"] == 50
        code, out, err = run_main(evaluate.main, run_dir, "--samples", 20, "--limit", 40)
        assert code == 0, err
        entry = json.loads((run_dir / "eval.json").read_text())["k20_n40"]
        assert entry["nll"] > 0 and entry["active_units"] >= 0 and "bernoulli" in entry["likelihood"]
        code, _, err = run_main(generate.main, run_dir, "--n", 4, "--out", tmp_path / f"{preset}.png", "--seed", 0)
        assert code == 0, err
