"""The likelihood figures against a NumPy computation, the importance-sampled bound never below the ELBO,
and evaluate.py on a real run."""

import json

import numpy as np
import pytest

import evaluate
from conftest import last_line, numpy_of, run_main
from models import VariationalAutoencoder, model_config
from models.likelihoods import Likelihood
from utils.analysis.metrics import likelihood_figures


def _numpy_figures(encoder, decoder, x, eps):
    mu, log_var, _ = (numpy_of(t).astype("float64") for t in encoder(x))
    z = mu[None] + np.exp(0.5 * log_var)[None] * eps  # K x B x D
    p = np.clip(numpy_of(decoder(z.reshape(-1, z.shape[-1]).astype("float32"))).astype("float64"), 1e-7, 1 - 1e-7)
    p = p.reshape(len(eps), len(x), -1)
    flat_x = x.reshape(1, len(x), -1)
    log_px_z = (flat_x * np.log(p) + (1 - flat_x) * np.log(1 - p)).sum(-1)
    log_pz = -0.5 * (np.log(2 * np.pi) + z**2).sum(-1)
    log_qz = -0.5 * (np.log(2 * np.pi) + log_var[None] + (z - mu[None]) ** 2 / np.exp(log_var[None])).sum(-1)
    log_w = log_px_z + log_pz - log_qz
    top = log_w.max(axis=0)
    log_likelihood = top + np.log(np.exp(log_w - top).mean(axis=0))
    return log_w.mean(axis=0).mean(), log_likelihood.mean()


def test_elbo_and_importance_sampled_likelihood_match_numpy():
    model = VariationalAutoencoder(model_config(z_dim=3))
    x = np.random.default_rng(1).random((6, 28, 28, 1)).astype("float32")
    figures = likelihood_figures(model, x, samples=5, likelihood=Likelihood("bernoulli"), seed=0)
    eps = np.random.default_rng(0).standard_normal((5, 6, 3)).astype("float32")
    elbo, log_likelihood = _numpy_figures(model.encoder, model.decoder, x, eps)
    np.testing.assert_allclose(figures["elbo"], elbo, rtol=1e-4)
    np.testing.assert_allclose(figures["log_likelihood"], log_likelihood, rtol=1e-4)
    assert figures["nll"] == -figures["log_likelihood"] and figures["log_likelihood"] >= figures["elbo"]


def test_the_bound_tightens_with_more_samples_and_is_the_same_in_chunks(monkeypatch):
    """log mean_k w_k is at least mean_k log w_k (Jensen), for any K; and decoding in chunks changes nothing."""
    from models import VAE

    model = VariationalAutoencoder(model_config(z_dim=2))
    x = np.random.default_rng(2).random((4, 28, 28, 1)).astype("float32")
    bernoulli = Likelihood("bernoulli")
    one, many = (likelihood_figures(model, x, samples=k, likelihood=bernoulli, seed=3) for k in (1, 64))
    assert one["log_likelihood"] == one["elbo"] and many["log_likelihood"] >= many["elbo"]
    monkeypatch.setattr(VAE, "DECODES_PER_CALL", 9)  # 2 draws per call instead of all 64
    chunked = likelihood_figures(model, x, samples=64, likelihood=bernoulli, seed=3)
    np.testing.assert_allclose(chunked["nll"], many["nll"], rtol=1e-6)


def test_evaluate_adds_its_figures_to_the_run(trained_run):
    code, out, err = run_main(evaluate.main, trained_run, "--samples", 8, "--limit", 50)
    assert code == 0, err[-2000:]
    assert "bits/dim" in last_line(out) and "discretized_gaussian" in last_line(out)
    entry = json.loads((trained_run / "eval.json").read_text())["k8_n50"]
    assert entry["n_test"] == 50 and entry["nll"] > 0 and entry["log_likelihood"] >= entry["elbo"]
    assert entry["family"] == "vae" and entry["likelihood_kind"] == "discretized_gaussian"
    assert entry["bpd"] == pytest.approx(entry["nll"] / (28 * 28 * np.log(2))) and len(entry["kl_per_dimension"]) == 2
    assert entry["validated_on"] == "training images" and entry["loss"] > 0
