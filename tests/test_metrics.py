"""The likelihood figures against a NumPy computation, and evaluate.py on a real run."""

import json

import numpy as np

from conftest import last_line, run_script
from models import VariationalAutoencoder, model_config
from utils.metrics import likelihood_figures


def _numpy_figures(encoder, decoder, x, eps):
    mu, log_var, _ = (np.asarray(t, dtype="float64") for t in encoder(x))
    z = mu[None] + np.exp(0.5 * log_var)[None] * eps  # K x B x D
    p = np.clip(np.asarray(decoder(z.reshape(-1, z.shape[-1]).astype("float32")), "float64"), 1e-7, 1 - 1e-7)
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
    figures = likelihood_figures(model.encoder, model.decoder, x, samples=5, seed=0)
    eps = np.random.default_rng(0).standard_normal((5, 6, 3)).astype("float32")
    elbo, log_likelihood = _numpy_figures(model.encoder, model.decoder, x, eps)
    np.testing.assert_allclose(figures["elbo"], elbo, rtol=1e-4)
    np.testing.assert_allclose(figures["log_likelihood"], log_likelihood, rtol=1e-4)
    assert figures["nll"] == -figures["log_likelihood"] and figures["log_likelihood"] >= figures["elbo"]


def test_evaluate_adds_its_figures_to_the_run(trained_run):
    result = run_script("evaluate.py", trained_run, "--samples", 8, "--limit", 50)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "NLL" in last_line(result.stdout)
    entry = json.loads((trained_run / "eval.json").read_text())["k8_n50"]
    assert entry["n_test"] == 50 and entry["nll"] > 0 and entry["log_likelihood"] >= entry["elbo"]
