"""Figures comparable across runs and with the literature, through the model contract (models/base.py):
the pixel MSE of reconstructions (every family) and, where the model has a likelihood, the ELBO and the
importance-sampled NLL (the IWAE bound with K samples) in nats, and the model's latent summary.

The study's loss (1000 * MSE + KL) is not a likelihood. The model decides what it is scored with: its
own likelihood, or Bernoulli pixel means for runs trained with mse/rmse (models/likelihoods.py).
"""

import math

import numpy as np
from keras import ops


def likelihood_figures(model, images, samples=100, batch_size=100, seed=0):
    """Mean ELBO and importance-sampled log-likelihood with `samples` draws per image, in nats.

    Returns {"elbo", "log_likelihood", "nll"}; nll = -log_likelihood.
    """
    rng = np.random.default_rng(seed)
    elbos, log_likelihoods = [], []
    for start in range(0, len(images), batch_size):
        log_w = model.log_importance_weights(images[start:start + batch_size], samples, rng)  # K x B
        elbos.append(ops.convert_to_numpy(ops.mean(log_w, axis=0)))
        log_likelihoods.append(ops.convert_to_numpy(ops.logsumexp(log_w, axis=0)) - math.log(samples))
    log_likelihood = float(np.concatenate(log_likelihoods).mean())
    return {"elbo": float(np.concatenate(elbos).mean()), "log_likelihood": log_likelihood, "nll": -log_likelihood}


def reconstruction_mse(model, images, batch_size=1000):
    """Mean squared pixel error of reconstructions from the latent means (codes) of clean `images`:
    the figure every family shares."""
    errors = []
    for start in range(0, len(images), batch_size):
        x = np.asarray(images[start:start + batch_size], dtype="float32")
        errors.append(np.mean(np.square(x - model.reconstruct(x, batch_size)).reshape(len(x), -1), axis=1))
    return float(np.concatenate(errors).mean())
